// Who a request acts as, once its access token is checked. Transports (HTTP, socket frames) and
// domain services share this shape, so it lives with accounts rather than in the API layer.

export interface AuthInfo {
  userId: string;
  deviceId: string;
  tokenHash: string;
  /** A guest account: only the routes guests may use (GUEST_ROUTES in src/api/routing.ts). */
  isGuest: boolean;
  /** Set when an application service's as_token made the request (masquerading as userId). */
  appServiceId?: string;
  /** The AS's own user, or an AS registered with rate_limited: false. */
  rateLimitExempt?: boolean;
}
