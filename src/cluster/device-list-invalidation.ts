// Remote users' device-list caches (src/federation/remote-devices.ts) across the workers of a
// cluster: each worker caches the lists its clients asked for, but an m.device_list_update (or
// m.signing_key_update) reaches one worker only, and the membership hook that drops a list once
// no room is shared any more runs only on the worker that stored the membership event.
//
// Invariants:
// - An update applied on one worker is announced on the broadcast (Redis pub/sub, the mechanism
//   socket revocation and push wake-ups use); every other worker drops that user's list and its
//   fetches in flight, and fetches it again when asked. The announcing worker keeps its own copy
//   (it is current). Announcements are not change records on purpose: a resync that fills a
//   cache also writes a device_list record (for local clients' /sync), and dropping on those
//   would make workers invalidate each other's refetches in turn.
// - Every accepted membership event reaches every worker through the replication feed, which
//   runs the membership check there too (on the storing worker, a second run finds nothing left
//   to drop). A reset of the feed (records lost with Redis) drops every list: announcements sent
//   meanwhile may be lost as well.
// - A lost announcement leaves a list stale for at most the cache's TTL (an hour).

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isJsonObject, parseTrustedJson } from '../protocol/canonical-json.js';
import type { ChangeRecord } from '../store/change-types.js';
import type { RemoteDeviceLists } from '../federation/remote-devices.js';
import type { Broadcast } from './shared-state.js';

const CHANNEL = 'remote-device-lists';

type Lists = Pick<RemoteDeviceLists, 'dropLists' | 'dropAll' | 'membershipChanged' | 'onUpdated'>;

export class DeviceListInvalidation {
  /** Tells this process's announcements from the others' (a broadcast reaches its sender too). */
  private readonly instance = randomBytes(9).toString('base64url');
  /** Announcements received from other workers (tests, metrics). */
  received = 0;

  constructor(
    private readonly broadcast: Broadcast,
    private readonly lists: Lists,
    private readonly logger: Logger,
  ) {}

  /** Subscribes and starts announcing; `onChanges` registers a listener on the replication feed. */
  async start(onChanges: (listener: (changes: ChangeRecord[]) => void) => void): Promise<void> {
    await this.broadcast.subscribe(CHANNEL, (message) => this.heard(message));
    this.lists.onUpdated = (userIds) => {
      this.broadcast.publish(CHANNEL, JSON.stringify({ from: this.instance, users: userIds })).catch((err: unknown) =>
        this.logger.warn({ err, userIds }, 'device lists: could not announce an update to the other workers'),
      );
    };
    onChanges((changes) => this.changes(changes));
  }

  private heard(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch (err) {
      this.logger.warn({ err }, 'device lists: unreadable announcement');
      return;
    }
    const m = parsed as { from?: unknown; users?: unknown };
    if (typeof m.from !== 'string' || !Array.isArray(m.users) || !m.users.every((u) => typeof u === 'string')) {
      this.logger.warn({ message }, 'device lists: malformed announcement');
      return;
    }
    if (m.from === this.instance) return;
    this.received++;
    this.lists.dropLists(m.users as string[]);
  }

  private changes(changes: readonly ChangeRecord[]): void {
    for (const c of changes) {
      if (c.kind === 'reset') {
        this.lists.dropAll();
        continue;
      }
      if (c.kind !== 'event' || !c.stateDelta.some((e) => e.type === 'm.room.member')) continue;
      const pdu = parseTrustedJson<unknown>(c.pduJson);
      if (!isJsonObject(pdu) || pdu.type !== 'm.room.member' || typeof pdu.state_key !== 'string' || !isJsonObject(pdu.content)) continue;
      const membership = pdu.content.membership;
      if (typeof membership !== 'string') continue;
      this.lists.membershipChanged(c.roomId, pdu.state_key, membership).catch((err: unknown) => this.logger.warn({ err, roomId: c.roomId }, 'device list membership check failed'));
    }
  }
}
