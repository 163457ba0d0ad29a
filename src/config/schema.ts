// The shape of hearth's YAML config. Keys stay snake_case in the parsed type so that code, the
// docs and config.example.yaml all use one spelling. Every object is strict: a typo in a key is
// a start-up error rather than a silently ignored setting. Every section has a prefault of `{}`
// so an absent section (or one whose keys are all commented out) takes every default.
//
// config.example.yaml documents every key here; spec/config checks the two agree.
//
// The sections live in sections/ (network, accounts, storage, delivery; shared value schemas in
// primitives.ts); this file composes them and holds the rules that span sections.

import { z } from 'zod';
import { DEFAULT_ROOM_VERSION, SUPPORTED_ROOM_VERSIONS, type RoomVersion } from '../protocol/room-versions.js';
import { tryDecodeBase64 } from '../protocol/base64.js';
import { filePath, host, port, SERVER_NAME_RE } from './sections/primitives.js';
import { listenersSection, federationSection, limitsSection, websocketSection, outboundSection } from './sections/network.js';
import { registrationSection, casSection, recaptchaSection, identitySection, emailSection } from './sections/accounts.js';
import { storageSection, clusterSection, mediaSection, WORKER_ROLES } from './sections/storage.js';
import { syncSection, presenceSection, pushSection, appServicesSection, appServiceDeliverySection, turnSection } from './sections/delivery.js';

export { WORKER_ROLES } from './sections/storage.js';

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
  listeners: listenersSection,
  // The version of rooms created without one (createRoom's room_version) and the capability's
  // default. The spec recommends 10 ("Servers SHOULD use room version 10"); 12 is Hearth's
  // choice, so a server whose peers lack v12 (older servers, SyTest's federation peer) sets 10.
  default_room_version: z.enum(SUPPORTED_ROOM_VERSIONS as [RoomVersion, ...RoomVersion[]]).default(DEFAULT_ROOM_VERSION),
  storage: storageSection,
  registration: registrationSection,
  cas: casSection,
  recaptcha: recaptchaSection,
  signing_key_path: filePath.default('./data/signing.key'),
  // Public keys of rotated-out signing keys, served as old_verify_keys (valid for events before expired_ts).
  old_signing_keys: z
    .record(z.string().regex(/^ed25519:[A-Za-z0-9_]+$/, { error: 'must be ed25519:<version>' }), z.strictObject({ key: z.string().refine((k) => tryDecodeBase64(k)?.length === 32, { error: 'must be a base64 Ed25519 public key' }), expired_ts: z.int().min(0) }))
    .default({}),
  federation: federationSection,
  limits: limitsSection,
  sync: syncSection,
  websocket: websocketSection,
  presence: presenceSection,
  push: pushSection,
  app_services: appServicesSection,
  app_service_delivery: appServiceDeliverySection,
  cluster: clusterSection,
  outbound: outboundSection,
  identity: identitySection,
  email: emailSection,
  media: mediaSection,
  turn: turnSection,
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
