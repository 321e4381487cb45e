-- include: lib_pool
-- include: lib_usage
-- budget_hold: the budgets of a call reserved on a pool shard (POOL_SHARDS > 1). The shards'
-- reserve scripts cannot reach the budgets' slot, so a call under a budget holds its estimate
-- here first (same checks and records as reserve's: check_budgets, charge_budgets), and its
-- settle or release gives it back here (settle_budgets), exactly like reserve and settle do with
-- POOL_SHARDS=1.
--
-- KEYS: budgets, budget spend, the hold (kernel.redis_keys.budget_hold).
-- ARGV: action ('hold' | 'settle' | 'refund'), now ('' = TIME), day offsets, then
--   hold:   budget fields (comma list), worst-case cost in nano-dollars ('' = unknown), TTL (s)
--   settle: the actual cost in nano-dollars ('' = the estimate held)
-- Answers (hold) {'ok', alerts} | {'budget', field, resets at, limit, used, now, period}, as
-- reserve does; a hold already made for this id answers {'ok', ''} without charging again.
-- (settle, refund) {'ok'} | {'none'} when nothing is held (already settled, or expired).

local BUDGETS, SPEND, HOLD = KEYS[1], KEYS[2], KEYS[3]
local action = ARGV[1]
local now = pool_now(ARGV[2])
local offsets = parse_offsets(ARGV[3])

if action == 'hold' then
  if redis.call('EXISTS', HOLD) == 1 then return {'ok', ''} end
  local estimate = tonumber(ARGV[5] or '')
  if estimate then estimate = math.max(0, estimate) end
  local held, refusal = check_budgets(BUDGETS, SPEND, ARGV[4] or '', estimate, now, offsets)
  if refusal then return refusal end
  local record, alerts = charge_budgets(SPEND, held, estimate or 0)
  if record ~= '' then
    redis.call('SET', HOLD, record .. '#' .. int(estimate or 0), 'EX', math.max(1, tonumber(ARGV[6]) or 600))
  end
  return {'ok', alerts}
end

local raw = redis.call('GET', HOLD)
if not raw then return {'none'} end
local record, estimate = string.match(raw, '^(.*)#([^#]*)$')
local actual = tonumber(ARGV[4] or '') or tonumber(estimate) or 0
settle_budgets(SPEND, record, math.max(0, actual), action == 'refund')
redis.call('DEL', HOLD)
return {'ok'}
