-- wrk script: each thread owns ONE connection and replays its own list of pre-signed requests,
-- in order, one at a time (wrk waits for a response before the next request on a connection),
-- so a phone's taps reach the bot in the order the customer made them. The thread stops after
-- the response to its last request. Run as: wrk -t N -c N -s replay.lua URL -- <dir>
-- where <dir>/thread-<k>.req holds "<byte length>\n<raw HTTP request>" records.
-- wrk itself runs for its whole -d: each thread touches <dir>/start-<k> when it is ready and
-- <dir>/done-<k> after its last response; bench/run.py times the run from those files' mtimes
-- and stops wrk with SIGINT once every thread is done.

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests = {}
local directory
local sent, answered, failed = 0, 0, 0

local function touch(name)
  local marker = assert(io.open(directory .. "/" .. name .. "-" .. id, "w"))
  marker:close()
end

function init(args)
  directory = args[1]
  local file = assert(io.open(directory .. "/thread-" .. id .. ".req", "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while pos <= #data do
    local newline = data:find("\n", pos, true)
    local length = tonumber(data:sub(pos, newline - 1))
    requests[#requests + 1] = data:sub(newline + 1, newline + length)
    pos = newline + 1 + length
  end
  touch("start")
end

-- wrk calls request() once on thread 0's state to check the script; that call must not use up a tap
local checking = nil

function request()
  if checking == nil then checking = (id == 0) end
  if checking then
    checking = false
    return requests[1]
  end
  sent = sent + 1
  if sent > #requests then
    -- only reachable between the last response and the thread stopping: a request that changes nothing
    return wrk.format("GET", "/healthz")
  end
  return requests[sent]
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then failed = failed + 1 end
  if answered == #requests then
    touch("done")
    wrk.thread:stop()
  end
end

function done(summary, latency, requests_summary)
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%d errors=%d status_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.errors.timeout))
end
