// User-Interactive Authentication (spec "User-Interactive Authentication API"). Sessions live for
// a short time in an ExpiringMap: this process's memory on a single node (a restart only means the
// client starts again with a fresh 401), Redis in a cluster, so a flow begun on one process can be
// completed on another. A session keeps the expiry it was created with; completing a stage does
// not extend it.
//
// A session may carry data for its operation (registration keeps the first request's parameters
// and, once done, the user it created, so a client that continues with only `auth`, or retries a
// completed session, gets the account it asked for). The data is stored with the session, so it
// must serialise as JSON. Such sessions opt in to staying usable after completion until they
// expire; every other session ends the moment it succeeds.
//
// Some stages are completed outside the request (single sign-on, the browser fallback pages):
// completeStage() records the stage and the user it authenticated in the session; the next
// request of the session counts it, but only for the user the operation is for (403 otherwise),
// so an SSO login as somebody else never authorises another user's operation.

import { createHash, randomBytes } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import { canonicalJson } from '../protocol/canonical-json.js';
import type { ExpiringMap } from '../cluster/shared-state.js';

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
  completed: string[];
  expires: number;
  /** Digest of the user's purpose and the request it began with (see UiaRequest). */
  binding: string;
  /** Set once a flow completed, for sessions kept after completion. */
  done: boolean;
  data: unknown;
  /** Stages completed outside the request (completeStage), with the user each authenticated. */
  external?: Record<string, string | null>;
}

export interface UiaCheckOptions {
  /** Keep the session after completion: a retry with it succeeds again without stages. */
  keepCompleted?: boolean;
  /**
   * Called with the session's current data once the session is known and bound to this request,
   * before stages are verified; what it returns becomes the session's data.
   */
  update?: (data: unknown) => unknown;
  /**
   * The user the operation is for. A stage completed outside the request that authenticated
   * someone else fails the request with 403. Unset (registration): anyone's completion counts.
   */
  user?: string;
  /** Stages that may be completed although no flow needs them (they show in `completed`). */
  extraStages?: string[];
}

const SESSION_TTL_MS = 10 * 60_000;

export class UiaSessions {
  constructor(
    private readonly sessions: ExpiringMap,
    private readonly now: () => number = Date.now,
  ) {}

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
    const sessionId = typeof auth?.session === 'string' ? auth.session : undefined;
    const binding = digestOf(purpose, request);
    let session = sessionId ? await this.load(sessionId) : undefined;
    if (session && session.binding !== binding) {
      throw new MatrixError('M_FORBIDDEN', 'Requested operation has changed during the UI authentication session', {}, 403);
    }
    const id = session && sessionId ? sessionId : randomBytes(16).toString('base64url');
    if (!session) {
      session = { completed: [], expires: this.now() + SESSION_TTL_MS, binding, done: false, data: undefined };
      if (!opts.update) await this.save(id, session);
    }
    if (opts.update) {
      session.data = opts.update(session.data);
      await this.save(id, session);
    }
    if (session.done) return id;
    for (const [stage, who] of Object.entries(session.external ?? {})) {
      if (opts.user !== undefined && who !== null && who !== opts.user) throw new UiaWrongUserError();
      if (!session.completed.includes(stage)) session.completed.push(stage);
    }
    const challenge = () => ({
      flows: flows.map((stages) => ({ stages })),
      params,
      session: id,
      completed: [...session!.completed],
    });
    if (auth && typeof auth.type === 'string') {
      const stage = auth.type;
      if (!flows.some((f) => f.includes(stage)) && !opts.extraStages?.includes(stage)) {
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
      if (ok && !session.completed.includes(stage)) {
        session.completed.push(stage);
        await this.save(id, session);
      }
    }
    if (flows.some((f) => f.every((s) => session!.completed.includes(s)))) {
      // take, not delete: of two processes finishing one session at once, only one proceeds.
      if ((await this.sessions.take(id)) === undefined) {
        // A kept session that another request completed meanwhile answers as completed.
        const again = opts.keepCompleted ? await this.load(id) : undefined;
        if (again?.done) return id;
        throw new MatrixError('M_FORBIDDEN', 'The UI authentication session was already used', {}, 403);
      }
      if (opts.keepCompleted) {
        session.done = true;
        await this.save(id, session);
      }
      return id;
    }
    throw new UiaRequiredError(challenge());
  }

  /**
   * Records a stage completed outside any request of the session (SSO, a fallback page), and the
   * user it authenticated (null for stages that prove no identity, such as a captcha). False
   * when there is no live session under that id.
   */
  async completeStage(sessionId: string, stage: string, userId: string | null): Promise<boolean> {
    const s = await this.load(sessionId);
    if (!s || s.done) return false;
    s.external = { ...(s.external ?? {}), [stage]: userId };
    await this.save(sessionId, s);
    return true;
  }

  /** The data of a live session, if there is one under that id. */
  async dataOf(sessionId: string | undefined): Promise<unknown> {
    if (sessionId === undefined) return undefined;
    return (await this.load(sessionId))?.data;
  }

  /** Replaces a live session's data (e.g. with the outcome of the operation it authorised). */
  async setData(sessionId: string, data: unknown): Promise<void> {
    const s = await this.load(sessionId);
    if (!s) return;
    s.data = data;
    await this.save(sessionId, s);
  }

  private async load(id: string): Promise<Session | undefined> {
    const raw = await this.sessions.get(id);
    if (raw === undefined) return undefined;
    const s = JSON.parse(raw) as Session;
    return s.expires < this.now() ? undefined : s;
  }

  private async save(id: string, session: Session): Promise<void> {
    await this.sessions.set(id, JSON.stringify(session), Math.max(1, session.expires - this.now()));
  }
}
