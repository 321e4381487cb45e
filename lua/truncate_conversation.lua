-- include: lib_conversation
-- truncate_conversation: drop the oldest turns until the conversation is within a limit.
--
-- KEYS[1] message list, KEYS[2] metadata hash (same hash tag {<conv_id>}: one Cluster slot)
-- ARGV[1] 'count' (keep at most ARGV[2] messages) | 'tokens' (keep at most ARGV[2] tokens,
--         as counted when each message was stored)
-- ARGV[3] ttl seconds, refreshed as on every write
--
-- Whole turns go (a user message with the answers and tool results that followed it), so the kept
-- history never starts in the middle of an exchange; the system prompt is metadata and stays.
-- Returns {removed, message_count, total_tokens}; an unknown conversation gives {0, 0, 0}.

local messages_key, meta_key = KEYS[1], KEYS[2]
local by_tokens = ARGV[1] == 'tokens'
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])

if redis.call('EXISTS', meta_key) == 0 then
  return {0, 0, 0}
end
local state = redis.call('HMGET', meta_key, 'total_tokens', 'bytes')
local total_tokens = tonumber(state[1]) or 0
local bytes = tonumber(state[2]) or 0
local count = redis.call('LLEN', messages_key)

local trimmed = 0
while count > 0 and ((by_tokens and total_tokens > limit) or (not by_tokens and count > limit)) do
  local removed, removed_bytes, removed_tokens = conv_pop_oldest_unit(messages_key)
  count, bytes, total_tokens = count - removed, bytes - removed_bytes, total_tokens - removed_tokens
  trimmed = trimmed + removed
end
if count == 0 then
  total_tokens, bytes = 0, 0
end
conv_save_counters(messages_key, meta_key, count, total_tokens, bytes, trimmed, conv_now_ms(), ttl)
return {trimmed, count, total_tokens}
