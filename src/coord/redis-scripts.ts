/**
 * The Lua scripts: each runs atomically on the node that holds its keys (one stream's keys share a slot).
 * A lease's value is "<epoch>:<nodeId>"; renew, release and setLiveStatus compare it whole. Writes of the live
 * window are fenced: refused (0) when the writer's epoch is below the stream's current epoch.
 */
import { createHash } from 'node:crypto';

export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function script(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Redis's clock in ms and in µs (scripts replicate their effects, so TIME is allowed). */
const NOW = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`;

/** The current fencing epoch of a stream, 0 when it has none. */
const CURRENT = `
local function current_epoch(key)
  return tonumber(redis.call('GET', key) or '0')
end
`;

/**
 * KEYS: lease, epoch. ARGV: nodeId, ttlMs, takeover ('1' or '0'), epochTtlMs.
 * Fails (nil) while another node holds the lease, unless takeover. Else INCRs the epoch (a stream without
 * one starts from Redis's clock in µs, about 1.8e15, exact in a double and a JS number: epochs never go back
 * even after the key expired or was deleted, as long as a stream is not acquired more than once a µs)
 * and sets the lease, PX ttlMs: SET NX PX and the INCR in one step, so a failed attempt never moves the
 * epoch (which would fence the real owner).
 */
export const ACQUIRE = script(
  'acquire',
  `${NOW}
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[3] ~= '1' then
  local sep = string.find(cur, ':', 1, true)
  if string.sub(cur, sep + 1) ~= ARGV[1] then return false end
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], string.format('%.0f', now_us()))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], string.format('%.0f', epoch) .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
`,
);

/** KEYS: lease, epoch. ARGV: lease value, ttlMs, epochTtlMs. 1 when extended, 0 when the lease was lost. */
export const RENEW = script(
  'renew',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`,
);

/** KEYS: lease. ARGV: lease value. Deletes the lease only if it is still this one. */
export const RELEASE = script(
  'release',
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`,
);

/**
 * KEYS: epoch, target, index. ARGV: epoch, ttlMs, value, then optionally publish command ('SPUBLISH' or
 * 'PUBLISH'), channel, message. The fenced write of putFile, putState and putStream: 0 when ARGV epoch is
 * below the stream's; else SET target PX, record it in the index (pruning expired entries, the index itself
 * expiring with its longest-lived entry) and, for putState, announce on the stream's channel.
 */
export const FENCED_SET = script(
  'fenced_set',
  `${NOW}${CURRENT}
if tonumber(ARGV[1]) < current_epoch(KEYS[1]) then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[3], string.format('%.0f', now + ttl), KEYS[2])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
if ARGV[4] then redis.call(ARGV[4], ARGV[5], ARGV[6]) end
return 1
`,
);

/** KEYS: lease, status. ARGV: lease value, ttlMs, status JSON. Only the lease holder's status is written. */
export const SET_STATUS = script(
  'set_status',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return 1
`,
);

/** KEYS: epoch, status. ARGV: epoch. Clears unless a newer epoch owns the stream (works after release). */
export const CLEAR_STATUS = script(
  'clear_status',
  `${CURRENT}
if tonumber(ARGV[1]) < current_epoch(KEYS[1]) then return 0 end
redis.call('DEL', KEYS[2])
return 1
`,
);

/**
 * KEYS: lease, epoch, status, doc, index. Deletes every key of the stream (the indexed doc, state and file
 * keys too, which share the slot) unless a node holds its lease again (0: a publisher came back, the window
 * is its run's).
 */
export const DELETE_STREAM = script(
  'delete_stream',
  `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local members = redis.call('ZRANGE', KEYS[5], 0, -1)
for i = 1, #members do redis.call('DEL', members[i]) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
`,
);

/** KEYS: info, seen. ARGV: nodeId, NodeInfo JSON, ttlMs. A heartbeat; drops nodes whose heartbeats stopped. */
export const HEARTBEAT = script(
  'heartbeat',
  `${NOW}
local now = now_ms()
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
for i = 1, #gone do redis.call('HDEL', KEYS[1], gone[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
return 1
`,
);

/** KEYS: info, seen. The NodeInfo JSON of every node whose heartbeat has not expired. */
export const LIST_NODES = script(
  'list_nodes',
  `${NOW}
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%.0f', now_ms()), '+inf')
if #live == 0 then return {} end
local out = {}
for i = 1, #live do
  local v = redis.call('HGET', KEYS[1], live[i])
  if v then out[#out + 1] = v end
end
return out
`,
);

/** KEYS: info, seen. ARGV: nodeId. A node leaving (close()). */
export const NODE_GONE = script(
  'node_gone',
  `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`,
);
