-- extend_reservation: keep a reservation alive while its call runs (a stream that outlives the
-- reservation TTL), so that it is settled with the call's real usage instead of expiring and
-- staying charged at its estimate.
--
-- Touches only the reservation's own hash, and only while it is still 'reserved': a reservation
-- already settled or released keeps the expiry it has. Idempotent: repeating it (a reply lost and
-- the command retried) sets the same expiry again, counted from the store's clock.
--
-- KEYS: reservation.
-- ARGV: ttl in seconds (a positive integer).
-- Answers {'extended', ttl} | {'noop', state} | {'expired'}.

local RES = KEYS[1]
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
  return redis.error_reply('extend_reservation: ttl must be a positive integer, got ' .. tostring(ARGV[1]))
end

local state = redis.call('HGET', RES, 'state')
if not state then return {'expired'} end
if state ~= 'reserved' then return {'noop', state} end
redis.call('EXPIRE', RES, ttl)
return {'extended', ttl}
