// The one error shape of the Client-Server and Server-Server APIs. Every failure a client can
// cause is a MatrixError; the error middleware renders it, and anything else becomes a logged
// M_UNKNOWN 500 (a bug by definition).
// It lives outside src/api so that domain code (room, e2ee, users, sync) can raise it without
// depending on the HTTP layer.

export const ERRCODE_STATUS = {
  M_FORBIDDEN: 403,
  M_UNKNOWN_TOKEN: 401,
  M_MISSING_TOKEN: 401,
  M_USER_LOCKED: 401,
  M_BAD_JSON: 400,
  M_NOT_JSON: 400,
  M_NOT_FOUND: 404,
  M_LIMIT_EXCEEDED: 429,
  M_UNRECOGNIZED: 404,
  M_UNKNOWN: 400,
  M_UNAUTHORIZED: 401,
  M_USER_DEACTIVATED: 403,
  M_USER_IN_USE: 400,
  M_INVALID_USERNAME: 400,
  M_ROOM_IN_USE: 400,
  M_INVALID_ROOM_STATE: 400,
  M_THREEPID_IN_USE: 400,
  M_THREEPID_NOT_FOUND: 400,
  M_THREEPID_AUTH_FAILED: 400,
  M_THREEPID_DENIED: 403,
  M_THREEPID_MEDIUM_NOT_SUPPORTED: 400,
  M_INVALID_EMAIL: 400,
  M_SERVER_NOT_TRUSTED: 400,
  M_UNSUPPORTED_ROOM_VERSION: 400,
  M_INCOMPATIBLE_ROOM_VERSION: 400,
  M_BAD_STATE: 400,
  M_GUEST_ACCESS_FORBIDDEN: 403,
  M_CAPTCHA_NEEDED: 400,
  M_CAPTCHA_INVALID: 400,
  M_MISSING_PARAM: 400,
  M_INVALID_PARAM: 400,
  M_TOO_LARGE: 413,
  M_EXCLUSIVE: 400,
  M_RESOURCE_LIMIT_EXCEEDED: 403,
  M_CANNOT_LEAVE_SERVER_NOTICE_ROOM: 403,
  M_WEAK_PASSWORD: 400,
  M_WRONG_ROOM_KEYS_VERSION: 403,
  M_NOT_YET_UPLOADED: 504,
  M_CANNOT_OVERWRITE_MEDIA: 409,
  M_UNABLE_TO_AUTHORISE_JOIN: 400,
  M_UNABLE_TO_GRANT_JOIN: 502,
  M_UNKNOWN_POS: 400,
  M_BAD_ALIAS: 400,
  M_INVALID_SIGNATURE: 400,
  // POST /appservice/{id}/ping (an application service testing the server's link to it).
  M_URL_NOT_SET: 400,
  M_BAD_STATUS: 502,
  M_CONNECTION_FAILED: 502,
  M_CONNECTION_TIMEOUT: 504,
} as const;

export type Errcode = keyof typeof ERRCODE_STATUS;

export class MatrixError extends Error {
  readonly errcode: Errcode;
  readonly status: number;
  /** Extra top-level fields of the error body (e.g. retry_after_ms, UIA flows). */
  readonly extra: Record<string, unknown>;

  constructor(errcode: Errcode, message: string, extra: Record<string, unknown> = {}, status?: number) {
    super(message);
    this.name = 'MatrixError';
    this.errcode = errcode;
    this.status = status ?? ERRCODE_STATUS[errcode];
    this.extra = extra;
  }

  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const forbidden = (msg: string): MatrixError => new MatrixError('M_FORBIDDEN', msg);
export const notFound = (msg: string): MatrixError => new MatrixError('M_NOT_FOUND', msg);
export const badJson = (msg: string): MatrixError => new MatrixError('M_BAD_JSON', msg);
export const missingParam = (msg: string): MatrixError => new MatrixError('M_MISSING_PARAM', msg);
export const invalidParam = (msg: string): MatrixError => new MatrixError('M_INVALID_PARAM', msg);
