/**
 * The REDIS_URL forms, parsed. In core because config checks them at start-up and coord connects to them
 * (config may import only core). The forms:
 *   redis://[user:pass@]host:port[/db], rediss://... (TLS)       one server (or a proxy in front of several)
 *   redis+cluster://[user:pass@]h1:p1,h2:p2, rediss+cluster://...  Redis Cluster, seeded from those nodes
 *   redis://h1:p1,h2:p2                                            a comma list means Cluster as well
 */
export interface RedisTarget {
  readonly cluster: boolean;
  readonly tls: boolean;
  readonly nodes: readonly { host: string; port: number }[];
  readonly username?: string;
  readonly password?: string;
  readonly db?: number;
}

export function parseRedisUrl(url: string): RedisTarget {
  const m = /^(rediss?)(\+cluster)?:\/\/(?:([^@/]*)@)?([^/?#]+)(?:\/(\d*))?\/?$/.exec(url.trim());
  if (!m)
    throw new Error(
      `REDIS_URL must look like redis://host:6379 or redis+cluster://h1:p1,h2:p2 (the value is not repeated: it may carry a password)`,
    );
  const [, scheme, clusterTag, auth, hosts, db] = m;
  const nodes = hosts.split(',').map((h) => {
    const hm = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h.trim());
    if (!hm) throw new Error('REDIS_URL has a host that is not host[:port]');
    return { host: hm[1].replace(/^\[|\]$/g, ''), port: hm[2] ? Number(hm[2]) : 6379 };
  });
  let username: string | undefined;
  let password: string | undefined;
  if (auth) {
    const i = auth.indexOf(':');
    username = i < 0 ? undefined : decodeURIComponent(auth.slice(0, i)) || undefined;
    password = decodeURIComponent(i < 0 ? auth : auth.slice(i + 1));
  }
  return {
    cluster: Boolean(clusterTag) || nodes.length > 1,
    tls: scheme === 'rediss',
    nodes,
    username,
    password,
    db: db ? Number(db) : undefined,
  };
}
