-- read_conversation: one consistent snapshot of a conversation (metadata, messages, TTL).
--
-- KEYS[1] message list, KEYS[2] metadata hash (same hash tag {<conv_id>}: one Cluster slot)
-- ARGV[1] how many of the newest messages to return: -1 all, 0 none
--
-- One script, so the messages and the last_seq a caller passes back as expected_seq belong to the
-- same moment even while other processes append. Reading does not refresh the TTL.
-- Returns {metadata as a flat field/value list, messages oldest first, TTL in ms (-2: no such key)}

local messages_key, meta_key = KEYS[1], KEYS[2]
local newest = tonumber(ARGV[1])
local messages = {}
if newest < 0 then
  messages = redis.call('LRANGE', messages_key, 0, -1)
elseif newest > 0 then
  messages = redis.call('LRANGE', messages_key, -newest, -1)
end
return {redis.call('HGETALL', meta_key), messages, redis.call('PTTL', meta_key)}
