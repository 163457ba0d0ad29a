// Sync frames that need no acknowledgement say so (`ack: false`), and HearthSocket then sends
// none: docs/websocket.md "Acknowledgements". A frame with to-device messages, or any frame
// while some client has opted in to delivered receipts, still asks for one.

import { assert } from '../helpers/assert.js';
import { WebSocketServer } from 'ws';
import { HearthSocket } from '../../src/client/hearth-socket.js';
import { SOCKET_PATH } from '../../src/sync/socket/protocol.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { aliceAndBobInRoom, bearer, openSocket, rawConnect, sendText, socketUrl, waitFor, type User } from './helpers.js';

/** The first raw sync frame (with its `ack` field) whose body contains `text`. */
function frameWith(frames: any[], text: string): any {
  return frames.find((f) => f.type === 'sync' && JSON.stringify(f.body).includes(text));
}

describe('websocket sync: frames that need no ack', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;

  beforeEach(async () => {
    srv = await startTestServer();
    ({ alice, bob, roomId } = await aliceAndBobInRoom(srv.url));
  });
  afterEach(async () => srv.stop());

  it('marks frames without to-device messages ack: false while nobody wants delivered receipts', async () => {
    const raw = await rawConnect(socketUrl(srv.url), bearer(bob.token!));
    await waitFor('the first frame', () => raw.frames.find((f) => f.type === 'sync'));
    assert.equal(raw.frames.find((f) => f.type === 'sync').ack, false, 'the initial frame');
    await sendText(alice, roomId, 'plain message');
    const plain = await waitFor('the message frame', () => frameWith(raw.frames, 'plain message'));
    assert.equal(plain.ack, false, 'a frame with only a room message');

    const put = await alice.put(`/_matrix/client/v3/sendToDevice/org.example.t/td-1`, { messages: { [bob.userId]: { [bob.deviceId]: { n: 1 } } } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const td = await waitFor('the to-device frame', () => frameWith(raw.frames, 'org.example.t'));
    assert.equal('ack' in td, false, 'a frame with a to-device message asks for an ack');
    raw.ws.close();
  });

  it('asks for acks on every frame once a client opted in to delivered receipts', async () => {
    const raw = await rawConnect(socketUrl(srv.url), bearer(bob.token!));
    await waitFor('the first frame', () => raw.frames.find((f) => f.type === 'sync'));
    const watcher = await openSocket(srv.url, alice, { delivered: true });
    await waitFor('alice opted in', () => watcher.bodies.length > 0);
    await sendText(alice, roomId, 'after the opt-in');
    const f = await waitFor('the message frame', () => frameWith(raw.frames, 'after the opt-in'));
    assert.equal('ack' in f, false, 'bob must ack: alice wants to see his delivered marker');
    // And the ack still moves it: the marker reaches alice.
    raw.send({ type: 'ack', next_batch: f.body.next_batch });
    await waitFor('the delivered marker', () => watcher.bodies.some((b) => JSON.stringify(b.rooms?.join?.[roomId]?.ephemeral ?? {}).includes(bob.userId)), 5000);
    raw.ws.close();
    await watcher.sock.close();
  });

  it('HearthSocket skips the ack of an ack: false frame and acks the others', async () => {
    const wss = new WebSocketServer({ port: 0, path: SOCKET_PATH });
    const acks: string[] = [];
    wss.on('connection', (ws) => {
      ws.on('message', (d) => {
        const f = JSON.parse(d.toString());
        if (f.type === 'ack') acks.push(f.next_batch);
      });
      ws.send(JSON.stringify({ type: 'sync', body: { next_batch: 't1' }, ack: false }));
      ws.send(JSON.stringify({ type: 'sync', body: { next_batch: 't2' } }));
      ws.send(JSON.stringify({ type: 'sync', body: { next_batch: 't3' }, ack: false }));
    });
    await new Promise((r) => wss.once('listening', r));
    const seen: string[] = [];
    const port = (wss.address() as { port: number }).port;
    const sock = new HearthSocket({ baseUrl: `http://127.0.0.1:${port}`, accessToken: 'x', onSync: (b) => void seen.push(b.next_batch) });
    await sock.connect();
    await waitFor('three frames', () => seen.length === 3);
    await waitFor('the ack of t2', () => acks.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(acks, ['t2']);
    assert.equal(sock.lastToken, 't3', 'the resume point still moves past unacknowledged frames');
    await sock.close();
    await new Promise((r) => wss.close(r));
  });
});
