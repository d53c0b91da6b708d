-- wrk script: POST /push (Feast's JSON API) into the suite dataset's push source, with
-- one value per pushed feature built from its type. Used by bench/soak.sh.
--
-- Usage:
--   PUSH_SOURCE=user_activity_push PUSH_COLUMNS=activity_int64:Int64,activity_string:String \
--     ROWS=10 wrk -t1 -c2 -d30s --latency -s bench/suite-push.lua http://127.0.0.1:6566/push
--
-- Environment knobs:
--   PUSH_SOURCE   push source name (required)
--   PUSH_COLUMNS  name:dtype of every feature to push, comma-separated (required); dtypes:
--                 Int32, Int64, Float32, Float64, String, Bool, UnixTimestamp and
--                 Array(Int64 | Float64 | String)
--   ROWS          rows per push (default 1)
--   TO            "online" | "offline" | "online_and_offline" (default online)
--   ENTITY_KEY    join key (default user_id)
--   ID_START      first entity id (default 1)
--   ID_COUNT      ids pushed to (default 100000)
--   NTHREADS      MUST equal wrk -t (default 1): each thread pushes its own block of ids,
--                 so two threads never write the same id
--   COUNT_STATUS  "1" -> count 4xx and 5xx responses separately (a response() callback)
--   DUMP_BODY     path: write thread 0's first body there (for a curl sanity check)
--   RESULT_FILE   path: append one JSON line with the summary in done()
--   LABEL         free-form label copied into the JSON line
--
-- Bodies are built per request because timestamps must grow: request n of a run has
-- event_timestamp = (wall-clock second the run started) + n microseconds ("Z"), and
-- created the same instant without zone. A row older than the stored one is skipped by
-- the server, so runs must start at least 1 s apart for every push to be written.

local source     = os.getenv("PUSH_SOURCE") or error("PUSH_SOURCE is required")
local columns_s  = os.getenv("PUSH_COLUMNS") or error("PUSH_COLUMNS is required")
local rows       = tonumber(os.getenv("ROWS") or "1")
local to         = os.getenv("TO") or "online"
local entity_key = os.getenv("ENTITY_KEY") or "user_id"
local id_start   = tonumber(os.getenv("ID_START") or "1")
local id_count   = tonumber(os.getenv("ID_COUNT") or "100000")
local nthreads   = tonumber(os.getenv("NTHREADS") or "1")
local count_status = os.getenv("COUNT_STATUS") == "1"

-- value(id, k, iso) -> JSON text, per dtype
local generators = {
  Int64 = function(id, k) return string.format("%d", (id * 7 + k) % 1000000) end,
  Int32 = function(id, k) return string.format("%d", (id + k) % 1000) end,
  Float64 = function(id, k) return string.format("%.6f", ((id * 7919 + k) % 1000000) / 1e6) end,
  Float32 = function(id, k) return string.format("%.3f", ((id * 104729 + k) % 1000) / 1000) end,
  String = function(id, k) return string.format('"pushed-%d-%d"', id, k % 1000) end,
  Bool = function(id, k) if (id + k) % 2 == 0 then return "true" end return "false" end,
  UnixTimestamp = function(id, k, iso) return '"' .. iso .. 'Z"' end,
  ["Array(Int64)"] = function(id, k)
    return string.format("[%d,%d,%d]", id % 1000, k % 1000, (id + k) % 1000)
  end,
  ["Array(Float64)"] = function(id, k)
    return string.format("[%.3f,%.3f]", (id % 1000) / 1000, (k % 1000) / 1000)
  end,
  ["Array(String)"] = function(id, k)
    return string.format('["tag-%d","tag-%d"]', id % 100, k % 100)
  end,
}

local columns = {}
for spec in string.gmatch(columns_s, "([^,]+)") do
  local name, dtype = string.match(spec, "^([^:]+):(.+)$")
  local gen = generators[dtype or ""]
  if not gen then error("suite-push.lua: no value generator for " .. spec) end
  columns[#columns + 1] = { name = name, gen = gen }
end

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local n = 0
local base_sec = os.time()
local block, block_start

local function build_body(k)
  local sec = base_sec + math.floor(k / 1000000)
  local iso = os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%06d", k % 1000000)
  local ids, evs, crs = {}, {}, {}
  local values = {}
  for c = 1, #columns do values[c] = {} end
  for j = 0, rows - 1 do
    local id = block_start + ((k * rows + j) % block)
    ids[#ids + 1] = string.format("%d", id)
    evs[#evs + 1] = '"' .. iso .. 'Z"'
    crs[#crs + 1] = '"' .. iso .. '"'
    for c = 1, #columns do
      local list = values[c]
      list[#list + 1] = columns[c].gen(id, k, iso)
    end
  end
  local parts = {
    '"' .. entity_key .. '":[' .. table.concat(ids, ",") .. ']',
    '"event_timestamp":[' .. table.concat(evs, ",") .. ']',
    '"created":[' .. table.concat(crs, ",") .. ']',
  }
  for c = 1, #columns do
    parts[#parts + 1] = '"' .. columns[c].name .. '":[' .. table.concat(values[c], ",") .. ']'
  end
  return '{"push_source_name":"' .. source .. '","df":{' .. table.concat(parts, ",") ..
    '},"to":"' .. to .. '"}'
end

function init(args)
  local t = (tid or 0) % nthreads
  block = math.floor(id_count / nthreads)
  block_start = id_start + t * block
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local dump = os.getenv("DUMP_BODY")
  if dump and t == 0 then
    local f = io.open(dump, "w")
    f:write(build_body(0))
    f:close()
  end
  c4xx, c5xx = 0, 0
end

function request()
  local body = build_body(n)
  n = n + 1
  return wrk.format("POST", nil, nil, body)
end

if count_status then
  function response(status, headers, body)
    if status >= 500 then c5xx = c5xx + 1 elseif status >= 400 then c4xx = c4xx + 1 end
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local s4, s5 = -1, -1
  if count_status then
    s4, s5 = 0, 0
    for _, thread in ipairs(threads) do
      s4 = s4 + (thread:get("c4xx") or 0)
      s5 = s5 + (thread:get("c5xx") or 0)
    end
  end
  local line = string.format(
    '{"label":"%s","rows":"%d","to":"%s","requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
    '"lat_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"non2xx":%d},' ..
    '"status":{"4xx":%d,"5xx":%d},"bytes":%d}',
    os.getenv("LABEL") or "", rows, to, summary.requests, secs, summary.requests / secs,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, s4, s5, summary.bytes)
  io.write("RESULT " .. line .. "\n")
  local rf = os.getenv("RESULT_FILE")
  if rf then
    local f = io.open(rf, "a")
    f:write(line .. "\n")
    f:close()
  end
end
