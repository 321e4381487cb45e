"""The Lua code of the embedded store's hashes (kernel/embedded/luahash.py says why and how).

A hash is one Lua table: its fields as string keys (field -> value) and, as its array part, the
fields in Redis's order (insertion: a field set again keeps its place, one deleted and set again
goes last), so ``#h`` is its length. One table per hash keeps the garbage collector's work small
(reservations are hashes that live for their TTL). The commands the pool scripts call most (HGET,
HSET of one field, HINCRBY, HEXISTS) have a path that builds no argument table. Every command's semantics and error texts are those
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
local fmt, match, lower, upper, floor, tremove = string.format, string.match, string.lower, string.upper, math.floor, table.remove
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
  local h = {}
  HASH[key] = h
  return h
end

local function put(h, f, value)
  if h[f] == nil then h[#h + 1] = f end
  h[f] = value
end

local function remove(h, f)
  h[f] = nil
  for i = 1, #h do
    if h[i] == f then tremove(h, i) return end
  end
end

local function fields(h)
  local out = {}
  for i = 1, #h do out[i] = h[i] end
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

local function hget(key, f)
  local h = hash_at(key)
  if h == false then return err(WRONGTYPE) end
  return h and h[f] or false
end

local function hexists(key, f)
  local h = hash_at(key)
  if h == false then return err(WRONGTYPE) end
  return (h and h[f] ~= nil) and 1 or 0
end

local function hset(a, n, name)
  if n % 2 == 0 then return wrong(name) end
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  local added = 0
  for i = 2, n, 2 do
    local f = a[i]
    if h[f] == nil then
      added = added + 1
      h[#h + 1] = f
    end
    h[f] = a[i + 1]
  end
  return added
end

local function hset1(key, f, value)
  local h = hash_at(key, true)
  if h == false then return err(WRONGTYPE) end
  if h[f] == nil then
    h[#h + 1] = f
    h[f] = value
    return 1
  end
  h[f] = value
  return 0
end

-- by: the increment as given (a string); small: the same as a number when small() takes it
local function hincrby(key, f, by, small_by)
  if small_by == nil then
    local e = int_error(by)
    if e then return e end
  end
  local h = hash_at(key, true)
  if h == false then return err(WRONGTYPE) end
  local old = h[f]
  if small_by ~= nil then
    local base = 0
    if old ~= nil then base = small(old) end
    if base ~= nil then
      local value = base + small_by
      put(h, f, fmt('%d', value))
      return value
    end
  end
  local new = incrby(old or false, by)  -- past 15 digits: Python's exact integers
  if type(new) == 'table' then return new end
  put(h, f, new)
  return tonumber(new)
end

local C = {}

C.HGET = {3, function(a) return hget(a[1], a[2]) end}
C.HEXISTS = {3, function(a) return hexists(a[1], a[2]) end}

C.HMGET = {-3, function(a, n)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  local out = {}
  for i = 2, n do out[i - 1] = h and h[a[i]] or false end
  return out
end}

C.HGETALL = {2, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  local out = {}
  if h then
    for i = 1, #h do
      local f = h[i]
      out[2 * i - 1], out[2 * i] = f, h[f]
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
    for i = 1, #h do out[i] = h[h[i]] end
  end
  return out
end}

C.HLEN = {2, function(a)
  local h = hash_at(a[1])
  if h == false then return err(WRONGTYPE) end
  return h and #h or 0
end}

C.HSET = {-4, function(a, n) return hset(a, n, 'hset') end}

C.HMSET = {-4, function(a, n)
  local r = hset(a, n, 'hmset')
  if type(r) == 'table' then return r end
  return {ok = 'OK'}
end}

C.HSETNX = {4, function(a)
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  if h[a[2]] ~= nil then return 0 end
  put(h, a[2], a[3])
  return 1
end}

C.HDEL = {-3, function(a, n)
  local key = a[1]
  local h = hash_at(key)
  if h == false then return err(WRONGTYPE) end
  if h == nil then return 0 end
  local removed = 0
  for i = 2, n do
    local f = a[i]
    if h[f] ~= nil then
      removed = removed + 1
      remove(h, f)
    end
  end
  if #h == 0 then
    HASH[key], EXP[key] = nil, nil
    dropped(key)
  end
  return removed
end}

C.HINCRBY = {4, function(a) return hincrby(a[1], a[2], a[3], small(a[3])) end}

C.HINCRBYFLOAT = {4, function(a)
  local e = float_error(a[3])
  if e then return e end
  local h = hash_at(a[1], true)
  if h == false then return err(WRONGTYPE) end
  local new = incrbyfloat(h[a[2]] or false, a[3])
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

-- The pool scripts' most frequent calls, all their arguments strings: no argument table.
local generic_hget, generic_hexists = commands.HGET, commands.HEXISTS
local generic_hset, generic_hincrby = commands.HSET, commands.HINCRBY
commands.HGET = function(name, ...)
  local key, f = ...
  if select('#', ...) == 2 and type(key) == 'string' and type(f) == 'string' then return hget(key, f) end
  return generic_hget(name, ...)
end
commands.HEXISTS = function(name, ...)
  local key, f = ...
  if select('#', ...) == 2 and type(key) == 'string' and type(f) == 'string' then return hexists(key, f) end
  return generic_hexists(name, ...)
end
commands.HSET = function(name, ...)
  local key, f, value = ...
  if select('#', ...) == 3 and type(key) == 'string' and type(f) == 'string' and type(value) == 'string' then
    return hset1(key, f, value)
  end
  return generic_hset(name, ...)
end
commands.HINCRBY = function(name, ...)
  local key, f, by = ...
  if select('#', ...) == 3 and type(key) == 'string' and type(f) == 'string' then
    if type(by) == 'number' and by == floor(by) and by > -1e15 and by < 1e15 and (by ~= 0 or 1 / by > 0) then
      return hincrby(key, f, fmt('%d', by), by)
    end
    if type(by) == 'string' then return hincrby(key, f, by, small(by)) end
  end
  return generic_hincrby(name, ...)
end

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
