// MSC2228 self-destructing messages across two Hearth servers: an event received over
// federation is pruned at its time on the receiving server too (each server prunes its own
// copy; nothing is sent for it).

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, startPair } from '../helpers/federation.js';
import { until } from '../helpers/until.js';

const KEY = 'org.matrix.self_destruct_after';

async function contentOf(api: Api, roomId: string, eventId: string): Promise<Record<string, unknown> | undefined> {
  const res = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50&filter=${enc('{"types":["m.room.message"]}')}`);
  if (res.status !== 200) return undefined;
  return (res.body.chunk as Array<{ event_id: string; content: Record<string, unknown> }>).find((e) => e.event_id === eventId)?.content;
}

describe('federation: self-destructing messages (MSC2228)', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('a message sent on B is served whole on A, then pruned on A and B at its time', async () => {
    const pair = await startPair({ experimental: { msc2228_self_destruct: true } });
    a = pair.a;
    b = pair.b;
    const alice = await new Api(a.url).register('alice');
    const bob = await new Api(b.url).register('bob');
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId: string = created.body.room_id;
    const join = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(pair.nameA)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));

    const at = Date.now() + 3000;
    const sent = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'from B', [KEY]: at });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const eventId: string = sent.body.event_id;
    const first = await until('A has the event', () => contentOf(alice, roomId, eventId));
    if (Date.now() < at) assert.equal(first.body, 'from B');

    await until('A prunes it', async () => Object.keys((await contentOf(alice, roomId, eventId)) ?? { x: 1 }).length === 0, 15_000);
    await until('B prunes it', async () => Object.keys((await contentOf(bob, roomId, eventId)) ?? { x: 1 }).length === 0, 15_000);
    assert.ok(Date.now() >= at, 'not before its time');
  });
});
