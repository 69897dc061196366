-- Booking writes outside a conversation (the owner's cancel, tests of the rules): the operations in
-- ARGV[1] (JSON: ops, adopt, notices to queue with them (see queue_notices), due: the doorbell's index),
-- their keys by index. Returns {'ok', purged, value…} when every one had
-- its expected outcome (and all were applied), else {'refused', index, status, value, purged}.
local plan = cjson.decode(ARGV[1])
local function notices()
  queue_notices(plan.notices, plan.due, tonumber(plan.now) or redis_ms(), plan.bell or '', plan.business or '')
end
local ok, results = run_ops(plan.ops, plan.adopt, notices)
if not ok then return results end
return {'ok', purged, unpack(results)}
