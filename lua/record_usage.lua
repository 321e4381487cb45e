-- include: lib_pool
-- include: lib_usage
-- record_usage: write the usage record of a call that had no settle to carry it (refused before
-- any key was reserved, failed after its last settle, or served on degraded mode's local store),
-- with its rollups; see write_usage in lib_usage.lua.
--
-- KEYS: usage stream, usage rollup (this minute's), then (optional, with the budget charge)
--       budgets, budget spend.
-- ARGV: the usage segment (10 entries: lua.usage_records.UsageArgs; an empty record writes none),
--       then (optional) the call's budget fields (comma list, '' = none), its cost in
--       nano-dollars ('' = none) and the day offsets (as reserve takes them).
-- When fields and a cost are given, the cost is charged to every listed budget (charge_spent in
-- lib_usage.lua: spent + cost, requests + 1, in the period current at the store's clock). Only
-- calls whose cost never reached the shared spend are passed so (served while degraded: their
-- record is replayed here when Redis is back). Not idempotent: each run charges again (degraded
-- mode replays each kept write once).
-- Answers {'ok'}.

write_usage(KEYS[1], KEYS[2], ARGV, 1)
local fields, cost = ARGV[11] or '', tonumber(ARGV[12] or '')
if fields ~= '' and cost and KEYS[4] then
  charge_spent(KEYS[3], KEYS[4], fields, math.max(0, cost), pool_now(''), parse_offsets(ARGV[13] or ''))
end
return {'ok'}
