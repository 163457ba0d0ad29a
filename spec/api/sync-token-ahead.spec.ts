// A /sync `since` token naming a stream position this server has not reached yet (in a cluster:
// a token from a worker whose feed is ahead). The request must wait for the position instead of
// answering from below it, which would repeat to the client what its token says it has.

import { assert } from '../helpers/assert.js';
import { ok, syncOk, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('/sync: a since token ahead of the server', function () {
  let srv: TestServer;
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  const setData = (type: string) => ok(alice.put(`${V3}/user/${enc(alice.userId)}/account_data/${type}`, { at: type }), `account data ${type}`);
  const types = (s: any): string[] => (s.account_data?.events ?? []).map((e: { type: string }) => e.type);

  it('waits for the position its token names: nothing at or below it is sent again', async () => {
    const first = await syncOk(alice);
    const m = /^h1_(\d+)_(\d+)$/.exec(first.next_batch as string);
    assert.ok(m, `a stream token: ${first.next_batch}`);
    const stream = Number(m[1]);
    // Each account data write takes one stream position: the first lands at stream + 1, which
    // the token below already covers; the second lands after it.
    const ahead = `h1_${stream + 1}_${m[2]}`;
    const pending = syncOk(alice, { since: ahead, timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    await setData('org.example.covered');
    await new Promise((r) => setTimeout(r, 100));
    await setData('org.example.after');
    let res = await pending;
    let seen = types(res);
    // The second write may land in the next response if the first woke the request at once.
    if (!seen.includes('org.example.after')) {
      res = await syncOk(alice, { since: res.next_batch, timeout: 5_000 });
      seen = seen.concat(types(res));
    }
    assert.ok(!seen.includes('org.example.covered'), `the write the token covers is not sent again: ${JSON.stringify(seen)}`);
    assert.ok(seen.includes('org.example.after'), `the later write is sent: ${JSON.stringify(seen)}`);
  });
});
