// What RoomInput (room-input.ts) takes and gives: its dependencies and the results of its writes.
// Invariants: an InputOutcome names exactly what the store holds for the event (stored: false
// means nothing was written); onPersisted and the notifier hear of an event only once it is
// durable; the outbound PDUs are queued in the event's own commit.

import type { Pdu, SigningKey } from '../protocol/types.js';
import type { PushActionInput, PushBulkInput, Store } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import type { KeyRing } from './key-ring.js';
import type { RoomState } from './room-state.js';
import type { ResolveState } from './state-resolver.js';

export interface SubmitResult {
  eventId: string;
  stream: number;
  /** True when the draft was a retry of an earlier transaction and nothing new was written. */
  deduplicated: boolean;
}

/** What became of an event handed to `receive`. */
export type InputOutcome =
  | { outcome: 'accepted'; eventId: string; stream: number }
  | { outcome: 'soft_failed'; eventId: string; stream: number; reason: string }
  | { outcome: 'outlier'; eventId: string; stream: number; reason: string }
  /** `gap`: not judged at all, as the events before it could not be had (federation's gap filler). */
  | { outcome: 'rejected'; eventId: string | null; reason: string; stored: boolean; gap?: true };

export interface RoomInputDeps {
  store: Store;
  notifier: Notifier;
  serverName: string;
  signingKey: SigningKey;
  /** Public keys for step 2. Default: only this server's own signing key. */
  keyRing?: KeyRing;
  /** State resolution, for forks. Default: src/protocol/state-res. */
  resolveState?: ResolveState;
  now?: () => number;
  /** Called after each event is durable (metrics, push dispatch). Must not throw or block. */
  onPersisted?: (info: { eventId: string; pdu: Pdu; stream: number; pushActions: PushActionInput[]; queuedFor?: readonly string[] }) => void;
  /**
   * Federation: where a local event's PDU goes, from the room's state before it (undefined:
   * nowhere to queue). The PDU is queued in the event's own commit (PersistEventInput.outbound),
   * so it is durable exactly when the event is; onPersisted gets the list as `queuedFor`.
   * `relayFrom`: a remote server's event handed to us to pass on (send_join/leave/knock), whose
   * PDU is queued the same way for every other server of the room.
   */
  pduDestinations?: (eventId: string, pdu: Pdu, before: RoomState, relayFrom?: string) => string[] | undefined;
  /**
   * Push-rule results for the members an event notifies; `rows` and `bulk` are stored atomically
   * with the event (see PersistEventInput.pushBulk), `all` (everyone's) goes to onPersisted.
   */
  pushActions?: (
    eventId: string,
    pdu: Pdu,
    state: RoomState,
  ) => Promise<{ rows: PushActionInput[]; bulk?: PushBulkInput; all: PushActionInput[] }>;
  /**
   * The writer's fencing epoch for a room (src/cluster/room-owner.ts), passed with every write so
   * the store can refuse a stale owner's. Absent on a single node.
   */
  fence?: (roomId: string) => { epoch: number } | undefined;
  /**
   * MSC2228 (experimental.msc2228_self_destruct): an accepted message asking to self-destruct
   * gets its expiry row in its own commit (PersistEventInput.selfDestructAt).
   */
  selfDestruct?: boolean;
}
/** Push-rule results for an event: `rows`/`bulk` are stored with it, `all` goes to onPersisted. */
export type PushOutcome = { rows: PushActionInput[]; bulk?: PushBulkInput; all: PushActionInput[] };
