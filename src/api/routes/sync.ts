// /sync (long-poll transport over SyncService) and filter storage.

import { MatrixError } from '../../errors.js';
import { ParkedSync } from '../../sync/parked-sync.js';
import { body, type Ctx } from '../middleware.js';
import { param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';

type SyncRouteDeps = Pick<ApiServices, 'admission' | 'connections' | 'maxSyncTimeoutMs' | 'presence' | 'sync' | 'syncFilters'>;

export function syncRoutes(r: ClientRoutes, s: SyncRouteDeps): void {
  r.authed('get', '/sync', async (ctx, auth) => {
    const filterParam = queryString(ctx, 'filter');
    const filter = await s.syncFilters.resolve(auth.userId, filterParam);
    const timeoutMs = queryInt(ctx, 'timeout', 0, 0, s.maxSyncTimeoutMs);
    const setPresence = presenceParam(queryString(ctx, 'set_presence'));
    // Every /sync is a catch-up until it has its answer or parks waiting for one (503 past capacity).
    const release = s.admission.enterCatchup();
    s.presence.syncing(auth.userId, setPresence);
    s.presence.connectionOpened(auth.userId);
    s.connections.pollStarted(auth.userId);
    const end = new PollEnd(s, auth.userId, release);
    // Dropped by the service once called, as PollEnd drops `release`: a parked poll keeps neither.
    const onPark = (): void => end.parked();
    let parked = false;
    try {
      const out = await s.sync.syncOrPark({
        userId: auth.userId,
        deviceId: auth.deviceId,
        // A copy: the query's value is a slice of the URL and would keep it alive while parked.
        since: detached(queryString(ctx, 'since')) || undefined,
        filter,
        timeoutMs,
        fullState: queryString(ctx, 'full_state') === 'true',
        delivered: filter.deliveredOptIn,
        onPark,
      });
      if (out instanceof ParkedSync) {
        // Answered when it settles, with no frame of this request waiting meanwhile; the
        // transport cancels it when the client goes.
        ctx.defer(out, end);
        parked = true;
      } else ctx.body = out;
    } finally {
      if (!parked) end.ended();
    }
  }, { shed: 'catchup' });

  r.authed('post', '/user/:userId/filter', async (ctx, auth) => {
    requireSelf(ctx, auth.userId);
    // Stored exactly as received (canonical form of the same JSON) so GET returns it unchanged.
    ctx.body = { filter_id: await s.syncFilters.create(auth.userId, body(ctx)) };
  });

  r.authed('get', '/user/:userId/filter/:filterId', async (ctx, auth) => {
    requireSelf(ctx, auth.userId);
    ctx.body = await s.syncFilters.get(auth.userId, param(ctx, 'filterId'));
  });
}

/** A long-poll's end accounting, run when its answer settles (parked) or the handler returns. */
class PollEnd {
  constructor(
    private readonly s: SyncRouteDeps,
    private readonly userId: string,
    /** The catch-up slot, until the poll parks or ends (the admission's closures, freed then). */
    private release: (() => void) | undefined,
  ) {}

  parked(): void {
    this.release?.();
    this.release = undefined;
  }

  ended(): void {
    this.parked();
    this.s.connections.pollEnded(this.userId);
    this.s.presence.connectionClosed(this.userId);
  }
}

function detached(s: string | undefined): string | undefined {
  return s === undefined ? undefined : (JSON.parse(JSON.stringify(s)) as string);
}

function presenceParam(v: string | undefined): 'online' | 'offline' | 'unavailable' | undefined {
  if (v === undefined) return undefined;
  if (v === 'online' || v === 'offline' || v === 'unavailable') return v;
  throw new MatrixError('M_INVALID_PARAM', 'set_presence must be online, offline or unavailable');
}

function requireSelf(ctx: Ctx, userId: string): void {
  if (param(ctx, 'userId') !== userId) throw new MatrixError('M_FORBIDDEN', 'Cannot access filters of other users');
}
