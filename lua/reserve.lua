-- include: lib_pool
-- include: lib_usage
-- reserve: pick a key with room for (1 request, N tokens) of a model and charge it, all or nothing.
--
-- KEYS: cfg, state, win, health, stats, cursor, reservation, budgets, spend, then per priority
--       tier (ascending) its ready, order and share sorted sets.
-- `model` is the index the request is served from (keys.models.model_index): the requested name,
-- or the pattern index every name reached only through the same pattern bindings shares; a key
-- serving it through a pattern is charged in its bucket of that pattern (its w: record says which).
-- ARGV: model, tokens, strategy, reservation id, reservation ttl, now ('' = TIME), day offsets,
--       random number in [0,1), excluded key ids (comma list), required tags (comma list of k=v),
--       tiers (comma list, one per triple of KEYS), probe ttl, jitter margin in seconds
--       (optional, default 0: see GCRA_MARGIN in lib_pool), budget fields (comma list, e.g.
--       'global,user:alice'; '' = none), the call's worst-case cost in nano-dollars ('' = unknown),
--       how many of the tokens are its completion (charged to an output token limit, the rest to
--       an input one; '' = 0).
--
-- A bucket whose limits are being learned (lib_pool's read_limits: nothing configured, the
-- provider has not answered yet) takes one call at a time until its first answer: the call marks
-- it in flight (for at most the probe ttl) and the others look again every LEARN_POLL seconds.
--
-- Answers one of:
--   {'ok', key, tokens, at, tier, 'new'|'probe'|'dup', bucket, alerts}
--                                          alerts: budget fields whose alert share this call
--                                          crossed (comma list, '' none; always '' for 'dup')
--   {'budget', field, resets at, limit, used, now, period}   a budget refused: spent + reserved
--                                          (`used`) + the estimate would pass its limit (in
--                                          nano-dollars) this period ('day' | 'month'); used = -1:
--                                          the price is unknown and the budget applies
--   {'no_room', earliest ('inf' if no key recovers by itself), reason, now, 'key|reason|until'...}
--   {'too_large', now, largest burst}      the request can never fit any key of the model
--   {'no_keys', now}                       no key serves the model
--
-- Budgets (lib_usage.lua): each listed field that has a budget is rolled to its current period
-- (the budget's calendar: its tz name's offset among the day offsets, else 0) and checked after
-- the model's records and before any key is looked at; a refusal charges nothing and touches no
-- key. When a key is charged, every applicable budget reserves the estimate (and counts the
-- request), and the reservation records them (`budgets`: "field|period|estimate;...", `cost`).
--
-- Cost does not grow with the pool: candidates come from sorted sets (LIMIT) and at most
-- MAX_SCAN keys are looked at per tier. A candidate's score in the ready set is a lower bound of
-- the time it can take a minimal request; every candidate is checked exactly before it is charged,
-- and a candidate found busy gets its true time as its new score.

local CFG, STATE, WIN, HEALTH, STATS, CURSOR, RES = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local BUDGETS, SPEND = KEYS[8], KEYS[9]
local TIER_KEYS = 9   -- KEYS before the tiers' sets
local model, tokens, strategy, rid = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ttl = tonumber(ARGV[5])
local now = pool_now(ARGV[6])
local now_s = f6(now)   -- formatted once: each string.format of a timestamp costs ~0.4 us
local offsets = parse_offsets(ARGV[7])
local rnd_state = math.floor((tonumber(ARGV[8]) or 0) * 233280)
local exclude = {}
for _, k in ipairs(split(ARGV[9], ',')) do exclude[k] = true end
local want_tags = split(ARGV[10], ',')
local tiers = split(ARGV[11], ',')
local probe_ttl = tonumber(ARGV[12]) or 60
GCRA_MARGIN = math.max(0, tonumber(ARGV[13]) or 0)
local budget_fields = ARGV[14] or ''
local estimate = tonumber(ARGV[15] or '')
local out_tokens = math.min(tonumber(ARGV[16] or '') or 0, tokens)

local BATCH, MAX_SCAN = 8, 32
local CHOICES = 2   -- capacity-aware: the better of the two least recently busy keys

local existing = redis.call('HMGET', RES, 'key', 'tokens', 'at', 'tier', 'bucket')
if existing[1] then
  return {'ok', existing[1], existing[2], existing[3], existing[4], 'dup', existing[5], ''}
end

local max_burst = read_model(CFG, model)
if not max_burst then return {'no_keys', now_s} end
if max_burst >= 0 and tokens > max_burst then return {'too_large', now_s, int(max_burst)} end

local held_budgets, refusal = check_budgets(BUDGETS, SPEND, budget_fields, estimate, now, offsets)
if refusal then return refusal end

local function tags_ok(tags)
  for _, want in ipairs(want_tags) do
    if not string.find(tags, ';' .. want .. ';', 1, true) then return false end
  end
  return true
end

-- Can `key` take the request now? ev.gone: remove it from this tier's sets (inactive, disabled,
-- unconfigured); ev.skip: not for this request; ev.fits; else ev.at (for this request) and
-- ev.at_min (for a minimal request, set only when it does not fit) say when.
local function evaluate(key)
  local ev = {key = key}
  if exclude[key] then ev.skip = true return ev end
  local group, active, tags = read_key(CFG, key)
  if not active then ev.gone = true return ev end
  if #want_tags > 0 and not tags_ok(tags) then ev.skip = true return ev end
  local h = read_health(HEALTH, key)
  local h_at, h_why = health_at(h, now)
  if h_at >= NEVER then ev.gone = true return ev end
  -- the key's bucket: under the model, or under the pattern of the binding serving this index
  local weight, pattern = read_weight(CFG, key, model)
  ev.weight, ev.bucket = weight, bucket_name(group, pattern or model)
  local L = read_limits(CFG, ev.bucket)
  if not L then ev.gone = true return ev end
  local S = read_state(STATE, ev.bucket)
  local day, next_day = day_of(now, offsets[L.tz] or 0)
  roll(S, now, day)
  local W = nil
  if L.strict then W = read_window(WIN, ev.bucket, now) end
  local at, why = limits_at(L, S, W, tokens, next_day, out_tokens)
  if at >= NEVER and (why == 'tpm' or why == 'itpm' or why == 'otpm') then why = 'too_large' end
  local poll = nil
  if L.learning and L.P.flight > now then
    poll = math.min(L.P.flight, now + LEARN_POLL)
    if poll > at then at, why = poll, 'learning' end
  end
  if h_at > at then at, why = h_at, h_why end
  ev.h, ev.L, ev.S, ev.W, ev.next_day = h, L, S, W, next_day
  ev.at, ev.why = at, why
  ev.fits = at <= now + EPS
  ev.probe = h.state == 'open' or h.state == 'probing'
  if ev.fits then
    ev.room = math.min(headroom(S.tat_r, now, 1, L.rpm, L.br), headroom(S.tat_t, now, tokens, L.tpm, L.bt))
  else
    -- only a busy key's new score in the ready set needs the time of a minimal request
    local at_min = limits_at(L, S, W, math.min(tokens, 1), next_day)
    if poll and poll > at_min then at_min = poll end
    if h_at > at_min then at_min = h_at end
    ev.at_min = at_min
  end
  return ev
end

local earliest, earliest_why, notes = NEVER, 'none', {}
local function note(ev)
  if ev.at < earliest then earliest, earliest_why = ev.at, ev.why end
  if #notes < 10 then
    notes[#notes + 1] = ev.key .. '|' .. enc(ev.why) .. '|' .. (ev.at >= NEVER and 'inf' or f6(ev.at))
  end
end

local function remove_key(t, key)
  redis.call('ZREM', t.R, key)
  redis.call('ZREM', t.O, key)
  redis.call('ZREM', t.S, key)
end

-- A busy candidate: remember why, and file it under its true time if that is later than now.
-- Answers true when it left the range [-inf, now] of the ready set.
local function busy(t, ev)
  note(ev)
  if ev.at_min > now + EPS and ev.at_min < NEVER then
    redis.call('ZADD', t.R, f6(ev.at_min), ev.key)
    return true
  end
  return false
end

local function commit(ev, t)
  local L, S = ev.L, ev.S
  local marks = read_lows(STATE, ev.bucket)
  local seq = push_low(marks, gcra_level(S.tat_t, now, L.tpm))
  write_lows(STATE, ev.bucket, marks)
  S.tat_r = gcra_charge(S.tat_r, now, 1, L.rpm)
  S.tat_t = gcra_charge(S.tat_t, now, tokens, L.tpm)
  S.tat_i = gcra_adjust(S.tat_i, now, tokens - out_tokens, L.itpm)
  S.tat_o = gcra_adjust(S.tat_o, now, out_tokens, L.otpm)
  if L.learning then
    L.P.flight = now + probe_ttl
    write_learned(CFG, ev.bucket, L.P)
  end
  S.day_req, S.day_tok = S.day_req + 1, S.day_tok + tokens
  S.min_req, S.min_tok = S.min_req + 1, S.min_tok + tokens
  S.last = now
  write_state(STATE, ev.bucket, S)
  if ev.W then
    window_add(ev.W, math.floor(now), 1, tokens)
    write_window(WIN, ev.bucket, ev.W)
  end
  local next_at = limits_at(L, S, ev.W, math.min(tokens, 1), ev.next_day)
  if ev.probe then
    -- half-open circuit: this request is its one probe; nobody else uses the key meanwhile
    ev.h.state, ev.h.till = 'probing', now + probe_ttl
    write_health(HEALTH, ev.key, ev.h)
    next_at = math.max(next_at, ev.h.till)
  end
  -- every request counts in the share index (use / weight), whatever strategy chose the key;
  -- the weighted strategy lets a key that sat idle start at the current virtual time
  local w = ev.weight
  if strategy == 'weighted' then
    local vfield = 'vt:' .. t.tier .. ':' .. model
    local share = tonumber(redis.call('ZSCORE', t.S, ev.key)) or 0
    local start = math.max(share, tonumber(redis.call('HGET', CURSOR, vfield)) or 0)
    redis.call('HSET', CURSOR, vfield, f6(start))
    redis.call('ZADD', t.S, f6(start + 1 / w), ev.key)
  else
    redis.call('ZINCRBY', t.S, 1 / w, ev.key)
  end
  -- used keys go to the back of the ready order (least recently used first)
  redis.call('ZADD', t.R, f6(math.min(math.max(next_at, now), NEVER)), ev.key)
  redis.call('HINCRBY', STATS, ev.key .. ':requests', 1)
  redis.call('HSET', STATS, ev.key .. ':last_used', now_s)
  redis.call('HSET', RES, 'key', ev.key, 'bucket', ev.bucket, 'tokens', int(tokens), 'at', now_s,
    'tier', t.tier, 'state', 'reserved', 'model', model, 'seq', int(seq), 'out', int(out_tokens))
  local alerts = ''
  if estimate then
    local held
    held, alerts = charge_budgets(SPEND, held_budgets, estimate)
    redis.call('HSET', RES, 'budgets', held, 'cost', int(estimate))
  end
  redis.call('EXPIRE', RES, ttl)
  return {'ok', ev.key, int(tokens), now_s, t.tier, ev.probe and 'probe' or 'new', ev.bucket, alerts}
end

-- capacity-aware: of the least recently busy keys with room, the one with most headroom
-- ("power of two choices": two candidates spread load almost as well as all of them)
local function pick_capacity(t)
  local offset, scanned, size = 0, 0, CHOICES
  while scanned < MAX_SCAN do
    local batch = redis.call('ZRANGEBYSCORE', t.R, '-inf', now_s, 'LIMIT', offset, size)
    size = BATCH
    if #batch == 0 then return nil end
    local best = nil
    for _, key in ipairs(batch) do
      scanned = scanned + 1
      local ev = evaluate(key)
      if ev.gone then
        remove_key(t, key)
      elseif ev.skip then
        offset = offset + 1
      elseif ev.fits then
        offset = offset + 1
        if not best or ev.room > best.room then best = ev end
      elseif not busy(t, ev) then
        offset = offset + 1
      end
    end
    if best then return best end
  end
  return nil
end

-- round robin: the next key after the cursor (order set positions), wrapping around once
local function pick_round_robin(t)
  local field = 'rr:' .. t.tier .. ':' .. model
  local cursor = tonumber(redis.call('HGET', CURSOR, field)) or -1
  local pos, wrapped, scanned = cursor, false, 0
  while scanned < MAX_SCAN do
    local batch = redis.call('ZRANGEBYSCORE', t.O, '(' .. pos, '+inf', 'WITHSCORES', 'LIMIT', 0, BATCH)
    if #batch == 0 then
      if wrapped or cursor < 0 then return nil end
      wrapped, pos = true, -1
    else
      for i = 1, #batch, 2 do
        local key, p = batch[i], tonumber(batch[i + 1])
        if wrapped and p > cursor then return nil end
        pos, scanned = p, scanned + 1
        local ev = evaluate(key)
        if ev.gone then
          remove_key(t, key)
        elseif ev.fits then
          redis.call('HSET', CURSOR, field, batch[i + 1])
          return ev
        elseif not ev.skip then
          busy(t, ev)
        end
      end
    end
  end
  return nil
end

local function next_random()
  rnd_state = (rnd_state * 9301 + 49297) % 233280
  return rnd_state / 233280
end

-- random: a uniformly drawn key among those whose ready time has come
local function pick_random(t)
  for _ = 1, BATCH do
    local n = redis.call('ZCOUNT', t.R, '-inf', now_s)
    if n == 0 then return nil end
    local rank = math.min(math.floor(next_random() * n), n - 1)
    local key = redis.call('ZRANGE', t.R, rank, rank)[1]
    local ev = evaluate(key)
    if ev.gone then
      remove_key(t, key)
    elseif ev.fits then
      return ev
    elseif not ev.skip then
      busy(t, ev)
    end
  end
  return nil
end

-- least_used: fewest requests (per unit of weight) first; weighted: the same order, but see commit
local function pick_share(t)
  local offset, scanned = 0, 0
  while scanned < MAX_SCAN do
    local batch = redis.call('ZRANGE', t.S, offset, offset + BATCH - 1, 'WITHSCORES')
    if #batch == 0 then return nil end
    for i = 1, #batch, 2 do
      local key = batch[i]
      scanned = scanned + 1
      local ev = evaluate(key)
      if ev.gone then
        remove_key(t, key)
      elseif ev.fits then
        return ev
      else
        offset = offset + 1
        if not ev.skip then busy(t, ev) end
      end
    end
  end
  return nil
end

local any_keys = false
for i, tier in ipairs(tiers) do
  local base = TIER_KEYS + (i - 1) * 3
  local t = {tier = tier, R = KEYS[base + 1], O = KEYS[base + 2], S = KEYS[base + 3]}
  local ev
  if strategy == 'round_robin' then
    ev = pick_round_robin(t)
  elseif strategy == 'random' then
    ev = pick_random(t)
  elseif strategy == 'least_used' or strategy == 'weighted' then
    ev = pick_share(t)
  end
  if not ev then ev = pick_capacity(t) end
  if ev then return commit(ev, t) end
  -- the first key of this tier still waiting for its time: when and why
  local nxt = redis.call('ZRANGEBYSCORE', t.R, '(' .. now_s, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if nxt[1] then
    any_keys = true
    local ev2 = evaluate(nxt[1])
    -- scores are hints; a key whose room came back early (refund, new limits) is used at once
    if ev2.fits then return commit(ev2, t) end
    if not ev2.gone and not ev2.skip then note(ev2) end
    local lower = tonumber(nxt[2])
    if lower < earliest then earliest = lower end
  elseif not any_keys and redis.call('ZCARD', t.R) > 0 then
    any_keys = true
  end
end
if not any_keys and #notes == 0 then return {'no_keys', now_s} end
local out = {'no_room', earliest >= NEVER and 'inf' or f6(earliest), earliest_why, now_s}
for _, n in ipairs(notes) do out[#out + 1] = n end
return out
