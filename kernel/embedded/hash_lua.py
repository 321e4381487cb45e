"""The Lua code of the embedded store's hashes (kernel/embedded/luahash.py says why and how).

A hash is ``{v = field -> value, o = field -> insertion number, n = last number}``: ``v`` answers
reads, ``o`` gives HGETALL/HKEYS/HVALS Redis's order (insertion; a field set again keeps its
place, one deleted and set again goes last). Every command's semantics and error texts are those
of the Python implementation it replaced, Redis 7's: arguments checked first (strings, or numbers
written as ``%.17g``), then the arity (Redis's error for scripts), then the command's own errors in Redis's order.

Called with the Python hooks (resolve, dropped, argument, int_error, float_error, incrby,
incrbyfloat); returns the commands by name (what ``redis.call`` dispatches to), the entry for
Python's commands, set_now, flush, and the tables the Python keyspace writes: HASH (key -> hash,
to drop one), EXP (key -> TTL in ms, every key's) and OTHER (key -> true, every key of another
type).
"""

SOURCE = r"""
local resolve, dropped, argument, int_error, float_error, incrby, incrbyfloat = ...
local type, next, pairs, ipairs, select, tonumber = type, next, pairs, ipairs, select, tonumber
local fmt, match, lower, upper, floor, sort = string.format, string.match, string.lower, string.upper, math.floor, table.sort
local HASH, EXP, OTHER = {}, {}, {}
local NOW = 0
local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'
local BAD_ARGUMENT = 'ERR Lua redis lib command arguments must be strings or integers'
local SCRIPT_ARITY = 'ERR Wrong number of args calling Redis command from script'

local function err(m) return {err = m} end
local function wrong(name) return err("ERR wrong number of arguments for '" .. lower(name) .. "' command") end

-- The live hash at key; nil: no such key; false: a key of another type. EXP holds every key's TTL
-- and OTHER every key of another type (the Python keyspace keeps both up to date), so only an
-- expired key (Python removes it) and a new hash (Python lists it) cross into Python.
local function hash_at(key, create)
  local at = EXP[key]
  if at ~= nil and at <= NOW then
    resolve(key, false)
  else
    local h = HASH[key]
    if h ~= nil then return h end
    if OTHER[key] then return false end
  end
  if not create then return nil end
  if resolve(key, true) < 0 then return false end
  local h = {v = {}, o = {}, n = 0}
  HASH[key] = h
  return h
end

local function put(h, f, value)
  if h.v[f] == nil then
    local n = h.n + 1
    h.n, h.o[f] = n, n
  end
  h.v[f] = value
end

local function fields(h)
  local o, out = h.o, {}
  for f in pairs(h.v) do out[#out + 1] = f end
  sort(out, function(a, b) return o[a] < o[b] end)
  return out
end

-- A Redis integer small enough (15 characters) for a double to add exactly; nil otherwise.
local function small(s)
  if #s <= 15 and (match(s, '^-?[1-9]%d*$') or s == '0') then return tonumber(s) end
  return nil
end

local function number_arg(v)
  if v == floor(v) and v > -1e15 and v < 1e15 then
    if v == 0 and 1 / v < 0 then return '-0' end  -- what %.17g writes (lupa would hand Python 0)
    return fmt('%d', v)
  end
  return argument(v)  -- Redis's %.17g, as the rest of the store writes numbers
end

local C = {}

C.HGET = {3, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  return h and h.v[a[2]] or false
end}

C.HMGET = {-3, function(a, n)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  local out = {}
  for i = 2, n do out[i - 1] = h and h.v[a[i]] or false end
  return out
end}

C.HGETALL = {2, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  local out = {}
  if h then
    for _, f in ipairs(fields(h)) do
      out[#out + 1] = f
      out[#out + 1] = h.v[f]
    end
  end
  return out
end}

C.HKEYS = {2, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  return h and fields(h) or {}
end}

C.HVALS = {2, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  local out = {}
  if h then
    for i, f in ipairs(fields(h)) do out[i] = h.v[f] end
  end
  return out
end}

C.HLEN = {2, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  local n = 0
  if h then for _ in pairs(h.v) do n = n + 1 end end
  return n
end}

C.HEXISTS = {3, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  return (h and h.v[a[2]] ~= nil) and 1 or 0
end}

local function hset(a, n, name)
  if n % 2 == 0 then return wrong(name) end
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  local added, v = 0, h.v
  for i = 2, n, 2 do
    local f = a[i]
    if v[f] == nil then
      added = added + 1
      local c = h.n + 1
      h.n, h.o[f] = c, c
    end
    v[f] = a[i + 1]
  end
  return added
end

C.HSET = {-4, function(a, n) return hset(a, n, 'hset') end}

C.HMSET = {-4, function(a, n)
  local r = hset(a, n, 'hmset')
  if type(r) == 'table' then return r end
  return {ok = 'OK'}
end}

C.HSETNX = {4, function(a)
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  if h.v[a[2]] ~= nil then return 0 end
  put(h, a[2], a[3])
  return 1
end}

C.HDEL = {-3, function(a, n)
  local key = a[1]
  local h = hash_at(key)
  if h == false then return err(WRONGTYPE) end
  if h == nil then return 0 end
  local removed, v, o = 0, h.v, h.o
  for i = 2, n do
    local f = a[i]
    if v[f] ~= nil then
      removed = removed + 1
      v[f], o[f] = nil, nil
    end
  end
  if next(v) == nil then
    HASH[key], EXP[key] = nil, nil
    dropped(key)
  end
  return removed
end}

C.HINCRBY = {4, function(a)
  local by = small(a[3])
  if by == nil then
    local e = int_error(a[3])
    if e then return e end
  end
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  local f = a[2]
  local old = h.v[f]
  if by ~= nil then
    local base = 0
    if old ~= nil then base = small(old) end
    if base ~= nil then
      local value = base + by
      put(h, f, fmt('%d', value))
      return value
    end
  end
  local new = incrby(old or false, a[3])  -- past 15 digits: Python's exact integers
  if type(new) == 'table' then return new end
  put(h, f, new)
  return tonumber(new)
end}

C.HINCRBYFLOAT = {4, function(a)
  local e = float_error(a[3])
  if e then return e end
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  local new = incrbyfloat(h.v[a[2]] or false, a[3])
  if type(new) == 'table' then return new end
  put(h, a[2], new)
  return new
end}

-- redis.call's side: arguments converted and checked, then the arity, then the command.
local function script_command(spec)
  local arity, impl = spec[1], spec[2]
  return function(name, ...)
    local n = select('#', ...)
    local a = {...}
    for i = 1, n do
      local v = a[i]
      if type(v) ~= 'string' then
        if type(v) ~= 'number' then return err(BAD_ARGUMENT) end
        a[i] = number_arg(v)
      end
    end
    local count = n + 1
    if count ~= arity and (arity >= 0 or count < -arity) then return err(SCRIPT_ARITY) end
    return impl(a, n, name)
  end
end

local commands = {}
for name, spec in pairs(C) do commands[name] = script_command(spec) end

-- Python's side: a[1] the name, its arity already checked by the keyspace.
local function entry(now, a, n)
  NOW = now
  local args = {}
  for i = 2, n do args[i - 1] = a[i] end
  return C[upper(a[1])][2](args, n - 1, a[1])
end

local function set_now(now) NOW = now end
local function clear(t) for k in pairs(t) do t[k] = nil end end
local function flush() clear(HASH) clear(EXP) clear(OTHER) end

return commands, entry, set_now, flush, HASH, EXP, OTHER
"""
