-- wrk script for the benchmark suite: POST /get-online-features (Feast's JSON API) with
-- random entity ids, from bodies built once per thread before the run starts.
-- It works against any server that speaks the API (Ladle, Feast, ...).
--
-- Usage:
--   ROWS=10 ID_COUNT=100000 FEATURES=view:f1,view:f2 \
--     wrk -t2 -c16 -d10s --latency -s bench/suite-profile.lua http://127.0.0.1:6566/get-online-features
--
-- Environment knobs (all optional):
--   ROWS            entity rows per request (default 1), or a comma list ("1,10,100") whose
--                   values the bodies take in turn
--   ENTITY_KEY      join key name (default user_id)
--   ID_START        first entity id (default 1)
--   ID_COUNT        ids ID_START .. ID_START+ID_COUNT-1 are drawn from (default 100000)
--   FEATURES        comma-separated feature refs, sent as "features"
--   FEATURE_SERVICE a service name, sent as "feature_service" (instead of FEATURES, or,
--                   with both set, every other body)
--   FULL_NAMES      "1" -> "full_feature_names": true
--   NBODIES         bodies built per thread (default 10000); each has ROWS distinct ids
--                   drawn uniformly at random, and each request sends a random one
--   SEED            random seed (default 1); thread t uses SEED * 1000 + t, so every run
--                   with the same knobs sends the same bodies
--   AUTHORIZATION   an Authorization header value ("Bearer <token>") sent with every
--                   request (bench/overhead.sh)
--   COUNT_STATUS    "1" -> count 4xx and 5xx responses separately (adds a response()
--                   callback, which costs wrk some speed: for soak runs, not for peak RPS)
--   DUMP_BODY       path: write the first body of thread 0 there (for a curl sanity check)
--   RESULT_FILE     path: append one JSON line with the summary in done()
--   LABEL           free-form label copied into the JSON line
--
-- Keep-alive is on (wrk's default). wrk counts non-2xx responses and socket errors; done()
-- reports them.

local rows_list  = os.getenv("ROWS") or "1"
local entity_key = os.getenv("ENTITY_KEY") or "user_id"
local id_start   = tonumber(os.getenv("ID_START") or "1")
local id_count   = tonumber(os.getenv("ID_COUNT") or "100000")
local features   = os.getenv("FEATURES") or ""
local fservice   = os.getenv("FEATURE_SERVICE") or ""
local full_names = os.getenv("FULL_NAMES") == "1"
local nbodies    = tonumber(os.getenv("NBODIES") or "10000")
local seed       = tonumber(os.getenv("SEED") or "1")
local count_status = os.getenv("COUNT_STATUS") == "1"
local authorization = os.getenv("AUTHORIZATION") or ""

local rows = {}
for r in string.gmatch(rows_list, "([^,]+)") do rows[#rows + 1] = tonumber(r) end

local function features_json()
  local parts = {}
  for f in string.gmatch(features, "([^,]+)") do parts[#parts + 1] = '"' .. f .. '"' end
  return "[" .. table.concat(parts, ",") .. "]"
end
local features_sel = '"features":' .. features_json()
local service_sel = '"feature_service":"' .. fservice .. '"'

local function make_body(k)
  -- body k: rows[k % #rows] distinct random ids
  local n = rows[(k % #rows) + 1]
  if n > id_count then n = id_count end
  local seen, ids = {}, {}
  while #ids < n do
    local id = id_start + math.random(0, id_count - 1)
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = string.format("%d", id)
    end
  end
  local sel
  if fservice ~= "" and (features == "" or k % 2 == 1) then sel = service_sel else sel = features_sel end
  local body = '{"entities":{"' .. entity_key .. '":[' .. table.concat(ids, ",") .. ']},' .. sel
  if full_names then body = body .. ',"full_feature_names":true' end
  return body .. "}"
end

-- main state: remember the threads to add up their status counts in done()
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local reqs = {}
function init(args)
  local t = tid or 0
  math.randomseed(seed * 1000 + t)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if authorization ~= "" then wrk.headers["Authorization"] = authorization end
  local first
  for k = 0, nbodies - 1 do
    local body = make_body(k)
    if k == 0 then first = body end
    reqs[k + 1] = wrk.format("POST", nil, nil, body)
  end
  local dump = os.getenv("DUMP_BODY")
  if dump and t == 0 then
    local f = io.open(dump, "w")
    f:write(first)
    f:close()
  end
  c4xx, c5xx = 0, 0
end

function request()
  return reqs[math.random(1, nbodies)]
end

if count_status then
  function response(status, headers, body)
    if status >= 500 then c5xx = c5xx + 1 elseif status >= 400 then c4xx = c4xx + 1 end
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local s4, s5 = -1, -1   -- -1: not counted (COUNT_STATUS unset)
  if count_status then
    s4, s5 = 0, 0
    for _, thread in ipairs(threads) do
      s4 = s4 + (thread:get("c4xx") or 0)
      s5 = s5 + (thread:get("c5xx") or 0)
    end
  end
  local line = string.format(
    '{"label":"%s","rows":"%s","requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
    '"lat_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"non2xx":%d},' ..
    '"status":{"4xx":%d,"5xx":%d},"bytes":%d}',
    os.getenv("LABEL") or "", rows_list, summary.requests, secs, summary.requests / secs,
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
