// How the room owner's modules (src/cluster/room-owner.ts and the room-* modules it uses) answer
// for Redis: unreachable is the cluster's temporary trouble, a retryable 503 with the cause kept
// (nothing ran), never a 500.

import { MatrixError } from '../errors.js';

/** Redis unreachable is the cluster's temporary trouble: 503 with the cause kept, never a 500. */
export async function reachable<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = unavailable('the room\'s writer cannot be reached');
    (e as Error).cause = err;
    throw e;
  }
}

export function unavailable(why: string): MatrixError {
  return new MatrixError('M_UNKNOWN', `${why}; try again`, { retry_after_ms: 500 }, 503);
}

/** A wait in a retry loop; it keeps no process alive. */
export function sleep(ms: number): Promise<undefined> {
  return new Promise((r) => setTimeout(() => r(undefined), ms).unref());
}
