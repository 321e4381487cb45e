-- lib_conversation: helpers shared by the conversation scripts (prepended by lua.load via
-- "-- include: lib_conversation"). A stored message starts with the fields the append script
-- writes, integers only (see conversation/models.py):
--   {"seq":S,"turn":T,"tokens":K,"ts":MS,"tk":"<tokenizer>","role":"R",...

-- seq, turn, tokens and role of a stored message (nil seq/turn when it is not one of ours).
local function conv_fields(message)
  local seq, turn, tokens, role = string.match(message,
    '^{"seq":(%d+),"turn":(%d+),"tokens":(%d+),"ts":%d+,"tk":"[^"]*","role":"(%a+)"')
  return tonumber(seq), tonumber(turn), tonumber(tokens) or 0, role
end

-- Remove the oldest unit of a conversation: the head message and every message after it up to
-- the next user message that starts a turn, so a tool result or follow-up never outlives the turn
-- it belongs to. Returns the messages, bytes and tokens removed.
local function conv_pop_oldest_unit(messages_key)
  local removed, bytes, tokens = 0, 0, 0
  while true do
    local head = redis.call('LINDEX', messages_key, 0)
    if not head then break end
    local seq, turn, count, role = conv_fields(head)
    if removed > 0 and role == 'user' and seq ~= nil and seq == turn then break end
    redis.call('LPOP', messages_key)
    removed = removed + 1
    bytes = bytes + #head
    tokens = tokens + count
  end
  return removed, bytes, tokens
end

-- Redis time in integer milliseconds (never the client's clock).
local function conv_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers are written with %d: Lua 5.1 would print large or computed numbers as floats.
local function conv_int(value)
  return string.format('%d', value)
end

-- Write the counters of a conversation and refresh the TTL of both its keys.
local function conv_save_counters(messages_key, meta_key, count, tokens, bytes, trimmed, now, ttl)
  redis.call('HSET', meta_key, 'message_count', conv_int(count), 'total_tokens', conv_int(tokens),
    'bytes', conv_int(bytes), 'updated_at', conv_int(now))
  if trimmed > 0 then
    redis.call('HINCRBY', meta_key, 'trimmed_messages', conv_int(trimmed))
  end
  redis.call('EXPIRE', messages_key, ttl)
  redis.call('EXPIRE', meta_key, ttl)
end
