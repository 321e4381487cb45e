-- lib_admit: the prologue of reserve_admitted.lua (included after lib_limits, before reserve.lua's
-- text): the gateway's request limits of the call, charged before reserve looks at anything.
--
-- KEYS past reserve's (its 9, then 3 per tier of ARGV[11]): acquire_limits.lua's 6 KEYS.
-- ARGV past reserve's 16: acquire_limits.lua's 8 ARGV (mode 'acquire').
-- The limits refused: {'limited', code, retry_after, name} (acquire_limits' reply, as text) and
-- nothing is reserved; allowed (charged, or already charged by this call id): reserve runs.
do
  local base = 9 + 3 * #split(ARGV[11], ',')
  local K = {KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], KEYS[base + 6]}
  local A = {}
  for i = 1, 8 do A[i] = ARGV[16 + i] end
  local verdict = limits_run(K, A)
  if verdict[1] ~= 1 then
    return {'limited', tostring(verdict[1]), verdict[2], verdict[3]}
  end
end
