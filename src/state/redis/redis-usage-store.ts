/**
 * The usage ledger's store in Redis (--state), shared by every instance serving one storage, so
 * that quotas hold exactly across instances. Every decision and change is one Lua script (atomic
 * on the server):
 *
 * - `<ns>repo:<key>` hashes hold each repository's numbers and its change stamp, `<ns>repos`
 *   lists them, `<ns>sums` holds the total and the per-owner bytes and repository counts, kept
 *   by the same scripts that change a repository, and `<ns>counted` holds the run id of the Redis
 *   process a complete count was made in. A Redis that restarted (empty, or from a snapshot older
 *   than the last changes) has another run id: decisions get 503 until the instance holding the
 *   usage lease has counted storage again (see UsageLedger).
 * - Reservations are per instance: `<ns>holds:<instance>` maps a hold's id to its amount and
 *   scopes and expires unless its instance renews it, so the holds of an instance that died are
 *   gone after `holdTtlMs`. Each instance also keeps its holds in memory and a heartbeat makes
 *   Redis agree (holds given back while Redis was away are dropped, holds Redis lost are put
 *   back). A reservation sums every live instance's holds for its scopes: work that grows with
 *   the uploads in flight, not with the repositories.
 *
 * Reports (metrics, the web view) read a copy of the repositories' numbers that is refreshed
 * every `refreshMs` and updated at once by this instance's own changes.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RatchetError } from '../../errors.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import { applyChange, emptyUsage, MemoryUsageStore } from '../../usage/usage-store.ts';
import type {
  Full,
  Hold,
  RepoUsage,
  Reserved,
  ScopeKey,
  UsageChange,
  UsageStore,
} from '../../usage/usage-store.ts';
import { keyPrefix, LuaScript, stateUnavailable, unavailableUnlessAnswered } from './redis-state.ts';

const defaultHoldTtlMs = 15_000;
const defaultRefreshMs = 2_000;

// Shared by the scripts: ARGV[1] is the namespace every key starts with.
const prelude = `
local P = ARGV[1]
local function num(v) return tonumber(v) or 0 end
local function owner(repo)
  local s = string.find(repo, '/', 1, true)
  if s then return string.sub(repo, 1, s - 1) end
  return repo
end
local function used(scope)
  if scope == 'total' then return num(redis.call('HGET', P .. 'sums', 'total')) end
  local c = string.find(scope, ':', 1, true)
  local kind, name = string.sub(scope, 1, c - 1), string.sub(scope, c + 1)
  if kind == 'repo' then return num(redis.call('HGET', P .. 'repo:' .. name, 'b')) end
  if kind == 'locks' then return num(redis.call('HGET', P .. 'repo:' .. name, 'locks')) end
  return num(redis.call('HGET', P .. 'sums', scope))
end
-- Live bytes go to the owner and the total, trash bytes to the total only.
local function charge(repo, bytes, trash, repos)
  local o = owner(repo)
  if bytes + trash ~= 0 then redis.call('HINCRBY', P .. 'sums', 'total', bytes + trash) end
  if bytes ~= 0 then redis.call('HINCRBY', P .. 'sums', 'user:' .. o, bytes) end
  if repos ~= 0 then
    if redis.call('HINCRBY', P .. 'sums', 'repos:' .. o, repos) <= 0 then
      redis.call('HDEL', P .. 'sums', 'repos:' .. o, 'user:' .. o)
    end
  end
end
`;

// ARGV: ns, me, nIds, ids..., then '1' repo bytes typeField objects snapshotMs trashBytes trashObjects
// (or '0': no change). Drops the holds and applies the change in one step.
const settleScript = new LuaScript(`${prelude}
local me, n = ARGV[2], tonumber(ARGV[3])
for i = 1, n do redis.call('HDEL', P .. 'holds:' .. me, ARGV[3 + i]) end
local a = 4 + n
if ARGV[a] ~= '1' then return 0 end
local repo = ARGV[a + 1]
local bytes, field, objects, snap = tonumber(ARGV[a + 2]), ARGV[a + 3], tonumber(ARGV[a + 4]), ARGV[a + 5]
local tb, to = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
local k = P .. 'repo:' .. repo
local fresh = redis.call('EXISTS', k) == 0
local e = redis.call('HMGET', k, 'b', 'tb', 'to', 'n')
local b0, tb0 = num(e[1]), num(e[2])
local b1, tb1 = math.max(0, b0 + bytes), math.max(0, tb0 + tb)
redis.call('HSET', k, 'b', b1, 'tb', tb1, 'to', math.max(0, num(e[3]) + to))
if field ~= '' then redis.call('HSET', k, field, math.max(0, num(redis.call('HGET', k, field)) + objects)) end
if snap ~= '' and (e[4] == false or tonumber(snap) > tonumber(e[4])) then redis.call('HSET', k, 'n', snap) end
redis.call('HSET', k, 'st', redis.call('INCR', P .. 'clock'))
if fresh then redis.call('SADD', P .. 'repos', repo) end
charge(repo, b1 - b0, tb1 - tb0, fresh and 1 or 0)
return 1
`);

// ARGV: ns, repo, since ('force': always), b data keys locks snapshots index n tb to. 1 when replaced.
const replaceScript = new LuaScript(`${prelude}
local repo, since = ARGV[2], ARGV[3]
local k = P .. 'repo:' .. repo
local e = redis.call('HMGET', k, 'st', 'b', 'tb')
if since ~= 'force' and num(e[1]) > tonumber(since) then return 0 end
local fresh = redis.call('EXISTS', k) == 0
local b, tb = tonumber(ARGV[4]), tonumber(ARGV[11])
charge(repo, b - num(e[2]), tb - num(e[3]), fresh and 1 or 0)
redis.call('HSET', k, 'b', b, 'data', ARGV[5], 'keys', ARGV[6], 'locks', ARGV[7], 'snapshots', ARGV[8],
  'index', ARGV[9], 'tb', tb, 'to', ARGV[12], 'st', num(e[1]))
if ARGV[10] == '' then redis.call('HDEL', k, 'n') else redis.call('HSET', k, 'n', ARGV[10]) end
if fresh then redis.call('SADD', P .. 'repos', repo) end
return 1
`);

// ARGV: ns, repo, since. 1 when forgotten (or unknown), 0 when changed since.
const forgetScript = new LuaScript(`${prelude}
local repo = ARGV[2]
local k = P .. 'repo:' .. repo
if redis.call('EXISTS', k) == 0 then return 1 end
local e = redis.call('HMGET', k, 'st', 'b', 'tb')
if num(e[1]) > tonumber(ARGV[3]) then return 0 end
redis.call('DEL', k)
redis.call('SREM', P .. 'repos', repo)
charge(repo, -num(e[2]), -num(e[3]), -1)
return 1
`);

// ARGV: ns, me, id, ttlMs, check ('1': only look), amount, n, then scope limit pairs.
// ARGV[#ARGV] is the Redis run id. {-1}: no complete count in this Redis process; {0}: room
// (held unless check); {i, left}: scope i has no room.
const reserveScript = new LuaScript(`${prelude}
if redis.call('GET', P .. 'counted') ~= ARGV[#ARGV] then return {-1} end
local me, id, ttl, check, amount, n = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7])
local wanted = {}
for i = 1, n do wanted[ARGV[6 + 2 * i]] = true end
local held = {}
for _, inst in ipairs(redis.call('SMEMBERS', P .. 'holders')) do
  local h = redis.call('HVALS', P .. 'holds:' .. inst)
  if #h == 0 then redis.call('SREM', P .. 'holders', inst) end
  for _, v in ipairs(h) do
    local size = nil
    for part in string.gmatch(v, '[^\\n]+') do
      if size == nil then size = tonumber(part)
      elseif wanted[part] then held[part] = (held[part] or 0) + size end
    end
  end
end
for i = 1, n do
  local scope, limit = ARGV[6 + 2 * i], tonumber(ARGV[7 + 2 * i])
  local taken = used(scope) + (held[scope] or 0)
  if taken + amount > limit then return {i, tostring(math.max(0, limit - taken))} end
end
if check then return {0} end
local value = ARGV[6]
for i = 1, n do value = value .. '\\n' .. ARGV[6 + 2 * i] end
redis.call('HSET', P .. 'holds:' .. me, id, value)
redis.call('PEXPIRE', P .. 'holds:' .. me, ttl)
redis.call('SADD', P .. 'holders', me)
return {0}
`);

// ARGV: ns, me, ttlMs, nKeep, ids to keep..., then id value pairs to put back.
const heartbeatScript = new LuaScript(`${prelude}
local k = P .. 'holds:' .. ARGV[2]
local n = tonumber(ARGV[4])
local keep = {}
for i = 1, n do keep[ARGV[4 + i]] = true end
for _, f in ipairs(redis.call('HKEYS', k)) do
  if not keep[f] then redis.call('HDEL', k, f) end
end
for i = 5 + n, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end
if redis.call('EXISTS', k) == 1 then
  redis.call('PEXPIRE', k, ARGV[3])
  redis.call('SADD', P .. 'holders', ARGV[2])
end
return 1
`);

const typeFields: readonly ObjectType[] = ['data', 'keys', 'locks', 'snapshots', 'index'];

export interface RedisUsageOptions {
  /** How long an instance's holds outlive its last heartbeat (default 15 s). */
  readonly holdTtlMs?: number;
  /** How often the reports' copy is read again (default 2 s). */
  readonly refreshMs?: number;
}

export class RedisUsageStore implements UsageStore {
  /** This instance, as its holds are named. */
  readonly instance = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  readonly #redis: Redis;
  readonly #ns: string;
  readonly #logger: Logger;
  readonly #holdTtlMs: number;
  readonly #refreshMs: number;
  /** Holds Redis granted, by id: the value the heartbeat puts back if Redis lost it. */
  readonly #granted = new Map<string, string>();
  /** Holds asked for and not answered yet: the heartbeat must not drop them. */
  readonly #pending = new Set<string>();
  #nextHold = 0;
  #copy = new MemoryUsageStore();
  #timers: NodeJS.Timeout[] = [];
  /** The Redis process's run id, read again after every reconnect: a restart changes it. */
  #runId: Promise<string> | undefined;
  /** The last run id seen, and when this instance first saw it. */
  #knownRunId: string | undefined;
  #runIdSeenAt = 0;
  /** A reconnect: the run id is read again, and the holds are put back at once (not in 5 s). */
  readonly #reconnected = (): void => {
    this.#runId = undefined;
    if (this.#timers.length > 0) void this.heartbeat().catch(() => undefined);
  };

  /** `namespace` names the storage served: instances of one storage share it, no others do. */
  constructor(redis: Redis, namespace: string, logger: Logger, options: RedisUsageOptions = {}) {
    this.#redis = redis;
    this.#ns = `${keyPrefix}usage:${namespace}:`;
    this.#logger = logger;
    this.#holdTtlMs = options.holdTtlMs ?? defaultHoldTtlMs;
    this.#refreshMs = options.refreshMs ?? defaultRefreshMs;
    redis.on('ready', this.#reconnected);
  }

  /** Starts the heartbeat and the reports' refresh (unref'd timers). */
  start(): void {
    const every = (ms: number, work: () => Promise<void>): void => {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        void work()
          .catch(() => undefined)
          .finally(() => (running = false));
      }, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(Math.max(100, Math.floor(this.#holdTtlMs / 3)), () => this.heartbeat());
    every(this.#refreshMs, () => this.refresh());
    void this.refresh().catch(() => undefined);
  }

  /** Stops the timers and gives back this instance's holds. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#redis.off('ready', this.#reconnected);
    this.#granted.clear();
    await this.#redis.del(`${this.#ns}holds:${this.instance}`).catch(() => undefined);
  }

  get(repo: string): RepoUsage | undefined {
    return this.#copy.get(repo);
  }

  repos(): Iterable<[string, RepoUsage]> {
    return this.#copy.repos();
  }

  used(scope: ScopeKey): number {
    return this.#copy.used(scope);
  }

  assertReachable(): void {
    if (this.#redis.status !== 'ready') throw stateUnavailable();
  }

  async counted(): Promise<boolean> {
    const [marker, runId] = await Promise.all([
      this.#call(this.#redis.get(`${this.#ns}counted`)),
      this.#redisRun(),
    ]);
    return marker === runId;
  }

  startCount(): Promise<string> {
    return this.#redisRun();
  }

  /**
   * Records the count as complete for the Redis process it was made in, and not sooner than a
   * fifth of the hold expiry after this instance first saw that process: every instance puts its
   * holds back on reconnecting, and a count recorded before they are back would let new
   * reservations ignore uploads in flight.
   */
  async markCounted(token: string): Promise<void> {
    const runId = await this.#redisRun();
    if (runId !== token) throw new Error('Redis restarted during the usage count');
    const wait = this.#runIdSeenAt + this.#holdTtlMs / 5 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if ((await this.#redisRun()) !== token) throw new Error('Redis restarted during the usage count');
    await this.#call(this.#redis.set(`${this.#ns}counted`, token));
  }

  /** The run id of the Redis process answering now (INFO server). */
  #redisRun(): Promise<string> {
    this.#runId ??= this.#call(this.#redis.info('server')).then((info) => {
      const runId = /^run_id:(\w+)/m.exec(info)?.[1];
      if (runId === undefined) throw new Error('Redis did not report its run_id');
      if (runId !== this.#knownRunId) {
        this.#knownRunId = runId;
        this.#runIdSeenAt = Date.now();
      }
      return runId;
    });
    const pending = this.#runId;
    pending.catch(() => {
      if (this.#runId === pending) this.#runId = undefined;
    });
    return pending;
  }

  async clock(): Promise<number> {
    return Number((await this.#call(this.#redis.get(`${this.#ns}clock`))) ?? 0);
  }

  async knows(repo: string): Promise<boolean> {
    return (await this.#call(this.#redis.sismember(`${this.#ns}repos`, repo))) === 1;
  }

  add(repo: string, change: UsageChange): Promise<void> {
    return this.settle([], repo, change);
  }

  async settle(ids: readonly string[], repo: string, change: UsageChange | undefined): Promise<void> {
    for (const id of ids) this.#granted.delete(id);
    const args: (string | number)[] = [this.#ns, this.instance, ids.length, ...ids];
    if (change === undefined) args.push('0');
    else {
      args.push('1', repo, change.bytes, change.type ?? '', change.objects ?? 0, change.snapshotMs ?? '');
      args.push(change.trashBytes ?? 0, change.trashObjects ?? 0);
    }
    await this.#call(settleScript.run(this.#redis, [], args));
    // This instance's reports show its own change at once.
    if (change !== undefined)
      this.#copy.replace(repo, applyChange(this.#copy.get(repo) ?? emptyUsage, change), Infinity);
  }

  async replace(repo: string, usage: RepoUsage, since: number): Promise<boolean> {
    const { objects } = usage;
    const args = [this.#ns, repo, Number.isFinite(since) ? since : 'force', usage.bytes];
    args.push(...typeFields.map((type) => objects[type]), usage.newestSnapshotMs ?? '');
    args.push(usage.trashBytes, usage.trashObjects);
    const replaced = (await this.#call(replaceScript.run(this.#redis, [], args))) === 1;
    if (replaced) this.#copy.replace(repo, usage, Infinity);
    return replaced;
  }

  async forget(repo: string, since: number): Promise<boolean> {
    const forgotten = (await this.#call(forgetScript.run(this.#redis, [], [this.#ns, repo, since]))) === 1;
    if (forgotten) this.#copy.forget(repo, Infinity);
    return forgotten;
  }

  async full(holds: readonly Hold[], amount: number): Promise<Full | undefined> {
    if (holds.length === 0) return undefined;
    return (await this.#reserve(holds, amount, undefined)).full;
  }

  async reserve(holds: readonly Hold[], amount: number): Promise<Reserved> {
    const id = String(++this.#nextHold);
    this.#pending.add(id);
    try {
      const answer = await this.#reserve(holds, amount, id);
      if (answer.full === undefined) this.#granted.set(id, [amount, ...holds.map((h) => h.scope)].join('\n'));
      return answer;
    } finally {
      this.#pending.delete(id);
    }
  }

  async release(ids: readonly string[]): Promise<void> {
    await this.settle(ids, '', undefined);
  }

  /** One reserve script run; `id` undefined only looks. */
  async #reserve(holds: readonly Hold[], amount: number, id: string | undefined): Promise<Reserved> {
    const args: (string | number)[] = [this.#ns, this.instance, id ?? '', this.#holdTtlMs];
    args.push(id === undefined ? '1' : '0', amount, holds.length);
    for (const { scope, limit } of holds) args.push(scope, limit);
    args.push(await this.#redisRun());
    const answer = (await this.#call(reserveScript.run(this.#redis, [], args))) as [number, string?];
    const [at, left] = answer;
    if (at === -1) {
      throw new RatchetError('UNAVAILABLE', 'the shared usage count is being rebuilt; try again shortly', {
        headers: { 'Retry-After': '5' },
      });
    }
    const scope = holds[at - 1]?.scope;
    if (at === 0 || scope === undefined) return { id: id ?? '' };
    return { full: { scope, left: Number(left) } };
  }

  /** Makes Redis hold exactly this instance's holds, and keeps them from expiring. */
  async heartbeat(): Promise<void> {
    const keep = [...this.#granted.keys(), ...this.#pending];
    const args: (string | number)[] = [this.#ns, this.instance, this.#holdTtlMs, keep.length, ...keep];
    for (const [id, value] of this.#granted) args.push(id, value);
    await heartbeatScript.run(this.#redis, [], args);
  }

  /** Reads every repository's numbers for the reports. */
  async refresh(): Promise<void> {
    const keys = await this.#redis.smembers(`${this.#ns}repos`);
    const read = this.#redis.pipeline();
    for (const key of keys) read.hgetall(`${this.#ns}repo:${key}`);
    const answers = (await read.exec()) ?? [];
    const copy = new MemoryUsageStore();
    keys.forEach((key, at) => {
      const [err, fields] = answers[at] ?? [];
      if (err === null && fields !== undefined)
        copy.replace(key, usageOf(fields as Record<string, string>), Infinity);
    });
    this.#copy = copy;
  }

  /** The command's answer, or UNAVAILABLE (503) when Redis does not give one. */
  #call<T>(pending: Promise<T>): Promise<T> {
    return unavailableUnlessAnswered(pending).catch((err: unknown) => {
      this.#logger.debug({ err }, 'shared usage store: no answer');
      throw err;
    });
  }
}

/** A repository's numbers from its hash. */
function usageOf(fields: Record<string, string>): RepoUsage {
  const n = (name: string): number => Number(fields[name] ?? 0);
  return {
    bytes: n('b'),
    objects: {
      data: n('data'),
      keys: n('keys'),
      locks: n('locks'),
      snapshots: n('snapshots'),
      index: n('index'),
    },
    newestSnapshotMs: fields.n === undefined ? undefined : Number(fields.n),
    trashBytes: n('tb'),
    trashObjects: n('to'),
  };
}
