// Email validation by this homeserver (spec "Adding Account Administrative Contact
// Information", requestToken): a session per (client_secret, address), a mail with a link that
// carries the session's token, and the link's endpoint that marks the session validated.
//
// Invariants:
// - Sessions are in the store (src/store/threepid-types.ts), so every worker of a cluster sees
//   them: a link sent by one worker is followed on another.
// - A requestToken repeating a session's send_attempt (or a lower one) sends nothing and
//   answers the same sid (spec: idempotency of send_attempt). A higher one sends a new token,
//   which replaces the old: only the latest mail's link works.
// - A mail goes out before the session records its token and attempt, so a failed send leaves
//   the session as it was (a retry with the same send_attempt sends again).
// - Addresses are canonicalised (trimmed, lower case) before any lookup or storage.
// - The token is compared in constant time; a session is validated at most once, and is good
//   for the operation that needs it until it expires.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import type { ThreepidStore, ValidationSession } from '../store/threepid-types.js';
import type { Mailer } from './mailer.js';

export type TokenPurpose = 'register' | 'add' | 'reset';

export interface RequestTokenBody {
  client_secret: string;
  email: string;
  send_attempt: number;
  next_link?: string;
}

export interface ValidatedThreepid {
  medium: string;
  address: string;
  validatedAt: number;
}

// Spec: client_secret is [0-9a-zA-Z.=_-]{1,255}.
const CLIENT_SECRET_RE = /^[0-9a-zA-Z.=_-]{1,255}$/;
// Deliberately loose (RFC 5322 allows much), but one @, no spaces or control characters.
const EMAIL_RE = /^[^\s@<>()[\]\\,;:"\x00-\x1f\x7f]+@[^\s@<>()[\]\\,;:"\x00-\x1f\x7f]+\.[^\s@<>()[\]\\,;:"\x00-\x1f\x7f]+$/;

/** The address as stored and compared: trimmed, lower case (Synapse canonicalises so too). */
export function canonicalEmail(address: string): string {
  const a = address.trim().toLowerCase();
  if (a.length > 254 || !EMAIL_RE.test(a)) throw new MatrixError('M_INVALID_EMAIL', 'Invalid email address');
  return a;
}

export function checkClientSecret(secret: string): void {
  if (!CLIENT_SECRET_RE.test(secret)) throw new MatrixError('M_INVALID_PARAM', 'client_secret must be 1 to 255 characters of [0-9a-zA-Z.=_-]');
}

export interface EmailValidationDeps {
  store: { threepids: ThreepidStore };
  mailer: Mailer;
  /** Where the link points: public_baseurl with a trailing slash. */
  publicBaseUrl: string;
  appName: string;
  tokenLifetimeMs: number;
  logger: Logger;
  now?: () => number;
}

export const SUBMIT_TOKEN_PATH = '/_hearth/client/email/submit_token';

export class EmailValidation {
  private readonly now: () => number;

  constructor(private readonly d: EmailValidationDeps) {
    this.now = d.now ?? Date.now;
  }

  /** The URL a client may POST {sid, client_secret, token} to (the requestToken answer's submit_url). */
  get submitUrl(): string {
    return this.d.publicBaseUrl.replace(/\/$/, '') + SUBMIT_TOKEN_PATH;
  }

  /**
   * requestToken for `purpose`: checks the address against the accounts (in use, or not found
   * for a reset), then opens or continues a session and mails its link when send_attempt is new.
   */
  async requestToken(purpose: TokenPurpose, req: RequestTokenBody): Promise<{ sid: string; submit_url: string }> {
    checkClientSecret(req.client_secret);
    const address = canonicalEmail(req.email);
    const nextLink = req.next_link === undefined ? null : checkNextLink(req.next_link);
    const owner = await this.d.store.threepids.userForThreepid('email', address);
    if (purpose === 'reset' && owner === null) throw new MatrixError('M_THREEPID_NOT_FOUND', 'Email not found');
    if (purpose !== 'reset' && owner !== null) throw new MatrixError('M_THREEPID_IN_USE', 'Email is already in use');
    const now = this.now();
    const fresh: ValidationSession = {
      sid: randomBytes(12).toString('base64url'),
      medium: 'email',
      address,
      clientSecret: req.client_secret,
      // Nothing sent yet: any send_attempt (0 or more) sends.
      lastSendAttempt: -1,
      token: '',
      nextLink,
      validatedAt: null,
      createdAt: now,
      expiresAt: now + this.d.tokenLifetimeMs,
    };
    const session = await this.d.store.threepids.openValidationSession(fresh, now);
    if (req.send_attempt > session.lastSendAttempt) {
      const token = randomBytes(24).toString('base64url');
      await this.mail(purpose, address, session.sid, req.client_secret, token);
      await this.d.store.threepids.recordValidationSend(session.sid, { lastSendAttempt: req.send_attempt, token, nextLink });
    }
    return { sid: session.sid, submit_url: this.submitUrl };
  }

  /** The link (or submit_url) with the mailed token: marks the session validated; its next_link, if any. */
  async submit(sid: string, clientSecret: string, token: string): Promise<{ nextLink: string | null }> {
    const now = this.now();
    const session = await this.d.store.threepids.getValidationSession(sid, now);
    if (!session || !same(session.clientSecret, clientSecret)) throw new MatrixError('M_THREEPID_AUTH_FAILED', 'Unknown session');
    if (session.validatedAt === null) {
      if (session.token === '' || !same(session.token, token)) throw new MatrixError('M_THREEPID_AUTH_FAILED', 'Validation token not found or has expired');
      await this.d.store.threepids.markValidated(sid, now);
    }
    return { nextLink: session.nextLink };
  }

  /** The address a validated session proves; M_THREEPID_AUTH_FAILED otherwise. */
  async validated(creds: { sid?: unknown; client_secret?: unknown }): Promise<ValidatedThreepid> {
    if (typeof creds.sid !== 'string' || typeof creds.client_secret !== 'string') throw new MatrixError('M_MISSING_PARAM', 'threepid_creds needs sid and client_secret');
    const session = await this.d.store.threepids.getValidationSession(creds.sid, this.now());
    if (!session || !same(session.clientSecret, creds.client_secret) || session.validatedAt === null) {
      throw new MatrixError('M_THREEPID_AUTH_FAILED', 'No validated 3pid session found');
    }
    return { medium: session.medium, address: session.address, validatedAt: session.validatedAt };
  }

  private async mail(purpose: TokenPurpose, to: string, sid: string, clientSecret: string, token: string): Promise<void> {
    const link = `${this.submitUrl}?${new URLSearchParams({ token, client_secret: clientSecret, sid }).toString()}`;
    const app = this.d.appName;
    const what = purpose === 'register' ? `register an account on ${app}` : purpose === 'add' ? `add this address to your ${app} account` : `reset your ${app} password`;
    const subject = purpose === 'register' ? `[${app}] Validate your email` : purpose === 'add' ? `[${app}] Validate your email` : `[${app}] Password reset`;
    const text = `You have asked to ${what}.\n\nTo confirm, open this link:\n\n${link}\n\nIf this was not you, ignore this mail.\n`;
    const html = `<p>You have asked to ${escapeHtml(what)}.</p><p>To confirm, <a href="${escapeHtml(link)}">open this link</a>.</p><p>If this was not you, ignore this mail.</p>`;
    try {
      await this.d.mailer.send({ to, subject, text, html });
    } catch (err) {
      this.d.logger.warn({ err, sid }, 'could not send a validation mail');
      // The relay failed, not the client: a gateway error (502), as for other upstream failures.
      throw new MatrixError('M_UNKNOWN', 'An error was encountered when sending the email', {}, 502);
    }
  }
}

/** next_link must be an http(s) URL: it becomes a redirect target of our own page. */
function checkNextLink(link: string): string {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new MatrixError('M_INVALID_PARAM', 'next_link must be a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MatrixError('M_INVALID_PARAM', 'next_link must be an http or https URL');
  return link;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
