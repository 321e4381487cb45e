-- include: lib_pool
-- acquire_limits: the gateway's request limits, charged all together or not at all.
--
-- KEYS (one slot, the tag {<prefix>:rl}):
--   1 user           GCRA time of the user's request limit (document 004's rl:user:<user_id>)
--   2 global         GCRA time of the global request limit (document 004's rl:global)
--   3 vkey rpm       GCRA time of the virtual key's own requests per minute
--   4 vkey tpm       GCRA time of the virtual key's own tokens per minute
--   5 vkey revoked   exists once the virtual key is revoked (checked on every request, so a
--                    revocation holds at once in every process whatever they cached)
--   6 call           (optional) this call's answer, kept ARGV[8] seconds: a call repeated with the
--                    same id (a client retrying after a lost connection) answers what the first
--                    did and charges nothing again. Only calls that charged are kept.
-- ARGV: now ('' = TIME), mode, user rpm, global rpm, vkey rpm, vkey tpm, tokens,
--       call ttl seconds (with KEYS[6]).
--
-- A limit of 0 is not enforced. A limit L per minute is GCRA with a burst of L: L requests (or
-- tokens) at once, refilled continuously at L/60 per second. A key lives only until its bucket
-- is full again (a missing key is a full bucket), so idle users cost no memory.
--
-- mode 'acquire' (tokens: the request's estimate) answers
--   {1, '0', ''}            every limit had room: all were charged
--   {0, retry_after, name}  a limit had no room: nothing was charged; retry_after is the number of
--                           seconds until every limit has room, name the limit that binds last
--   {0, '-1', name}         the request can never fit (its tokens exceed the key's TPM)
--   {-1, '0', 'revoked'}    the virtual key was revoked
-- mode 'adjust' (tokens: actual minus estimated, either sign) moves the vkey TPM charge to the
-- tokens really used; answers {1, '0', ''}.

local now = pool_now(ARGV[1])
local mode = ARGV[2]
local call_key, call_ttl = KEYS[6], tonumber(ARGV[8]) or 0

-- a repeated call: the first one's answer, nothing charged again
if call_key and call_ttl > 0 and redis.call('EXISTS', call_key) == 1 then
  return {1, '0', ''}
end

local function remember()
  if call_key and call_ttl > 0 then
    redis.call('SET', call_key, mode, 'PX', math.floor(call_ttl * 1000))
  end
end

local function read_tat(key)
  return tonumber(redis.call('GET', key)) or 0
end

local function write_tat(key, tat)
  local ttl = math.ceil((tat - now) * 1000) + 1000
  if tat <= now then
    redis.call('DEL', key)
  else
    redis.call('SET', key, f6(tat), 'PX', ttl)
  end
end

if mode == 'adjust' then
  local limit, delta = tonumber(ARGV[6]) or 0, tonumber(ARGV[7]) or 0
  if limit > 0 and delta ~= 0 then
    local tat = read_tat(KEYS[4])
    if delta > 0 then
      write_tat(KEYS[4], gcra_charge(tat, now, delta, limit))
    elseif tat > now then
      write_tat(KEYS[4], math.max(now, tat + delta * (60.0 / limit)))
    end
    remember()
  end
  return {1, '0', ''}
end

if mode ~= 'acquire' then
  return redis.error_reply('unknown mode ' .. tostring(mode))
end

if redis.call('EXISTS', KEYS[5]) == 1 then
  return {-1, '0', 'revoked'}
end

local checks = {
  {KEYS[1], tonumber(ARGV[3]) or 0, 1, 'user'},
  {KEYS[2], tonumber(ARGV[4]) or 0, 1, 'global'},
  {KEYS[3], tonumber(ARGV[5]) or 0, 1, 'key_rpm'},
  {KEYS[4], tonumber(ARGV[6]) or 0, tonumber(ARGV[7]) or 0, 'key_tpm'},
}

local latest, binding = 0, ''
for _, c in ipairs(checks) do
  local limit, cost = c[2], c[3]
  if limit > 0 and cost > 0 then
    c[5] = read_tat(c[1])
    local at = gcra_at(c[5], cost, limit, limit)
    if at >= NEVER then return {0, '-1', c[4]} end
    if at > now and at > latest then latest, binding = at, c[4] end
  end
end

if binding ~= '' then
  return {0, f6(latest - now), binding}
end

local charged = false
for _, c in ipairs(checks) do
  local limit, cost = c[2], c[3]
  if limit > 0 and cost > 0 then
    write_tat(c[1], gcra_charge(c[5], now, cost, limit))
    charged = true
  end
end
if charged then remember() end
return {1, '0', ''}
