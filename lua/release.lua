-- include: lib_pool
-- release: give back a reservation whose call never reached the provider (connection refused
-- before sending). The request and tokens come back, never more than is still outstanding:
-- capacity that already refilled is not handed out twice. Idempotent like settle.
--
-- KEYS: reservation, cfg, state, win, stats, the ready set of the reservation's model and tier.
-- ARGV: now ('' = TIME), day offsets.
-- Answers {'released', key} | {'noop', state} | {'expired'}.

local RES, CFG, STATE, WIN, STATS, READY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = pool_now(ARGV[1])
local offsets = parse_offsets(ARGV[2])

local r = redis.call('HMGET', RES, 'state', 'key', 'bucket', 'tokens', 'at', 'seq')
if not r[1] then return {'expired'} end
if r[1] ~= 'reserved' then return {'noop', r[1]} end
local key, bucket, tokens, at, rseq = r[2], r[3], tonumber(r[4]), tonumber(r[5]), tonumber(r[6]) or 0
local L = read_limits(CFG, bucket)
if L then
  local S = read_state(STATE, bucket)
  local day, next_day = day_of(now, offsets[L.tz] or 0)
  roll(S, now, day)
  if L.rpm > 0 then
    local e = 60.0 / L.rpm
    local back = math.max(0, math.min(1 - (now - at) / e, gcra_level(S.tat_r, now, L.rpm)))
    S.tat_r = S.tat_r - back * e
  end
  if tokens > 0 then
    local marks = read_lows(STATE, bucket)
    local back = refund_bound(marks, S, now, rseq, at, tokens, L.tpm)
    if L.tpm > 0 then S.tat_t = S.tat_t - back * (60.0 / L.tpm) end
    push_low(marks, gcra_level(S.tat_t, now, L.tpm))
    write_lows(STATE, bucket, marks)
  end
  if L.strict then
    local W = read_window(WIN, bucket, now)
    window_add(W, math.floor(at), -1, -tokens)
    write_window(WIN, bucket, W)
  end
  if day_of(at, offsets[L.tz] or 0) == day then
    S.day_req, S.day_tok = math.max(0, S.day_req - 1), math.max(0, S.day_tok - tokens)
  end
  local minute = math.floor(at / 60)
  if minute == S.minute then
    S.min_req, S.min_tok = math.max(0, S.min_req - 1), math.max(0, S.min_tok - tokens)
  elseif minute == S.minute - 1 then
    S.prev_req, S.prev_tok = math.max(0, S.prev_req - 1), math.max(0, S.prev_tok - tokens)
  end
  write_state(STATE, bucket, S)
  local W2 = nil
  if L.strict then W2 = read_window(WIN, bucket, now) end
  local ready_at = limits_at(L, S, W2, 1, next_day)
  redis.call('ZADD', READY, 'XX', 'LT', f6(math.max(ready_at, now)), key)
end
redis.call('HINCRBY', STATS, key .. ':requests', -1)
redis.call('HINCRBY', STATS, key .. ':released', 1)
redis.call('HSET', RES, 'state', 'released')
return {'released', key}
