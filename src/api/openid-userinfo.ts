// GET /_matrix/federation/v1/openid/userinfo on the client listener. The spec puts the lookup in
// the Server-Server API, but the third parties that call it (integration managers, widget hosts)
// find a homeserver through its client URL, and Synapse serves it there too (its `openid`
// listener resource sits beside `client`); SyTest calls it on the client port.
//
// Invariants: HTTP only, outside the route table, so a socket request frame never reaches it (its
// 401 M_UNKNOWN_TOKEN would read there as the socket's own token revoked); it reveals nothing but
// the user ID (`sub`) an unexpired OpenID token was issued to, as the federation listener's copy.

import type { Query } from './handlers.js';

export const OPENID_USERINFO_PATH = '/_matrix/federation/v1/openid/userinfo';
const MAX_TOKEN_LENGTH = 1024;

/** What the client listener answers for this path (null: another path or method, not ours). */
export type OpenIdUserInfo = (method: string, path: string, query: Query) => Promise<{ status: number; body: Record<string, string> } | null>;

export function openIdUserInfo(openIdUser: (token: string) => Promise<string | null>): OpenIdUserInfo {
  return async (method, path, query): Promise<{ status: number; body: Record<string, string> } | null> => {
    if (path !== OPENID_USERINFO_PATH || (method !== 'GET' && method !== 'HEAD')) return null;
    const token = query.access_token;
    const sub = typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH ? await openIdUser(token) : null;
    const body: Record<string, string> = sub === null ? { errcode: 'M_UNKNOWN_TOKEN', error: 'Access token unknown or expired' } : { sub };
    return { status: sub === null ? 401 : 200, body };
  };
}
