import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import {
  BIG_TIMELINE,
  TimelineReader,
  allTexts,
  assertExactlyOnceInOrder,
  frames,
  openSocket,
  sendText,
  sharedRoom,
  sleep,
  waitFor,
  type User,
} from './helpers.js';

describe('websocket sync: resuming without loss or duplicates', function () {
  let srv: TestServer;
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  it('a socket killed mid-stream resumes from its last processed token with all 100 messages exactly once', async () => {
    const bob = await new Api(srv.url).register('bob-kill');
    const roomId = await sharedRoom(alice, bob);
    const reader = new TimelineReader(bob, roomId);
    const b1 = await openSocket(srv.url, bob, { reader, filter: BIG_TIMELINE });
    await frames(b1, 1);
    const base = reader.texts.length;
    assert.equal(base, 0, 'no messages before the test');

    const want = Array.from({ length: 100 }, (_, i) => `kill-${i}`);
    let sentCount = 0;
    const sender = (async () => {
      for (const t of want) {
        await sendText(alice, roomId, t, `k${t}`);
        sentCount++;
        if (sentCount % 10 === 0) await sleep(5);
      }
    })();

    // Kill while frames are flowing: after some were processed and before the sender is done.
    await waitFor('bob to process some messages', () => reader.texts.length >= 20, 10000, 1);
    b1.sock.kill();
    const killedAt = sentCount;
    const c = await b1.sock.closed;
    assert.equal(c.code, 1006, 'terminated without a close handshake');
    await sleep(10); // let the frame chain settle so lastToken is the last processed frame
    const resumeFrom = b1.sock.lastToken!;
    assert.equal(reader.token, resumeFrom, 'the reader and the socket agree on the last processed frame');
    assert.ok(killedAt < 100, `the kill happened mid-stream (sent ${killedAt} by then)`);
    const processedBeforeKill = reader.texts.length;

    // The outage lasts while more messages are sent.
    await waitFor('more sends during the outage', () => sentCount >= Math.min(100, killedAt + 20), 10000, 1);
    const b2 = await openSocket(srv.url, bob, { reader, filter: BIG_TIMELINE, since: resumeFrom });
    await sender;
    await waitFor('bob to have all 100', () => reader.texts.length >= 100, 10000);
    await sleep(100); // anything extra (a duplicate) would show up now
    await b2.sock.close();

    assert.ok(processedBeforeKill < 100, 'some messages came only after the resume');
    assertExactlyOnceInOrder(reader.texts, want, 'bob over the kill');
    assert.deepEqual(await allTexts(alice, roomId), want, 'server order');
  });

  it('switching socket → /sync long-poll → socket mid-stream loses and repeats nothing', async () => {
    const bob = await new Api(srv.url).register('bob-switch');
    const roomId = await sharedRoom(alice, bob);
    const reader = new TimelineReader(bob, roomId);
    const want = Array.from({ length: 60 }, (_, i) => `sw-${i}`);
    let sentCount = 0;
    let stop = false;
    const sender = (async () => {
      for (const t of want) {
        if (stop) break;
        await sendText(alice, roomId, t, `s${t}`);
        sentCount++;
        await sleep(2);
      }
    })();

    // 1. socket, until ~15 messages were processed.
    const s1 = await openSocket(srv.url, bob, { reader, filter: BIG_TIMELINE });
    await waitFor('15 on the first socket', () => reader.texts.length >= 15, 10000, 1);
    await s1.sock.close();
    const socketToken = s1.sock.lastToken!;
    assert.equal(reader.token, socketToken);
    const afterSocket1 = reader.texts.length;

    // 2. long-poll from the socket's token until ~35.
    let since = socketToken;
    let polls = 0;
    while (reader.texts.length < 35) {
      const r = await bob.get(`/_matrix/client/v3/sync?timeout=5000&since=${enc(since)}&filter=${enc(BIG_TIMELINE)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await reader.add(r.body);
      since = r.body.next_batch;
      polls++;
    }
    const afterPoll = reader.texts.length;

    // 3. back to a socket with the long-poll's token, until all 60.
    const s2 = await openSocket(srv.url, bob, { reader, filter: BIG_TIMELINE, since });
    await sender;
    await waitFor('all 60 on the second socket', () => reader.texts.length >= 60, 10000);
    await sleep(100);
    await s2.sock.close();
    stop = true;

    assert.ok(afterSocket1 > 0 && afterSocket1 < afterPoll && afterPoll < 60, `each transport carried some (${afterSocket1}, ${afterPoll})`);
    assert.ok(polls > 0);
    assertExactlyOnceInOrder(reader.texts, want, 'bob across transports');
  });

  it('resuming with a token from before an already-processed frame repeats exactly the frames after it', async () => {
    const bob = await new Api(srv.url).register('bob-rewind');
    const roomId = await sharedRoom(alice, bob);
    const r1 = new TimelineReader(bob, roomId);
    const s1 = await openSocket(srv.url, bob, { reader: r1, filter: BIG_TIMELINE });
    await frames(s1, 1);
    for (let i = 0; i < 5; i++) await sendText(alice, roomId, `rw-${i}`);
    await waitFor('5 messages', () => r1.texts.length >= 5);
    const mid = s1.bodies.find((b) => JSON.stringify(b).includes('"rw-2"'))!;
    await s1.sock.close();
    const r2 = new TimelineReader(bob, roomId, mid.next_batch);
    const s2 = await openSocket(srv.url, bob, { reader: r2, filter: BIG_TIMELINE, since: mid.next_batch });
    await waitFor('the replay', () => r2.texts.length >= 2);
    await sleep(100);
    await s2.sock.close();
    assert.deepEqual(r2.texts, ['rw-3', 'rw-4']);
  });
});
