// EventFormatter's shared-part cache and pruned events (src/room/client-event.ts): a copy pruned
// without a redaction event (a self-destructing message, perhaps pruned by another worker whose
// prune this process never heard of) is never served from the part cached for the whole copy,
// and a late read of the whole copy does not evict the pruned part.

import { assert } from '../helpers/assert.js';
import { EventFormatter } from '../../src/room/client-event.js';
import type { Pdu } from '../../src/protocol/types.js';
import type { Store, StoredEvent } from '../../src/store/types.js';

const pdu: Pdu = {
  room_id: '!r:hearth.test',
  sender: '@a:hearth.test',
  type: 'm.room.message',
  content: { msgtype: 'm.text', body: 'goes away', 'org.matrix.self_destruct_after': 1 },
  origin_server_ts: 1_700_000_000_000,
  depth: 5,
  prev_events: [],
  auth_events: [],
  hashes: { sha256: 'x' },
  signatures: {},
};

function stored(p: Pdu): StoredEvent {
  return { eventId: '$e', roomId: p.room_id, stream: 9, pdu: p, redactedBy: null, outlier: false, softFailed: false, rejected: null } as StoredEvent;
}

describe('EventFormatter: pruned copies', function () {
  // No redactions and no aggregations are asked for, so the formatter never reads its store.
  const noStore = {} as Store;
  const viewer = { userId: '@b:hearth.test' };

  const fmt = async (f: EventFormatter, e: StoredEvent) => (await f.format([e], viewer, 'client', { noAggregations: true }))[0]!.content as Record<string, unknown>;

  it('serves the pruned copy once the stored one is pruned, and keeps it over a stale whole copy', async function () {
    const f = new EventFormatter(noStore, () => 1_700_000_001_000);
    const whole = stored(pdu);
    const pruned = stored({ ...pdu, content: {} });
    assert.equal((await fmt(f, whole)).body, 'goes away');
    assert.deepEqual(await fmt(f, pruned), {});
    // A reader that fetched the whole copy before the prune landed gets it (it read it), but
    // the cache keeps the pruned part for the next reader.
    assert.equal((await fmt(f, whole)).body, 'goes away');
    const before = f.cacheStats().hits;
    assert.deepEqual(await fmt(f, pruned), {});
    assert.equal(f.cacheStats().hits, before + 1, 'the pruned part was still cached');
  });
});
