-- include: lib_conversation
-- append_turn: store one turn of a conversation (0..n messages) together or not at all.
--
-- KEYS[1] message list, KEYS[2] metadata hash (same hash tag {<conv_id>}: one Cluster slot)
-- ARGV[1] ttl seconds   ARGV[2] max messages   ARGV[3] max bytes   ARGV[4] 'trim' | 'error'
-- ARGV[5] expected last seq, -1 for no check
-- ARGV[6] turn id ('' for none): a retried append with the same id is answered, not stored twice
-- ARGV[7] conv id (kept in the metadata)
-- ARGV[8] '1' to set the system prompt to ARGV[9] ('' removes it), '0' to keep it
-- ARGV[10] model, ARGV[11] provider of the turn ('' to leave last_model / last_provider)
-- ARGV[12] n, ARGV[13] tokenizer that made the counts ([%w_.*]*),
-- then n pairs: token count, JSON object starting with {"role":"
--
-- Sequence numbers are assigned here, so concurrent writers in any process never interleave.
-- Everything is checked before the first write: Redis does not roll back a script that fails.
-- Returns {status, first_seq, last_seq, message_count, total_tokens, bytes, trimmed, cap, size}
-- with status 'ok' | 'duplicate' | 'conflict' | 'too_large' (cap: 'messages' or 'bytes').

local messages_key, meta_key = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[1])
local max_messages = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])
local trim = ARGV[4] == 'trim'
local expected = tonumber(ARGV[5])
local turn_id = ARGV[6]
local set_system = ARGV[8] == '1'
local n = tonumber(ARGV[12])
local tokenizer = ARGV[13]
if not string.find(tokenizer, '^[%w_.*]*$') then
  return redis.error_reply('append_turn: bad tokenizer name')
end

local state = redis.call('HMGET', meta_key, 'last_seq', 'total_tokens', 'bytes', 'recent_turns',
  'system_prompt')
local last_seq = tonumber(state[1]) or 0
local total_tokens = tonumber(state[2]) or 0
local bytes = tonumber(state[3]) or 0
local recent = state[4] or ''
local count = redis.call('LLEN', messages_key)
if count == 0 then
  total_tokens, bytes = 0, 0
end

local function reply(status, first, last, trimmed, cap, size)
  return {status, first, last, count, total_tokens, bytes, trimmed, cap or '', size or 0}
end

-- A retry of a turn already stored (its reply was lost): answer what was stored then.
if turn_id ~= '' then
  local at = string.find(recent, ' ' .. turn_id .. ':', 1, true)
  if at then
    local first, last = string.match(recent, '^(%d+):(%d+)', at + #turn_id + 2)
    return reply('duplicate', tonumber(first), tonumber(last), 0)
  end
end
if expected >= 0 and expected ~= last_seq then
  return reply('conflict', last_seq, last_seq, 0)
end

local system_bytes = set_system and #ARGV[9] or #(state[5] or '')
local now = conv_now_ms()
local first = last_seq + 1
local elements, add_bytes, add_tokens = {}, 0, 0
for i = 1, n do
  local tokens = tonumber(ARGV[12 + 2 * i])
  local body = ARGV[13 + 2 * i]
  if tokens == nil or string.sub(body, 1, 9) ~= '{"role":"' then
    return redis.error_reply('append_turn: message ' .. i .. ' is not a token count and a JSON body')
  end
  local element = string.format('{"seq":%d,"turn":%d,"tokens":%d,"ts":%d,"tk":"%s",', last_seq + i,
    first, tokens, now, tokenizer) .. string.sub(body, 2)
  elements[i] = element
  add_bytes = add_bytes + #element
  add_tokens = add_tokens + tokens
end

-- The turn alone must fit; with trimming off, the whole conversation must.
if n > max_messages then
  return reply('too_large', 0, last_seq, 0, 'messages', n)
end
if add_bytes + system_bytes > max_bytes then
  return reply('too_large', 0, last_seq, 0, 'bytes', add_bytes + system_bytes)
end
if not trim and count + n > max_messages then
  return reply('too_large', 0, last_seq, 0, 'messages', count + n)
end
if not trim and bytes + add_bytes + system_bytes > max_bytes then
  return reply('too_large', 0, last_seq, 0, 'bytes', bytes + add_bytes + system_bytes)
end

-- Make room by dropping the oldest turns (never the new one: it is not in the list yet).
local trimmed = 0
while count > 0 and (count + n > max_messages or bytes + add_bytes + system_bytes > max_bytes) do
  local removed, removed_bytes, removed_tokens = conv_pop_oldest_unit(messages_key)
  count, bytes, total_tokens = count - removed, bytes - removed_bytes, total_tokens - removed_tokens
  trimmed = trimmed + removed
end

for i = 1, n do
  redis.call('RPUSH', messages_key, elements[i])
end
count, bytes, total_tokens = count + n, bytes + add_bytes, total_tokens + add_tokens
local last = last_seq + n

redis.call('HSET', meta_key, 'conv_id', ARGV[7], 'last_seq', conv_int(last))
redis.call('HSETNX', meta_key, 'created_at', conv_int(now))
if set_system and ARGV[9] ~= '' then
  redis.call('HSET', meta_key, 'system_prompt', ARGV[9])
elseif set_system then
  redis.call('HDEL', meta_key, 'system_prompt')
end
if ARGV[10] ~= '' then
  redis.call('HSET', meta_key, 'last_model', ARGV[10])
end
if ARGV[11] ~= '' then
  redis.call('HSET', meta_key, 'last_provider', ARGV[11])
end
if n > 0 then
  redis.call('HINCRBY', meta_key, 'turns', 1)
  if turn_id ~= '' then
    -- Remember the last 32 turn ids (bounded) for retries: " id:first:last id:first:last ..."
    local entries = {}
    for entry in string.gmatch(recent, '%S+') do
      entries[#entries + 1] = entry
    end
    entries[#entries + 1] = turn_id .. ':' .. conv_int(first) .. ':' .. conv_int(last)
    local from = math.max(1, #entries - 31)
    redis.call('HSET', meta_key, 'recent_turns', ' ' .. table.concat(entries, ' ', from))
  end
end
conv_save_counters(messages_key, meta_key, count, total_tokens, bytes, trimmed, now, ttl)
if n == 0 then
  first = last
end
return reply('ok', first, last, trimmed)
