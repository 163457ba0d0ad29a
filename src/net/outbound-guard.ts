// The SSRF guard for every outbound HTTP request whose destination a user can steer (push
// gateways today, federation later), and the one HTTP client that enforces it.
//
// Invariants:
// 1. A connection made through OutboundHttp only ever goes to an IP address that
//    OutboundGuard.isAllowed accepts. The check is on the address actually dialled, never on the
//    name: the connector resolves names itself (dns.lookup, all addresses), drops every refused
//    address and dials an allowed IP; IP literals (which net.connect never looks up) are checked
//    the same way. Once connected, socket.remoteAddress is checked again.
// 2. The allow-list (outbound.ip_range_whitelist) wins over the deny-list
//    (outbound.ip_range_blacklist). 0.0.0.0 and :: are always in the deny-list, as in Synapse.
// 3. Every IPv4 range also covers its IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
//    6to4 (2002:AABB:CCDD::) and NAT64 (64:ff9b::a.b.c.d) IPv6 forms, in both lists.
// 4. An address that does not parse is refused (fail closed).
// 5. Redirects are never followed (a 3xx is returned to the caller as it is), no proxy settings
//    from the environment are used, and only http: and https: URLs are accepted.
// 6. Refusals throw OutboundRefusedError (code ERR_OUTBOUND_REFUSED), a permanent failure: retrying
//    the same destination cannot succeed until the DNS answer or the config changes.
//
// Range matching is node's net.BlockList; this file only parses and spells CIDRs.

import { BlockList, isIP, type Socket } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { Readable } from 'node:stream';
import { Agent, buildConnector } from 'undici';

/**
 * Refused by default: Synapse's DEFAULT_IP_RANGE_BLOCKLIST, plus the unspecified, "this network",
 * reserved/broadcast, local-use NAT64, discard and newer documentation ranges.
 */
export const DEFAULT_IP_RANGE_BLACKLIST: readonly string[] = [
  '127.0.0.0/8', // loopback
  '10.0.0.0/8', // private (RFC 1918)
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10', // carrier-grade NAT
  '192.0.0.0/24', // IETF protocol assignments
  '169.254.0.0/16', // link-local (cloud metadata services live here)
  '192.88.99.0/24', // former 6to4 relay anycast
  '198.18.0.0/15', // benchmarking
  '192.0.2.0/24', // documentation (TEST-NET-1..3)
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4', // multicast
  '0.0.0.0/8', // "this network"; 0.0.0.0 reaches the local host on Linux
  '240.0.0.0/4', // reserved, including the broadcast address 255.255.255.255
  '::1/128', // loopback
  '::/128', // unspecified
  'fe80::/10', // link-local
  'fc00::/7', // unique local
  '2001:db8::/32', // documentation
  '3fff::/20', // documentation (RFC 9637)
  '2001:2::/48', // benchmarking
  'ff00::/8', // multicast
  'fec0::/10', // site-local (deprecated)
  '100::/64', // discard-only
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215)
];

/** Always refused whatever the deny-list says (the allow-list can still let them through). */
const ALWAYS_REFUSED = ['0.0.0.0', '::'];

type Family = 'ipv4' | 'ipv6';
interface Cidr {
  address: string;
  prefix: number;
  family: Family;
}

/** Parses `a.b.c.d/n`, `v6::/n` or a bare address; null when it is not one. */
export function parseCidr(text: string): Cidr | null {
  const parts = text.trim().split('/');
  if (parts.length > 2) return null;
  const [address, prefixText] = parts;
  const version = isIP(address);
  if (version === 0) return null;
  const family: Family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return null;
  try {
    new BlockList().addSubnet(address, prefix, family);
  } catch {
    return null;
  }
  return { address, prefix, family };
}

/** The IPv6 spellings of an IPv4 range: mapped, compatible, 6to4 and NAT64 (RFC 6052). */
function embeddedForms(c: Cidr): Cidr[] {
  const octets = c.address.split('.').map(Number);
  const hex = (a: number, b: number) => ((a << 8) | b).toString(16);
  return [
    { address: `::ffff:${c.address}`, prefix: 96 + c.prefix, family: 'ipv6' },
    { address: `::${c.address}`, prefix: 96 + c.prefix, family: 'ipv6' },
    { address: `64:ff9b::${c.address}`, prefix: 96 + c.prefix, family: 'ipv6' },
    { address: `2002:${hex(octets[0], octets[1])}:${hex(octets[2], octets[3])}::`, prefix: 16 + c.prefix, family: 'ipv6' },
  ];
}

function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of ranges) {
    const c = parseCidr(text);
    if (!c) throw new Error(`invalid IP range ${JSON.stringify(text)}`);
    for (const r of c.family === 'ipv4' ? [c, ...embeddedForms(c)] : [c]) list.addSubnet(r.address, r.prefix, r.family);
  }
  return list;
}

/** A bare IP address from a URL hostname or a socket address, without brackets or zone; null if none. */
export function ipOf(host: string): { address: string; family: Family } | null {
  let h = host;
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  const zone = h.indexOf('%');
  if (zone >= 0) h = h.slice(0, zone);
  const v = isIP(h);
  return v === 0 ? null : { address: h, family: v === 4 ? 'ipv4' : 'ipv6' };
}

export interface OutboundPolicy {
  ip_range_blacklist: readonly string[];
  ip_range_whitelist: readonly string[];
}

export type UrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

export class OutboundGuard {
  private readonly deny: BlockList;
  private readonly allow: BlockList;

  constructor(policy: OutboundPolicy = { ip_range_blacklist: DEFAULT_IP_RANGE_BLACKLIST, ip_range_whitelist: [] }) {
    this.deny = blockListOf([...policy.ip_range_blacklist, ...ALWAYS_REFUSED]);
    this.allow = blockListOf(policy.ip_range_whitelist);
  }

  /** Whether a connection to this IP address may be made. Anything but an IP address is refused. */
  isAllowed(address: string): boolean {
    const ip = ipOf(address);
    if (!ip) return false;
    if (this.allow.check(ip.address, ip.family)) return true;
    return !this.deny.check(ip.address, ip.family);
  }

  /**
   * What can be decided about a URL before any DNS lookup: it must be http(s), and a host that
   * is an IP literal (in any spelling the URL parser accepts: 2130706433, 0x7f000001, 127.1 all
   * mean 127.0.0.1) must be allowed. Names are checked when connecting.
   */
  checkUrl(value: string | URL): UrlVerdict {
    let url: URL;
    try {
      url = typeof value === 'string' ? new URL(value) : value;
    } catch {
      return { ok: false, reason: 'not an absolute URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: 'not an http(s) URL' };
    const ip = ipOf(url.hostname);
    if (ip && !this.isAllowed(ip.address)) return { ok: false, reason: `address ${ip.address} is refused by the outbound IP policy` };
    return { ok: true, url };
  }
}

export class OutboundRefusedError extends Error {
  readonly code = 'ERR_OUTBOUND_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'OutboundRefusedError';
  }
}

/** True for a refusal by the guard (also when wrapped as another error's cause). */
export function isOutboundRefused(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === 'ERR_OUTBOUND_REFUSED') return true;
  }
  return false;
}

export interface OutboundRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
  /** Body bytes kept; the rest is discarded and `truncated` set. Default 1 MiB. */
  maxResponseBytes?: number;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body was longer than maxResponseBytes; `body` holds its start. */
  truncated: boolean;
}

/** A response whose body is read by the caller (who must consume or destroy it). */
export interface OutboundStreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

/** Outbound HTTP for user-steered destinations. Never follows redirects. */
export interface OutboundHttp {
  request(url: string | URL, init?: OutboundRequestInit): Promise<OutboundResponse>;
  /** As request, the body left unread: for large bodies (remote media) streamed elsewhere. */
  stream(url: string | URL, init?: Omit<OutboundRequestInit, 'maxResponseBytes'>): Promise<OutboundStreamResponse>;
  close(): Promise<void>;
}

export type LookupAll = (hostname: string) => Promise<{ address: string; family: number }[]>;

export interface OutboundHttpOptions {
  connectTimeoutMs?: number;
  /** Name resolution; dns.lookup with all: true by default (tests substitute their own). */
  lookup?: LookupAll;
  /** TLS certificate checks; always on unless a caller (a test federation) turns them off. */
  rejectUnauthorized?: boolean;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

export function createOutboundHttp(guard: OutboundGuard, opts: OutboundHttpOptions = {}): OutboundHttp {
  const lookup: LookupAll = opts.lookup ?? ((h) => dnsLookup(h, { all: true }));
  const dial = buildConnector({ timeout: opts.connectTimeoutMs ?? 10_000, rejectUnauthorized: opts.rejectUnauthorized ?? true });

  const dialOne = (o: buildConnector.Options, ip: string) =>
    new Promise<Socket>((resolve, reject) => {
      // `host` (name and port) stays as it was: undici derives the TLS servername from it, and
      // the Host header comes from the request's origin.
      dial({ ...o, hostname: ip }, (err, socket) => (err ? reject(err) : resolve(socket as Socket)));
    });

  async function connectGuarded(o: buildConnector.Options): Promise<Socket> {
    const name = o.hostname;
    const literal = ipOf(name);
    const candidates = literal ? [literal.address] : (await lookup(name)).map((a) => a.address);
    const allowed = candidates.filter((a) => guard.isAllowed(a));
    if (allowed.length === 0) {
      throw new OutboundRefusedError(
        literal
          ? `outbound connection to ${name} refused: the address is in outbound.ip_range_blacklist`
          : `outbound connection to ${name} refused: it resolves only to refused addresses (${candidates.join(', ') || 'none'})`,
      );
    }
    let lastErr: unknown;
    for (const ip of allowed) {
      let socket: Socket;
      try {
        socket = await dialOne(o, ip);
      } catch (err) {
        lastErr = err;
        continue;
      }
      const remote = socket.remoteAddress;
      if (remote === undefined || !guard.isAllowed(remote)) {
        socket.destroy();
        throw new OutboundRefusedError(`outbound connection to ${name} refused: connected to ${remote ?? 'an unknown address'}`);
      }
      return socket;
    }
    throw lastErr;
  }

  const agent = new Agent({
    connect: (o, callback) => {
      connectGuarded(o).then(
        (socket) => callback(null, socket),
        (err: Error) => callback(err, null),
      );
    },
  });

  const send = (url: string | URL, init: OutboundRequestInit) => {
    const verdict = guard.checkUrl(url);
    if (!verdict.ok) throw new OutboundRefusedError(`outbound request to ${String(url)} refused: ${verdict.reason}`);
    const u = verdict.url;
    return agent.request({
      origin: u.origin,
      path: `${u.pathname}${u.search}`,
      method: (init.method ?? 'GET') as 'GET',
      headers: init.headers,
      body: init.body,
      signal: init.signal,
    });
  };

  return {
    async stream(url, init = {}) {
      const res = await send(url, init);
      return { status: res.statusCode, headers: res.headers, body: res.body };
    },
    async request(url, init = {}) {
      const res = await send(url, init);
      const max = init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      for await (const chunk of res.body) {
        const buf = chunk as Buffer;
        if (size + buf.length > max) {
          chunks.push(buf.subarray(0, max - size));
          truncated = true;
          res.body.destroy();
          break;
        }
        chunks.push(buf);
        size += buf.length;
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), truncated };
    },
    async close() {
      await agent.close();
    },
  };
}
