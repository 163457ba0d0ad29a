// The shape of hearth's YAML config. Keys stay snake_case in the parsed type so that code, the
// docs and config.example.yaml all use one spelling. Every object is strict: a typo in a key is
// a start-up error rather than a silently ignored setting. Every section has a prefault of `{}`
// so an absent section (or one whose keys are all commented out) takes every default.
//
// config.example.yaml documents every key here; spec/config checks the two agree.

import { z } from 'zod';
import { DEFAULT_IP_RANGE_BLACKLIST, parseCidr } from '../net/outbound-guard.js';
import { DEFAULT_ROOM_VERSION, SUPPORTED_ROOM_VERSIONS, type RoomVersion } from '../protocol/room-versions.js';
import { tryDecodeBase64 } from '../protocol/base64.js';

// Matrix server-name grammar (spec appendix "Server Name"): hostname or IP literal, optional port.
const SERVER_NAME_RE = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::\d{1,5})?$/;

// 0 asks the OS for a free port (tests); the server reports the bound one.
const port = z.int().min(0).max(65535);
const host = z.string().min(1);
const filePath = z.string().min(1);
// An IP range: a.b.c.d/n, an IPv6 prefix, or a single address.
const serverPattern = z
  .string()
  .refine((s) => SERVER_NAME_RE.test(s) || /^\*\.[A-Za-z0-9.-]{1,253}$/.test(s), { error: 'must be a server name or *.domain' });
const cidr = z.string().refine((s) => parseCidr(s) !== null, { error: 'must be an IP range (CIDR such as 10.0.0.0/8 or fc00::/7) or address' });

const clientListener = z
  .strictObject({
    host: host.default('127.0.0.1'),
    port: port.default(8008),
    // Only behind a reverse proxy: take the client IP (used for rate limits, device last-seen)
    // from X-Forwarded-For. Trusting it when directly exposed lets clients spoof their IP.
    x_forwarded: z.boolean().default(false),
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

/**
 * What one worker does (cluster.roles; src/cluster/roles.ts composes them): client_api serves the
 * client routes, sync serves /sync, /events and the WebSocket stream, room_writer takes room
 * leases and writes rooms, federation_in serves the federation listener, federation_out sends
 * transactions, pusher runs the push-job loop. `all` is every one of them (a single node).
 */
export const WORKER_ROLES = ['client_api', 'room_writer', 'sync', 'federation_in', 'federation_out', 'pusher'] as const;

const configObject = z.strictObject({
  server_name: z
    .string()
    .regex(SERVER_NAME_RE, { error: 'must be a Matrix server name: hostname, IPv4 or [IPv6], optionally :port' })
    .default('localhost'),
  // null: derived from the client listener (fine locally; set it when behind a proxy or public).
  public_baseurl: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .nullable()
    .default(null),
  listeners: z.strictObject({ client: clientListener, federation: federationListener }).prefault({}),
  // The version of rooms created without one (createRoom's room_version) and the capability's
  // default. The spec recommends 10 ("Servers SHOULD use room version 10"); 12 is Hearth's
  // choice, so a server whose peers lack v12 (older servers, SyTest's federation peer) sets 10.
  default_room_version: z.enum(SUPPORTED_ROOM_VERSIONS as [RoomVersion, ...RoomVersion[]]).default(DEFAULT_ROOM_VERSION),
  storage: z
    .strictObject({
      backend: z.enum(['sqlite', 'cassandra']).default('sqlite'),
      sqlite: z
        .strictObject({
          path: filePath.default('./data/hearth.sqlite'),
          synchronous: z.enum(['full', 'normal']).default('full'),
        })
        .prefault({}),
      // Used when backend is 'cassandra' (see docs/deploy.md); every durable record lives there.
      cassandra: z
        .strictObject({
          contact_points: z
            .array(z.string().regex(/^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/, { error: 'must be host or host:port' }))
            .min(1)
            .default(['127.0.0.1:9042']),
          local_datacenter: z.string().min(1).default('datacenter1'),
          keyspace: z
            .string()
            .regex(/^[a-z][a-z0-9_]{0,47}$/, { error: 'must match [a-z][a-z0-9_]{0,47}' })
            .default('hearth'),
          // Only used when the keyspace is created by Hearth (SimpleStrategy).
          replication_factor: z.number().int().min(1).max(9).default(1),
          username: z.string().min(1).nullable().default(null),
          password: z.string().min(1).nullable().default(null),
        })
        .prefault({}),
    })
    .prefault({}),
  registration: z
    .strictObject({
      enabled: z.boolean().default(true),
      token: z.string().min(1).nullable().default(null),
      allow_guests: z.boolean().default(false),
      // Registration only with a validated email address (needs email.enabled).
      require_email: z.boolean().default(false),
      shared_secret: z
        .string()
        .min(16, { error: 'must be at least 16 characters (generate-config writes a random one)' })
        .nullable()
        .default(null),
    })
    .prefault({}),
  // Single sign-on through a CAS server (src/auth/sso/): m.login.sso and m.login.cas at /login,
  // an m.login.sso UIA stage, login tokens (m.login.token). The validation request goes to the
  // operator-chosen server_url, not through the outbound guard (see src/auth/sso/cas.ts).
  cas: z
    .strictObject({
      enabled: z.boolean().default(false),
      // The CAS server's base URL; /login and /proxyValidate are under it.
      server_url: z.url({ protocol: /^https?$/ }).nullable().default(null),
      // Base URL CAS sends browsers back to (…/_matrix/client/r0/login/cas/ticket is appended);
      // null: public_baseurl.
      service_url: z.url({ protocol: /^https?$/ }).nullable().default(null),
      // The CAS attribute a new user's display name is taken from; null: the localpart.
      displayname_attribute: z.string().min(1).nullable().default(null),
      // Attributes a CAS user must have to log in: name -> required value, or null for any value.
      required_attributes: z.record(z.string().min(1), z.string().nullable()).default({}),
    })
    .superRefine((c, ctx) => {
      if (c.enabled && c.server_url === null) ctx.addIssue({ code: 'custom', path: ['server_url'], message: 'required when cas.enabled is true' });
    })
    .prefault({}),
  // Google reCAPTCHA (m.login.recaptcha). enabled: /register offers the stage and can verify it;
  // required_for_registration: every registration flow starts with it.
  recaptcha: z
    .strictObject({
      enabled: z.boolean().default(false),
      required_for_registration: z.boolean().default(true),
      public_key: z.string().min(1).nullable().default(null),
      private_key: z.string().min(1).nullable().default(null),
      siteverify_api: z.url({ protocol: /^https?$/ }).default('https://www.recaptcha.net/recaptcha/api/siteverify'),
    })
    .superRefine((c, ctx) => {
      if (c.enabled && (c.public_key === null || c.private_key === null)) {
        ctx.addIssue({ code: 'custom', path: ['private_key'], message: 'public_key and private_key are required when recaptcha.enabled is true' });
      }
    })
    .prefault({}),
  signing_key_path: filePath.default('./data/signing.key'),
  // Public keys of rotated-out signing keys, served as old_verify_keys (valid for events before expired_ts).
  old_signing_keys: z
    .record(z.string().regex(/^ed25519:[A-Za-z0-9_]+$/, { error: 'must be ed25519:<version>' }), z.strictObject({ key: z.string().refine((k) => tryDecodeBase64(k)?.length === 32, { error: 'must be a base64 Ed25519 public key' }), expired_ts: z.int().min(0) }))
    .default({}),
  federation: z
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
    .prefault({}),
  limits: z
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
          // Client sends queued or committing at once.
          max_inflight_sends: z.int().min(1).default(5000),
          // Age of the oldest send in flight past which new sends are refused. 0: off.
          max_send_delay_ms: z.int().min(0).default(1000),
          // Smoothed event-loop lag above which new sends and catch-ups are refused. 0: off.
          max_event_loop_lag_ms: z.int().min(0).default(200),
          send_retry_after_ms: z.int().min(0).default(500),
          // Base of a refused catch-up's retry_after_ms; jitter of up to the same again is added.
          catchup_retry_after_ms: z.int().min(0).default(2000),
        })
        .prefault({}),
    })
    .prefault({}),
  sync: z
    .strictObject({
      max_timeout_ms: z.int().min(0).default(60000),
      // The in-memory read model (src/sync/read-model): incremental syncs are deltas from memory.
      // Each bound caps one cache; cold users and rooms past it are evicted and rebuilt from the
      // store on demand. enabled: false serves every sync from the store (same responses).
      read_model: z
        .strictObject({
          enabled: z.boolean().default(true),
          change_cache_entries: z.int().min(1).default(100000),
          membership_users: z.int().min(1).default(50000),
          timeline_rooms: z.int().min(1).default(20000),
          timeline_events: z.int().min(1).default(50),
        })
        .prefault({}),
    })
    .prefault({}),
  websocket: z
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
    .prefault({}),
  presence: z
    .strictObject({
      enabled: z.boolean().default(true),
      // No activity (send, or a sync with set_presence=online) for this long: unavailable.
      idle_timeout_ms: z.int().min(1000).default(300000),
      // No sync for this long: offline (the client went away).
      offline_timeout_ms: z.int().min(1000).default(30000),
    })
    .prefault({}),
  push: z
    .strictObject({
      // false: pushers can still be registered, but nothing is sent to push gateways.
      enabled: z.boolean().default(true),
      // Push even to users with a connected device (Synapse's behaviour). Off: a user who is
      // syncing sees the event there, and their phone stays quiet.
      always_push: z.boolean().default(false),
      // A user counts as connected while a /sync is in flight or ended less than this ago.
      connected_window_ms: z.int().min(0).default(30000),
      request_timeout_ms: z.int().min(100).default(10000),
      max_concurrent_requests: z.int().min(1).max(1000).default(16),
      // Retries after a 5xx or network error wait min_backoff_ms, doubling up to max_backoff_ms.
      min_backoff_ms: z.int().min(1).default(1000),
      max_backoff_ms: z.int().min(1).default(600000),
      max_attempts: z.int().min(1).default(20),
    })
    .prefault({}),
  // Application services (bridges, bots): paths to their registration YAML files (the
  // Application Service API's format). Each is read and checked at start-up (src/appservice).
  app_services: z.array(filePath).max(100).default([]),
  app_service_delivery: z
    .strictObject({
      // Whether this process may push transactions to the ASes (every worker still serves
      // as_token requests). In a cluster (cluster.redis.url) the workers with it on share the
      // work through a lease per AS, one deliverer at a time; false keeps a worker out of it.
      enabled: z.boolean().default(true),
      // In a cluster: how long an AS's delivery lease outlives its holder; a worker that dies
      // is replaced as the AS's deliverer after at most this long (a clean stop hands over at once).
      lease_ms: z.int().min(1000).max(600000).default(15000),
      // A transaction or query the AS has not answered after this long counts as failed.
      request_timeout_ms: z.int().min(100).default(30000),
      // A failed transaction is retried after min_backoff_ms, doubling up to max_backoff_ms, forever.
      min_backoff_ms: z.int().min(1).default(1000),
      max_backoff_ms: z.int().min(1).default(300000),
      max_events_per_transaction: z.int().min(1).max(1000).default(100),
      // Events held in memory per AS; past it, the rest is read back from the store later.
      max_pending_events: z.int().min(1).default(10000),
    })
    .prefault({}),
  // Scale-out. With no redis.url (the default) everything that several processes would have to
  // share lives in this process, exactly as a single node needs; with one, the pieces in
  // src/cluster/ (UIA sessions, registration nonces, rate limits, socket revocation) live in
  // Redis so any number of hearth processes can serve one server name.
  cluster: z
    .strictObject({
      redis: z
        .strictObject({
          url: z.string().regex(/^rediss?:\/\//, { error: 'must be a redis:// or rediss:// URL' }).nullable().default(null),
          // Every key and channel starts with this, so several servers can share one Redis.
          key_prefix: z.string().min(1).max(100).default('hearth:'),
        })
        .prefault({}),
      // With storage.backend cassandra and Redis: each room's writer holds a lease this long, renewed
      // every third of it while busy; a dead owner's rooms are taken over once it expires.
      room_lease_ms: z.int().min(500).max(60000).default(5000),
      // Outbound federation in a cluster: a federation_out worker holds a destination's lease
      // this long (renewed every third of it while it has work for it); a dead sender's
      // destinations are taken over once it lapses. Every federation_scan_ms each federation_out
      // worker looks in the shared queue for destinations with work another worker queued (only
      // with a shared store and Redis: a single node looks once, at start).
      destination_lease_ms: z.int().min(500).max(300000).default(30000),
      federation_scan_ms: z.int().min(100).max(60000).default(2000),
      // What this worker does (WORKER_ROLES above): [all] (every role: a single node, as before)
      // or a list; any number of workers may run each role. A list needs the cluster: storage
      // backend cassandra and cluster.redis.url (docs/deploy.md, "Roles").
      roles: z.array(z.enum(['all', ...WORKER_ROLES])).default(['all']),
    })
    .prefault({}),
  // Outbound requests a user can steer (push gateways; federation later): which IP addresses
  // they may connect to, checked on the resolved address (src/net/outbound-guard.ts).
  outbound: z
    .strictObject({
      ip_range_blacklist: z.array(cidr).default([...DEFAULT_IP_RANGE_BLACKLIST]),
      // Wins over the blacklist (e.g. a push gateway on the local network).
      ip_range_whitelist: z.array(cidr).default([]),
    })
    .prefault({}),
  // Identity servers (src/identity): the ones a client names (id_server) for 3PID binding and
  // third-party invites. Requests go through the outbound guard like any user-steered request.
  identity: z
    .strictObject({
      // TLS certificate checks on identity-server requests. Only a test rig with a self-signed
      // identity server turns them off (Synapse: use_insecure_ssl_client_just_for_testing_do_not_use).
      verify_tls: z.boolean().default(true),
      request_timeout_ms: z.int().min(100).default(15_000),
    })
    .prefault({}),
  // Email on accounts (src/threepid): this server validates addresses itself by sending a link
  // over SMTP, for registration, adding an address, and password reset. Off by default: with it
  // off, requestToken answers M_THREEPID_DENIED and no email stage is offered.
  email: z
    .strictObject({
      enabled: z.boolean().default(false),
      smtp_host: host.default('localhost'),
      smtp_port: port.default(25),
      smtp_user: z.string().min(1).nullable().default(null),
      smtp_pass: z.string().min(1).nullable().default(null),
      // Refuse to send unless the connection is encrypted (STARTTLS, or TLS from the start with
      // force_tls). Off only for a relay on this machine or a test rig.
      require_transport_security: z.boolean().default(true),
      // TLS from the first byte (port 465) rather than STARTTLS.
      force_tls: z.boolean().default(false),
      notif_from: z.string().min(3).max(255).default('Hearth <noreply@localhost>'),
      app_name: z.string().min(1).max(100).default('Matrix'),
      // How long a validation link stays good.
      validation_token_lifetime_ms: z.int().min(60_000).default(3_600_000),
      send_timeout_ms: z.int().min(1000).default(30_000),
    })
    .prefault({}),
  // The media repository (src/media): uploads, downloads, thumbnails, URL previews.
  media: z
    .strictObject({
      // Where media bytes live: `local`, files under media.path (one process, or workers sharing
      // that directory); `cassandra`, chunks in the keyspace (storage.backend cassandra), so every
      // worker of a cluster serves what any of them stored (src/store/cassandra/media-blobs.ts).
      store: z.enum(['local', 'cassandra']).default('local'),
      // Where the local MediaStore keeps the bytes (metadata is in the database).
      path: filePath.default('./data/media'),
      // media.store cassandra: bytes per stored chunk (a row of media_chunks; one write each).
      chunk_bytes: z.int().min(65536).max(1048576).default(262144),
      // Largest upload, in bytes (413 M_TOO_LARGE past it); advertised as m.upload.size.
      max_upload_bytes: z.int().min(1).default(52428800),
      // Per-user quota over all their uploads, in bytes (403 M_FORBIDDEN past it); null: none.
      max_user_bytes: z.int().min(1).nullable().default(null),
      // A media ID from POST /create with nothing uploaded expires after this long.
      unused_expiration_ms: z.int().min(1000).default(86400000),
      // Unexpired, not yet uploaded media IDs a user may hold (429 past it).
      max_pending_uploads: z.int().min(1).default(5),
      // The longest a download waits for an async upload to arrive (caps timeout_ms); never past
      // limits.http.idle_timeout_ms - 1000, as the connection would be cut first.
      max_download_wait_ms: z.int().min(0).default(30000),
      // Images with more pixels than this are not thumbnailed.
      max_image_pixels: z.int().min(1).default(32000000),
      // Thumbnail sizes kept per media item; beyond it thumbnails are made but not kept.
      max_thumbnails_per_media: z.int().min(0).default(50),
      // Fetch other servers' media over federation when a client asks for it (kept in the media
      // store, up to max_upload_bytes each); false: remote media is 404.
      fetch_remote: z.boolean().default(true),
      url_preview: z
        .strictObject({
          // Off by default: previews make the server fetch URLs that users post.
          enabled: z.boolean().default(false),
          // Largest page (and og:image) fetched, in bytes; longer ones are cut off there.
          max_page_bytes: z.int().min(1024).default(1048576),
          max_image_bytes: z.int().min(1024).default(5242880),
          timeout_ms: z.int().min(100).default(10000),
          // How long a preview is reused for the same URL.
          cache_ms: z.int().min(0).default(3600000),
        })
        .prefault({}),
    })
    .prefault({}),
  // TURN servers handed to clients by GET /voip/turnServer (for VoIP calls).
  turn: z
    .strictObject({
      uris: z.array(z.string().regex(/^(?:turns?|stuns?):\S+$/, { error: 'must be a turn:, turns:, stun: or stuns: URI' })).default([]),
      // coturn's static-auth-secret: time-limited credentials per user (TURN REST API scheme).
      shared_secret: z.string().min(1).nullable().default(null),
      // Fixed credentials, used when shared_secret is null.
      username: z.string().min(1).nullable().default(null),
      password: z.string().min(1).nullable().default(null),
      user_lifetime_ms: z.int().min(1000).default(86400000),
      allow_guests: z.boolean().default(true),
    })
    .superRefine((t, ctx) => {
      if ((t.username === null) !== (t.password === null)) {
        ctx.addIssue({ code: 'custom', path: [t.username === null ? 'username' : 'password'], message: 'turn.username and turn.password go together' });
      } else if (t.uris.length > 0 && t.shared_secret === null && t.username === null) {
        ctx.addIssue({ code: 'custom', path: ['shared_secret'], message: 'turn.uris needs turn.shared_secret (or turn.username and turn.password)' });
      }
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      // auto: pretty when stdout is a terminal, json otherwise (pipes, files, log collectors).
      format: z.enum(['auto', 'json', 'pretty']).default('auto'),
    })
    .prefault({}),
  // Unstable features, each off unless named here.
  experimental: z
    .strictObject({
      // MSC2228 self-destructing messages (Synapse: enable_ephemeral_messages): a message whose
      // content has org.matrix.self_destruct_after (ms since the epoch) is pruned at that time.
      msc2228_self_destruct: z.boolean().default(false),
      // MSC2753 peeking via /sync: POST /peek/{roomIdOrAlias} and /rooms/{roomId}/unpeek, and
      // rooms.peek in the peeking device's /sync. Local world_readable rooms only.
      msc2753_peeking: z.boolean().default(false),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      // Served at /metrics on its own listener, not on the public client port.
      listen: z.strictObject({ host: host.default('127.0.0.1'), port: port.default(9000) }).prefault({}),
      // When set, GET /metrics is also served on the client port to `Authorization: Bearer <secret>`.
      client_port_secret: z
        .string()
        .min(16, { error: 'must be at least 16 characters' })
        .nullable()
        .default(null),
    })
    .prefault({}),
});

/** The object schema without root-level refinements; load.ts walks it to name keys in errors. */
export const configObjectSchema = configObject;

export const hearthConfigSchema = configObject
  .superRefine((c, ctx) => {
    const { client, federation } = c.listeners;
    if (federation.enabled && client.port !== 0 && client.port === federation.port && client.host === federation.host) {
      ctx.addIssue({ code: 'custom', path: ['listeners', 'federation', 'port'], message: 'same host and port as listeners.client' });
    }
    const m = c.metrics.listen;
    if (c.metrics.enabled && m.port !== 0 && m.port === client.port && m.host === client.host) {
      ctx.addIssue({ code: 'custom', path: ['metrics', 'listen', 'port'], message: 'same host and port as listeners.client' });
    }
    checkRoles(c, ctx);
    if (c.media.store === 'cassandra' && c.storage.backend !== 'cassandra') {
      ctx.addIssue({ code: 'custom', path: ['media', 'store'], message: 'cassandra needs storage.backend: cassandra (the bytes go to its keyspace)' });
    }
    if (c.registration.require_email && !c.email.enabled) {
      ctx.addIssue({ code: 'custom', path: ['registration', 'require_email'], message: 'needs email.enabled: true (addresses are validated by mail)' });
    }
    const http = c.limits.http;
    if (http.header_timeout_ms > http.request_timeout_ms) {
      ctx.addIssue({ code: 'custom', path: ['limits', 'http', 'header_timeout_ms'], message: 'must not exceed limits.http.request_timeout_ms' });
    }
    if (http.idle_timeout_ms < c.sync.max_timeout_ms + 1000) {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', 'http', 'idle_timeout_ms'],
        message: 'must be at least sync.max_timeout_ms + 1000: a parked /sync sends nothing for that long',
      });
    }
  })
  .transform((c) => ({ ...c, public_baseurl: normaliseBaseUrl(c.public_baseurl ?? localBaseUrl(c.listeners.client)) }));

/** Combinations of cluster.roles that cannot work, as config errors at cluster.roles. */
function checkRoles(c: z.output<typeof configObject>, ctx: z.RefinementCtx): void {
  const roles = c.cluster.roles;
  const path = ['cluster', 'roles'];
  const issue = (message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (roles.length === 0) return issue('must name at least one role (or all)');
  if (new Set(roles).size !== roles.length) return issue('names a role twice');
  if (roles.includes('all')) {
    if (roles.length > 1) issue('all already includes every role: list roles or all, not both');
    return;
  }
  if (c.storage.backend !== 'cassandra' || c.cluster.redis.url === null) {
    return issue('a role list needs the cluster: storage.backend cassandra and cluster.redis.url (other workers share them)');
  }
  const has = (r: (typeof WORKER_ROLES)[number]) => roles.includes(r);
  for (const r of ['federation_in', 'federation_out'] as const) {
    if (has(r) && !c.listeners.federation.enabled) issue(`${r} needs listeners.federation.enabled: true`);
  }
  // federation_out needs no room_writer: the outbound queue is in the store, shared by every
  // worker (src/store/federation-types.ts), and any federation_out worker sends any of it.
  // Gap filling stores fetched outliers holding the room (a callback that cannot be forwarded).
  if (has('federation_in') && !has('room_writer')) issue('federation_in needs room_writer on the same worker (gap filling writes the room directly)');
}

/** The validated config, with every default filled in and paths made absolute by loadConfig. */
export type HearthConfig = z.output<typeof hearthConfigSchema>;
/** What a YAML file or `overrides` may contain: every key optional. */
export type HearthConfigInput = z.input<typeof hearthConfigSchema>;

/** An http:// URL that reaches `listener` from this machine. */
export function localBaseUrl(listener: { host: string; port: number }): string {
  // A wildcard bind address is not something a client can connect to; loopback is the best guess.
  let h = listener.host === '0.0.0.0' ? '127.0.0.1' : listener.host === '::' ? '::1' : listener.host;
  if (h.includes(':') && !h.startsWith('[')) h = `[${h}]`;
  return `http://${h}:${listener.port}/`;
}

function normaliseBaseUrl(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/**
 * True when anyone who can reach the client port can create an account. The server logs
 * OPEN_REGISTRATION_WARNING at start-up in that case.
 */
export function isOpenRegistrationWarningNeeded(config: Pick<HearthConfig, 'registration'>): boolean {
  return config.registration.enabled && config.registration.token === null;
}

export const OPEN_REGISTRATION_WARNING =
  'Open registration is enabled (registration.enabled: true, registration.token: null): anyone who can ' +
  'reach this server can create accounts. This is meant for local use only; set registration.token or ' +
  'registration.enabled: false before exposing the server.';
