import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, SETTINGS } from '../../src/config/index.js';
import { AppError } from '../../src/core/index.js';

const dir = mkdtempSync(join(tmpdir(), 'livepack-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** The AppError loadConfig throws for `env` (fails the test if it does not throw one). */
function configError(env: Record<string, string | undefined>): AppError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('E_CONFIG_INVALID');
    return err as AppError;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      server: {
        host: '0.0.0.0',
        httpPort: 8080,
        dataDir: './data',
        apiToken: undefined,
        publicBaseUrl: 'http://localhost:8080',
        publicRtmpUrl: 'rtmp://localhost:1935/live',
        logLevel: 'info',
        logFormat: 'auto',
        createDefaultStream: true,
      },
      rtmp: {
        host: '0.0.0.0',
        port: 1935,
        tls: undefined,
        limits: {
          maxConnections: 500,
          handshakeTimeoutMs: 10_000,
          idleTimeoutMs: 30_000,
          maxChunkSize: 65_536,
          maxMessageSize: 8_388_608,
          mediaTimeoutMs: 10_000,
        },
      },
      hls: {
        partTargetMs: 200,
        partHoldBackParts: 3,
        segmentTargetMs: 2000,
        windowSeconds: 24,
        holdMs: 6000,
        endedRetentionMs: 60_000,
        maxHeldRequests: 5000,
      },
      stream: { graceMs: 30_000, unpublishGraceMs: 0, readerQueueFrames: 600 },
      catalog: { databaseUrl: undefined, dataDir: './data' },
      transcode: {
        ffmpegPath: undefined,
        x264Preset: 'veryfast',
        maxStreams: 8,
        readyTimeoutMs: 10_000,
        minSpeed: 0.9,
        slowForMs: 5000,
        restoreAfterMs: 60_000,
        vaapiDevice: '/dev/dri/renderD128',
      },
      storage: { dataDir: './data', s3: undefined, shared: false },
      vod: {
        dataDir: './data',
        uploadMaxBytes: 10 * 1024 ** 3,
        workers: 1,
        jobAttempts: 3,
        jobLeaseMs: 30_000,
        playbackTokenSecret: undefined,
        playbackTokenTtlSeconds: 3600,
        recordingStoreRetryMs: 300_000,
      },
      webrtc: {
        enabled: true,
        bindAddress: undefined,
        portMin: 20000,
        portMax: 20999,
        publicAddress: undefined,
        iceServers: [],
        maxSessions: 100,
        offersPerKeyPerMinute: 30,
        jitterBufferMs: 150,
        maxBitrateKbps: 8000,
      },
      node: { roles: ['ingest', 'origin', 'worker'], id: undefined },
      coord: { redisUrl: undefined, prefix: 'livepack:' },
      http: { maxConnections: 10000, headersTimeoutMs: 10000, trustProxy: undefined, metricsToken: undefined },
      auth: { failureLimit: 10, failureWindowMs: 60000 },
    });
  });

  it('refuses a short playback token secret', () => {
    expect(() => loadConfig({ PLAYBACK_TOKEN_SECRET: 'too-short' })).toThrow(/PLAYBACK_TOKEN_SECRET must be at least 32 characters/);
    expect(loadConfig({ PLAYBACK_TOKEN_SECRET: 's'.repeat(32) }).vod.playbackTokenSecret).toBe('s'.repeat(32));
  });

  it('reads S3 storage settings and refuses ones that cannot work', () => {
    expect(loadConfig({ S3_BUCKET: 'media-1', S3_ENDPOINT: 'http://minio:9000', S3_FORCE_PATH_STYLE: 'true' }).storage.s3).toEqual({
      bucket: 'media-1',
      endpoint: 'http://minio:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      requestTimeoutMs: 10_000,
    });
    expect(() => loadConfig({ S3_BUCKET: 'Bad_Bucket' })).toThrow(/S3_BUCKET="Bad_Bucket" is not a bucket name/);
    expect(() => loadConfig({ S3_ENDPOINT: 'http://minio:9000' })).toThrow(/S3_ENDPOINT is set but S3_BUCKET is not/);
    expect(() => loadConfig({ S3_BUCKET: 'b-1', S3_ENDPOINT: 'minio:9000' })).toThrow(
      /S3_ENDPOINT="minio:9000" must be a URL starting with http/,
    );
  });

  it('refuses an unknown x264 preset, naming the setting', () => {
    expect(() => loadConfig({ TRANSCODE_X264_PRESET: 'turbo' })).toThrow(/TRANSCODE_X264_PRESET="turbo" must be one of ultrafast/);
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ HTTP_PORT: '', CREATE_DEFAULT_STREAM: '', HOST: '' })).toEqual(loadConfig({}));
  });

  it('reads every kind of setting from the environment', () => {
    const c = loadConfig({
      HOST: '127.0.0.1',
      HTTP_PORT: '9000',
      RTMP_PORT: '1940',
      RTMPS_PORT: '1941',
      RTMPS_CERT: '/etc/tls/cert.pem',
      RTMPS_KEY: '/etc/tls/key.pem',
      DATA_DIR: '/var/lib/livepack',
      API_TOKEN: '0123456789abcdef',
      PUBLIC_BASE_URL: 'https://cdn.example.com/',
      PUBLIC_RTMP_URL: 'rtmp://ingest.example.com/live//',
      DATABASE_URL: 'postgres://u:p@db:5432/live',
      CREATE_DEFAULT_STREAM: 'no',
      HLS_PART_TARGET_MS: '250',
      RECONNECT_GRACE_MS: '0',
    });
    expect(c.server).toEqual({
      host: '127.0.0.1',
      httpPort: 9000,
      dataDir: '/var/lib/livepack',
      apiToken: '0123456789abcdef',
      publicBaseUrl: 'https://cdn.example.com',
      publicRtmpUrl: 'rtmp://ingest.example.com/live',
      logLevel: 'info',
      logFormat: 'auto',
      createDefaultStream: false,
    });
    expect(c.rtmp.port).toBe(1940);
    expect(c.rtmp.tls).toEqual({ port: 1941, certFile: '/etc/tls/cert.pem', keyFile: '/etc/tls/key.pem' });
    expect(c.hls.partTargetMs).toBe(250);
    expect(c.stream.graceMs).toBe(0);
    expect(c.catalog).toEqual({ databaseUrl: 'postgres://u:p@db:5432/live', dataDir: '/var/lib/livepack' });
  });

  it.each([
    ['true', true],
    ['YES', true],
    ['1', true],
    ['on', true],
    ['false', false],
    ['No', false],
    ['0', false],
    ['off', false],
  ])('reads the boolean %s', (raw, value) => {
    expect(loadConfig({ CREATE_DEFAULT_STREAM: raw }).server.createDefaultStream).toBe(value);
  });

  it.each([
    [{ HTTP_PORT: 'abc' }, 'HTTP_PORT="abc" is not a whole number'],
    [{ HTTP_PORT: '80.5' }, 'HTTP_PORT="80.5" is not a whole number'],
    [{ RTMP_PORT: '1e3' }, 'RTMP_PORT="1e3" is not a whole number'],
    [{ HTTP_PORT: '70000' }, 'HTTP_PORT=70000 is out of range (0 to 65535)'],
    [{ READER_QUEUE_FRAMES: '15' }, 'READER_QUEUE_FRAMES=15 is out of range (16 to 100000)'],
    [{ HLS_PART_TARGET_MS: '-200' }, 'HLS_PART_TARGET_MS=-200 is out of range (50 to 2000)'],
    [{ CREATE_DEFAULT_STREAM: 'maybe' }, 'CREATE_DEFAULT_STREAM="maybe" is not a boolean (use true or false)'],
    [{ RTMPS_CERT: '/etc/tls/cert.pem' }, 'RTMPS_CERT and RTMPS_KEY must be set together'],
    [{ RTMPS_KEY: '/etc/tls/key.pem' }, 'RTMPS_CERT and RTMPS_KEY must be set together'],
    [{ API_TOKEN: 'short-token' }, 'API_TOKEN must be at least 16 characters'],
    [{ PUBLIC_BASE_URL: 'not a url' }, 'PUBLIC_BASE_URL="not a url" is not a URL'],
    [{ PUBLIC_RTMP_URL: '//host/live' }, 'PUBLIC_RTMP_URL="//host/live" is not a URL'],
    [{ DATABASE_URL: 'postgres://u:p@db:port/x' }, 'DATABASE_URL="postgres://u:p@db:port/x" is not a URL'],
    // A URL, but not one a viewer or a broadcaster can use: "localhost:" is taken for the scheme.
    [{ PUBLIC_BASE_URL: 'localhost:8080' }, 'PUBLIC_BASE_URL="localhost:8080" must start with http:// or https://'],
    [
      { PUBLIC_RTMP_URL: 'http://ingest.example.com/live' },
      'PUBLIC_RTMP_URL="http://ingest.example.com/live" must start with rtmp:// or rtmps://',
    ],
    [{ HLS_PART_TARGET_MS: '1500', HLS_SEGMENT_TARGET_MS: '2000' }, 'HLS_SEGMENT_TARGET_MS must be at least twice HLS_PART_TARGET_MS'],
  ])('refuses %o naming the setting', (env, message) => {
    expect(configError(env).message).toBe(message);
  });

  it('refuses an unknown LOG_FORMAT or LOG_LEVEL, naming the setting', () => {
    expect(configError({ LOG_FORMAT: 'xml' }).message).toContain('LOG_FORMAT');
    expect(configError({ LOG_LEVEL: 'loud' }).message).toContain('LOG_LEVEL');
    expect(loadConfig({ LOG_FORMAT: 'json', LOG_LEVEL: 'debug' }).server).toMatchObject({ logFormat: 'json', logLevel: 'debug' });
  });

  it('accepts the limits of a range', () => {
    expect(loadConfig({ HTTP_PORT: '0', READER_QUEUE_FRAMES: '16' }).server.httpPort).toBe(0);
    expect(loadConfig({ HTTP_PORT: '65535' }).server.httpPort).toBe(65535);
  });

  it('reads CONFIG_FILE and lets the environment override it', () => {
    const path = configFile({ HTTP_PORT: 9000, LOG_LEVEL: 'debug', CREATE_DEFAULT_STREAM: false, HOST: '127.0.0.1', API_TOKEN: null });
    const fromFile = loadConfig({ CONFIG_FILE: path });
    expect(fromFile.server).toMatchObject({
      httpPort: 9000,
      logLevel: 'debug',
      createDefaultStream: false,
      host: '127.0.0.1',
      apiToken: undefined,
    });
    expect(fromFile.server.publicBaseUrl).toBe('http://localhost:9000');
    const overridden = loadConfig({ CONFIG_FILE: path, HTTP_PORT: '9100', LOG_LEVEL: 'warn' });
    expect(overridden.server).toMatchObject({ httpPort: 9100, logLevel: 'warn', createDefaultStream: false, host: '127.0.0.1' });
  });

  it('lets an empty environment variable fall back to CONFIG_FILE, as if it were unset', () => {
    const path = configFile({ HTTP_PORT: 9000 });
    expect(loadConfig({ CONFIG_FILE: path, HTTP_PORT: '' }).server.httpPort).toBe(9000);
  });

  it('validates values from CONFIG_FILE like the environment', () => {
    expect(configError({ CONFIG_FILE: configFile({ HTTP_PORT: 'eighty' }) }).message).toBe('HTTP_PORT="eighty" is not a whole number');
  });

  it('refuses an unknown key in CONFIG_FILE', () => {
    const path = configFile({ HTTP_PORT: 9000, HTTP_PROT: 9001 });
    expect(configError({ CONFIG_FILE: path }).message).toBe('CONFIG_FILE has an unknown setting HTTP_PROT');
  });

  it('refuses a CONFIG_FILE that is missing, not JSON or not an object', () => {
    const missing = join(dir, 'missing.json');
    const e = configError({ CONFIG_FILE: missing });
    expect(e.message).toBe(`CONFIG_FILE ${missing} is not readable JSON`);
    expect(e.cause).toBeInstanceOf(Error);
    const bad = configFile('{ "HTTP_PORT": 80,');
    expect(configError({ CONFIG_FILE: bad }).message).toBe(`CONFIG_FILE ${bad} is not readable JSON`);
    const list = configFile([1, 2]);
    expect(configError({ CONFIG_FILE: list }).message).toBe(`CONFIG_FILE ${list} must hold a JSON object`);
  });

  it('returns a deeply frozen object', () => {
    const c = loadConfig({ RTMPS_CERT: 'c.pem', RTMPS_KEY: 'k.pem' });
    for (const o of [c, c.server, c.rtmp, c.rtmp.limits, c.rtmp.tls, c.hls, c.stream, c.catalog]) expect(Object.isFrozen(o)).toBe(true);
    expect(() => {
      (c.server as { httpPort: number }).httpPort = 1;
    }).toThrow(TypeError);
    expect(c.server.httpPort).toBe(8080);
  });

  it('documents every setting', () => {
    const names = SETTINGS.map((s) => s.env);
    expect(new Set(names).size).toBe(names.length);
    for (const s of SETTINGS) expect(s.doc.length).toBeGreaterThan(10);
  });
});

describe('loadConfig: node roles and coordination', () => {
  it.each([
    ['origin', ['origin']],
    ['ingest', ['ingest']],
    ['worker,ingest', ['ingest', 'worker']],
    [' origin , worker ', ['origin', 'worker']],
    ['origin,origin', ['origin']],
  ])('reads NODE_ROLES=%s', (raw, roles) => {
    expect(loadConfig({ NODE_ROLES: raw }).node.roles).toEqual(roles);
  });

  it.each([
    [{ NODE_ROLES: 'edge' }, 'NODE_ROLES: "edge" is not a role (use ingest, origin, worker)'],
    [{ NODE_ROLES: 'origin,Ingest' }, 'NODE_ROLES: "Ingest" is not a role (use ingest, origin, worker)'],
    [{ NODE_ROLES: 'origin,,worker' }, 'NODE_ROLES="origin,,worker" has an empty role (a stray comma)'],
    [{ NODE_ROLES: 'origin,' }, 'NODE_ROLES="origin," has an empty role (a stray comma)'],
    [{ NODE_ROLES: ' , ' }, 'NODE_ROLES=" , " names no role (use ingest, origin, worker or several, comma-separated)'],
    [{ NODE_ID: 'node 1' }, 'NODE_ID="node 1" must be 1 to 64 letters, digits, dots, hyphens or underscores'],
    // Without the value: it may carry a password.
    [
      { REDIS_URL: 'localhost:6379' },
      'REDIS_URL must look like redis://host:6379, rediss://host:6380 (TLS) or redis+cluster://host1:6379,host2:6379 (Redis Cluster)',
    ],
    [
      { REDIS_URL: 'http://:secret@redis:6379' },
      'REDIS_URL must look like redis://host:6379, rediss://host:6380 (TLS) or redis+cluster://host1:6379,host2:6379 (Redis Cluster)',
    ],
    [
      { REDIS_URL: 'not a url' },
      'REDIS_URL must look like redis://host:6379, rediss://host:6380 (TLS) or redis+cluster://host1:6379,host2:6379 (Redis Cluster)',
    ],
    [
      { REDIS_PREFIX: '{live}:' },
      'REDIS_PREFIX="{live}:" must be 1 to 64 characters without spaces or braces (braces would put every key in the prefix\'s hash slot)',
    ],
    [{ STORAGE_SHARED: 'perhaps' }, 'STORAGE_SHARED="perhaps" is not a boolean (use true or false)'],
  ])('refuses %o naming the setting', (env, message) => {
    expect(configError(env).message).toBe(message);
  });

  it.each([
    'redis://127.0.0.1:6379',
    'redis://:secret@redis:6379/2',
    'rediss://user:secret@redis.internal:6380',
    'redis+cluster://10.0.0.1:7000,10.0.0.2:7000',
    'redis://10.0.0.1:7000,10.0.0.2:7000',
  ])('accepts REDIS_URL=%s', (url) => {
    expect(loadConfig({ REDIS_URL: url, STORAGE_SHARED: 'true' }).coord.redisUrl).toBe(url);
  });

  it('reads the node id, Redis and its prefix', () => {
    const c = loadConfig({
      NODE_ID: 'ingest-a.1',
      REDIS_URL: 'rediss://:secret@redis.internal:6380/2',
      REDIS_PREFIX: 'live-eu:',
      STORAGE_SHARED: 'true',
    });
    expect(c.node).toEqual({ roles: ['ingest', 'origin', 'worker'], id: 'ingest-a.1' });
    expect(c.coord).toEqual({ redisUrl: 'rediss://:secret@redis.internal:6380/2', prefix: 'live-eu:' });
    expect(c.storage.shared).toBe(true);
  });

  describe('shared storage guard', () => {
    it('refuses several nodes (REDIS_URL) on node-local files, saying why and what to do', () => {
      const message = configError({ REDIS_URL: 'redis://127.0.0.1:6379' }).message;
      expect(message).toBe(
        'REDIS_URL is set (several nodes) but media is kept as files under DATA_DIR on this node: every node must see the same ' +
          'recordings and uploads. Use S3 (S3_BUCKET), or mount one directory on every node and say so with STORAGE_SHARED=true',
      );
      expect(configError({ REDIS_URL: 'redis://127.0.0.1:6379', STORAGE_SHARED: 'false' }).message).toBe(message);
    });

    it('accepts them with S3, or files the operator says are shared', () => {
      expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', S3_BUCKET: 'media-1' }).storage.s3?.bucket).toBe('media-1');
      expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', STORAGE_SHARED: 'true' }).storage).toEqual({
        dataDir: './data',
        s3: undefined,
        shared: true,
      });
    });

    it('leaves a single node (no REDIS_URL) on files alone', () => {
      expect(loadConfig({ STORAGE_SHARED: 'false' }).storage.shared).toBe(false);
      expect(loadConfig({ NODE_ROLES: 'origin' }).coord.redisUrl).toBeUndefined();
    });
  });
});
