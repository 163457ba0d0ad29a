import { assert } from '../helpers/assert.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { frames, openSocket, sendText, sharedRoom, sleep, within, type Recorded, type User } from './helpers.js';

/**
 * An access token that stops being valid must stop the stream it opened: otherwise a logged-out
 * (or remotely signed-out, e.g. stolen) device keeps receiving every new message.
 */
describe('websocket sync: a socket does not outlive its access token', function () {
  let srv: TestServer;
  let alice: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  async function expectCutOff(b: Recorded, secret: string): Promise<void> {
    await sendText(alice, roomId, secret);
    const closed = await within(b.sock.closed, 1500, null);
    await sleep(100);
    const leaked = b.bodies.filter((x) => JSON.stringify(x).includes(secret)).length;
    if (!closed) b.sock.kill();
    assert.equal(leaked, 0, `a message sent after the token was invalidated was streamed to the socket (${leaked} frame(s))`);
    assert.ok(closed, 'the socket was closed');
    assert.equal(closed.code, 4001);
  }

  it('POST /logout over REST closes the socket opened with that token (4001) and streams nothing more', async () => {
    const bob = await new Api(srv.url).register('bob1');
    roomId = await sharedRoom(alice, bob);
    const b = await openSocket(srv.url, bob);
    await frames(b, 1);
    const lo = await bob.post('/_matrix/client/v3/logout', {});
    assert.equal(lo.status, 200);
    await expectCutOff(b, 'after-logout-secret');
  });

  it('POST /logout sent as a request frame on the socket itself ends the stream too', async () => {
    const bob = await new Api(srv.url).register('bob2');
    roomId = await sharedRoom(alice, bob);
    const b = await openSocket(srv.url, bob);
    await frames(b, 1);
    const lo = await b.sock.request('POST', '/_matrix/client/v3/logout', {});
    assert.equal(lo.status, 200);
    await expectCutOff(b, 'after-socket-logout-secret');
  });

  it('POST /logout/all from another device closes this device’s socket', async () => {
    const bob = await new Api(srv.url).register('bob3');
    roomId = await sharedRoom(alice, bob);
    const b = await openSocket(srv.url, bob);
    await frames(b, 1);
    const login = await new Api(srv.url).post('/_matrix/client/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'bob3' },
      password: 'correct horse battery',
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const all = await new Api(srv.url, login.body.access_token).post('/_matrix/client/v3/logout/all', {});
    assert.equal(all.status, 200);
    await expectCutOff(b, 'after-logout-all-secret');
  });
});
