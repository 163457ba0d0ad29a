// MSC2753 peeking (behind experimental.msc2753_peeking): a device starts a peek into a local
// world_readable room and the room then appears in that device's /sync under rooms.peek, built
// like a joined room (sync-service.ts, peek-sections.ts), until the device unpeeks or the user's
// membership in the room changes.
//
// Invariants:
// - Only rooms this server is in (a local member is joined, so its copy of the state is live)
//   can be peeked: peeking through other servers is MSC2444, not implemented; such a room is
//   refused with 404 M_NOT_FOUND, as a room this server does not know.
// - Only rooms whose current history_visibility is world_readable (403 M_FORBIDDEN otherwise);
//   what a peek shows is still filtered event by event by the visibility rules, so a room
//   that stops being world_readable shows the peeker nothing newer.
// - A user already joined gets 400 M_BAD_STATE (MSC2753); so does unpeeking a room the device
//   is not peeking into.
// - A peek is per device and durable (src/store/peek-types.ts); the sync read model caches it.
// - Peeks do not expire here (the MSC lets the server pick a lifetime; none is enforced yet), so
//   the response carries no peek_expiry_ts.

import { MatrixError } from '../errors.js';
import { serverNameOf } from '../protocol/ids.js';
import type { PeekRecord } from '../store/peek-types.js';
import type { Store } from '../store/types.js';
import type { ReadModel } from './read-model/read-model.js';

/** What /sync reads: a device's peeks. */
export interface PeekSource {
  forDevice(userId: string, deviceId: string): Promise<PeekRecord[]>;
  /** The same source without the read model (verification, tests). */
  withoutCache(): PeekSource;
}

export class PeekService implements PeekSource {
  constructor(
    private readonly store: Pick<Store, 'rooms' | 'peeks'>,
    private readonly serverName: string,
    /** Room ID or alias to room ID (aliases on other servers through the directory query). */
    private readonly resolveRoom: (roomIdOrAlias: string) => Promise<string>,
    private readonly model?: ReadModel,
  ) {}

  /** Starts (or renews) the device's peek; returns the room ID. */
  async peek(userId: string, deviceId: string, roomIdOrAlias: string): Promise<string> {
    const roomId = await this.resolveRoom(roomIdOrAlias);
    const state = await this.store.rooms.getCurrentState(roomId);
    const local = state.length > 0 && (await this.store.rooms.getRoomMembers(roomId, ['join'])).some((m) => serverNameOf(m.userId) === this.serverName);
    if (!local) throw new MatrixError('M_NOT_FOUND', 'Room not known to this server (peeking through other servers is not supported)');
    if ((await this.store.rooms.getMembership(roomId, userId))?.membership === 'join') throw new MatrixError('M_BAD_STATE', 'Already joined to this room');
    const hv = state.find((e) => e.type === 'm.room.history_visibility' && e.stateKey === '');
    const ev = hv ? await this.store.rooms.getEvent(hv.eventId) : null;
    if (ev?.pdu.content.history_visibility !== 'world_readable') throw new MatrixError('M_FORBIDDEN', 'Room is not world_readable: it cannot be peeked into');
    await this.store.peeks.startPeek(userId, deviceId, roomId);
    return roomId;
  }

  async unpeek(userId: string, deviceId: string, roomId: string): Promise<void> {
    if (!roomId.startsWith('!')) throw new MatrixError('M_INVALID_PARAM', 'Not a room ID');
    if ((await this.store.peeks.endPeek(userId, deviceId, roomId)) === null) throw new MatrixError('M_BAD_STATE', 'Not peeking into this room');
  }

  forDevice(userId: string, deviceId: string): Promise<PeekRecord[]> {
    const load = () => this.store.peeks.getPeeks(userId, deviceId);
    return this.model ? this.model.devicePeeks(userId, deviceId, load) : load();
  }

  withoutCache(): PeekSource {
    return new PeekService(this.store, this.serverName, this.resolveRoom);
  }
}
