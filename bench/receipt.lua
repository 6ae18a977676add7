-- wrk script: fresh receipts, as a real producer sends them (a repeated key would be answered from
-- the idempotency record instead). Arguments: API key, run id, items per request:
--   0 (default): POST /api/v1/receipt, a fresh Idempotency-Key and reference per request;
--   N: POST /api/v1/receipts/batch with N receipts, each with its own idempotency_key and
--      reference, and a fresh Idempotency-Key for the request.
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  api_key = args[1] or "none"
  run_id = args[2] or "run"
  items = tonumber(args[3] or "0")
end

local function receipt(key)
  return string.format('"reference":"inv_%s","event_type":"invoice.paid","effect_type":"grant_access"', key)
end

local function post(path, key, body)
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. api_key,
    ["Idempotency-Key"] = key,
    ["Content-Type"] = "application/json",
  }, body)
end

function request()
  counter = counter + 1
  local key = string.format("%s-%d-%d", run_id, id, counter)
  if items == 0 then
    return post("/api/v1/receipt", key, "{" .. receipt(key) .. "}")
  end
  local parts = {}
  for i = 1, items do
    local item_key = key .. "-" .. i
    parts[i] = string.format('{"idempotency_key":"%s",%s}', item_key, receipt(item_key))
  end
  return post("/api/v1/receipts/batch", "batch-" .. key, '{"items":[' .. table.concat(parts, ",") .. "]}")
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format('{"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
