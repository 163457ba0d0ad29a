// POST /createRoom with invite_3pid: the entries are checked before the room is made, so a
// request refused for a bad entry (an id_server that is no server name, a medium other than
// email or msisdn) leaves no room behind for the client to never hear of.

import { assert } from '../helpers/assert.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

describe('createRoom: invite_3pid checked before the room exists', function () {
  this.timeout(30_000);
  let s: TestServer;
  let alice: Api & { userId: string };

  before(async function () {
    s = await startTestServer();
    alice = await new Api(s.url).register('alice');
  });
  after(async function () {
    await s?.stop();
  });

  const joinedRooms = async () => (await alice.get('/_matrix/client/v3/joined_rooms')).body.joined_rooms as string[];
  const entry = (over: Record<string, unknown>) => ({ id_server: 'id.example.org', id_access_token: 't', medium: 'email', address: 'bob@example.org', ...over });

  for (const [what, bad] of [
    ['an id_server with a path', { id_server: 'id.example.org/evil' }],
    ['an id_server with a scheme', { id_server: 'https://id.example.org' }],
    ['an unknown medium', { medium: 'fax' }],
  ] as const) {
    it(`${what}: 400 with a Matrix error, and no room created`, async function () {
      const before = (await joinedRooms()).length;
      const res = await alice.post('/_matrix/client/v3/createRoom', { name: 'r', invite_3pid: [entry(bad), entry({})] });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(typeof res.body.errcode, 'string');
      assert.equal((await joinedRooms()).length, before);
    });
  }
});
