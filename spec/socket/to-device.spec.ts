import { assert } from '../helpers/assert.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';
import { aliceAndBobInRoom, frames, openSocket, sendText, sleep, waitFor, type Body, type Recorded, type User } from './helpers.js';

const TYPE = 'org.example.socket_test';

function toDevice(body: Body, n: number): any[] {
  return (body.to_device?.events ?? []).filter((e: any) => e.type === TYPE && e.content?.n === n);
}

describe('websocket sync: to-device messages', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;
  let txn = 0;

  /** PUT /sendToDevice to bob's device; returns 404 when the endpoint does not exist yet. */
  async function sendToBob(n: number): Promise<number> {
    const r = await alice.put(`/_matrix/client/v3/sendToDevice/${enc(TYPE)}/td-${++txn}`, {
      messages: { [bob.userId]: { [bob.deviceId]: { n } } },
    });
    if (r.status === 404 && r.body?.errcode === 'M_UNRECOGNIZED') return 404;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return 200;
  }

  /**
   * A catch-up with nothing new sends no frame, so to check that something is *not* delivered,
   * send a room message after connecting and wait until the frames reach it.
   */
  async function marker(r: Recorded, text: string): Promise<void> {
    await sendText(alice, roomId, text);
    await waitFor(`the frame with ${text}`, () => r.bodies.some((x) => JSON.stringify(x).includes(`"${text}"`)));
  }

  before(async () => {
    srv = await startTestServer();
    ({ alice, bob, roomId } = await aliceAndBobInRoom(srv.url));
  });
  after(async () => srv.stop());

  it('delivers a message once per connection, and not again after an ack and a reconnect', async function () {
    const b = await openSocket(srv.url, bob, { autoAck: false });
    await frames(b, 1);
    assert.equal(await sendToBob(1), 200, 'PUT /sendToDevice');
    const withMsg = await waitFor('the to-device message on the socket', () => b.bodies.find((x) => toDevice(x, 1).length > 0), 5000);
    const at = b.bodies.indexOf(withMsg);
    assert.equal(toDevice(withMsg, 1).length, 1, 'exactly once in its frame');
    assert.equal(toDevice(withMsg, 1)[0].sender, alice.userId);
    const before = b.bodies[at - 1].next_batch;

    // The next frame does not repeat it, although it was not acknowledged yet.
    await sendText(alice, roomId, 'next frame please');
    await waitFor('a later frame', () => b.bodies.length > at + 1);
    assert.deepEqual(b.bodies.slice(at + 1).flatMap((x) => toDevice(x, 1)), [], 'not repeated on the same connection');

    b.sock.ack(b.bodies[b.bodies.length - 1].next_batch);
    await sleep(150); // ack frames are fire-and-forget
    await b.sock.close();

    // After the ack it is gone: neither a resume from before it nor an initial sync has it.
    const r1 = await openSocket(srv.url, bob, { autoAck: false, since: before });
    await marker(r1, 'marker-1');
    await r1.sock.close();
    assert.deepEqual(r1.bodies.flatMap((x) => toDevice(x, 1)), [], 'not redelivered from an older token after the ack');
    const r2 = await openSocket(srv.url, bob, { autoAck: false });
    await frames(r2, 1);
    await r2.sock.close();
    assert.deepEqual(r2.bodies.flatMap((x) => toDevice(x, 1)), [], 'not in an initial sync after the ack');
  });

  it('redelivers an unacknowledged message after a reconnect', async function () {
    const b = await openSocket(srv.url, bob, { autoAck: false });
    await frames(b, 1);
    const before = b.bodies[b.bodies.length - 1].next_batch;
    assert.equal(await sendToBob(2), 200, 'PUT /sendToDevice');
    await waitFor('message 2', () => b.bodies.some((x) => toDevice(x, 2).length > 0));
    b.sock.kill(); // no ack
    await b.sock.closed;

    const r = await openSocket(srv.url, bob, { since: before });
    const got = await waitFor('message 2 again', () => r.bodies.find((x) => toDevice(x, 2).length > 0), 5000);
    assert.equal(toDevice(got, 2).length, 1);
    // autoAck acknowledged it on this connection; a further reconnect does not see it.
    await sleep(150);
    await r.sock.close();
    const again = await openSocket(srv.url, bob, { since: before });
    await marker(again, 'marker-2');
    await again.sock.close();
    assert.deepEqual(again.bodies.flatMap((x) => toDevice(x, 2)), []);
  });

  it('delivers more messages than one batch across frames, each exactly once, in order', async function () {
    const b = await openSocket(srv.url, bob);
    await frames(b, 1);
    const first = await alice.put(`/_matrix/client/v3/sendToDevice/${enc(TYPE)}/bulk-0`, { messages: { [bob.userId]: { [bob.deviceId]: { n: 1000 } } } });
    assert.equal(first.status, 200, 'PUT /sendToDevice');
    for (let i = 1; i < 150; i++) {
      const r = await alice.put(`/_matrix/client/v3/sendToDevice/${enc(TYPE)}/bulk-${i}`, { messages: { [bob.userId]: { [bob.deviceId]: { n: 1000 + i } } } });
      assert.equal(r.status, 200);
    }
    const seen = () => b.bodies.flatMap((x) => (x.to_device?.events ?? []).filter((e: any) => e.type === TYPE && e.content.n >= 1000).map((e: any) => e.content.n as number));
    await waitFor('150 to-device messages', () => seen().length >= 150, 10000);
    await sleep(100);
    await b.sock.close();
    assert.deepEqual(seen(), Array.from({ length: 150 }, (_, i) => 1000 + i));
  });
});
