-- wrk script: POST /api/v1/receipt with a fresh Idempotency-Key and reference per request, as a
-- real producer would (a repeated key would be answered from the idempotency record instead).
-- Arguments: API key, run id.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  api_key = args[1] or "none"
  run_id = args[2] or "run"
end

function request()
  counter = counter + 1
  local key = string.format("%s-%d-%d", run_id, id, counter)
  local body = string.format(
    '{"reference":"inv_%s","event_type":"invoice.paid","effect_type":"grant_access"}', key)
  return wrk.format("POST", "/api/v1/receipt", {
    ["Authorization"] = "Bearer " .. api_key,
    ["Idempotency-Key"] = key,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format('{"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
