-- lib_usage.lua: budgets and the usage log, included after lib_pool by reserve, settle, release
-- and record_usage (it uses lib_pool's f6, int, enc, split).
--
-- lua/usage_records.py is the Python twin of every format below (one encoder and one decoder each;
-- tests/lua/test_usage.py checks them against these). Money is whole nano-dollars (1e-9 USD).
--
--   budgets <field>          limit, period (day|month), tz name, alert share       BudgetRecord
--   spend   <field>          period id, reserved, spent, alerted (1/0), requests    SpendRecord
--   res:<id> budgets         "<field>|<period>|<estimate>;..."                       ReservedBudget
--   usage:m:<minute> <dim>|<name>  requests, tokens in, tokens out, cost, errors     Rollup
--   usage:m:<minute> #<dim>  how many names of the dimension the minute holds
--
-- A budget's field is 'global' or '<scope>:<encoded id>'; a rollup's '<dim>|<encoded name>'.

local USAGE_OTHER = '~other'   -- lua.usage_records.OTHER (encoding leaves it as it is)

-- -- calendar ----------------------------------------------------------------------------------
-- Howard Hinnant's civil_from_days / days_from_civil (proleptic Gregorian, day 0 = 1970-01-01).
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, doy - math.floor((153 * mp + 2) / 5) + 1
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

-- The period id at unix time `now` on a calendar `offset` seconds east of UTC, and the unix time
-- the next period begins: 'd<day>' or 'm<year * 12 + month - 1>' (usage_records.period_of).
local function period_of(now, offset, period)
  local day = math.floor((now + offset) / 86400)
  if period == 'day' then return 'd' .. int(day), (day + 1) * 86400 - offset end
  local y, m = civil_from_days(day)
  local ny, nm = y, m + 1
  if nm > 12 then ny, nm = y + 1, 1 end
  return 'm' .. int(y * 12 + m - 1), days_from_civil(ny, nm, 1) * 86400 - offset
end

-- -- budgets -------------------------------------------------------------------------------------
local BUDGET_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'
local SPEND_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'

-- A budget, or nil when the field has none (or a record no writer of ours made: no budget).
local function read_budget(budgets, field)
  local raw = redis.call('HGET', budgets, field)
  if not raw then return nil end
  local limit, period, tz, share = string.match(raw, BUDGET_PATTERN)
  if not limit or not tonumber(limit) then return nil end
  return {limit = tonumber(limit), period = period, tz = tz, share = tonumber(share) or 1}
end

local function read_spend(spend, field)
  local raw = redis.call('HGET', spend, field)
  local p, r, s, a, q
  if raw then p, r, s, a, q = string.match(raw, SPEND_PATTERN) end
  return {period = p or '', reserved = tonumber(r) or 0, spent = tonumber(s) or 0,
          alerted = a == '1', requests = tonumber(q) or 0}
end

local function write_spend(spend, field, s)
  redis.call('HSET', spend, field, s.period .. '\t' .. int(s.reserved) .. '\t' .. int(s.spent)
    .. '\t' .. (s.alerted and '1' or '0') .. '\t' .. int(s.requests))
end

-- A new period starts from nothing: reserved, spent, alerted and requests reset.
local function roll_spend(s, period)
  if s.period ~= period then
    s.period, s.reserved, s.spent, s.alerted, s.requests = period, 0, 0, false, 0
  end
end

-- The budgets of `fields` (comma list; fields without a budget are skipped, repeats counted once)
-- that apply at `now`, each with its spend rolled to the current period. `estimate`: the call's
-- worst-case cost (nil = unknown). Answers (list, nil) or (nil, refusal reply).
local function check_budgets(budgets, spend, fields, estimate, now, offsets)
  local out, seen = {}, {}
  for _, field in ipairs(split(fields, ',')) do
    local b = not seen[field] and read_budget(budgets, field)
    seen[field] = true
    if b then
      local period, next_start = period_of(now, offsets[b.tz] or 0, b.period)
      local s = read_spend(spend, field)
      roll_spend(s, period)
      if estimate == nil then
        return nil, {'budget', field, f6(next_start), int(b.limit), '-1', f6(now), b.period}
      end
      if s.spent + s.reserved + estimate > b.limit then
        local used = int(s.spent + s.reserved)
        return nil, {'budget', field, f6(next_start), int(b.limit), used, f6(now), b.period}
      end
      out[#out + 1] = {field = field, b = b, s = s}
    end
  end
  return out, nil
end

-- Reserve `estimate` on each budget of `held` (check_budgets' list): answers the reservation's
-- record of them ("field|period|estimate;...") and the fields whose alert share was crossed now
-- (once per period).
local function charge_budgets(spend, held, estimate)
  local entries, alerts = {}, {}
  for _, h in ipairs(held) do
    local s = h.s
    s.reserved, s.requests = s.reserved + estimate, s.requests + 1
    if not s.alerted and s.spent + s.reserved >= h.b.share * h.b.limit then
      s.alerted = true
      alerts[#alerts + 1] = h.field
    end
    write_spend(spend, h.field, s)
    entries[#entries + 1] = h.field .. '|' .. s.period .. '|' .. int(estimate)
  end
  return table.concat(entries, ';'), table.concat(alerts, ',')
end

-- Settle what a reservation holds (its `budgets` record): the estimate leaves `reserved` (never
-- below 0) and, unless `refund`, `actual` goes to `spent`. A budget whose period rolled since
-- the reservation is left alone (its new period never held this estimate).
local function settle_budgets(spend, record, actual, refund)
  for _, item in ipairs(split(record or '', ';')) do
    local field, period, estimate = string.match(item, '^(.*)|([^|]*)|([^|]*)$')
    if field then
      local s = read_spend(spend, field)
      if s.period == period then
        s.reserved = math.max(0, s.reserved - (tonumber(estimate) or 0))
        if not refund then s.spent = s.spent + actual end
        write_spend(spend, field, s)
      end
    end
  end
end

-- Charge `cost` (nano-dollars, already spent: nothing reserved it) to each budget of `fields`
-- (comma list; fields without a budget are skipped, repeats counted once), its spend rolled to
-- the period current at `now`: spent + cost, requests + 1. No limit is checked and no alert fires
-- (the call is over). record_usage uses it for calls served on degraded mode's local store.
local function charge_spent(budgets, spend, fields, cost, now, offsets)
  local seen = {}
  for _, field in ipairs(split(fields, ',')) do
    local b = not seen[field] and read_budget(budgets, field)
    seen[field] = true
    if b then
      local s = read_spend(spend, field)
      roll_spend(s, (period_of(now, offsets[b.tz] or 0, b.period)))
      s.spent, s.requests = s.spent + cost, s.requests + 1
      write_spend(spend, field, s)
    end
  end
end

-- -- usage log -----------------------------------------------------------------------------------
local ROLLUP_PATTERN = '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$'

local function rollup_add(rollup, field, tin, tout, cost, err)
  local raw = redis.call('HGET', rollup, field)
  local r, i, o, c, e
  if raw then r, i, o, c, e = string.match(raw, ROLLUP_PATTERN) end
  redis.call('HSET', rollup, field, int((tonumber(r) or 0) + 1) .. '\t' .. int((tonumber(i) or 0) + tin)
    .. '\t' .. int((tonumber(o) or 0) + tout) .. '\t' .. int((tonumber(c) or 0) + cost)
    .. '\t' .. int((tonumber(e) or 0) + err))
end

-- The field a name counts under: its own, or '<dim>|~other' once the minute holds `cap` names
-- of its dimension (`#<dim>` counts the names added).
local function rollup_slot(rollup, dim, name, cap)
  local field = dim .. '|' .. name
  if redis.call('HEXISTS', rollup, field) == 1 then return field end
  local count = tonumber(redis.call('HGET', rollup, '#' .. dim)) or 0
  if count >= cap then return dim .. '|' .. USAGE_OTHER end
  redis.call('HINCRBY', rollup, '#' .. dim, 1)
  return field
end

-- The usage segment of ARGV starting at argv[i] (lua.usage_records.UsageArgs.encode): record,
-- max records, max age (ms), rollup ttl, rollup cap, names ('dim=<encoded name>,...'), tokens in,
-- tokens out, cost (nano-dollars), error (1/0). An empty record writes nothing. Else the record
-- is appended to STREAM (field r), which is trimmed exactly to its length and age bounds (age by
-- the server's clock: stream ids are its milliseconds), and counted in ROLLUP under 'all|' and
-- each name, ROLLUP expiring `ttl` seconds after this write.
local function write_usage(stream, rollup, argv, i)
  local record = argv[i] or ''
  if record == '' then return end
  redis.call('XADD', stream, 'MAXLEN', int(tonumber(argv[i + 1])), '*', 'r', record)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', stream, 'MINID', int(math.max(0, ms - tonumber(argv[i + 2]))))
  local ttl, cap = tonumber(argv[i + 3]), tonumber(argv[i + 4])
  local tin, tout = tonumber(argv[i + 6]) or 0, tonumber(argv[i + 7]) or 0
  local cost, err = tonumber(argv[i + 8]) or 0, argv[i + 9] == '1' and 1 or 0
  rollup_add(rollup, 'all|', tin, tout, cost, err)
  for _, item in ipairs(split(argv[i + 5], ',')) do
    local dim, name = string.match(item, '^([^=]*)=(.*)$')
    if dim and dim ~= '' and dim ~= 'all' and name ~= '' then
      rollup_add(rollup, rollup_slot(rollup, dim, name, cap), tin, tout, cost, err)
    end
  end
  redis.call('EXPIRE', rollup, ttl)
end
