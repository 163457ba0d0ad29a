// Device lists, keys and to-device across two real Hearth servers, at the federation level:
// the /user/devices, /user/keys/query and /user/keys/claim endpoints, client /keys/query and
// /keys/claim for remote users (and `failures` for a server that is down), m.device_list_update
// gaps resynced through /user/devices, repeats ignored, m.direct_to_device deduplicated by
// message_id, and the durable EDU queue surviving a restart. Some EDUs are forged with the
// sending server's real key (read from its key file) to produce gaps and repeats on purpose.

import { createServer, type Socket } from 'node:net';
import { assert } from '../helpers/assert.js';
import { enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, signedFedRequest, startFederated, startPair, syncUntil, waitFor } from '../helpers/federation.js';
import { CrossSigning, login, passwordAuth, PASSWORD, syncToken, TestDevice, uploadDevice, type User } from '../api/keys-helpers.js';
import { Api } from '../helpers/server.js';

const V3 = '/_matrix/client/v3';

describe('federation: device lists, keys and to-device between two servers', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let nameB: string;
  let carol: User; // @A
  let dave: User; // @B
  let carolDev: TestDevice;
  let daveDev: TestDevice;
  let roomId: string;
  let txn = 0;

  /** A transaction from A to B carrying `edus`, signed with A's key. */
  const forgeFromA = (edus: unknown[]) => signedFedRequest(a, b, 'PUT', `/_matrix/federation/v1/send/forged${++txn}_${Date.now()}`, { origin: nameA, origin_server_ts: Date.now(), pdus: [], edus });

  before(async () => {
    ({ a, b, nameA, nameB } = await startPair());
    carol = await new Api(a.url).register('carol', PASSWORD);
    dave = await new Api(b.url).register('dave', PASSWORD);
    carolDev = new TestDevice(carol.userId, carol.deviceId);
    daveDev = new TestDevice(dave.userId, dave.deviceId);
    await uploadDevice(carol, carolDev, 3);
    await uploadDevice(dave, daveDev, 3);
    const created = await carol.post(`${V3}/createRoom`, { preset: 'private_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    assert.equal((await carol.post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: dave.userId })).status, 200);
    await syncUntil(dave, (body) => body.rooms?.invite?.[roomId]);
    assert.equal((await dave.post(`${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('/user/devices, /user/keys/query and /user/keys/claim answer for local users only', async () => {
    assert.equal((await carol.put(`${V3}/devices/${enc(carol.deviceId)}`, { display_name: "carol's laptop" })).status, 200);
    const local = await carol.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.equal(local.body.device_keys[carol.userId][carol.deviceId].unsigned?.device_display_name, "carol's laptop");
    const devices = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/user/devices/${enc(carol.userId)}`);
    assert.equal(devices.status, 200, JSON.stringify(devices.body));
    assert.equal(devices.body.user_id, carol.userId);
    assert.ok(Number.isSafeInteger(devices.body.stream_id) && devices.body.stream_id > 0);
    assert.deepEqual(devices.body.devices.map((d: any) => d.device_id), [carol.deviceId]);
    assert.deepEqual(devices.body.devices[0].keys.keys, (carolDev.deviceKeys() as any).keys);
    const remote = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/user/devices/${enc(dave.userId)}`);
    assert.equal(remote.status, 400);
    assert.equal(remote.body.errcode, 'M_INVALID_PARAM');

    const q = await signedFedRequest(b, a, 'POST', '/_matrix/federation/v1/user/keys/query', { device_keys: { [carol.userId]: [], [dave.userId]: [] } });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.deepEqual(Object.keys(q.body.device_keys), [carol.userId], 'nothing for a user of another server');
    assert.equal(q.body.device_keys[carol.userId][carol.deviceId].device_id, carol.deviceId);
    assert.ok(!JSON.stringify([q.body, devices.body]).includes('laptop'), 'device names stay on A');
    assert.equal((await signedFedRequest(b, a, 'POST', '/_matrix/federation/v1/user/keys/query', { device_keys: 'x' })).body.errcode, 'M_BAD_JSON');

    const c = await signedFedRequest(b, a, 'POST', '/_matrix/federation/v1/user/keys/claim', { one_time_keys: { [carol.userId]: { [carol.deviceId]: 'signed_curve25519' } } });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    const claimed = Object.keys(c.body.one_time_keys[carol.userId][carol.deviceId]);
    assert.equal(claimed.length, 1);
    assert.match(claimed[0], /^signed_curve25519:/);
    assert.deepEqual(await a.hearth.store.e2ee.countOneTimeKeys(carol.userId, carol.deviceId), { signed_curve25519: 2 });
    const unsigned = await signedFedRequest(b, a, 'POST', '/_matrix/federation/v1/user/keys/claim', { one_time_keys: [] });
    assert.equal(unsigned.status, 400);
  });

  it('client /keys/query and /keys/claim for a remote user ask their server', async () => {
    const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.deepEqual(q.body.failures, {});
    assert.deepEqual(Object.keys(q.body.device_keys[carol.userId]), [carol.deviceId]);
    assert.ok(b.hearth.federation!.e2ee!.remote.cached(carol.userId), 'B caches the list of a user it shares a room with');
    const c = await dave.post(`${V3}/keys/claim`, { one_time_keys: { [carol.userId]: { [carol.deviceId]: 'signed_curve25519' } } });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.equal(Object.keys(c.body.one_time_keys[carol.userId][carol.deviceId]).length, 1);
    assert.deepEqual(await a.hearth.store.e2ee.countOneTimeKeys(carol.userId, carol.deviceId), { signed_curve25519: 1 });
  });

  it('a new device of carol@A reaches dave@B\'s /sync device_lists.changed and /keys/changes, and his /keys/query', async () => {
    const since = await syncToken(dave);
    const carol2 = await login(a.url, 'carol');
    const dev2 = new TestDevice(carol.userId, carol2.deviceId);
    await uploadDevice(carol2, dev2, 1);
    const changed = await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? body.device_lists.changed : undefined), 15_000, since);
    assert.ok(changed.includes(carol.userId));
    const kc = await dave.get(`${V3}/keys/changes?from=${enc(since)}`);
    assert.ok(kc.body.changed.includes(carol.userId), JSON.stringify(kc.body));
    await waitFor(async () => {
      const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
      return q.body.device_keys[carol.userId]?.[carol2.deviceId] !== undefined;
    });
    // Deleting the device crosses too, and B's list loses it.
    const del = await carol2.post(`${V3}/delete_devices`, { devices: [carol2.deviceId], auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: carol.userId }, password: PASSWORD } });
    assert.equal(del.status, 200, JSON.stringify(del.body));
    await waitFor(async () => {
      const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
      return q.body.device_keys[carol.userId] !== undefined && q.body.device_keys[carol.userId][carol2.deviceId] === undefined;
    });
  });

  it('a device renamed at A crosses as an m.device_list_update without the name: dave@B sees carol in device_lists.changed', async () => {
    const remote = b.hearth.federation!.e2ee!.remote;
    await remote.settled();
    const before = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.ok(before.body.device_keys[carol.userId]?.[carol.deviceId], JSON.stringify(before.body));
    const since = await syncToken(dave);
    const renamed = await carol.put(`${V3}/devices/${enc(carol.deviceId)}`, { display_name: "carol's phone" });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    // Spec: an update is sent on any change of device information, the display name included.
    await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? true : undefined), 15_000, since);
    await remote.settled();
    const after = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    const dev = after.body.device_keys[carol.userId]?.[carol.deviceId];
    assert.ok(dev, JSON.stringify(after.body));
    assert.equal(dev.unsigned?.device_display_name, undefined, 'the name itself stays at A');
    assert.deepEqual(dev.keys, before.body.device_keys[carol.userId][carol.deviceId].keys);
    // The same name again changes nothing, and is not announced.
    const since2 = await syncToken(dave);
    assert.equal((await carol.put(`${V3}/devices/${enc(carol.deviceId)}`, { display_name: "carol's phone" })).status, 200);
    const idle = await dave.get(`${V3}/sync?timeout=500&since=${enc(since2)}`);
    assert.ok(!(idle.body.device_lists?.changed ?? []).includes(carol.userId), JSON.stringify(idle.body.device_lists));
  });

  it('cross-signing keys uploaded at A cross as m.signing_key_update: device_lists.changed at B, and B serves them', async () => {
    const since = await syncToken(dave);
    const cs = new CrossSigning(carol.userId);
    const up = await carol.post(`${V3}/keys/device_signing/upload`, { ...cs.all(), auth: passwordAuth(carol) });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? true : undefined), 15_000, since);
    await waitFor(async () => {
      const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
      return JSON.stringify(q.body.master_keys?.[carol.userId]?.keys) === JSON.stringify(cs.masterKey().keys) && q.body.self_signing_keys?.[carol.userId] !== undefined;
    });
    const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.equal(q.body.user_signing_keys[carol.userId], undefined, "carol's user-signing key never leaves A");
  });

  it('an m.device_list_update after a gap in prev_id resyncs through /user/devices; the next in sequence applies; a repeat is ignored', async () => {
    const remote = b.hearth.federation!.e2ee!.remote;
    await remote.settled();
    const truth = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/user/devices/${enc(carol.userId)}`);
    const ghost = new TestDevice(carol.userId, 'GHOST');
    const before = remote.resyncs;
    const sinceGap = await syncToken(dave);
    const gap = await forgeFromA([
      { edu_type: 'm.device_list_update', content: { user_id: carol.userId, device_id: 'GHOST', stream_id: truth.body.stream_id + 1000, prev_id: [truth.body.stream_id + 999], deleted: false, keys: ghost.deviceKeys() } },
    ]);
    assert.equal(gap.status, 200, JSON.stringify(gap.body));
    await waitFor(async () => remote.resyncs === before + 1 && remote.cached(carol.userId)?.streamId !== undefined && remote.cached(carol.userId)?.streamId !== null);
    await remote.settled();
    const cached = remote.cached(carol.userId)!;
    assert.equal(cached.streamId, truth.body.stream_id, 'the cache is at the stream ID /user/devices gave');
    assert.deepEqual([...cached.devices.keys()], [carol.deviceId], 'the EDU after the gap was not applied: the list is what A says');
    // dave's client, syncing incrementally from before the gap, hears that carol's list changed;
    // one whose token was taken once the resync had landed has nothing to re-fetch (spec: changes
    // since the token), which is what SyTest's "If a device list update goes missing" races on.
    await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? true : undefined), 15_000, sinceGap);
    const afterResync = await syncToken(dave);
    const quiet = await dave.get(`${V3}/sync?timeout=300&since=${enc(afterResync)}`);
    assert.ok(!(quiet.body.device_lists?.changed ?? []).includes(carol.userId), JSON.stringify(quiet.body.device_lists));

    // The next update in sequence applies without another resync.
    const next = { user_id: carol.userId, device_id: 'GHOST', stream_id: cached.streamId! + 1, prev_id: [cached.streamId], deleted: false, keys: ghost.deviceKeys(), device_display_name: 'ghost' };
    const since = await syncToken(dave);
    assert.equal((await forgeFromA([{ edu_type: 'm.device_list_update', content: next }])).status, 200);
    await waitFor(async () => remote.cached(carol.userId)?.devices.has('GHOST') === true);
    assert.equal(remote.resyncs, before + 1);
    const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.equal(q.body.device_keys[carol.userId].GHOST?.unsigned?.device_display_name, 'ghost', 'served from the cache (A has no GHOST)');
    await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? true : undefined), 15_000, since);

    // The same update again (a repeat, e.g. a retried transaction): ignored, nothing resynced.
    const since2 = await syncToken(dave);
    assert.equal((await forgeFromA([{ edu_type: 'm.device_list_update', content: next }])).status, 200);
    const idle = await dave.get(`${V3}/sync?timeout=500&since=${enc(since2)}`);
    assert.ok(!(idle.body.device_lists?.changed ?? []).includes(carol.userId), JSON.stringify(idle.body.device_lists));
    assert.equal(remote.resyncs, before + 1);

    // An update about a user of another server is not believed.
    const forgedOther = { user_id: dave.userId, device_id: 'X', stream_id: 1, prev_id: [], deleted: true };
    const r = await forgeFromA([{ edu_type: 'm.device_list_update', content: forgedOther }]);
    assert.equal(r.status, 200);
    assert.equal(remote.resyncs, before + 1);
    assert.equal(remote.cached(dave.userId), undefined);
  });

  it('a list B does not hold, of a user sharing a room: /keys/query fetches it with /user/devices (stream ID kept), and the first update for it resyncs at once', async () => {
    const remote = b.hearth.federation!.e2ee!.remote;
    const joinAtA = async (name: string): Promise<User> => {
      const u = await new Api(a.url).register(name, PASSWORD);
      assert.equal((await carol.post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: u.userId })).status, 200);
      assert.equal((await u.post(`${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
      await waitFor(async () => (await b.hearth.store.rooms.getRoomsForUser(u.userId, ['join'])).length > 0, 15_000, `B sees ${name} join`);
      return u;
    };
    // erin has no keys, so A never announced her list: B holds nothing for her.
    const erin = await joinAtA('erin');
    await remote.settled();
    assert.equal(remote.cached(erin.userId), undefined);
    const before = remote.resyncs;
    const q = await dave.post(`${V3}/keys/query`, { device_keys: { [erin.userId]: [] } });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.deepEqual(q.body.failures, {});
    assert.deepEqual(q.body.device_keys[erin.userId], {});
    assert.equal(remote.resyncs, before + 1, 'fetched with /user/devices');
    assert.equal(typeof remote.cached(erin.userId)?.streamId, 'number', 'the cache is at the stream ID A gave, so later updates apply');

    // frank uploads keys after joining: A's first update about him reaches B, which holds no list
    // for him and fetches it without waiting for a client to ask.
    const frank = await joinAtA('frank');
    await remote.settled();
    await uploadDevice(frank, new TestDevice(frank.userId, frank.deviceId), 1);
    await waitFor(async () => remote.cached(frank.userId)?.devices.has(frank.deviceId) === true, 15_000, "B holds frank's list");
    assert.equal(typeof remote.cached(frank.userId)?.streamId, 'number');
  });

  it('m.direct_to_device reaches the local device once per message_id, even in two transactions', async () => {
    const dave2 = await login(b.url, 'dave');
    const since = await syncToken(dave2);
    const content = { sender: carol.userId, type: 'org.example.ping', message_id: `m-${Date.now()}`, messages: { [dave.userId]: { [dave2.deviceId]: { n: 1 } } } };
    const fed = b.hearth.federation!.e2ee!;
    const dups = fed.duplicateMessages;
    assert.equal((await forgeFromA([{ edu_type: 'm.direct_to_device', content }])).status, 200);
    assert.equal((await forgeFromA([{ edu_type: 'm.direct_to_device', content }])).status, 200);
    // A message claiming a sender of another server is dropped.
    assert.equal((await forgeFromA([{ edu_type: 'm.direct_to_device', content: { ...content, sender: dave.userId, message_id: 'other' } }])).status, 200);
    assert.equal(fed.duplicateMessages, dups + 1);
    const events: any[] = [];
    let from = since;
    for (let i = 0; i < 3; i++) {
      const res = await dave2.get(`${V3}/sync?timeout=${i === 0 ? 2000 : 300}&since=${enc(from)}`);
      events.push(...(res.body.to_device?.events ?? []).filter((e: any) => e.type === 'org.example.ping'));
      from = res.body.next_batch;
    }
    assert.deepEqual(events, [{ type: 'org.example.ping', sender: carol.userId, content: { n: 1 } }]);
  });

  it('/sendToDevice to a remote user crosses as m.direct_to_device ("*" reaches every device)', async () => {
    const since = await syncToken(dave);
    const r = await carol.put(`${V3}/sendToDevice/org.example.hello/t1`, { messages: { [dave.userId]: { '*': { hi: 'dave' } } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const got = await syncUntil(dave, (body) => (body.to_device?.events ?? []).find((e: any) => e.type === 'org.example.hello'), 15_000, since);
    assert.deepEqual(got, { type: 'org.example.hello', sender: carol.userId, content: { hi: 'dave' } });
  });

  it('a server that accepts connections but never answers is cut off at the request\'s timeout; other servers\' answers stand', async () => {
    const sockets: Socket[] = [];
    const hole = createServer((s) => sockets.push(s)); // accepts, never speaks (not even TLS)
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
    const silent = `127.0.0.1:${(hole.address() as { port: number }).port}`;
    try {
      const t0 = Date.now();
      const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [], [`@ghost:${silent}`]: [] }, timeout: 1500 });
      const took = Date.now() - t0;
      assert.equal(q.status, 200, JSON.stringify(q.body));
      assert.equal(q.body.failures[silent]?.status, 504, JSON.stringify(q.body.failures));
      assert.ok(q.body.device_keys[carol.userId][carol.deviceId], 'A answered meanwhile');
      assert.ok(took >= 1400 && took < 6000, `took ${took} ms`);
      const c = await dave.post(`${V3}/keys/claim`, { one_time_keys: { [`@ghost:${silent}`]: { X: 'signed_curve25519' } }, timeout: 1000 });
      assert.equal(c.body.failures[silent]?.status, 504, JSON.stringify(c.body));
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hole.close(r));
    }
  });

  it('a server that is down is named in /keys/query and /keys/claim failures; the local part of the answer stands', async () => {
    const portB = Number(nameB.split(':')[1]);
    const dirB = b.dataDir;
    await b.hearth.stop();
    try {
      const t0 = Date.now();
      const q = await carol.post(`${V3}/keys/query`, { device_keys: { [dave.userId]: [], [carol.userId]: [] }, timeout: 3000 });
      assert.equal(q.status, 200, JSON.stringify(q.body));
      assert.ok(q.body.failures[nameB], JSON.stringify(q.body.failures));
      assert.ok(q.body.device_keys[carol.userId][carol.deviceId]);
      assert.ok(Date.now() - t0 < 10_000);
      const c = await carol.post(`${V3}/keys/claim`, { one_time_keys: { [dave.userId]: { [dave.deviceId]: 'signed_curve25519' } }, timeout: 3000 });
      assert.equal(c.status, 200);
      assert.ok(c.body.failures[nameB], JSON.stringify(c.body));
      assert.deepEqual(c.body.one_time_keys, {});
      // A to-device message sent meanwhile waits in A's durable queue, even across A's restart.
      const r = await carol.put(`${V3}/sendToDevice/org.example.queued/q1`, { messages: { [dave.userId]: { [dave.deviceId]: { while: 'down' } } } });
      assert.equal(r.status, 200);
      await waitFor(async () => (await a.hearth.federation!.core.sender.eduBacklog(nameB)) > 0);
      const portA = Number(nameA.split(':')[1]);
      const dirA = a.dataDir;
      await a.hearth.stop();
      a = await startFederated(portA, dirA);
    } finally {
      b = await startFederated(portB, dirB);
    }
    dave = Object.assign(new Api(b.url, dave.token), { userId: dave.userId, deviceId: dave.deviceId }) as User;
    const got = await syncUntil(dave, (body) => (body.to_device?.events ?? []).find((e: any) => e.type === 'org.example.queued'), 20_000);
    assert.deepEqual(got.content, { while: 'down' });
  });
});
