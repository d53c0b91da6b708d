"""The Lua scripts the Redis online store runs: writes (records, and the precomputed
vectors that hold them, see stores.vectors) and the checked vector writes of a rebuild.

A script runs whole, before any other command, so each write call is atomic.
"""

from __future__ import annotations

import hashlib

# Shared by both scripts: the vector format of stores.vectors, in Lua.
VECTOR_LUA = """
local INDEX = 'svc:'
local INVALID = '\\0'

local function split(vector, n)
  local offset = 10 + 8 * n
  local first = string.byte(vector, offset)
  local size = 5
  if first < 0xa0 then size = 1 elseif first == 0xdc then size = 3 end
  local chunks = {}
  local pos = offset + size
  for i = 1, 2 * n do
    local len = struct.unpack('>I4', vector, 10 + 4 * (i - 1))
    chunks[i] = string.sub(vector, pos, pos + len - 1)
    pos = pos + len
  end
  return string.sub(vector, offset, offset + size - 1), chunks
end

local function build(tag, header, chunks)
  local out = {tag}
  for i = 1, #chunks do out[#out + 1] = struct.pack('>I4', #chunks[i]) end
  out[#out + 1] = header
  for i = 1, #chunks do out[#out + 1] = chunks[i] end
  return table.concat(out)
end

local function put_index(key, field, views)
  local index = redis.call('HGET', key, INDEX) or ''
  local entry = field .. '=' .. views
  local kept = {}
  for e in string.gmatch(index, '[^;]+') do
    if e == entry then return index end
    if string.sub(e, 1, #field + 1) ~= field .. '=' then kept[#kept + 1] = e end
  end
  kept[#kept + 1] = entry
  index = table.concat(kept, ';')
  redis.call('HSET', key, INDEX, index)
  return index
end
"""

# KEYS[i] is an entity key; ARGV[1] = key TTL seconds, then per key: view, event_ts_us,
# record, vector count, and per vector: field, tag, run count, views (comma-joined), empty
# vector, part count, then (0-based run position, header, values) per part. Mirrors
# stores.vectors.apply_written.
WRITE_SCRIPT = (
    VECTOR_LUA
    + """
-- A stored record is the MessagePack array [event_ts_us, {...}]: its event time is read from
-- the bytes after the array header. Redis's cmsgpack cannot decode the whole record (it has
-- no `bin` type, which Bytes values use), and need not.
local int_formats = {[0xcc] = '>I1', [0xcd] = '>I2', [0xce] = '>I4', [0xcf] = '>I8',
                     [0xd0] = '>i1', [0xd1] = '>i2', [0xd2] = '>i4', [0xd3] = '>i8'}
local function event_ts(record)
  local tag = string.byte(record, 2)
  if tag <= 0x7f then return tag end
  if tag >= 0xe0 then return tag - 256 end
  return (struct.unpack(int_formats[tag], record, 3))
end
local ttl = tonumber(ARGV[1])
local p = 2
local written = 0
for _, key in ipairs(KEYS) do
  local view = ARGV[p]
  local ts = tonumber(ARGV[p + 1])
  local record = ARGV[p + 2]
  local count = tonumber(ARGV[p + 3])
  p = p + 4
  local current = redis.call('HGET', key, view)
  local apply = (not current) or event_ts(current) <= ts
  if apply then
    redis.call('HSET', key, view, record)
    written = written + 1
  end
  local covered = {}
  local index = nil
  for _ = 1, count do
    local field, tag, n, views, empty, parts = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2]),
      ARGV[p + 3], ARGV[p + 4], tonumber(ARGV[p + 5])
    p = p + 6
    covered[field] = true
    local vector = apply and redis.call('HGET', key, field)
    if apply and not vector then
      for v in string.gmatch(views, '[^,]+') do
        if v ~= view and redis.call('HEXISTS', key, v) == 1 then vector = INVALID end
      end
      if vector then
        redis.call('HSET', key, field, INVALID)
      else
        vector = empty
        index = put_index(key, field, views)
      end
    end
    if apply and string.sub(vector, 1, 9) ~= tag then
      if vector ~= INVALID then redis.call('HSET', key, field, INVALID) end
    elseif apply then
      local header, chunks = split(vector, n)
      for k = 0, parts - 1 do
        local i = tonumber(ARGV[p + 3 * k]) + 1
        chunks[i] = ARGV[p + 3 * k + 1]
        chunks[n + i] = ARGV[p + 3 * k + 2]
      end
      redis.call('HSET', key, field, build(tag, header, chunks))
    end
    p = p + 3 * parts
  end
  if apply then
    index = index or redis.call('HGET', key, INDEX)
    if index then
      for field, views in string.gmatch(index, '([^=;]+)=([^;]*)') do
        if not covered[field] and string.find(',' .. views .. ',', ',' .. view .. ',', 1, true) then
          local vector = redis.call('HGET', key, field)
          if vector and vector ~= INVALID then redis.call('HSET', key, field, INVALID) end
        end
      end
    end
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end
return written
"""
)

# KEYS[i] is an entity key; per key ARGV holds: field, vector ('' = drop the field), views
# (comma-joined), record count, then (view, SHA-1 hex of the record as read or '') pairs.
# Returns 1 per key written, 0 where a record changed since it was read.
VECTOR_SCRIPT = (
    VECTOR_LUA
    + """
local p = 1
local results = {}
for i, key in ipairs(KEYS) do
  local field, vector, views, count = ARGV[p], ARGV[p + 1], ARGV[p + 2], tonumber(ARGV[p + 3])
  p = p + 4
  local same = true
  for _ = 1, count do
    local record = redis.call('HGET', key, ARGV[p])
    if (record and redis.sha1hex(record) or '') ~= ARGV[p + 1] then same = false end
    p = p + 2
  end
  results[i] = same and 1 or 0
  if same and vector == '' then
    redis.call('HDEL', key, field)
  elseif same then
    redis.call('HSET', key, field, vector)
    put_index(key, field, views)
  end
end
return results
"""
)
WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest().encode()
VECTOR_SHA = hashlib.sha1(VECTOR_SCRIPT.encode()).hexdigest().encode()
