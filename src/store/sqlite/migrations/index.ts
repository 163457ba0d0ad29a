// The ordered list of schema migrations. Append only: never edit or renumber an entry that has
// shipped, since databases record which versions they have applied.

import { initial } from './0001-initial.js';
import { chat } from './0002-chat.js';
import { txnScope } from './0003-txn-scope.js';
import { e2ee } from './0004-e2ee.js';
import { push } from './0005-push.js';
import { pushBulk } from './0006-push-bulk.js';
import { dag } from './0007-dag.js';
import { media } from './0008-media.js';
import type { Db } from '../db.js';
import { search } from './0009-search.js';
import { admin } from './0010-admin.js';
import { guestsOpenId } from './0011-guests-openid.js';
import { erasure } from './0012-erasure.js';
import { appservice } from './0013-appservice.js';
import { federationQueue } from './0014-federation-queue.js';
import { identityBindings } from './0015-identity-bindings.js';
import { remoteMedia } from './0016-remote-media.js';
import { threepids } from './0017-threepids.js';
import { eventExpiry } from './0018-event-expiry.js';
import { peeks } from './0019-peeks.js';
import { eventIndexes } from './0020-event-indexes.js';
import { remoteMediaEviction } from './0021-remote-media-eviction.js';
import { federationCursors } from './0022-federation-cursors.js';
import { dropEventEdges } from './0023-drop-event-edges.js';
import { searchInsertInCode } from './0024-search-insert-in-code.js';
import { eventsRejectedIndex } from './0025-events-rejected-index.js';

export interface Migration {
  version: number;
  name: string;
  /** SQL run inside the migration transaction. */
  up: string;
  /** Data migration run after `up`, in the same transaction (for what SQL alone cannot do). */
  run?: (db: Db) => void;
}

export const MIGRATIONS: readonly Migration[] = [initial, chat, txnScope, e2ee, push, pushBulk, dag, media, search, admin, guestsOpenId, erasure, appservice, federationQueue, identityBindings, remoteMedia, threepids, eventExpiry, peeks, eventIndexes, remoteMediaEviction, federationCursors, dropEventEdges, searchInsertInCode, eventsRejectedIndex];
