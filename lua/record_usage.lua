-- include: lib_pool
-- include: lib_usage
-- record_usage: write the usage record of a call that had no settle to carry it (refused before
-- any key was reserved, or failed after its last settle), with its rollups; see write_usage in
-- lib_usage.lua.
--
-- KEYS: usage stream, usage rollup (this minute's).
-- ARGV: the usage segment (10 entries: lua.usage_records.UsageArgs; an empty record writes none).
-- Answers {'ok'}.

write_usage(KEYS[1], KEYS[2], ARGV, 1)
return {'ok'}
