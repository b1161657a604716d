/**
 * GET /healthz and GET /readyz: what the node is (its roles) and whether the services it depends on answer.
 *
 * /healthz answers 200 as long as the process serves, with `status: 'degraded'` when a dependency is down:
 * a load balancer that took every node out during an outage of Redis or PostgreSQL (shared by every node,
 * so every node would report it) would turn a partial outage into a whole one, while an ingesting node
 * still serves its own streams. /readyz answers 503 then, for start-up gating and for operators who do
 * want such a node out of the rotation.
 */
import type { FastifyInstance } from 'fastify';

/** A service reached over the network (or in process): whether it answers now. */
export interface DependencyProbe {
  /** `timeoutMs`: how long the caller waits; a probe that can gives its request up then (S3). */
  ping(timeoutMs?: number): Promise<boolean>;
}

export type DependencyState = 'ok' | 'down' | 'in-process';

/** A type, not an interface, so that it reads as a record of states (what /metrics takes). */
export type DependencyStates = {
  readonly catalog: 'ok' | 'down';
  /** 'in-process' without REDIS_URL: there is no Redis to reach. */
  readonly redis: DependencyState;
  /** The live ladders' FFmpeg ('down' while its last start failed); absent on a node without ingest. */
  readonly ffmpeg?: 'ok' | 'down';
  /** Media storage: S3 answers a HeadBucket, or the media folder is writable; absent without a probe. */
  readonly storage?: 'ok' | 'down';
};

export interface HealthDeps {
  readonly roles: readonly string[];
  /** 'pglite' or 'postgres'. */
  readonly catalogKind: string;
  /** Streams with a publisher on this node. */
  liveStreams(): number;
  readonly probes: {
    readonly catalog: DependencyProbe;
    readonly redis?: DependencyProbe;
    readonly ffmpeg?: DependencyProbe;
    readonly storage?: DependencyProbe;
  };
}

/** Longest a probe may take before its dependency counts as down (a hung connection answers nothing). */
export const PROBE_TIMEOUT_MS = 1000;

async function probe(p: DependencyProbe, timeoutMs: number): Promise<'ok' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return (await Promise.race([p.ping(timeoutMs).catch(() => false), late])) ? 'ok' : 'down';
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Probes every dependency, each bounded by `timeoutMs`; calls while a probe is in flight share it, so a
 * load balancer and a scraper polling at once cost one PING and one query.
 */
export function dependencyProber(probes: HealthDeps['probes'], timeoutMs = PROBE_TIMEOUT_MS): () => Promise<DependencyStates> {
  let inFlight: Promise<DependencyStates> | undefined;
  const run = async (): Promise<DependencyStates> => {
    // Storage's probe is one bounded request (S3 HeadBucket, given up with the probe) or an access(2).
    const storage = probes.storage && probe(probes.storage, timeoutMs);
    const [catalog, redis] = await Promise.all([
      probe(probes.catalog, timeoutMs),
      probes.redis ? probe(probes.redis, timeoutMs) : Promise.resolve('in-process' as const),
    ]);
    // FFmpeg's probe reads what the last spawn did (no process per probe).
    const states: DependencyStates = probes.ffmpeg ? { catalog, redis, ffmpeg: await probe(probes.ffmpeg, timeoutMs) } : { catalog, redis };
    return storage ? { ...states, storage: await storage } : states;
  };
  return () => (inFlight ??= run().finally(() => (inFlight = undefined)));
}

export function registerHealthRoutes(app: FastifyInstance, deps: HealthDeps, states: () => Promise<DependencyStates>): void {
  const summary = async () => {
    const dependencies = await states();
    const down = Object.values(dependencies).includes('down');
    return {
      status: down ? 'degraded' : 'ok',
      roles: deps.roles,
      liveStreams: deps.liveStreams(),
      catalog: deps.catalogKind,
      dependencies,
    };
  };
  app.get(
    '/healthz',
    {
      schema: { summary: "Liveness, the node's roles and its dependencies (200 while the process serves)", tags: ['health'] },
      logLevel: 'warn',
    },
    summary,
  );
  app.get(
    '/readyz',
    { schema: { summary: 'Readiness: 503 while a dependency of the node is down', tags: ['health'] }, logLevel: 'warn' },
    async (_req, reply) => {
      const body = await summary();
      return reply.code(body.status === 'ok' ? 200 : 503).send(body);
    },
  );
}
