// The config's delivery sections: sync, presence, push, application services and TURN
// (composed in src/config/schema.ts). Invariants: every object is strict and every section
// prefaults to `{}` (schema.ts's header); sync.max_timeout_ms bounds limits.http.idle_timeout_ms
// (checked in schema.ts).

import { z } from 'zod';
import { filePath } from './primitives.js';

export const syncSection = z
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
  .prefault({});

export const presenceSection = z
  .strictObject({
    enabled: z.boolean().default(true),
    // No activity (send, or a sync with set_presence=online) for this long: unavailable.
    idle_timeout_ms: z.int().min(1000).default(300000),
    // No sync for this long: offline (the client went away).
    offline_timeout_ms: z.int().min(1000).default(30000),
  })
  .prefault({});

export const pushSection = z
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
  .prefault({});

// Application services (bridges, bots): paths to their registration YAML files (the
// Application Service API's format). Each is read and checked at start-up (src/appservice).
export const appServicesSection = z.array(filePath).max(100).default([]);

export const appServiceDeliverySection = z
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
  .prefault({});

// TURN servers handed to clients by GET /voip/turnServer (for VoIP calls).
export const turnSection = z
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
  .prefault({});
