-- One tap, applied atomically: everything it causes or nothing at all.
-- KEYS[1] message record, [2] session, [3] profile, [4] outbox stream (a preview phone's stream for
-- the /try page's phones: no doorbell then), [5] outbox doorbell,
-- [6] 24-hour window stamp, [7] the customer's answered messages, [8] the business's opt-outs, then
-- the keys the operations and adoptions name (by index).
-- ARGV[1] the plan (JSON), ARGV[2..] the session's field/value pairs.
-- Order: a message already answered returns its first reply; a session changed since it was
-- loaded returns 'conflict'; an operation whose outcome is not the one the reply announces
-- returns 'refused' (the tap is run again on the new state); else everything is written.
local plan = cjson.decode(ARGV[1])
local prior = redis.call('GET', KEYS[1])
if prior then return {'duplicate', prior} end
if redis.call('ZSCORE', KEYS[7], plan.id) then return {'duplicate', ''} end
local rev = redis.call('HGET', KEYS[2], 'rev') or ''
if rev ~= plan.rev then return {'conflict', rev} end
-- the outbox's times are the server's own (one clock for every host), or the app's in tests
local outbox_now, window_ms = plan.now_ms, plan.window_ms
if plan.redis_time then
  local t = redis.call('TIME')
  outbox_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if window_ms > 0 then window_ms = outbox_now end
end
-- the reply and the notices first: a refused XADD then leaves nothing of the tap written
local function outbound()
  if plan.outbound ~= '' and plan.preview then  -- /try's phone: for the page to read, never sent
    redis.call('XADD', KEYS[4], '*', 'm', plan.outbound)
    redis.call('PEXPIRE', KEYS[4], plan.preview_ttl)
  elseif plan.outbound ~= '' then
    redis.call('XADD', KEYS[4], '*', 'm', plan.outbound)
    redis.call('ZADD', KEYS[5], 'NX', outbox_now, plan.phone)
    if plan.bell ~= '' then redis.call('PUBLISH', plan.bell, plan.business) end
  end
  queue_notices(plan.notices, 5, outbox_now, plan.bell, plan.business)
end
local ok, results = run_ops(plan.ops, plan.adopt, outbound)
if not ok then return results end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[2], plan.session_ttl)
redis.call('SET', KEYS[1], plan.reply, 'PX', plan.dedupe_ttl)
if plan.language ~= '' then
  redis.call('HSET', KEYS[3], 'language', plan.language)
  redis.call('PEXPIRE', KEYS[3], plan.profile_ttl)
end
-- STOP / START: kept without expiry (the customer's choice outlives any conversation)
if plan.consent == 'out' then
  redis.call('HSET', KEYS[8], plan.phone, plan.now_s)
elseif plan.consent == 'in' then
  redis.call('HDEL', KEYS[8], plan.phone)
end
if window_ms > 0 then redis.call('SET', KEYS[6], window_ms, 'PX', plan.window_ttl) end
-- remember the message: all of the last hours, and the last few whatever their age
redis.call('ZADD', KEYS[7], plan.now_s, plan.id)
local count = redis.call('ZCARD', KEYS[7])
if count > plan.answered_keep then
  local edge = redis.call('ZRANGE', KEYS[7], count - plan.answered_keep - 1, count - plan.answered_keep - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', math.min(tonumber(edge[2]), plan.answered_since - 1))
end
redis.call('PEXPIRE', KEYS[7], plan.answered_ttl)
return {'ok', purged, unpack(results)}
