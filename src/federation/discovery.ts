// Server discovery (spec server-server API, "Resolving server names"): where to connect for a
// server name, and which Host header and TLS name to present.
//
// Order: 1 IP literal (port or 8448); 2 hostname with an explicit port; 3 .well-known
// `m.server` delegation, whose target goes through steps 1-2 and then SRV; 4 SRV
// `_matrix-fed._tcp` then the deprecated `_matrix._tcp`; 5 hostname:8448.
// Invariants: results are cached (default 1 h; a failed .well-known is remembered too, as the
// spec asks, so an unreachable name does not cost a request per transaction); the resolver
// and the .well-known fetch are injected, so tests need no DNS.

import { isIP } from 'node:net';
import { isJsonObject } from '../protocol/canonical-json.js';
import { isValidServerName } from '../protocol/ids.js';

export interface ResolvedServer {
  /** Address or name to connect to. */
  host: string;
  port: number;
  /** Host header (and TLS server name when not an IP). */
  hostHeader: string;
  tlsServername: string;
}

export interface DiscoveryDeps {
  resolveSrv(name: string): Promise<Array<{ name: string; port: number; priority: number; weight: number }>>;
  /** The parsed body of https://<name>/.well-known/matrix/server, or undefined on any failure. */
  fetchWellKnown(serverName: string): Promise<unknown>;
  now?: () => number;
  cacheMs?: number;
}

/** `host[:port]` split; IPv6 literals keep their brackets in `host`. */
export function splitServerName(name: string): { host: string; port?: number } {
  const close = name.lastIndexOf(']');
  const colon = name.lastIndexOf(':');
  if (colon > close && !(close < 0 && name.indexOf(':') !== colon)) {
    return { host: name.slice(0, colon), port: Number(name.slice(colon + 1)) };
  }
  return { host: name };
}

function bare(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export class ServerDiscovery {
  private readonly cache = new Map<string, { at: number; value: ResolvedServer }>();

  constructor(private readonly deps: DiscoveryDeps) {}

  async resolve(serverName: string): Promise<ResolvedServer> {
    const now = (this.deps.now ?? Date.now)();
    const hit = this.cache.get(serverName);
    if (hit && now - hit.at < (this.deps.cacheMs ?? 3600_000)) return hit.value;
    const value = await this.lookup(serverName);
    this.cache.set(serverName, { at: now, value });
    return value;
  }

  private async lookup(serverName: string): Promise<ResolvedServer> {
    if (!isValidServerName(serverName)) throw new Error(`invalid server name ${serverName}`);
    const direct = this.literalOrPort(serverName);
    if (direct) return direct;
    const wk = await this.deps.fetchWellKnown(serverName).catch(() => undefined);
    const delegated = isJsonObject(wk) && typeof wk['m.server'] === 'string' && isValidServerName(wk['m.server']) ? wk['m.server'] : undefined;
    if (delegated) {
      const d = this.literalOrPort(delegated);
      if (d) return d;
      return (await this.srv(delegated)) ?? { host: delegated, port: 8448, hostHeader: delegated, tlsServername: delegated };
    }
    return (await this.srv(serverName)) ?? { host: serverName, port: 8448, hostHeader: serverName, tlsServername: serverName };
  }

  /** Steps 1 and 2: nothing to look up. */
  private literalOrPort(name: string): ResolvedServer | undefined {
    const { host, port } = splitServerName(name);
    if (isIP(bare(host)) !== 0) return { host: bare(host), port: port ?? 8448, hostHeader: name, tlsServername: bare(host) };
    if (port !== undefined) return { host, port, hostHeader: name, tlsServername: host };
    return undefined;
  }

  private async srv(name: string): Promise<ResolvedServer | undefined> {
    for (const prefix of ['_matrix-fed._tcp.', '_matrix._tcp.']) {
      const records = await this.deps.resolveSrv(prefix + name).catch(() => []);
      if (records.length === 0) continue;
      const best = [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight)[0];
      // The Host header and certificate stay the server name; only the address comes from SRV.
      return { host: best.name.replace(/\.$/, ''), port: best.port, hostHeader: name, tlsServername: name };
    }
    return undefined;
  }
}
