// A normal load far under capacity must pass a single long stall untouched: the full
// sync-latency scenario (200 sends/s) had sends refused with 429 after stalls of ~800 ms, all
// by the measured send limit (hearth_admission_shed_send_limit). Here a light open-loop offer
// (50 sends/s) meets a store whose commits stall once for STALL_MS (a slow fsync, a
// checkpoint): every send is admitted (none refused, whatever the rule), each is persisted and
// in the timeline once, and the stall really held sends past the send target (else the test
// would prove nothing). The admission is at its defaults except the event-loop lag signal, off
// as in overload.spec.ts (the machine is shared; its rules are pinned with fake clocks in
// loop-lag.spec.ts and admission.spec.ts).

import { assert } from '../helpers/assert.js';
import { enc, type TestServer } from '../helpers/server.js';
import { countTimelineMessages, startLoadServer } from './load-helpers.js';

const OFFER_PER_SEC = 50;
const OFFER_MS = 3000;
/** When the stall starts (ms into the offer) and how long it holds every commit. */
const STALL_AT_MS = 1000;
const STALL_MS = 800;

describe('Admission under a normal load: one long commit stall sheds nothing', function () {
  this.timeout(60_000);
  let srv: TestServer;

  after(async function () {
    await srv?.stop();
  });

  it('every send of a light load through an 800 ms stall is admitted, persisted and in the timeline once', async function () {
    // Commits that would be durable during the stall are held until it ends, then all at once.
    let stallFrom = Number.POSITIVE_INFINITY;
    const load = await startLoadServer({ send_target_delay_ms: 100, send_interval_ms: 100, max_send_delay_ms: 1000, max_event_loop_lag_ms: 0 }, (written) => {
      const now = performance.now();
      const until = stallFrom + STALL_MS;
      if (now < stallFrom || now >= until) return written;
      return new Promise((r) => setTimeout(r, until - now)).then(() => written);
    });
    ({ srv } = load);
    const { alice, roomId, inServer } = load;

    const results: Array<{ status: number; body: any }> = [];
    const sends: Promise<void>[] = [];
    const start = performance.now();
    stallFrom = start + STALL_AT_MS;
    const total = (OFFER_PER_SEC * OFFER_MS) / 1000;
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / OFFER_PER_SEC - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      sends.push(alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/n${i}`, { msgtype: 'm.text', body: `n${i}` }).then((r) => void results.push(r)));
    }
    await Promise.all(sends);

    const held = inServer.filter((ms) => ms > 300).length;
    assert.ok(held >= 10, `the stall held sends past the target (${held} over 300 ms)`);
    const refused = results.filter((r) => r.status !== 200);
    const stats = srv.hearth.admission.stats();
    assert.deepEqual(
      refused.map((r) => `${r.status} ${r.body?.errcode}`),
      [],
      `refused under a normal load (by reason: ${JSON.stringify(stats.shedBy.send)})`,
    );
    assert.equal(stats.shedSends, 0);
    assert.equal(stats.sends, 0, 'every slot released');

    const seen = await countTimelineMessages(alice, roomId);
    assert.equal(seen.size, total);
    for (const res of results) assert.equal(seen.get(res.body.event_id), 1, `${res.body.event_id} in the timeline once`);
  });
});
