// TURN credentials for GET /voip/turnServer, as Synapse hands them out.
//
// With a shared secret: the TURN REST API scheme coturn's use-auth-secret / static-auth-secret
// checks (draft-uberti-behave-turn-rest): username = "<expiry unix seconds>:<user id>",
// password = base64(HMAC-SHA1(secret, username)) with standard padding. Without one, static
// username/password. Neither (or no URIs): no TURN server to offer.

import { createHmac } from 'node:crypto';

export interface TurnConfig {
  uris: readonly string[];
  shared_secret: string | null;
  username: string | null;
  password: string | null;
  user_lifetime_ms: number;
  allow_guests: boolean;
}

export interface TurnCredentials {
  username: string;
  password: string;
  uris: string[];
  /** Seconds the credentials are valid for. */
  ttl: number;
}

/** Credentials for `userId` at `nowMs`, or null when no TURN server is configured. */
export function turnCredentials(config: TurnConfig, userId: string, nowMs: number): TurnCredentials | null {
  if (config.uris.length === 0) return null;
  const ttl = Math.floor(config.user_lifetime_ms / 1000);
  if (config.shared_secret !== null) {
    const expiry = Math.floor((nowMs + config.user_lifetime_ms) / 1000);
    const username = `${expiry}:${userId}`;
    const password = createHmac('sha1', config.shared_secret).update(username).digest('base64');
    return { username, password, uris: [...config.uris], ttl };
  }
  if (config.username !== null && config.password !== null) {
    return { username: config.username, password: config.password, uris: [...config.uris], ttl };
  }
  return null;
}
