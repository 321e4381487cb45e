-- include: lib_pool
-- include: lib_usage
-- release: give back a reservation whose call never left (its secret could not be read); a call
-- that could not connect settles 'unreachable' instead, which also cools the key down. The request and tokens come back, never more than is still outstanding:
-- capacity that already refilled is not handed out twice. Idempotent like settle.
--
-- KEYS: reservation, cfg, state, win, stats, the ready set of the reservation's model and tier,
--       budget spend.
-- Budgets the reservation holds get their estimate back, as with settle 'unreachable' (spent
-- unchanged; a budget whose period rolled meanwhile is left alone).
-- ARGV: now ('' = TIME), day offsets.
-- Answers {'released', key} | {'noop', state} | {'expired'}.

local RES, CFG, STATE, WIN, STATS, READY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local SPEND = KEYS[7]
local now = pool_now(ARGV[1])
local offsets = parse_offsets(ARGV[2])

local r = redis.call('HMGET', RES, 'state', 'key', 'bucket', 'tokens', 'at', 'seq', 'budgets', 'out')
if not r[1] then return {'expired'} end
if r[1] ~= 'reserved' then return {'noop', r[1]} end
local key, bucket, tokens, at, rseq = r[2], r[3], tonumber(r[4]), tonumber(r[5]), tonumber(r[6]) or 0
give_back(CFG, STATE, WIN, STATS, READY, now, offsets, key, bucket, tokens, at, rseq, tonumber(r[8]) or 0)
settle_budgets(SPEND, r[7], 0, true)
redis.call('HSET', RES, 'state', 'released')
return {'released', key}
