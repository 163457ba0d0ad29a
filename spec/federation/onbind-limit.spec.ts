// 3pid/onbind on the federation listener is unauthenticated (identity servers are no
// homeservers) and each call may pass invites on to the servers it names: it spends the same
// per-address allowance as the client listener's onbind, so a caller cannot use it to make this
// server send requests without limit.

import { assert } from '../helpers/assert.js';
import { closeFedRequests, fedRequest, startFederated } from '../helpers/federation.js';
import { freePort } from '../helpers/ports.js';
import { Api, type TestServer } from '../helpers/server.js';

describe('federation listener: 3pid/onbind is rate limited', function () {
  this.timeout(30_000);
  let s: TestServer;
  let bob: Api & { userId: string };

  before(async function () {
    s = await startFederated(await freePort(), undefined, { limits: { rate_limits: { write: { per_second: 0.01, burst: 3 } } } });
    bob = await new Api(s.url).register('bob');
  });
  after(async function () {
    await s?.stop();
    await closeFedRequests();
  });

  it('answers 429 M_LIMIT_EXCEEDED once the address has spent its allowance', async function () {
    const url = s.hearth.federation!.url;
    const body = { medium: 'email', address: 'bob@example.org', mxid: bob.userId, invites: [] };
    const statuses: number[] = [];
    let last: { status: number; body: any } | undefined;
    for (let i = 0; i < 5; i++) {
      last = await fedRequest(url, 'POST', '/_matrix/federation/v1/3pid/onbind', { 'content-type': 'application/json' }, body);
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assert.equal(last!.body.errcode, 'M_LIMIT_EXCEEDED');
  });
});
