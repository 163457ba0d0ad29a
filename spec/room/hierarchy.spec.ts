// spaceChildren's order (Client-Server API "Spaces"): `order` first, then origin_server_ts, then
// room ID; children without a non-empty string `via` are not children.

import { assert } from '../helpers/assert.js';
import { spaceChildren } from '../../src/room/hierarchy.js';
import { RoomState } from '../../src/room/room-state.js';
import type { Pdu } from '../../src/protocol/types.js';
import type { StoredEvent } from '../../src/store/types.js';

function stateOf(children: Array<{ id: string; ts: number; content: Record<string, unknown> }>): RoomState {
  const events = new Map<string, StoredEvent>();
  const entries = children.map((c, i) => {
    const eventId = `$e${i}`;
    const pdu = { type: 'm.space.child', state_key: c.id, content: c.content, origin_server_ts: c.ts, sender: '@a:x' } as unknown as Pdu;
    events.set(eventId, { pdu } as unknown as StoredEvent);
    return { type: 'm.space.child', stateKey: c.id, eventId };
  });
  return RoomState.fromStore('10', entries as never, [], events);
}

describe('space children order', () => {
  it('orders by `order`, then timestamp, then room ID; equal timestamps fall to the room ID', () => {
    const via = ['x'];
    const state = stateOf([
      { id: '!v:x', ts: 5, content: { via } },
      { id: '!r:x', ts: 5, content: { via } },
      { id: '!early:x', ts: 1, content: { via } },
      { id: '!b:x', ts: 9, content: { via, order: 'b' } },
      { id: '!a:x', ts: 9, content: { via, order: 'a' } },
      { id: '!badorder:x', ts: 0, content: { via, order: 'é' } },
      { id: '!novia:x', ts: 0, content: { via: [] } },
      { id: '!numvia:x', ts: 0, content: { via: [7] } },
    ]);
    assert.deepEqual(spaceChildren(state).map((c) => c.roomId), ['!a:x', '!b:x', '!badorder:x', '!early:x', '!r:x', '!v:x']);
  });
});
