-- One tap, applied atomically: everything it causes or nothing at all.
-- KEYS[1] message record, [2] session, [3] profile, [4] outbox stream, [5] outbox doorbell,
-- [6] 24-hour window stamp, then the keys the operations and adoptions name (by index).
-- ARGV[1] the plan (JSON), ARGV[2..] the session's field/value pairs.
-- Order: a message already answered returns its first reply; a session changed since it was
-- loaded returns 'conflict'; an operation whose outcome is not the one the reply announces
-- returns 'refused' (the tap is run again on the new state); else everything is written.
local plan = cjson.decode(ARGV[1])
local prior = redis.call('GET', KEYS[1])
if prior then return {'duplicate', prior} end
local state = redis.call('HMGET', KEYS[2], 'rev', 'seen')
if string.find(' ' .. (state[2] or '') .. ' ', ' ' .. plan.id .. ' ', 1, true) then
  return {'duplicate', ''}
end
if (state[1] or '') ~= plan.rev then return {'conflict', state[1] or ''} end
local ok, results = run_ops(plan.ops, plan.adopt)
if not ok then return results end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[2], plan.session_ttl)
redis.call('SET', KEYS[1], plan.reply, 'PX', plan.dedupe_ttl)
if plan.language ~= '' then
  redis.call('HSET', KEYS[3], 'language', plan.language)
  redis.call('PEXPIRE', KEYS[3], plan.profile_ttl)
end
if plan.outbound ~= '' then
  redis.call('XADD', KEYS[4], '*', 'm', plan.outbound)
  redis.call('ZADD', KEYS[5], 'NX', plan.now_ms, plan.phone)
end
if plan.window_ms > 0 then redis.call('SET', KEYS[6], plan.window_ms, 'PX', plan.window_ttl) end
return {'ok', purged, unpack(results)}
