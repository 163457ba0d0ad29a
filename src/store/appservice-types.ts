// What application-service delivery (src/appservice) keeps durable: per application service, the
// stream position up to which every event it was interested in has been delivered, and the
// last transaction ID used (a restart must never reuse one: the AS deduplicates by ID and
// would silently drop a new transaction under an old ID). Also the AS-run room directories
// (PUT /directory/list/appservice/{networkId}/{roomId}).
//
// Invariants every backend keeps:
// - setAppServiceState stores exactly the given state for that ID (one writer per AS: the
//   process that delivers to it); other IDs are untouched. An unknown ID reads as null.
// - Room-list entries are keyed by (appservice, network, room); listing is per appservice.

export interface AppServiceStreamState {
  /** Every interesting event at or below this position was delivered (acknowledged by the AS). */
  position: number;
  /** The last transaction ID sent and acknowledged; the next one is this + 1. */
  lastTxnId: number;
}

export interface AppServiceRoomListing {
  networkId: string;
  roomId: string;
}

export interface AppServiceStore {
  getAppServiceState(appServiceId: string): Promise<AppServiceStreamState | null>;
  setAppServiceState(appServiceId: string, state: AppServiceStreamState): Promise<void>;
  /** Publishes (listed) or withdraws a room in the AS's directory for one network. */
  setAppServiceRoom(appServiceId: string, networkId: string, roomId: string, listed: boolean): Promise<void>;
  /** The AS's published rooms, ordered by network then room ID. */
  listAppServiceRooms(appServiceId: string): Promise<AppServiceRoomListing[]>;
}
