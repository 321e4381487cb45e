-- include: lib_pool
-- include: lib_usage
-- settle: charge a reservation's actual tokens (refund or extra) and record the call's outcome.
-- Idempotent: only a reservation still 'reserved' is settled; a repeated or late settle does
-- nothing (a reservation never settled expires and stays charged at its estimate).
--
-- KEYS: reservation, cfg, state, win, health, stats, budget spend, usage stream, usage rollup
--       (this minute's), then the ready sets the key is in (the first one is the reservation's
--       own model and tier).
-- ARGV: actual tokens ('' = the estimate), outcome (success | neutral | rate_limited | auth |
--       transient | unreachable | cancelled), retry after seconds ('' = not said), scope (minute | day), cooldown base,
--       cooldown factor, cooldown max, breaker threshold, breaker timeout, error class,
--       now ('' = TIME), day offsets, the provider's latest rate-limit headers ('' = none; kept
--       for status and adaptive limits, in the same call), then what the provider's headers said
--       of its own buckets ('' = not said): hold seconds, the room in requests and in tokens
--       they will have when the hold ends, and the units each room may be off by (default 1;
--       see "The provider's own word" below), '1' when the reservation is its key's half-open
--       probe, then the unreachable cooldown's base and max seconds, the call's actual cost in
--       nano-dollars ('' = the reservation's estimate), the limits the provider reported
--       ('rpm,tpm,rpd,itpm,otpm', each '' when not said; '' = none said: see "Learned limits"
--       below), the call's actual input and output tokens ('' = not known), then the usage
--       segment (10 entries: lua.usage_records.UsageArgs; an empty record writes none).
-- Answers {'settled', key, tokens, state, until, tokens still charged, state before, now,
--       figures configured above what the provider reported, newly ('rpm=120>60;...', '')}
--       | {'noop', state} | {'expired'}. Times are the store's; the caller measures durations
--       against the `now` answered, never against its own clock.
--
-- unreachable: the call never reached the provider (refused, no route, connect timeout): the
--   request and tokens come back as with release, and the key cools down for the unreachable base
--   growing by the cooldown factor on repeats (capped), each counting toward the breaker.
-- cancelled: the caller left mid-call: the call may have reached the provider (its charge stays)
--   but says nothing of the key; a cancelled probe frees the probe at once (the circuit stays open
--   and the next caller probes), it never closes the circuit.
--
-- Budgets (lib_usage.lua): every budget the reservation holds gives its estimate back from
-- `reserved` and, on every outcome but unreachable, adds the actual cost to `spent`; unreachable
-- refunds everything (spent unchanged). A budget whose period rolled since the reservation is
-- left alone: the estimate was held in a period that ended, the new one never held it (and the
-- call's cost counts in neither). The usage record and its rollups are written by every settle
-- that settles (in this same run), never by a noop or an expired one.
--
-- Learned limits (lib_pool's read_limits): a figure the provider reported is kept in the bucket's
-- p: record when it differs from the one kept (every process adopts it on its next reservation);
-- the bucket's usage in units is kept (its GCRA times rescaled, as sync_model does), and a limit
-- that was open before and is learned from a 429 starts drained. A bucket being learned is no
-- longer in flight after any settle, and has learned once its provider answered a call (even
-- when the answer said nothing: Gemini tells its limits only in its 429s).
--
-- Input and output token limits (itpm, otpm: Anthropic's) are corrected to the call's actual
-- input and output tokens (when only the total is known, its difference goes to the output).

local RES, CFG, STATE, WIN, HEALTH, STATS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local SPEND, USAGE, ROLLUP = KEYS[7], KEYS[8], KEYS[9]
local READY = 10      -- the first ready set's place in KEYS (the reservation's own)
local outcome, retry_after, scope = ARGV[2], ARGV[3], ARGV[4]
local cd_base, cd_factor, cd_max = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cb_threshold, cb_timeout, error_class = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local now = pool_now(ARGV[11])
local now_s = f6(now)
local offsets = parse_offsets(ARGV[12])
local provider_limits = ARGV[13] or ''
local hold = tonumber(ARGV[14] or '') or 0
local room_r, room_t = tonumber(ARGV[15] or ''), tonumber(ARGV[16] or '')
local tol_r, tol_t = tonumber(ARGV[17] or '') or 1, tonumber(ARGV[18] or '') or 1
local is_probe = ARGV[19] == '1'
local un_base, un_max = tonumber(ARGV[20] or '') or 5, tonumber(ARGV[21] or '') or 60
local said_text = ARGV[23] or ''
local actual_in, actual_out = tonumber(ARGV[24] or ''), tonumber(ARGV[25] or '')
local USAGE_AT = 26

-- 'rpm,tpm,rpd,itpm,otpm' as the provider said them (nil: not said).
local function parse_said(text)
  local out, i = {}, 1
  for _, v in ipairs(split(text, ',')) do
    local f = FIGURES[i]
    if f then out[f] = tonumber(v) end
    i = i + 1
  end
  return out
end

-- A limit's GCRA time when its figure changes from `old` to `new` (0 = open). A limit that was
-- open starts drained when learned from a refusal (the provider's bucket is empty now), else
-- holding what the bucket counted in the sliding minute (`used`).
local function rescale(tat, old, new, burst, used)
  if new <= 0 then return tat end
  if old <= 0 then
    if outcome == 'rate_limited' then used = burst end
    return math.max(tat, now + math.min(used, burst) * (60.0 / new))
  end
  if tat <= now then return tat end
  return now + (tat - now) * old / new
end

-- Adopt what the provider said of the bucket's limits (see "Learned limits"); answers the
-- figures configured above what it said, newly ('' none).
local function learn(L, S, bucket)
  if not L.c.learn then return '' end
  local P, said, changed, above = L.P, parse_said(said_text), false, {}
  for _, f in ipairs(FIGURES) do
    local v = said[f]
    if v and v > 0 and v ~= P[f] then
      if L.c[f] > 0 and v < L.c[f] then above[#above + 1] = f .. '=' .. int(L.c[f]) .. '>' .. int(v) end
      P[f], changed = math.floor(v), true
    end
  end
  local write = changed or P.flight > 0 or (P.at == 0 and outcome == 'success')
  if not write then return '' end
  if changed or P.at == 0 and outcome == 'success' then P.at = now end
  P.flight = 0
  write_learned(CFG, bucket, P)
  if changed then
    local old = {rpm = L.rpm, tpm = L.tpm, itpm = L.itpm, otpm = L.otpm}
    merge_limits(L)
    local w = 1 - (now % 60) / 60  -- the previous minute's share of the sliding minute
    local reqs, toks = S.min_req + S.prev_req * w, S.min_tok + S.prev_tok * w
    S.tat_r = rescale(S.tat_r, old.rpm, L.rpm, L.br, reqs)
    S.tat_t = rescale(S.tat_t, old.tpm, L.tpm, L.bt, toks)
    S.tat_i = rescale(S.tat_i, old.itpm, L.itpm, L.bi, toks)
    S.tat_o = rescale(S.tat_o, old.otpm, L.otpm, L.bo, toks)
  else
    merge_limits(L)
  end
  return table.concat(above, ';')
end

local r = redis.call('HMGET', RES, 'state', 'key', 'bucket', 'tokens', 'at', 'seq', 'budgets', 'cost', 'out')
if not r[1] then return {'expired'} end
if r[1] ~= 'reserved' then return {'noop', r[1]} end
local key, bucket, reserved, at, rseq = r[2], r[3], tonumber(r[4]), tonumber(r[5]), tonumber(r[6]) or 0
local cost = tonumber(ARGV[22] or '') or tonumber(r[8]) or 0
settle_budgets(SPEND, r[7], math.max(0, cost), outcome == 'unreachable')
write_usage(USAGE, ROLLUP, ARGV, USAGE_AT)
local reserved_out = math.min(tonumber(r[9]) or 0, reserved)

-- a state that ran out is 'ok' to the caller's eyes
local function state_before(h)
  if (h.state == 'cooldown' or h.state == 'open') and h.till <= now then return 'ok' end
  return h.state
end

local function penalise_unreachable(h)
  h.fails, h.level = h.fails + 1, h.level + 1
  if h.state == 'probing' or h.state == 'open' or h.fails >= cb_threshold then
    h.state, h.till, h.reason = 'open', now + cb_timeout, error_class
  else
    local till = now + math.min(un_base * cd_factor ^ (h.level - 1), un_max)
    if not (h.state == 'cooldown' and h.till > till) then
      h.state, h.till, h.reason = 'cooldown', till, 'unreachable'
    end
  end
  for i = READY, #KEYS do redis.call('ZADD', KEYS[i], 'XX', 'GT', f6(h.till), key) end
end

if outcome == 'unreachable' then
  give_back(CFG, STATE, WIN, STATS, KEYS[READY], now, offsets, key, bucket, reserved, at, rseq, reserved_out)
  local h = read_health(HEALTH, key)
  local before = state_before(h)
  if h.state ~= 'disabled' then
    penalise_unreachable(h)
    write_health(HEALTH, key, h)
  end
  redis.call('HINCRBY', STATS, key .. ':failures', 1)
  redis.call('HSET', STATS, key .. ':last_error', error_class, key .. ':last_error_at', now_s)
  redis.call('HSET', RES, 'state', 'released')
  return {'settled', key, '0', h.state, f6(h.till), f6(0), before, now_s, ''}
end

local actual = reserved
if ARGV[1] ~= '' then actual = math.max(0, math.floor(tonumber(ARGV[1]))) end

local L = read_limits(CFG, bucket)
local S = read_state(STATE, bucket)
local above = ''
if not L then
  L = merge_limits({c = {rpm = 0, tpm = 0, rpd = 0, br = 0, bt = 0, itpm = 0, otpm = 0, bi = 0, bo = 0},
    P = {rpm = 0, tpm = 0, rpd = 0, itpm = 0, otpm = 0, at = now, flight = 0}, strict = false, tz = 'UTC'})
end
local day, next_day = day_of(now, offsets[L.tz] or 0)
roll(S, now, day)
above = learn(L, S, bucket)

-- tokens: the difference between what was reserved and what the provider counted
local diff = actual - reserved
local charged = reserved
if diff ~= 0 then
  local W = nil
  if L.strict then W = read_window(WIN, bucket, now) end
  local marks = read_lows(STATE, bucket)
  if diff < 0 then
    local back = refund_bound(marks, S, now, rseq, at, -diff, L.tpm)
    if L.tpm > 0 then S.tat_t = S.tat_t - back * (60.0 / L.tpm) end
    charged = reserved - back
    push_low(marks, gcra_level(S.tat_t, now, L.tpm))
    if W then window_add(W, math.floor(at), 0, diff) end
  else
    push_low(marks, gcra_level(S.tat_t, now, L.tpm))
    S.tat_t = gcra_charge(S.tat_t, now, diff, L.tpm)
    charged = actual
    if W then window_add(W, math.floor(now), 0, diff) end
  end
  write_lows(STATE, bucket, marks)
  if W then write_window(WIN, bucket, W) end
  if day_of(at, offsets[L.tz] or 0) == day then S.day_tok = math.max(0, S.day_tok + diff) end
  local minute = math.floor(at / 60)
  if minute == S.minute then
    S.min_tok = math.max(0, S.min_tok + diff)
  elseif minute == S.minute - 1 then
    S.prev_tok = math.max(0, S.prev_tok + diff)
  end
end
redis.call('HINCRBY', STATS, key .. ':tokens', actual)
if L.itpm > 0 or L.otpm > 0 then
  local reserved_in = reserved - reserved_out
  local a_in = actual_in or reserved_in
  local a_out = actual_out or math.max(0, actual - a_in)
  S.tat_i = gcra_adjust(S.tat_i, now, a_in - reserved_in, L.itpm, at)
  S.tat_o = gcra_adjust(S.tat_o, now, a_out - reserved_out, L.otpm, at)
end
if provider_limits ~= '' then redis.call('HSET', STATS, key .. ':provider_limits', provider_limits) end

-- outcome: health of the key, and the provider's own verdict on the bucket
local h = read_health(HEALTH, key)
local before = state_before(h)
local h_changed = false
local result_state, result_until = h.state, h.till
if outcome == 'success' or outcome == 'neutral' or outcome == 'rate_limited' then
  -- the key itself works: a probe succeeded, failures fade
  if h.state == 'open' or h.state == 'probing' then
    h.state, h.till, h.reason, h.fails, h_changed = 'ok', 0, '', 0, true
  elseif h.fails > 0 then
    h.fails, h_changed = h.fails - 1, true
  end
  if outcome == 'success' and h.level > 0 then h.level, h_changed = 0, true end
  result_state, result_until = h.state, h.till
end
if outcome == 'success' then
  redis.call('HINCRBY', STATS, key .. ':successes', 1)
  if S.blocked <= now then S.level = 0 end
elseif outcome == 'neutral' then
  redis.call('HINCRBY', STATS, key .. ':failures', 1)
elseif outcome == 'rate_limited' then
  redis.call('HINCRBY', STATS, key .. ':rate_limited', 1)
  local till
  if scope == 'day' then
    till = next_day
  elseif retry_after ~= '' then
    till = now + tonumber(retry_after)
  else
    till = now + math.min(cd_base * cd_factor ^ S.level, cd_max)
  end
  S.level = S.level + 1
  if till > S.blocked then S.blocked = till end
  redis.call('ZADD', KEYS[READY], 'XX', 'GT', f6(S.blocked), key)
  result_state, result_until = 'cooldown', S.blocked
elseif outcome == 'auth' then
  redis.call('HINCRBY', STATS, key .. ':failures', 1)
  h.state, h.till, h.reason, h_changed = 'disabled', 0, 'auth', true
  for i = READY, #KEYS do redis.call('ZREM', KEYS[i], key) end
  result_state, result_until = 'disabled', 0
elseif outcome == 'transient' then
  redis.call('HINCRBY', STATS, key .. ':failures', 1)
  h.fails, h_changed = h.fails + 1, true
  if h.state == 'probing' or h.state == 'open' or h.fails >= cb_threshold then
    h.state, h.till, h.reason = 'open', now + cb_timeout, error_class
    for i = READY, #KEYS do redis.call('ZADD', KEYS[i], 'XX', 'GT', f6(h.till), key) end
  end
  result_state, result_until = h.state, h.till
elseif outcome == 'cancelled' and is_probe and h.state == 'probing' then
  h.state, h.till, h_changed = 'open', now, true
  for i = READY, #KEYS do redis.call('ZADD', KEYS[i], 'XX', 'LT', now_s, key) end
  result_state, result_until = h.state, h.till
end
-- The provider's own word: its buckets may hold less than this one thinks (the key is also used
-- elsewhere, or configured above what the provider allows). A hold blocks the bucket until another
-- call like this one fits the provider's; and from then on this bucket never has more room than
-- the provider said it would (a difference within what the report may be off by, the rounding of
-- its reset, counts as agreement), so no burst goes out when the hold ends. Room is only ever
-- taken away here, never added.
if outcome == 'success' or outcome == 'neutral' then
  local e = now + math.max(0, hold)
  if hold > 0 and e > S.blocked then
    S.blocked = e
    redis.call('ZADD', KEYS[READY], 'XX', 'GT', f6(S.blocked), key)
  end
  local synced = false
  if room_r and L.rpm > 0 and L.br - gcra_level(S.tat_r, e, L.rpm) - room_r > tol_r then
    S.tat_r, synced = e + (L.br - math.max(0, room_r)) * (60.0 / L.rpm), true
  end
  if room_t and L.tpm > 0 and L.bt - gcra_level(S.tat_t, e, L.tpm) - room_t > tol_t then
    S.tat_t, synced = e + (L.bt - math.max(0, room_t)) * (60.0 / L.tpm), true
  end
  if synced then
    redis.call('ZADD', KEYS[READY], 'XX', 'GT', f6(limits_at(L, S, nil, 1, next_day)), key)
  end
end
if outcome ~= 'success' and outcome ~= 'cancelled' then
  redis.call('HSET', STATS, key .. ':last_error', error_class, key .. ':last_error_at', now_s)
end
if h_changed then write_health(HEALTH, key, h) end
if diff < 0 and outcome ~= 'auth' then
  -- a refund may bring the key's next room forward
  local W = nil
  if L.strict then W = read_window(WIN, bucket, now) end
  local ready_at = limits_at(L, S, W, 1, next_day)
  if h.till > ready_at and h.state ~= 'ok' then ready_at = h.till end
  redis.call('ZADD', KEYS[READY], 'XX', 'LT', f6(math.max(ready_at, now)), key)
end
write_state(STATE, bucket, S)
redis.call('HSET', RES, 'state', 'settled', 'actual', int(actual))
return {'settled', key, int(actual), result_state, f6(result_until), f6(charged), before, now_s, above}
