// Questions a local client asks about another server: a remote user's profile
// (/query/profile) and another server's public room list (/publicRooms).
//
// Invariants:
// - The destination comes from the client (a user ID's server, `?server=`): it must be a valid
//   server name, and the request goes through the federation client, hence the outbound guard
//   (refused IP ranges, checked on the address connected to) and the federation policy.
// - Answers are taken apart, never passed on whole: only fields of the right type reach the
//   client, and answers are size-bounded.
// - A peer's 404 is the client's 404; any other failure (refusal, bad answer, unreachable) is a
//   502, never a 500.

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { isValidServerName, isValidUserId, serverNameOf } from '../protocol/ids.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import { FederationError, type FederationClient } from './client.js';

export interface RemoteProfile {
  displayname: string | null;
  avatarUrl: string | null;
}

export interface RemotePublicRoomsQuery {
  limit: number;
  since?: string;
  term?: string;
  roomTypes?: Array<string | null>;
  includeAllNetworks?: boolean;
  thirdPartyInstanceId?: string;
}

export class RemoteQueries {
  constructor(private readonly d: { client: Pick<FederationClient, 'request'>; logger: Logger }) {}

  async profile(userId: string): Promise<RemoteProfile> {
    const server = serverNameOf(userId);
    if (!isValidUserId(userId) || server === undefined || !isValidServerName(server)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user ID');
    const res = await this.ask(server, 'profile', { method: 'GET', path: `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent(userId)}`, maxResponseBytes: 64 * 1024, timeoutMs: 15_000 });
    if (!isJsonObject(res)) throw new MatrixError('M_UNKNOWN', `${server} answered the profile query with something that is not a profile`, {}, 502);
    return {
      displayname: typeof res.displayname === 'string' && res.displayname !== '' ? res.displayname : null,
      avatarUrl: typeof res.avatar_url === 'string' && res.avatar_url !== '' ? res.avatar_url : null,
    };
  }

  async publicRooms(server: string, q: RemotePublicRoomsQuery): Promise<JsonObject> {
    if (!isValidServerName(server)) throw new MatrixError('M_INVALID_PARAM', 'Invalid server name');
    const filter: JsonObject = {};
    if (q.term !== undefined) filter.generic_search_term = q.term;
    if (q.roomTypes !== undefined) filter.room_types = q.roomTypes;
    const body: JsonObject = { limit: q.limit };
    if (q.since !== undefined) body.since = q.since;
    if (Object.keys(filter).length > 0) body.filter = filter;
    if (q.includeAllNetworks) body.include_all_networks = true;
    if (q.thirdPartyInstanceId !== undefined) body.third_party_instance_id = q.thirdPartyInstanceId;
    const req = { maxResponseBytes: 4 * 1024 * 1024, timeoutMs: 20_000 };
    let res: JsonValue;
    // The GET form is the one every server has; POST is needed only for a filter.
    if (body.filter === undefined && body.third_party_instance_id === undefined && !q.includeAllNetworks) {
      const query = [`limit=${q.limit}`, ...(q.since !== undefined ? [`since=${encodeURIComponent(q.since)}`] : [])].join('&');
      res = await this.ask(server, 'public rooms', { ...req, method: 'GET', path: `/_matrix/federation/v1/publicRooms?${query}` });
    } else {
      res = await this.ask(server, 'public rooms', { ...req, method: 'POST', path: '/_matrix/federation/v1/publicRooms', body });
    }
    if (!isJsonObject(res) || !Array.isArray(res.chunk)) throw new MatrixError('M_UNKNOWN', `${server} answered with something that is not a room list`, {}, 502);
    const out: JsonObject = { chunk: res.chunk.filter((r): r is JsonObject => isJsonObject(r) && typeof r.room_id === 'string').slice(0, Math.max(q.limit, 1) * 2) };
    for (const k of ['next_batch', 'prev_batch'] as const) if (typeof res[k] === 'string') out[k] = res[k];
    if (typeof res.total_room_count_estimate === 'number' && Number.isSafeInteger(res.total_room_count_estimate)) out.total_room_count_estimate = res.total_room_count_estimate;
    return out;
  }

  private async ask(server: string, what: string, req: Parameters<FederationClient['request']>[1]): Promise<JsonValue> {
    try {
      return await this.d.client.request(server, req);
    } catch (err) {
      this.d.logger.warn({ err, server }, `remote ${what} query failed`);
      if (err instanceof FederationError && err.status === 404) throw new MatrixError('M_NOT_FOUND', `${server} does not know it`);
      if (err instanceof MatrixError) throw err;
      throw new MatrixError('M_UNKNOWN', `Could not ask ${server}: ${(err as Error).message}`, {}, 502);
    }
  }
}
