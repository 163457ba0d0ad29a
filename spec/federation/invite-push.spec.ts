// An invite from another server into a room this server does not know is pushed to the invitee
// (SyTest: `Invites over federation are correctly pushed` and `... with name`): the invite_for_me
// rule runs on it although the room's state is not here, and the room's name comes from the
// stripped state the invite carried. Two real Hearths and a push gateway on loopback.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, startFederated, waitFor, type User } from '../helpers/federation.js';

describe('federation: invites over federation are pushed', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let gateway: Server;
  let gatewayUrl = '';
  const received: any[] = [];

  before(async () => {
    gateway = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')).notification);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"rejected":[]}');
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/_matrix/push/v1/notify`;
    const [pa, pb] = [await freePort(), await freePort()];
    a = await startFederated(pa);
    b = await startFederated(pb, undefined, { push: { connected_window_ms: 50, min_backoff_ms: 100, max_backoff_ms: 400 }, outbound: { ip_range_whitelist: ['127.0.0.1/32'] } });
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
    gateway?.closeAllConnections();
    await new Promise<void>((resolve) => gateway.close(() => resolve()));
  });

  async function pushedUser(name: string): Promise<User> {
    const u = await new Api(b.url).register(name);
    const set = await u.post('/_matrix/client/v3/pushers/set', {
      kind: 'http', app_id: 'org.example.app', pushkey: `key-${name}`, app_display_name: 'Example', device_display_name: 'Phone', lang: 'en', data: { url: gatewayUrl },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    return u;
  }

  for (const name of [undefined, 'Test Name']) {
    it(`an invite from another server is pushed to the invitee${name ? ', with the room\'s name' : ''}`, async () => {
      const invitee = await pushedUser(name ? 'bob2' : 'bob1');
      const charlie = await new Api(a.url).register(name ? 'charlie2' : 'charlie1');
      const room = await charlie.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: name ? '12' : '10', ...(name ? { name } : {}) });
      assert.equal(room.status, 200, JSON.stringify(room.body));
      const roomId: string = room.body.room_id;
      assert.equal((await charlie.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: invitee.userId })).status, 200);
      const pushed = () => received.find((n) => n.room_id === roomId && n.type === 'm.room.member');
      await waitFor(async () => pushed() !== undefined, 15_000, 'the invite\'s push');
      const n = pushed();
      assert.equal(n.sender, charlie.userId);
      assert.equal(n.membership, 'invite');
      assert.equal(n.user_is_target, true);
      assert.equal(n.devices[0].pushkey, `key-${name ? 'bob2' : 'bob1'}`);
      assert.equal(n.room_name, name);
      // It is a notification for the invitee too.
      const list = await invitee.get('/_matrix/client/v3/notifications');
      assert.ok(list.body.notifications.some((x: any) => x.room_id === roomId && x.event.type === 'm.room.member'), JSON.stringify(list.body));
    });
  }
});
