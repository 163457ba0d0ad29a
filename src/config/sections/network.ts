// The config's network sections: the listeners, federation, request limits, the WebSocket
// stream and outbound requests (composed in src/config/schema.ts). Invariants: every object is
// strict and every section prefaults to `{}` (schema.ts's header); the federation listener's
// certificate and key go together; outbound requests refuse the default private ranges unless
// whitelisted.

import { z } from 'zod';
import { DEFAULT_IP_RANGE_BLACKLIST } from '../../net/outbound-guard.js';
import { cidr, filePath, host, port, serverPattern } from './primitives.js';

const clientListener = z
  .strictObject({
    host: host.default('127.0.0.1'),
    port: port.default(8008),
    // Only behind a reverse proxy: take the client IP (used for rate limits, device last-seen)
    // from X-Forwarded-For. Trusting it when directly exposed lets clients spoof their IP.
    x_forwarded: z.boolean().default(false),
    // The kernel's queue of connections not yet accepted (listen(2)'s backlog; Linux caps it at
    // net.core.somaxconn). Node's default, 511, overflows when a burst of new connections meets a
    // busy event loop: the kernel then drops the SYNs and clients retry a second later.
    backlog: z.int().min(1).max(65535).default(4096),
  })
  .prefault({});

const federationListener = z
  .strictObject({
    // Off by default: a local `localhost` server cannot federate anyway, and a federation port
    // must serve TLS with a certificate for server_name (or sit behind a TLS-terminating proxy).
    enabled: z.boolean().default(false),
    host: host.default('127.0.0.1'),
    port: port.default(8448),
    tls: z.boolean().default(true),
    tls_certificate_path: filePath.nullable().default(null),
    tls_private_key_path: filePath.nullable().default(null),
    x_forwarded: z.boolean().default(false),
  })
  .superRefine((l, ctx) => {
    // Both or neither: with neither, a self-signed certificate is generated at start
    // (src/federation/self-signed.ts), which peers accept only with verify_tls: false.
    if ((l.tls_certificate_path === null) !== (l.tls_private_key_path === null)) {
      ctx.addIssue({ code: 'custom', path: ['tls_certificate_path'], message: 'tls_certificate_path and tls_private_key_path go together' });
    }
  })
  .prefault({});

export const listenersSection = z.strictObject({ client: clientListener, federation: federationListener }).prefault({});

const rateLimit = (perSecond: number, burst: number) =>
  z
    .strictObject({
      per_second: z.number().positive().default(perSecond),
      burst: z.int().min(1).default(burst),
    })
    .prefault({});

// Slow-client protection on the client (and metrics) listener. Node enforces the header and
// request timeouts on a periodic check, so a connection is cut up to a quarter of the smaller one
// (at most 1 s) late.
const httpLimits = z
  .strictObject({
    // From connection (or the end of the previous request) to the last request header.
    header_timeout_ms: z.int().min(100).default(10000),
    // Receiving a whole request, headers and body; the response (a long-poll) is not counted.
    request_timeout_ms: z.int().min(100).default(30000),
    keep_alive_timeout_ms: z.int().min(100).default(5000),
    // No byte either way on a connection with a request in flight; must outlast a parked /sync.
    idle_timeout_ms: z.int().min(1000).default(90000),
    // 0: no cap. Not applied with listeners.client.x_forwarded (every connection is the proxy's).
    max_connections_per_address: z.int().min(0).default(512),
    exempt_addresses: z.array(z.union([z.ipv4(), z.ipv6()])).default(['127.0.0.1', '::1']),
  })
  .prefault({});

export const federationSection = z
  .strictObject({
    verify_tls: z.boolean().default(true),
    // Notaries asked for a server's keys when it cannot be reached directly (perspectives).
    trusted_key_servers: z
      .array(z.strictObject({ server_name: z.string().min(1), verify_keys: z.record(z.string(), z.string()).default({}) }))
      .default([]),
    // Outbound federation: added to outbound.ip_range_whitelist (tests federate on loopback).
    ip_range_whitelist: z.array(cidr).default([]),
    // Incoming /send limits (the spec caps a transaction at 50 PDUs and 100 EDUs).
    max_pdus_per_txn: z.int().min(1).default(50),
    max_edus_per_txn: z.int().min(1).default(100),
    // Retry of a failing destination: doubling from min to max; any signed request from it resets.
    min_backoff_ms: z.int().min(10).default(10_000),
    max_backoff_ms: z.int().min(10).default(3_600_000),
    // Servers this server federates with: exact names (with port, if any) or "*.domain".
    // allowed_servers null: every server not denied; a list: only those.
    allowed_servers: z.array(serverPattern).nullable().default(null),
    denied_servers: z.array(serverPattern).default([]),
  })
  .prefault({});

export const limitsSection = z
  .strictObject({
    max_request_body_bytes: z.int().min(1024).default(1048576),
    // 65536 is the Matrix PDU size limit; larger events would be rejected by other servers.
    max_event_bytes: z.int().min(1024).max(65536).default(65536),
    rate_limits: z
      .strictObject({
        enabled: z.boolean().default(true),
        login: rateLimit(0.5, 10),
        login_failures_per_address: rateLimit(0.1, 20),
        login_failures_per_account_address: rateLimit(0.02, 5),
        registration: rateLimit(0.2, 5),
        message: rateLimit(20, 100),
        write: rateLimit(10, 100),
        to_device: rateLimit(200, 3000),
        threepid_request_token: rateLimit(0.05, 5),
      })
      .prefault({}),
    http: httpLimits,
    // Load shedding past capacity (src/admission/admission.ts). Sends get 429 with
    // retry_after_ms; new /sync requests and socket catch-ups get 503 with a jittered one.
    admission: z
      .strictObject({
        // /sync requests (until answered or parked) and socket catch-ups built at once.
        max_catchups: z.int().min(1).default(500),
        // Client sends queued or committing at once, at most (the measured limit is usually lower).
        max_inflight_sends: z.int().min(1).default(5000),
        // Age of the oldest send in flight past which new sends are refused (a stall). 0: off.
        max_send_delay_ms: z.int().min(0).default(1000),
        // Target of a send's time in the server (admitted to answered). While it stays above
        // this for send_interval_ms, sends in flight are capped at what the measured completion
        // rate serves in this time. Well above an unloaded send (a commit and its fsync). 0: off.
        send_target_delay_ms: z.int().min(0).default(100),
        send_interval_ms: z.int().min(10).default(100),
        // Event-loop lag above which new sends and catch-ups are refused: smoothed over ~50 ms
        // (refused until it is under half of this again), or a stall of twice this while it
        // lasts. Counts only the time the server was on the CPU, not a busy machine's. Cheap
        // requests (/versions) wait about one loop turn, so this bounds their latency. 0: off.
        max_event_loop_lag_ms: z.int().min(0).default(100),
        // CPU time per event-loop turn for sends and /syncs before the rest waits for later
        // turns (paced, not refused), and the paced work resumed per turn. A cheap request
        // (/versions) waits about one turn, about twice this, under overload. 0: half of
        // max_event_loop_lag_ms.
        pacing_turn_ms: z.int().min(0).default(0),
        // Base of a refused send's retry_after_ms; jitter of up to half as much again is added.
        send_retry_after_ms: z.int().min(0).default(500),
        // Base of a refused catch-up's retry_after_ms; jitter of up to the same again is added.
        catchup_retry_after_ms: z.int().min(0).default(2000),
      })
      .prefault({}),
  })
  .prefault({});

export const websocketSection = z
  .strictObject({
    enabled: z.boolean().default(true),
    max_connections: z.int().min(1).default(20000),
    // Sockets doing their first (catch-up) sync at once; beyond it new sockets are shed with
    // 503 + retry_after_ms (with jitter), which keeps a reconnect storm from toppling the node.
    max_catchups: z.int().min(1).default(500),
    // Unsent bytes a socket may hold before it is closed as a slow consumer (code 4008).
    max_buffered_bytes: z.int().min(1024).default(4194304),
    heartbeat_ms: z.int().min(100).default(30000),
    auth_timeout_ms: z.int().min(100).default(10000),
    // Safety-net re-check of a parked socket; sockets are pushed to by wakes, never polled.
    // Each re-check costs one delta build (from memory with the read model), so it is long.
    poll_ms: z.int().min(100).max(2147483647).default(3600000),
    shed_retry_ms: z.int().min(0).default(2000),
  })
  .prefault({});

// Outbound requests a user can steer (push gateways; federation later): which IP addresses
// they may connect to, checked on the resolved address (src/net/outbound-guard.ts).
export const outboundSection = z
  .strictObject({
    ip_range_blacklist: z.array(cidr).default([...DEFAULT_IP_RANGE_BLACKLIST]),
    // Wins over the blacklist (e.g. a push gateway on the local network).
    ip_range_whitelist: z.array(cidr).default([]),
  })
  .prefault({});
