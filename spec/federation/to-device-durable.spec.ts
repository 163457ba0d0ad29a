// A to-device message for a user of another server is durable before its request is answered
// (src/e2ee/to-device.ts): a failed write of the m.direct_to_device EDU fails the request (503,
// no idempotency record, so the client's retry queues it), and a retry after the EDU was queued
// but before the request was recorded queues it again with the same message_id, which the
// receiving server drops as a repeat: delivered exactly once.

import { assert } from '../helpers/assert.js';
import { enc, type TestServer } from '../helpers/server.js';
import { Api } from '../helpers/server.js';
import { closeFedRequests, startPair, type User } from '../helpers/federation.js';

const V3 = '/_matrix/client/v3';

describe('federation: to-device messages for other servers are queued before the request is answered', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameB: string;
  let carol: User; // @A
  let dave: User & { deviceId: string }; // @B
  let since = '';

  before(async () => {
    ({ a, b, nameB } = await startPair());
    carol = await new Api(a.url).register('carol');
    dave = await new Api(b.url).register('dave');
    const first = await dave.get(`${V3}/sync?timeout=0`);
    since = first.body.next_batch as string;
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  const sendTo = (txnId: string, body: string) =>
    carol.put(`${V3}/sendToDevice/m.test/${enc(txnId)}`, { messages: { [dave.userId]: { [dave.deviceId]: { body } } } });

  /** Every m.test to-device event dave's device receives until `want` of them with `body` came (then 1 s more). */
  async function received(body: string, want: number): Promise<number> {
    let count = 0;
    const deadline = Date.now() + 15_000;
    let quietUntil = Infinity;
    while (Date.now() < Math.min(deadline, quietUntil)) {
      const res = await dave.get(`${V3}/sync?timeout=500&since=${enc(since)}`);
      assert.equal(res.status, 200);
      since = res.body.next_batch as string;
      for (const e of res.body.to_device?.events ?? []) if (e.type === 'm.test' && e.content?.body === body) count++;
      if (count >= want && quietUntil === Infinity) quietUntil = Date.now() + 1000;
    }
    return count;
  }

  it('a failed write of the EDU fails the request with 503 and records nothing; the retry is queued and delivered', async () => {
    const queue = a.hearth.store.federationQueue;
    const real = queue.enqueueOutbound.bind(queue);
    let failures = 0;
    queue.enqueueOutbound = async (destinations, item) => {
      if (item.kind === 'edu' && item.edu.edu_type === 'm.direct_to_device' && failures === 0) {
        failures++;
        throw new Error('simulated queue write failure');
      }
      return real(destinations, item);
    };
    try {
      const failed = await sendTo('t1', 'one');
      assert.equal(failed.status, 503, JSON.stringify(failed.body));
      assert.equal(failed.body.errcode, 'M_UNKNOWN');
      assert.equal(failures, 1);
      assert.equal(await a.hearth.federation!.core.sender.eduBacklog(nameB), 0, 'nothing queued');
      const retried = await sendTo('t1', 'one');
      assert.equal(retried.status, 200, 'the retry is not answered from a record of the failed attempt');
      assert.equal(await received('one', 1), 1, 'delivered once');
    } finally {
      queue.enqueueOutbound = real;
    }
  });

  it('queued, then the request failed before it was recorded: the retry queues it again and B delivers it once (same message_id)', async () => {
    const userData = a.hearth.store.userData;
    const real = userData.putTxnResponse.bind(userData);
    let failures = 0;
    userData.putTxnResponse = async (...args: Parameters<typeof real>) => {
      if (args[2].startsWith('sendToDevice') && failures === 0) {
        failures++;
        throw new Error('simulated failure after the EDU was queued');
      }
      return real(...args);
    };
    const seenBefore = b.hearth.federation!.e2ee!.duplicateMessages;
    try {
      const failed = await sendTo('t2', 'two');
      assert.notEqual(failed.status, 200);
      assert.equal(failures, 1);
      assert.equal((await sendTo('t2', 'two')).status, 200);
      assert.equal(await received('two', 1), 1, 'delivered exactly once');
      assert.equal(b.hearth.federation!.e2ee!.duplicateMessages, seenBefore + 1, 'the second copy arrived and was dropped as a repeat');
    } finally {
      userData.putTxnResponse = real;
    }
  });
});
