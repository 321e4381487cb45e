-- include: lib_pool
-- sync_model: make the pool's records and indexes of one model match the configuration.
-- Run at start-up and on every reload by each process; applying the same configuration twice
-- changes nothing, and usage state (GCRA times, counters, health) is never touched, so changed
-- limits take effect on the next reservation with no state lost.
--
-- A bucket whose limits changed keeps its usage in units (requests, tokens): its GCRA times are
-- rescaled to the new rates, so "2 of 4 used" stays 2 used.
--
-- `model` is an index (keys.models.model_index): a model's own name, or a pattern index that
-- every name reached only through the same pattern bindings shares. An index no key serves any
-- more (no keys given) is removed: its record, its sets and its entry in the models set.
--
-- KEYS: cfg, health, models set, state, then per tier (all tiers, old and new) its ready, order
--       and share sorted sets.
-- ARGV: model, max tpm burst (-1: unlimited key present), tiers in use (comma list), tiers of the
--       KEYS triples (comma list), number of keys, then per key: id, tier, group, weight record
--       (weight, then TAB and the pattern the key's bucket is under, for a pattern binding),
--       tags, active (1/0); then number of buckets, then per bucket: name, limits record; then
--       now ('' = TIME).
-- Answers {keys in indexes, keys removed}.

local CFG, HEALTH, MODELS, STATE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local model, max_burst, tiers_used = ARGV[1], ARGV[2], ARGV[3]
local triple_tiers = split(ARGV[4], ',')
local nkeys = tonumber(ARGV[5])

if nkeys == 0 then
  local removed = 0
  for i = 5, #KEYS do removed = removed + redis.call('DEL', KEYS[i]) end
  redis.call('HDEL', CFG, 'm:' .. model)
  redis.call('SREM', MODELS, model)
  return {0, removed}
end

write_model(CFG, model, max_burst, tiers_used)
redis.call('SADD', MODELS, model)

local wanted = {}     -- tier -> {key -> position}
local bucket_of = {}  -- key -> its bucket under this index
for _, tier in ipairs(triple_tiers) do wanted[tier] = {} end
local pos = 6
for i = 1, nkeys do
  local id, tier, group, weight, tags, active = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5]
  pos = pos + 6
  write_key(CFG, id, group, active == '1', tags)
  bucket_of[id] = weight_bucket(group, weight, model)
  redis.call('HSET', CFG, 'w:' .. id .. '|' .. model, weight)
  if active == '1' and read_health(HEALTH, id).state ~= 'disabled' and wanted[tier] then
    wanted[tier][id] = i
  end
end
local nbuckets = tonumber(ARGV[pos])
pos = pos + 1
local bucket_args = pos
pos = pos + nbuckets * 2
local now = pool_now(ARGV[pos])

local function rescale(tat, old_limit, new_limit)
  if old_limit <= 0 or new_limit <= 0 or tat <= now then return tat end
  return now + (tat - now) * old_limit / new_limit
end

local changed = {}   -- buckets whose limits changed: their keys' ready scores start over
for i = 0, nbuckets - 1 do
  local bucket, record = ARGV[bucket_args + 2 * i], ARGV[bucket_args + 2 * i + 1]
  local old_record = redis.call('HGET', CFG, 'b:' .. bucket)
  local old = read_limits(CFG, bucket)
  redis.call('HSET', CFG, 'b:' .. bucket, record)
  if old_record and old_record ~= record then changed[bucket] = true end
  if old then
    local new = read_limits(CFG, bucket)
    if old.rpm ~= new.rpm or old.tpm ~= new.tpm then
      local S = read_state(STATE, bucket)
      S.tat_r = rescale(S.tat_r, old.rpm, new.rpm)
      S.tat_t = rescale(S.tat_t, old.tpm, new.tpm)
      write_state(STATE, bucket, S)
    end
  end
end

local indexed, removed = 0, 0
for i, tier in ipairs(triple_tiers) do
  local R, O, S = KEYS[4 + (i - 1) * 3 + 1], KEYS[4 + (i - 1) * 3 + 2], KEYS[4 + (i - 1) * 3 + 3]
  local want = wanted[tier]
  for _, member in ipairs(redis.call('ZRANGE', O, 0, -1)) do
    if not want[member] then
      redis.call('ZREM', R, member)
      redis.call('ZREM', O, member)
      redis.call('ZREM', S, member)
      removed = removed + 1
    end
  end
  for _, member in ipairs(redis.call('ZRANGE', R, 0, -1)) do
    if not want[member] then redis.call('ZREM', R, member) end
  end
  local lowest = redis.call('ZRANGE', S, 0, 0, 'WITHSCORES')[2] or '0'
  for id, position in pairs(want) do
    if changed[bucket_of[id]] then
      redis.call('ZADD', R, '0', id)
    else
      redis.call('ZADD', R, 'NX', '0', id)
    end
    redis.call('ZADD', O, int(position), id)
    redis.call('ZADD', S, 'NX', lowest, id)
    indexed = indexed + 1
  end
end
return {indexed, removed}
