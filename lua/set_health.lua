-- include: lib_pool
-- set_health: an operator's (or the router's) change of one key's health.
--
-- KEYS: cfg, state, health, then every ready set the key is in.
-- ARGV: key, action, seconds, reason, now ('' = TIME), buckets of the key (comma list).
--   cooldown  the key serves nothing for `seconds` (document 004's mark_key_unhealthy)
--   clear     end a cooldown, an open circuit and the provider blocks of the key's buckets;
--             a key disabled for an auth failure stays disabled (only 'enable' revives it)
--   disable   the key serves nothing until enabled (reason: auth, manual, removed ...)
--   enable    undo disable; the caller then syncs the pool so the key rejoins the indexes
--   reset     clear, and also reset every circuit breaker state (document 001's last resort)
-- Answers {state, until, reason}.

local CFG, STATE, HEALTH = KEYS[1], KEYS[2], KEYS[3]
local key, action, seconds, reason = ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0, ARGV[4]
local now = pool_now(ARGV[5])
local h = read_health(HEALTH, key)

local function each_ready(fn)
  for i = 4, #KEYS do fn(KEYS[i]) end
end

if action == 'cooldown' then
  if h.state ~= 'disabled' then
    h.state, h.till, h.reason = 'cooldown', now + seconds, reason
    each_ready(function(z) redis.call('ZADD', z, 'XX', 'GT', f6(h.till), key) end)
  end
elseif action == 'clear' or action == 'reset' then
  if h.state ~= 'disabled' then
    h.state, h.till, h.reason, h.fails, h.level = 'ok', 0, '', 0, 0
  end
  for _, bucket in ipairs(split(ARGV[6], ',')) do
    local S = read_state(STATE, bucket)
    if S.blocked > now or S.level > 0 then
      S.blocked, S.level = 0, 0
      write_state(STATE, bucket, S)
    end
  end
  each_ready(function(z) redis.call('ZADD', z, 'XX', 'LT', f6(now), key) end)
elseif action == 'disable' then
  h.state, h.till, h.reason = 'disabled', 0, reason
  each_ready(function(z) redis.call('ZREM', z, key) end)
elseif action == 'enable' then
  h.state, h.till, h.reason, h.fails, h.level = 'ok', 0, '', 0, 0
else
  return redis.error_reply('unknown action ' .. action)
end
write_health(HEALTH, key, h)
return {h.state, f6(h.till), h.reason}
