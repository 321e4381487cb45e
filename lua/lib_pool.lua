-- lib_pool.lua: the key-pool library, prepended to reserve/settle/release/cooldown/sync scripts.
--
-- Records are tab-separated strings in hash fields (lua/records.py is the Python twin of every
-- format below: one encoder and one decoder each, checked against these by tests/lua/test_records.py), read with one string.match and written with
-- one string.format each (Lua in Redis has no JIT: splitting field by field costs ~10 us a record).
-- Numbers are written with explicit formats: Lua's tostring keeps 14 significant digits, too few
-- for microsecond unix timestamps.
--
--   cfg    k:<key>            group, active (1/0), tags (";k=v;k=v;")
--   cfg    b:<group>|<model>  rpm, tpm, rpd, rpm_burst, tpm_burst, strict (1/0), tz name[, itpm, otpm,
--                             itpm_burst, otpm_burst, learn (1/0)] (0 = no limit): the configured
--                             limits, and whether the provider's figures are adopted
--   cfg    p:<group>|<model>  learned from the provider: rpm, tpm, rpd, itpm, otpm (0 = not said),
--                             when it last answered (0 = never), until when the call sent to
--                             learn them is in flight (see read_limits)
--   cfg    m:<model>          max tpm burst of the model's keys (-1: some key has no tpm limit), tiers
--   cfg    w:<key>|<model>    weight[, TAB, the pattern the key's bucket is under]
--   state  <group>|<model>    see read_state
--   state  <group>|<model>#lows  low-water marks of the token level (see push_low)
--   win    <group>|<model>    "slot:req:tok;..." usage per second of the last 61 s (strict mode)
--   health <key>              state (ok|cooldown|open|probing|disabled), until, reason, level, fails
--
-- Free text inside a record (a health reason, tag names and values) is written through enc and
-- read through dec (keys/records.py is the Python twin): '%', control characters and the
-- separators '| ; = ,' become %XX, so no value can add, move or cut a field.
--
-- Limits are GCRA (one "theoretical arrival time" per limit): a limit L per minute with burst B
-- allows B units at once and refills L/60 per second, continuously. In strict mode a per-second
-- window is checked as well, so that no 60-second window ever holds more than L.

local TAB = '\t'
local WINDOW = 60          -- seconds a strict window spans (plus the current second)
local LOWS = 24            -- low-water entries kept per bucket (see push_low)
local EPS = 1e-6
local NEVER = 1e300
-- Seconds a request waits past the instant a drained limit refills room for it (reserve sets it
-- from its ARGV; 0 elsewhere). The provider counts a request when it arrives, a little after the
-- router reserved it, and that delay varies: under sustained load two requests reserved exactly
-- one refill interval apart may arrive slightly less than one interval apart and find the
-- provider's bucket a sliver short. Admitting such requests this much later absorbs the jitter; it
-- shifts the schedule, it does not slow it (the next room is still counted on the limit's own
-- timeline). Room that was already there at the bucket's last admission (a burst, a released
-- reservation) is used at once: every request of a burst fits the provider's bucket in any order.
-- A limit whose burst leaves less than the margin (burst 1 of a slow limit) gets none: there, a
-- late admission would move the whole schedule back and cost throughput.
local GCRA_MARGIN = 0

local function f6(x) return string.format('%.6f', x) end
local function int(x) return string.format('%d', math.floor(x + 0.5)) end

local function enc(s)
  return (string.gsub(s or '', '[%%%c|;=,]', function(c) return string.format('%%%02X', string.byte(c)) end))
end

local function dec(s)
  if s == nil or not string.find(s, '%', 1, true) then return s or '' end
  return (string.gsub(s, '%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))
end

local function split(s, sep)
  local out = {}
  if s == nil or s == '' then return out end
  local start = 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + #sep
  end
end

-- The store's clock. ARGV may carry an explicit time for tests (a manual clock); production
-- callers pass '' and every process shares Redis's clock.
local function pool_now(override)
  if override ~= nil and override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- "UTC=0;America/Los_Angeles=-28800": seconds east of UTC of each day-reset calendar, now.
local function parse_offsets(s)
  local out = {}
  for name, offset in string.gmatch(s or '', '([^;=]+)=([^;]+)') do out[name] = tonumber(offset) end
  return out
end

-- Day number on a calendar, and the unix time the next day begins.
local function day_of(now, offset)
  local d = math.floor((now + offset) / 86400)
  return d, (d + 1) * 86400 - offset
end

-- The one name of a bucket: a quota group under an index (keys.models.model_index).
local function bucket_name(group, index) return group .. '|' .. index end

-- k:<key>: group, active (true/false), tags record (";k=v;" encoded: see tags_record in Python).
local function read_key(cfg, key)
  local rec = redis.call('HGET', cfg, 'k:' .. key)
  if not rec then return nil end
  local group, active, tags = string.match(rec, '^([^\t]*)\t([^\t]*)\t(.*)$')
  return group, active == '1', tags or ''
end

local function write_key(cfg, key, group, active, tags)
  redis.call('HSET', cfg, 'k:' .. key, group .. TAB .. (active and '1' or '0') .. TAB .. tags)
end

-- w:<key>|<index>: the weight, and the pattern the key's bucket is under (nil: the index).
local function read_weight(cfg, key, index)
  local rec = redis.call('HGET', cfg, 'w:' .. key .. '|' .. index) or ''
  return tonumber(string.match(rec, '^([^\t]*)')) or 1, string.match(rec, '\t(.*)$')
end

-- The bucket a weight record's key is charged in under `index`.
local function weight_bucket(group, weight_rec, index)
  return bucket_name(group, string.match(weight_rec, '\t(.*)$') or index)
end

-- m:<index>: the largest token burst of its keys (-1: one has no tpm limit), tiers (comma list).
local function read_model(cfg, index)
  local rec = redis.call('HGET', cfg, 'm:' .. index)
  if not rec then return nil end
  local burst, tiers = string.match(rec, '^([^\t]*)\t?(.*)$')
  return tonumber(burst) or -1, tiers or ''
end

local function write_model(cfg, index, max_burst, tiers)
  redis.call('HSET', cfg, 'm:' .. index, max_burst .. TAB .. tiers)
end

local LIMITS_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local LIMITS_PATTERN_12 = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local LEARNED_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local FIGURES = {'rpm', 'tpm', 'rpd', 'itpm', 'otpm'}
-- Seconds a request waits, at most, before looking again at a key whose limits are being learned.
local LEARN_POLL = 0.2

-- p:<bucket>: what the provider reported of the bucket's limits (0 = not said), when it last
-- answered a call (0 = never: nothing is known yet), until when the one call sent to learn them
-- may still be in flight.
local function read_learned(cfg, bucket)
  local raw = redis.call('HGET', cfg, 'p:' .. bucket)
  local P = {rpm = 0, tpm = 0, rpd = 0, itpm = 0, otpm = 0, at = 0, flight = 0}
  if raw then
    local a, b, c, d, e, f, g = string.match(raw, LEARNED_PATTERN)
    if a then
      P.rpm, P.tpm, P.rpd = tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0
      P.itpm, P.otpm, P.at, P.flight = tonumber(d) or 0, tonumber(e) or 0, tonumber(f) or 0, tonumber(g) or 0
    end
  end
  return P
end

local function write_learned(cfg, bucket, P)
  redis.call('HSET', cfg, 'p:' .. bucket, string.format('%d\t%d\t%d\t%d\t%d\t%.6f\t%.6f',
    P.rpm, P.tpm, P.rpd, P.itpm, P.otpm, P.at, P.flight))
end

-- A configured limit (0 = none) and its burst beside the provider's figure (0 = not said): the
-- provider's when nothing is configured or when it is lower (a key configured above its real
-- limit runs at the real one); the configured one otherwise (the operator's choice).
local function adopt(configured, burst, learned)
  if learned <= 0 then return configured, burst end
  if configured <= 0 then return learned, learned end
  if learned < configured then return learned, math.min(burst, learned) end
  return configured, burst
end

-- The limits a bucket runs at: its configured ones (L.c) merged with what its provider reported
-- (L.P), when the record says to adopt them (a record of 7 fields does not). L.learning: nothing
-- is configured and the provider has not answered yet, so one call at a time goes out until it
-- does (reserve, settle).
local function merge_limits(L)
  local c, P = L.c, L.P
  if not c.learn then P = {rpm = 0, tpm = 0, rpd = 0, itpm = 0, otpm = 0, at = 1, flight = 0} end
  L.rpm, L.br = adopt(c.rpm, c.br, P.rpm)
  L.tpm, L.bt = adopt(c.tpm, c.bt, P.tpm)
  L.rpd = adopt(c.rpd, c.rpd, P.rpd)
  L.itpm, L.bi = adopt(c.itpm, c.bi, P.itpm)
  L.otpm, L.bo = adopt(c.otpm, c.bo, P.otpm)
  L.learning = P.at == 0 and c.rpm == 0 and c.tpm == 0 and c.itpm == 0 and c.otpm == 0
  return L
end

local function read_limits(cfg, bucket)
  local raw = redis.call('HGET', cfg, 'b:' .. bucket)
  if not raw then return nil end
  local rpm, tpm, rpd, br, bt, strict, tz, itpm, otpm, bi, bo, learn = string.match(raw, LIMITS_PATTERN_12)
  if not rpm then rpm, tpm, rpd, br, bt, strict, tz = string.match(raw, LIMITS_PATTERN) end
  local c = {
    rpm = tonumber(rpm) or 0, tpm = tonumber(tpm) or 0, rpd = tonumber(rpd) or 0,
    br = tonumber(br) or 0, bt = tonumber(bt) or 0, itpm = tonumber(itpm) or 0,
    otpm = tonumber(otpm) or 0, bi = tonumber(bi) or 0, bo = tonumber(bo) or 0, learn = learn == '1',
  }
  -- every field merge_limits sets is in the constructor: the table is sized once, never rehashed
  return merge_limits({c = c, P = read_learned(cfg, bucket), strict = strict == '1', tz = tz or 'UTC',
    rpm = 0, br = 0, tpm = 0, bt = 0, rpd = 0, itpm = 0, bi = 0, otpm = 0, bo = 0, learning = false})
end

-- Bucket state: GCRA times of both limits, day and minute counters (for RPD and status), a
-- provider-imposed block (429) with its backoff level, the time of the last admission (see
-- GCRA_MARGIN; a record written before it has 12 fields and no known last admission, so the
-- margin applies to it), and the GCRA times of the input and output token limits (a record
-- written before them has 13 fields: both buckets full).
local STATE_PATTERN_15 = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local STATE_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local STATE_PATTERN_12 = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local STATE_FORMAT = '%.6f\t%.6f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.6f\t%d\t%.6f\t%.6f\t%.6f'

local function read_state(state_key, bucket)
  local raw = redis.call('HGET', state_key, bucket)
  if not raw then
    return {tat_r = 0, tat_t = 0, day = -1, day_req = 0, day_tok = 0, minute = -1, min_req = 0,
            min_tok = 0, prev_req = 0, prev_tok = 0, blocked = 0, level = 0, last = 0, tat_i = 0,
            tat_o = 0}
  end
  local a, b, c, d, e, f, g, h, i, j, k, l, m, n, o = string.match(raw, STATE_PATTERN_15)
  if not a then a, b, c, d, e, f, g, h, i, j, k, l, m = string.match(raw, STATE_PATTERN) end
  if not a then a, b, c, d, e, f, g, h, i, j, k, l = string.match(raw, STATE_PATTERN_12) end
  return {
    tat_r = tonumber(a), tat_t = tonumber(b), day = tonumber(c), day_req = tonumber(d),
    day_tok = tonumber(e), minute = tonumber(f), min_req = tonumber(g), min_tok = tonumber(h),
    prev_req = tonumber(i), prev_tok = tonumber(j), blocked = tonumber(k), level = tonumber(l),
    last = tonumber(m) or 0, tat_i = tonumber(n) or 0, tat_o = tonumber(o) or 0,
  }
end

local function write_state(state_key, bucket, s)
  redis.call('HSET', state_key, bucket, string.format(STATE_FORMAT, s.tat_r, s.tat_t,
    math.floor(s.day), math.floor(s.day_req + 0.5), math.floor(s.day_tok + 0.5), math.floor(s.minute),
    math.floor(s.min_req + 0.5), math.floor(s.min_tok + 0.5), math.floor(s.prev_req + 0.5),
    math.floor(s.prev_tok + 0.5), s.blocked, math.floor(s.level), s.last or 0, s.tat_i or 0,
    s.tat_o or 0))
end

-- Low-water marks: "seq\tcut\tseq:level,seq:level,..." (see push_low); read by the one bucket
-- an operation charges or refunds, never while comparing candidates.
local function read_lows(state_key, bucket)
  local raw = redis.call('HGET', state_key, bucket .. '#lows')
  local m = {seq = 0, cut = 0, lows = {}}
  if raw then
    local seq, cut, list = string.match(raw, '^([^\t]*)\t([^\t]*)\t([^\t]*)$')
    m.seq, m.cut = tonumber(seq) or 0, tonumber(cut) or 0
    -- each entry keeps its text: written back as it was read unless its level changes
    for txt, q, v in string.gmatch(list or '', '((%d+):([%d%.]+))') do
      m.lows[#m.lows + 1] = {tonumber(q), tonumber(v), txt}
    end
  end
  return m
end

local function write_lows(state_key, bucket, m)
  local parts = {}
  -- marks are rounded down: a rounded-up mark could grant a sliver too much
  for i, e in ipairs(m.lows) do
    parts[i] = e[3] or string.format('%d:%.3f', e[1], math.floor(e[2] * 1000) / 1000)
  end
  redis.call('HSET', state_key, bucket .. '#lows', string.format('%d\t%d\t%s', m.seq, m.cut, table.concat(parts, ',')))
end

-- Move the day and minute counters to now.
local function roll(s, now, day)
  if s.day ~= day then s.day, s.day_req, s.day_tok = day, 0, 0 end
  local minute = math.floor(now / 60)
  if s.minute ~= minute then
    if s.minute == minute - 1 then
      s.prev_req, s.prev_tok = s.min_req, s.min_tok
    else
      s.prev_req, s.prev_tok = 0, 0
    end
    s.minute, s.min_req, s.min_tok = minute, 0, 0
  end
end

-- GCRA: earliest time `cost` units fit a limit of `limit`/minute with burst `burst`.
-- Allowed when max(tat, now) + cost*e - now <= burst*e, i.e. now >= tat + (cost - burst)*e.
local function gcra_at(tat, cost, limit, burst)
  if limit <= 0 or cost <= 0 then return 0 end
  if cost > burst then return NEVER end
  return tat + (cost - burst) * (60.0 / limit)
end

local function gcra_charge(tat, now, cost, limit)
  if limit <= 0 then return tat end
  return math.max(tat, now) + cost * (60.0 / limit)
end

-- Units of a limit in use at `now` (0 = the bucket is full of room).
local function gcra_level(tat, now, limit)
  if limit <= 0 then return 0 end
  return math.max(0, tat - now) / (60.0 / limit)
end

-- Charge `amount` more units to a limit (amount < 0: give them back) for a reservation made at
-- `since`. The input and output token limits are corrected this way: a refund gives back at most
-- what has not refilled since the reservation (the bucket would otherwise hold room it never
-- had: the provider refunded the call when it ended, long before a late settle), and never more
-- than is in use.
local function gcra_adjust(tat, now, amount, limit, since)
  if limit <= 0 or amount == 0 then return tat end
  if amount > 0 then return gcra_charge(tat, now, amount, limit) end
  local back = math.min(-amount, math.max(0, -amount - (now - (since or now)) * limit / 60.0))
  return tat - math.min(back, gcra_level(tat, now, limit)) * (60.0 / limit)
end

-- Share of a limit's burst still free after charging `cost` (1 = untouched).
local function headroom(tat, now, cost, limit, burst)
  if limit <= 0 then return 1 end
  local used = gcra_level(tat, now, limit) + cost
  return (burst - used) / burst
end

-- Low-water marks of the token level.
--
-- A refund may only give back what the bucket would still hold had the request been smaller from
-- the start (the "ideal" history). The engine's level E(t) is never below the ideal level I(t):
-- the gap between them only shrinks while I sits at zero, i.e. while E(t) <= the gap. So a refund
-- of `back` for a reservation made at operation r is safe when back <= min over t after r of
-- (E(t) - P(t)), where P(t) sums refunds already granted to reservations made before t and
-- settled after t. Between operations E only drains, so that minimum is reached just before an
-- operation (or now). Every operation on a bucket gets a sequence number; `lows` keeps the level
-- just before each operation as a stack whose values increase with the sequence (an earlier,
-- higher entry can never be a minimum again, so it is dropped), hence the minimum after r is the
-- first entry past r. A granted refund lowers the entries past its reservation (that is P).
-- If entries a query needs were dropped for room (seq <= cut), the drain bound applies instead:
-- a gap of x shrinks by at most the refill since the reservation.
local function push_low(m, level)
  m.seq = m.seq + 1
  while #m.lows > 0 and m.lows[#m.lows][2] >= level do table.remove(m.lows) end
  m.lows[#m.lows + 1] = {m.seq, level}
  if #m.lows > LOWS then
    m.cut = m.lows[1][1]
    table.remove(m.lows, 1)
  end
  return m.seq
end

-- How many of `amount` units reserved at operation `rseq` (time `since`) may be given back now;
-- the granted amount is taken off the entries it relied on.
local function refund_bound(m, S, now, rseq, since, amount, limit)
  if limit <= 0 then return amount end
  local low = gcra_level(S.tat_t, now, limit)
  if rseq >= m.cut and rseq <= m.seq then
    for _, e in ipairs(m.lows) do
      if e[1] > rseq then
        if e[2] < low then low = e[2] end
        break
      end
    end
  else
    low = math.min(low, math.max(0, amount - (now - since) * limit / 60.0))
  end
  local back = math.max(0, math.min(amount, low))
  if back > 0 then
    for _, e in ipairs(m.lows) do
      if e[1] > rseq then e[2], e[3] = math.max(0, e[2] - back), nil end
    end
    -- keep the stack increasing: entries at or above a later one can never be a minimum again
    local kept, floor = {}, math.huge
    for i = #m.lows, 1, -1 do
      if m.lows[i][2] < floor then
        table.insert(kept, 1, m.lows[i])
        floor = m.lows[i][2]
      end
    end
    m.lows = kept
  end
  return back
end

-- Strict windows: {slot, requests, tokens} per second, oldest first.
local function read_window(win, bucket, now)
  local raw = redis.call('HGET', win, bucket)
  local w, oldest = {}, math.floor(now) - WINDOW
  for slot, req, tok in string.gmatch(raw or '', '(%-?%d+):(%d+):(%d+)') do
    slot = tonumber(slot)
    if slot >= oldest then w[#w + 1] = {slot, tonumber(req), tonumber(tok)} end
  end
  return w
end

local function write_window(win, bucket, w)
  local parts = {}
  for _, e in ipairs(w) do
    if e[2] > 0 or e[3] > 0 then parts[#parts + 1] = int(e[1]) .. ':' .. int(e[2]) .. ':' .. int(e[3]) end
  end
  if #parts == 0 then redis.call('HDEL', win, bucket) else redis.call('HSET', win, bucket, table.concat(parts, ';')) end
end

-- Earliest time `cost` fits a window limit; idx 2 = requests, 3 = tokens. A slot leaves the
-- window WINDOW + 1 seconds after it began.
local function window_at(w, idx, cost, limit)
  if limit <= 0 or cost <= 0 then return 0 end
  if cost > limit then return NEVER end
  local sum = 0
  for _, e in ipairs(w) do sum = sum + e[idx] end
  if sum + cost <= limit then return 0 end
  local freed = 0
  for _, e in ipairs(w) do
    freed = freed + e[idx]
    if sum - freed + cost <= limit then return e[1] + WINDOW + 1 end
  end
  return NEVER
end

local function window_add(w, slot, req, tok)
  for _, e in ipairs(w) do
    if e[1] == slot then
      e[2], e[3] = math.max(0, e[2] + req), math.max(0, e[3] + tok)
      return
    end
  end
  if req > 0 or tok > 0 then
    w[#w + 1] = {slot, math.max(0, req), math.max(0, tok)}
    table.sort(w, function(a, b) return a[1] < b[1] end)
  end
end

-- Earliest time a request of (1 request, `tokens`) fits the limits, and the binding limit; `out`
-- of the tokens are its completion (output limit), the rest its prompt (input limit).
local function limits_at(L, S, W, tokens, next_day, out)
  local at, why = 0, nil   -- the latest bound so far, and its limit (no closure: one per call costs)
  if S.blocked > 0 then at, why = S.blocked, 'rate_limited' end
  if L.rpd > 0 and S.day_req >= L.rpd and next_day > at then at, why = next_day, 'rpd' end
  local r_at, t_at = gcra_at(S.tat_r, 1, L.rpm, L.br), gcra_at(S.tat_t, tokens, L.tpm, L.bt)
  if GCRA_MARGIN > 0 then
    -- only room that refilled after the last admission, where the burst can hold the delay
    local last = (S.last or 0) + EPS
    if r_at > last and r_at < NEVER and L.rpm > 0 and (L.br - 1) * 60.0 / L.rpm > GCRA_MARGIN then
      r_at = r_at + GCRA_MARGIN
    end
    if t_at > last and t_at < NEVER and L.tpm > 0
        and (L.bt - tokens) * 60.0 / L.tpm > GCRA_MARGIN then
      t_at = t_at + GCRA_MARGIN
    end
  end
  if r_at > at then at, why = r_at, 'rpm' end
  if t_at > at then at, why = t_at, 'tpm' end
  if L.itpm > 0 then
    local t = gcra_at(S.tat_i, tokens - (out or 0), L.itpm, L.bi)
    if t > at then at, why = t, 'itpm' end
  end
  if L.otpm > 0 then
    local t = gcra_at(S.tat_o, out or 0, L.otpm, L.bo)
    if t > at then at, why = t, 'otpm' end
  end
  if W then
    local t = window_at(W, 2, 1, L.rpm)
    if t > at then at, why = t, 'rpm' end
    t = window_at(W, 3, tokens, L.tpm)
    if t > at then at, why = t, 'tpm' end
  end
  return at, why
end

local HEALTH_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'

local function read_health(health, key)
  local raw = redis.call('HGET', health, key)
  if not raw then return {state = 'ok', till = 0, reason = '', level = 0, fails = 0} end
  local state, till, reason, level, fails = string.match(raw, HEALTH_PATTERN)
  if not state then  -- not a record write_health wrote (an old, unencoded one): a healthy key
    return {state = 'ok', till = 0, reason = 'unreadable_record', level = 0, fails = 0}
  end
  return {state = state, till = tonumber(till) or 0, reason = dec(reason), level = tonumber(level) or 0,
          fails = tonumber(fails) or 0}
end

local function write_health(health, key, h)
  redis.call('HSET', health, key, string.format('%s\t%.6f\t%s\t%d\t%d', h.state, h.till, enc(h.reason),
    math.floor(h.level), math.floor(h.fails)))
end

-- When the key's health lets it serve: (time, reason); NEVER when disabled.
local function health_at(h, now)
  if h.state == 'disabled' then return NEVER, (h.reason ~= '' and h.reason or 'disabled') end
  if h.till > now then
    if h.state == 'cooldown' then return h.till, 'cooldown' end
    if h.state == 'open' then return h.till, 'circuit_open' end
    if h.state == 'probing' then return h.till, 'probing' end
  end
  return 0, nil
end

-- Give back what a reservation holds, its call never having reached the provider: the request
-- and tokens come back, never more than is still outstanding (capacity that already refilled is
-- not handed out twice). The caller marks the reservation released (release, settle 'unreachable').
local function give_back(CFG, STATE, WIN, STATS, READY, now, offsets, key, bucket, tokens, at, rseq, out)
  local L = read_limits(CFG, bucket)
  if L and L.learning and L.P.flight > 0 then
    L.P.flight = 0  -- the call sent to learn the limits never left: the next one may go
    write_learned(CFG, bucket, L.P)
  end
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
      local o = math.min(out or 0, tokens)
      S.tat_i = gcra_adjust(S.tat_i, now, -(tokens - o), L.itpm, at)
      S.tat_o = gcra_adjust(S.tat_o, now, -o, L.otpm, at)
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
end
