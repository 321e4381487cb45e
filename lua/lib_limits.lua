-- lib_limits: the gateway's request limits (acquire_limits.lua's logic), as one function that
-- acquire_limits.lua runs on its own KEYS/ARGV and reserve_admitted.lua (through lib_admit.lua)
-- on those it carries after reserve's. Needs lib_pool (pool_now, gcra_*, f6, NEVER).
--
-- limits_run(K, A): K and A are acquire_limits.lua's KEYS and ARGV (below); answers its reply.

local function limits_run(K, A)
  local now = pool_now(A[1])
  local mode = A[2]
  local call_key, call_ttl = K[6], tonumber(A[8]) or 0

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
    local limit, delta = tonumber(A[6]) or 0, tonumber(A[7]) or 0
    if limit > 0 and delta ~= 0 then
      local tat = read_tat(K[4])
      if delta > 0 then
        write_tat(K[4], gcra_charge(tat, now, delta, limit))
      elseif tat > now then
        write_tat(K[4], math.max(now, tat + delta * (60.0 / limit)))
      end
      remember()
    end
    return {1, '0', ''}
  end

  if mode ~= 'acquire' then
    return redis.error_reply('unknown mode ' .. tostring(mode))
  end

  if redis.call('EXISTS', K[5]) == 1 then
    return {-1, '0', 'revoked'}
  end

  local checks = {
    {K[1], tonumber(A[3]) or 0, 1, 'user'},
    {K[2], tonumber(A[4]) or 0, 1, 'global'},
    {K[3], tonumber(A[5]) or 0, 1, 'key_rpm'},
    {K[4], tonumber(A[6]) or 0, tonumber(A[7]) or 0, 'key_tpm'},
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
end
