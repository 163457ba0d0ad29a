// User-Interactive Authentication (spec "User-Interactive Authentication API"). Sessions live in
// memory for a short time: a client completes a flow within seconds, and a restart only means it
// starts again with a fresh 401.
//
// A session may carry data for its operation (registration keeps the first request's parameters
// and, once done, the user it created, so a client that continues with only `auth`, or retries a
// completed session, gets the account it asked for). Such sessions opt in to staying usable after
// completion until they expire; every other session ends the moment it succeeds.

import { createHash, randomBytes } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import { canonicalJson } from '../protocol/canonical-json.js';

export class UiaRequiredError extends MatrixError {
  constructor(
    readonly body: { flows: Array<{ stages: string[] }>; params: JsonObject; session: string; completed: string[] },
    failure?: { errcode: 'M_FORBIDDEN' | 'M_UNAUTHORIZED' | 'M_UNKNOWN'; error: string },
  ) {
    super(failure?.errcode ?? 'M_UNAUTHORIZED', failure?.error ?? 'Additional authentication required', {}, 401);
    this.failure = failure;
  }
  private readonly failure?: { errcode: string; error: string };

  // The first challenge carries no errcode: some clients treat an errcode as a failed stage.
  override toJSON(): Record<string, unknown> {
    return this.failure ? { ...this.body, errcode: this.failure.errcode, error: this.failure.error } : { ...this.body };
  }
}

/**
 * A stage that authenticates someone other than the user making the request: not a failed
 * attempt to retry (401) but a request that can never succeed (403), as in Synapse.
 */
export class UiaWrongUserError extends MatrixError {
  constructor() {
    super('M_FORBIDDEN', 'Authentication must be for the logged-in user', {}, 403);
  }
}

/**
 * What a session is bound to: the method, the path and the body without `auth` (spec: the
 * client must repeat the same request; a session begun to delete device A cannot delete B).
 * Only a digest is kept, so a registration password is not held in memory.
 */
export interface UiaRequest {
  method: string;
  path: string;
  body: JsonObject;
}

function digestOf(purpose: string, req: UiaRequest): string {
  const rest: JsonObject = Object.create(null) as JsonObject;
  for (const k of Object.keys(req.body)) if (k !== 'auth') rest[k] = req.body[k];
  return createHash('sha256').update(`${purpose}\n${req.method}\n${req.path}\n${canonicalJson(rest)}`).digest('base64');
}

/** Verifies one stage's auth dict; returns true when complete, throws MatrixError to fail it. */
export type StageVerifier = (stage: string, auth: JsonObject) => Promise<boolean>;

interface Session {
  completed: Set<string>;
  expires: number;
  /** Digest of the user's purpose and the request it began with (see UiaRequest). */
  binding: string;
  /** Set once a flow completed, for sessions kept after completion. */
  done: boolean;
  data: unknown;
}

export interface UiaCheckOptions {
  /** Keep the session after completion: a retry with it succeeds again without stages. */
  keepCompleted?: boolean;
  /**
   * Called with the session's current data once the session is known and bound to this request,
   * before stages are verified; what it returns becomes the session's data.
   */
  update?: (data: unknown) => unknown;
}

const SESSION_TTL_MS = 10 * 60_000;

export class UiaSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Resolves when `auth` completes one of `flows`; otherwise throws UiaRequiredError with the
   * state the client needs to continue. `purpose` names the operation and its user; a session
   * is only good for the same purpose and the same request (403 otherwise).
   */
  async check(
    purpose: string,
    request: UiaRequest,
    auth: JsonObject | undefined,
    flows: string[][],
    verify: StageVerifier,
    params: JsonObject = {},
    opts: UiaCheckOptions = {},
  ): Promise<string> {
    this.sweep();
    const sessionId = typeof auth?.session === 'string' ? auth.session : undefined;
    const binding = digestOf(purpose, request);
    let session = sessionId ? this.sessions.get(sessionId) : undefined;
    if (session && session.binding !== binding) {
      throw new MatrixError('M_FORBIDDEN', 'Requested operation has changed during the UI authentication session', {}, 403);
    }
    const id = session && sessionId ? sessionId : randomBytes(16).toString('base64url');
    if (!session) {
      session = { completed: new Set(), expires: this.now() + SESSION_TTL_MS, binding, done: false, data: undefined };
      this.sessions.set(id, session);
    }
    if (opts.update) session.data = opts.update(session.data);
    if (session.done) return id;
    const challenge = () => ({
      flows: flows.map((stages) => ({ stages })),
      params,
      session: id,
      completed: [...session!.completed],
    });
    if (auth && typeof auth.type === 'string') {
      const stage = auth.type;
      if (!flows.some((f) => f.includes(stage))) {
        throw new UiaRequiredError(challenge(), { errcode: 'M_UNKNOWN', error: `Unsupported auth stage ${stage}` });
      }
      let ok = false;
      try {
        ok = await verify(stage, auth);
      } catch (err) {
        if (err instanceof MatrixError && err.status !== 429 && !(err instanceof UiaWrongUserError)) {
          throw new UiaRequiredError(challenge(), { errcode: 'M_FORBIDDEN', error: err.message });
        }
        throw err;
      }
      if (ok) session.completed.add(stage);
    }
    if (flows.some((f) => f.every((s) => session!.completed.has(s)))) {
      if (opts.keepCompleted) session.done = true;
      else this.sessions.delete(id);
      return id;
    }
    throw new UiaRequiredError(challenge());
  }

  /** The data of a live session, if there is one under that id. */
  dataOf(sessionId: string | undefined): unknown {
    if (sessionId === undefined) return undefined;
    const s = this.sessions.get(sessionId);
    return s && s.expires >= this.now() ? s.data : undefined;
  }

  /** Replaces a live session's data (e.g. with the outcome of the operation it authorised). */
  setData(sessionId: string, data: unknown): void {
    const s = this.sessions.get(sessionId);
    if (s) s.data = data;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (s.expires < now) this.sessions.delete(id);
  }
}
