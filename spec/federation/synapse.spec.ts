// Hearth and a real Synapse (matrix-synapse pinned in bench/peers/synapse/ctl, installed into
// bench/peers/synapse/.venv on first use) sharing rooms over federation on loopback. Both are
// driven only through their client APIs; federation between them is real TLS with self-signed
// certificates (verify_tls off on Hearth, federation_verify_certificates off on Synapse).
//
// Invariants: this spec never skips. If Synapse cannot be installed or started, the before-hook
// fails with the script's output. Synapse runs from a temporary run directory (its own config,
// database and homeserver.log) and is stopped in the after-hook. At the end, Synapse's log must
// hold no complaint about Hearth's events (signature, hash, auth).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { ctl, freePort, joined, startHearth, syncUntil, texts, waitFor, type User } from '../helpers/synapse.js';
import { dimensions, raw, twoTonePng } from '../media/helpers.js';

describe('federation: Hearth and Synapse on loopback', function () {
  this.timeout(60_000);
  let runDir: string;
  let synEnv: Record<string, string>;
  let synapseUrl: string;
  let synapseName: string;
  let hearth: TestServer;
  let hearthName: string;
  let alice: User; // on Hearth
  let sam: User; // on Synapse
  let synRoom: string; // created on Synapse
  let hearthRoom: string; // created on Hearth
  let failed = false;

  before(async function () {
    // First run installs matrix-synapse into the venv (minutes); later runs find it there.
    this.timeout(15 * 60_000);
    failed = true; // until everything is up: the after-hook then keeps what there is to look at
    const [clientPort, fedPort, hearthPort] = [await freePort(), await freePort(), await freePort()];
    runDir = mkdtempSync(join(tmpdir(), 'hearth-synapse-'));
    synEnv = { SYNAPSE_RUN_DIR: runDir, SYNAPSE_PORT: String(clientPort), SYNAPSE_FEDERATION_PORT: String(fedPort), SYNAPSE_START_TIMEOUT: '180' };
    await ctl('install', synEnv, 14 * 60_000);
    await ctl('start', synEnv, 200_000);
    synapseUrl = `http://127.0.0.1:${clientPort}`;
    synapseName = `127.0.0.1:${fedPort}`;
    hearthName = `127.0.0.1:${hearthPort}`;
    hearth = await startHearth(hearthPort);
    alice = await new Api(hearth.url).register('alice');
    sam = await new Api(synapseUrl).register('sam');
    assert.equal(sam.userId, `@sam:${synapseName}`);
    failed = false;
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });

  after(async function () {
    this.timeout(60_000);
    await hearth?.stop();
    if (synEnv) await ctl('stop', synEnv, 30_000).catch((err: unknown) => console.error(err));
    if (!runDir) return;
    if (failed) {
      // What Synapse thought of it, for the failure report; the run directory is kept.
      const log = existsSync(join(runDir, 'homeserver.log')) ? readFileSync(join(runDir, 'homeserver.log'), 'utf8').split('\n') : [];
      const notable = log.filter((l) => / - (WARNING|ERROR|CRITICAL) - |Ignoring|Request failed|Remote returned error/.test(l)).slice(-40);
      console.error(`Synapse run directory kept: ${runDir}\n${notable.join('\n')}`);
    } else if (process.env.HEARTH_KEEP_SYNAPSE_RUN === undefined) {
      rmSync(runDir, { recursive: true, force: true });
    }
  });

  it('sam@Synapse creates a room (room version 12 by default), invites alice@Hearth; she joins through Synapse', async () => {
    const created = await sam.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'from synapse' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    synRoom = created.body.room_id;
    const create = await sam.get(`/_matrix/client/v3/rooms/${enc(synRoom)}/state/m.room.create/`);
    assert.equal(create.body.room_version, '12');
    const inv = await sam.post(`/_matrix/client/v3/rooms/${enc(synRoom)}/invite`, { user_id: alice.userId });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const invited = await syncUntil(alice, (body) => body.rooms?.invite?.[synRoom]);
    const own = invited.invite_state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === alice.userId);
    assert.equal(own?.content.membership, 'invite');
    assert.equal(own?.sender, sam.userId);
    // Synapse's invite_room_state (full PDUs) shows through: the room's name before joining.
    const nameEv = invited.invite_state.events.find((e: any) => e.type === 'm.room.name');
    assert.equal(nameEv?.content.name, 'from synapse');
    assert.ok(invited.invite_state.events.some((e: any) => e.type === 'm.room.create'));
    const join = await alice.post(`/_matrix/client/v3/rooms/${enc(synRoom)}/join`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    await waitFor('alice joined at Synapse', async () => (await joined(sam, synRoom)).includes(alice.userId));
    assert.deepEqual(await joined(alice, synRoom), [alice.userId, sam.userId].sort());
    const name = await alice.get(`/_matrix/client/v3/rooms/${enc(synRoom)}/state/m.room.name/`);
    assert.equal(name.body.name, 'from synapse');
  });

  it('alice@Hearth creates a v12 room, invites sam@Synapse; he joins through Hearth', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'from hearth', room_version: '12' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    hearthRoom = created.body.room_id;
    const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/invite`, { user_id: sam.userId });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const invited = await syncUntil(sam, (body) => body.rooms?.invite?.[hearthRoom]);
    assert.ok(invited.invite_state.events.some((e: any) => e.type === 'm.room.member' && e.state_key === sam.userId && e.content.membership === 'invite'));
    const join = await sam.post(`/_matrix/client/v3/join/${enc(hearthRoom)}?server_name=${enc(hearthName)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    await waitFor('sam joined at Hearth', async () => (await joined(alice, hearthRoom)).includes(sam.userId));
    assert.deepEqual(await joined(sam, hearthRoom), [alice.userId, sam.userId].sort());
    const name = await sam.get(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/state/m.room.name/`);
    assert.equal(name.body.name, 'from hearth');
  });

  for (const which of ['Synapse', 'Hearth'] as const) {
    it(`messages cross both ways in order (room created on ${which})`, async () => {
      const room = which === 'Synapse' ? synRoom : hearthRoom;
      const tag = which[0];
      for (let i = 0; i < 3; i++) {
        const r = await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/a${tag}${i}`, { msgtype: 'm.text', body: `alice ${i}` });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      for (let i = 0; i < 3; i++) {
        const r = await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/s${tag}${i}`, { msgtype: 'm.text', body: `sam ${i}` });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      const want = ['alice 0', 'alice 1', 'alice 2', 'sam 0', 'sam 1', 'sam 2'];
      let atHearth: string[] = [];
      let atSynapse: string[] = [];
      await waitFor('all six messages on both sides', async () => {
        atHearth = await texts(alice, room);
        atSynapse = await texts(sam, room);
        return want.every((t) => atHearth.includes(t) && atSynapse.includes(t));
      });
      assert.deepEqual(atHearth.filter((t) => t.startsWith('alice')), want.slice(0, 3));
      assert.deepEqual(atHearth.filter((t) => t.startsWith('sam')), want.slice(3));
      assert.deepEqual(atSynapse.filter((t) => t.startsWith('alice')), want.slice(0, 3));
      assert.deepEqual(atSynapse.filter((t) => t.startsWith('sam')), want.slice(3));
    });
  }

  it('typing notifications cross both ways', async () => {
    const typingIn = (body: any, room: string) => (body.rooms?.join?.[room]?.ephemeral?.events ?? []).find((e: any) => e.type === 'm.typing');
    const t1 = await alice.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 20000 });
    assert.equal(t1.status, 200);
    const atSynapse = await syncUntil(sam, (body) => (typingIn(body, synRoom)?.content.user_ids.includes(alice.userId) ? typingIn(body, synRoom) : undefined));
    assert.deepEqual(atSynapse.content.user_ids, [alice.userId]);
    const t2 = await sam.put(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/typing/${enc(sam.userId)}`, { typing: true, timeout: 20000 });
    assert.equal(t2.status, 200);
    const atHearth = await syncUntil(alice, (body) => (typingIn(body, hearthRoom)?.content.user_ids.includes(sam.userId) ? typingIn(body, hearthRoom) : undefined));
    assert.deepEqual(atHearth.content.user_ids, [sam.userId]);
  });

  it('read receipts cross both ways', async () => {
    const receiptFor = (body: any, room: string, eventId: string, userId: string) =>
      (body.rooms?.join?.[room]?.ephemeral?.events ?? []).find((e: any) => e.type === 'm.receipt' && e.content[eventId]?.['m.read']?.[userId]);
    for (const [reader, other, room] of [
      [alice, sam, synRoom],
      [sam, alice, hearthRoom],
    ] as const) {
      const last = (await reader.get(`/_matrix/client/v3/rooms/${enc(room)}/messages?dir=b&limit=1`)).body.chunk[0].event_id;
      const rr = await reader.post(`/_matrix/client/v3/rooms/${enc(room)}/receipt/m.read/${enc(last)}`, {});
      assert.equal(rr.status, 200, JSON.stringify(rr.body));
      const ev = await syncUntil(other, (body) => receiptFor(body, room, last, reader.userId));
      assert.ok(ev.content[last]['m.read'][reader.userId].ts > 0);
    }
  });

  it('leaves and re-invites both ways: each side re-joins a room its server already knows', async () => {
    // sam leaves the Hearth room; alice sees it, invites him again; he joins again.
    assert.equal((await sam.post(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/leave`, {})).status, 200);
    await waitFor('sam left at Hearth', async () => !(await joined(alice, hearthRoom)).includes(sam.userId));
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/invite`, { user_id: sam.userId })).status, 200);
    await syncUntil(sam, (body) => body.rooms?.invite?.[hearthRoom]);
    const rejoin = await sam.post(`/_matrix/client/v3/join/${enc(hearthRoom)}?server_name=${enc(hearthName)}`, {});
    assert.equal(rejoin.status, 200, JSON.stringify(rejoin.body));
    await waitFor('sam back at Hearth', async () => (await joined(alice, hearthRoom)).includes(sam.userId));
    // alice leaves the Synapse room: Hearth keeps its copy of the room, so sam's new invite must
    // enter that room's DAG (Synapse sends it through /invite only, never again through /send).
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(synRoom)}/leave`, {})).status, 200);
    await waitFor('alice left at Synapse', async () => !(await joined(sam, synRoom)).includes(alice.userId));
    assert.equal((await sam.post(`/_matrix/client/v3/rooms/${enc(synRoom)}/invite`, { user_id: alice.userId })).status, 200);
    await syncUntil(alice, (body) => body.rooms?.invite?.[synRoom]);
    const join = await alice.post(`/_matrix/client/v3/rooms/${enc(synRoom)}/join`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    await waitFor('alice back at Synapse', async () => (await joined(sam, synRoom)).includes(alice.userId));
    const r = await alice.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/back`, { msgtype: 'm.text', body: 'alice is back' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor('the message after re-joining at Synapse', async () => (await texts(sam, synRoom)).includes('alice is back'));
  });

  it('a re-invite after much happened without Hearth (a gap get_missing_events cannot fill) still reaches alice', async () => {
    const created = await sam.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [alice.userId] });
    const room = created.body.room_id;
    await syncUntil(alice, (body) => body.rooms?.invite?.[room]);
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(room)}/join`, {})).status, 200);
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(room)}/leave`, {})).status, 200);
    await waitFor('alice left at Synapse', async () => !(await joined(sam, room)).includes(alice.userId));
    for (let i = 0; i < 25; i++) {
      assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/alone${i}`, { msgtype: 'm.text', body: `alone ${i}` })).status, 200);
    }
    assert.equal((await sam.post(`/_matrix/client/v3/rooms/${enc(room)}/invite`, { user_id: alice.userId })).status, 200);
    await syncUntil(alice, (body) => body.rooms?.invite?.[room]);
    const join = await alice.post(`/_matrix/client/v3/rooms/${enc(room)}/join`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    await waitFor('alice back at Synapse', async () => (await joined(sam, room)).includes(alice.userId));
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/back`, { msgtype: 'm.text', body: 'back after the gap' })).status, 200);
    await waitFor('her message at Synapse', async () => (await texts(sam, room)).includes('back after the gap'));
  });

  it("Synapse takes alice's display name from Hearth (query/profile) for its invite", async () => {
    assert.equal((await alice.put(`/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, { displayname: 'Alice of Hearth' })).status, 200);
    const room = await sam.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [alice.userId] });
    assert.equal(room.status, 200, JSON.stringify(room.body));
    const m = await sam.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/state/m.room.member/${enc(alice.userId)}`);
    assert.equal(m.status, 200, JSON.stringify(m.body));
    assert.equal(m.body.membership, 'invite');
    assert.equal(m.body.displayname, 'Alice of Hearth');
  });

  for (const version of ['1', '6', '10', '11']) {
    it(`a Hearth room of version ${version}: Synapse joins it, messages cross both ways`, async () => {
      const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_version: version });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const room = created.body.room_id;
      const join = await sam.post(`/_matrix/client/v3/join/${enc(room)}?server_name=${enc(hearthName)}`, {});
      assert.equal(join.status, 200, JSON.stringify(join.body));
      await waitFor('sam joined', async () => (await joined(alice, room)).includes(sam.userId));
      assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/v${version}s`, { msgtype: 'm.text', body: 'from sam' })).status, 200);
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/v${version}a`, { msgtype: 'm.text', body: 'from alice' })).status, 200);
      await waitFor('both messages on both sides', async () => {
        const [h, s] = [await texts(alice, room), await texts(sam, room)];
        return h.includes('from sam') && h.includes('from alice') && s.includes('from sam') && s.includes('from alice');
      });
    });
  }

  it('joins by alias both ways (query/directory on the alias server)', async () => {
    const onSynapse = await sam.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'synpub' });
    assert.equal(onSynapse.status, 200, JSON.stringify(onSynapse.body));
    const synAlias = `#synpub:${synapseName}`;
    const looked = await alice.get(`/_matrix/client/v3/directory/room/${enc(synAlias)}`);
    assert.equal(looked.status, 200, JSON.stringify(looked.body));
    assert.equal(looked.body.room_id, onSynapse.body.room_id);
    assert.ok(looked.body.servers.includes(synapseName));
    assert.equal((await alice.get(`/_matrix/client/v3/directory/room/${enc(`#nope:${synapseName}`)}`)).status, 404);
    const j1 = await alice.post(`/_matrix/client/v3/join/${enc(synAlias)}`, {});
    assert.equal(j1.status, 200, JSON.stringify(j1.body));
    assert.equal(j1.body.room_id, onSynapse.body.room_id);
    await waitFor('alice joined by alias at Synapse', async () => (await joined(sam, onSynapse.body.room_id)).includes(alice.userId));

    const onHearth = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'hearthpub' });
    assert.equal(onHearth.status, 200, JSON.stringify(onHearth.body));
    const j2 = await sam.post(`/_matrix/client/v3/join/${enc(`#hearthpub:${hearthName}`)}`, {});
    assert.equal(j2.status, 200, JSON.stringify(j2.body));
    assert.equal(j2.body.room_id, onHearth.body.room_id);
    await waitFor('sam joined by alias at Hearth', async () => (await joined(alice, onHearth.body.room_id)).includes(sam.userId));
  });

  it('sam joins a public Hearth room with history and pages back through it (Synapse backfills from Hearth)', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'history' });
    const room = created.body.room_id;
    for (let i = 0; i < 5; i++) {
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/h${i}`, { msgtype: 'm.text', body: `early ${i}` })).status, 200);
    }
    const join = await sam.post(`/_matrix/client/v3/join/${enc(room)}?server_name=${enc(hearthName)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    let seen: string[] = [];
    await waitFor('the history at Synapse', async () => {
      seen = await texts(sam, room);
      return seen.length >= 5;
    });
    assert.deepEqual(seen, ['early 0', 'early 1', 'early 2', 'early 3', 'early 4']);
  });

  it('alice joins a Synapse room with history and pages back through it (Hearth backfills from Synapse)', async () => {
    const created = await sam.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'old news' });
    const room = created.body.room_id;
    for (let i = 0; i < 5; i++) {
      assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/o${i}`, { msgtype: 'm.text', body: `old ${i}` })).status, 200);
    }
    const join = await alice.post(`/_matrix/client/v3/join/${enc(room)}?server_name=${enc(synapseName)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    assert.deepEqual(await texts(alice, room), ['old 0', 'old 1', 'old 2', 'old 3', 'old 4']);
    // Paging in small steps reaches the same history, then the end (no `end` token).
    const seen: string[] = [];
    let from: string | undefined;
    for (let i = 0; i < 20; i++) {
      const res = await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/messages?dir=b&limit=2${from ? `&from=${enc(from)}` : ''}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      for (const e of res.body.chunk) if (e.type === 'm.room.message') seen.unshift(e.content.body);
      if (!res.body.end) break;
      from = res.body.end;
    }
    assert.deepEqual(seen, ['old 0', 'old 1', 'old 2', 'old 3', 'old 4']);
  });

  it('redactions and state changes cross both ways', async () => {
    const room = synRoom;
    const a = await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/red-a`, { msgtype: 'm.text', body: 'alice regrets' });
    const s = await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/red-s`, { msgtype: 'm.text', body: 'sam regrets' });
    assert.equal(a.status, 200);
    assert.equal(s.status, 200);
    await waitFor('both messages on both sides', async () => {
      const [h, y] = [await texts(alice, room), await texts(sam, room)];
      return h.includes('alice regrets') && h.includes('sam regrets') && y.includes('alice regrets') && y.includes('sam regrets');
    });
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/redact/${enc(a.body.event_id)}/ra`, { reason: 'oops' })).status, 200);
    assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/redact/${enc(s.body.event_id)}/rs`, { reason: 'oops' })).status, 200);
    const redactedAt = async (api: Api, eventId: string) => {
      const res = await api.get(`/_matrix/client/v3/rooms/${enc(room)}/event/${enc(eventId)}`);
      return res.status === 200 && Object.keys(res.body.content).length === 0 && res.body.unsigned?.redacted_because !== undefined;
    };
    await waitFor("alice's redaction at Synapse", () => redactedAt(sam, a.body.event_id));
    await waitFor("sam's redaction at Hearth", () => redactedAt(alice, s.body.event_id));
    // sam (creator, PL 100) raises alice to 50; she renames the room; he sets the topic.
    const pl = await sam.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.power_levels/`);
    const users = { ...pl.body.users, [alice.userId]: 50 };
    assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.power_levels/`, { ...pl.body, users })).status, 200);
    await waitFor('the power levels at Hearth', async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.power_levels/`)).body.users?.[alice.userId] === 50);
    const name = await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.name/`, { name: 'renamed by alice' });
    assert.equal(name.status, 200, JSON.stringify(name.body));
    assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.topic/`, { topic: 'set by sam' })).status, 200);
    await waitFor('the name at Synapse', async () => (await sam.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.name/`)).body.name === 'renamed by alice');
    await waitFor('the topic at Hearth', async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.topic/`)).body.topic === 'set by sam');
  });

  it('concurrent state changes on both sides converge to the same state (state resolution agrees)', async () => {
    const room = synRoom; // alice has PL 50 there since the previous test
    for (let round = 0; round < 4; round++) {
      const [a, b] = await Promise.all([
        alice.put(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.topic/`, { topic: `alice ${round}` }),
        sam.put(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.topic/`, { topic: `sam ${round}` }),
      ]);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(b.status, 200, JSON.stringify(b.body));
    }
    // A message from each side merges the forward extremities.
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/merge-a`, { msgtype: 'm.text', body: 'merge a' })).status, 200);
    assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/merge-s`, { msgtype: 'm.text', body: 'merge s' })).status, 200);
    let topics: string[] = [];
    await waitFor('both sides to agree on the topic', async () => {
      const [h, y] = [await texts(alice, room), await texts(sam, room)];
      if (!['merge a', 'merge s'].every((t) => h.includes(t) && y.includes(t))) return false;
      topics = [
        (await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.topic/`)).body.topic,
        (await sam.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.topic/`)).body.topic,
      ];
      return topics[0] === topics[1];
    });
    assert.match(topics[0], /^(alice|sam) 3$/);
  });

  it('alice joins a restricted Synapse room through her membership of another (join_authorised_via_users_server)', async () => {
    const created = await sam.post('/_matrix/client/v3/createRoom', {
      preset: 'private_chat',
      room_version: '12',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: synRoom }] } }],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const room = created.body.room_id;
    const join = await alice.post(`/_matrix/client/v3/join/${enc(room)}?server_name=${enc(synapseName)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    await waitFor('alice joined at Synapse', async () => (await joined(sam, room)).includes(alice.userId));
    const m = await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.member/${enc(alice.userId)}`);
    assert.equal(m.body.join_authorised_via_users_server, sam.userId);
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/r1`, { msgtype: 'm.text', body: 'in restricted' })).status, 200);
    await waitFor('the message at Synapse', async () => (await texts(sam, room)).includes('in restricted'));
  });

  it('sam bans alice from a Synapse room; Hearth sees the ban and refuses her messages', async () => {
    const created = await sam.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const room = created.body.room_id;
    assert.equal((await alice.post(`/_matrix/client/v3/join/${enc(room)}?server_name=${enc(synapseName)}`, {})).status, 200);
    await waitFor('alice joined at Synapse', async () => (await joined(sam, room)).includes(alice.userId));
    assert.equal((await sam.post(`/_matrix/client/v3/rooms/${enc(room)}/ban`, { user_id: alice.userId, reason: 'spam' })).status, 200);
    // A banned user reads no room state (403, as Synapse): the ban shows in her sync's leave section.
    const filter = enc(JSON.stringify({ room: { include_leave: true } }));
    await waitFor('the ban at Hearth', async () => {
      const res = await alice.get(`/_matrix/client/v3/sync?filter=${filter}`);
      const left = res.body.rooms?.leave?.[room];
      const events: any[] = [...(left?.timeline?.events ?? []), ...(left?.state?.events ?? [])];
      return events.some((e) => e.type === 'm.room.member' && e.state_key === alice.userId && e.content?.membership === 'ban');
    });
    const state = await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.member/${enc(alice.userId)}`);
    assert.equal(state.status, 403, JSON.stringify(state.body));
    const send = await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/banned`, { msgtype: 'm.text', body: 'x' });
    assert.equal(send.status, 403);
  });

  it('alice kicks sam from the Hearth room; Synapse sees the kick and refuses his messages', async () => {
    const kick = await alice.post(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/kick`, { user_id: sam.userId, reason: 'bye' });
    assert.equal(kick.status, 200, JSON.stringify(kick.body));
    await waitFor('the kick at Synapse', async () => {
      const m = await sam.get(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/state/m.room.member/${enc(sam.userId)}`);
      return m.status === 200 && m.body.membership === 'leave' && m.body.reason === 'bye';
    });
    const send = await sam.put(`/_matrix/client/v3/rooms/${enc(hearthRoom)}/send/m.room.message/afterkick`, { msgtype: 'm.text', body: 'x' });
    assert.equal(send.status, 403);
  });

  it('Hearth down while sam writes: after its restart it gets what it missed, in order', async () => {
    const port = Number(hearthName.split(':')[1]);
    const dir = hearth.dataDir;
    await hearth.hearth.stop();
    for (let i = 0; i < 3; i++) {
      assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/down${i}`, { msgtype: 'm.text', body: `while down ${i}` })).status, 200);
    }
    const restarted = await startHearth(port, dir);
    const stopRestarted = restarted.stop.bind(restarted);
    hearth = Object.assign(restarted, { stop: async () => { await stopRestarted(); rmSync(dir, { recursive: true, force: true }); } });
    alice = Object.assign(new Api(hearth.url, alice.token), { userId: alice.userId, deviceId: alice.deviceId });
    // Synapse retries what it owes; whatever it does not resend, Hearth asks for when the next
    // event's prev events are unknown (get_missing_events).
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/back2`, { msgtype: 'm.text', body: 'hearth is back' })).status, 200);
    await waitFor('the message at Synapse', async () => (await texts(sam, synRoom)).includes('hearth is back'));
    assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/after`, { msgtype: 'm.text', body: 'after the gap' })).status, 200);
    let seen: string[] = [];
    await waitFor('the missed messages at Hearth', async () => {
      seen = await texts(alice, synRoom);
      return seen.includes('after the gap') && seen.includes('while down 0');
    }, 60_000);
    assert.deepEqual(seen.filter((t) => t.startsWith('while down') || t === 'after the gap'), ['while down 0', 'while down 1', 'while down 2', 'after the gap']);
  });

  it("Synapse down while alice writes: Hearth's queue delivers after Synapse restarts, in order", async () => {
    await ctl('stop', synEnv, 30_000);
    for (let i = 0; i < 3; i++) {
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/sdown${i}`, { msgtype: 'm.text', body: `synapse down ${i}` })).status, 200);
    }
    await ctl('start', { ...synEnv, SYNAPSE_KEEP_DB: '1' }, 200_000);
    let seen: string[] = [];
    await waitFor('the queued messages at Synapse', async () => {
      seen = await texts(sam, synRoom);
      return seen.filter((t) => t.startsWith('synapse down')).length === 3;
    }, 60_000);
    assert.deepEqual(seen.filter((t) => t.startsWith('synapse down')), ['synapse down 0', 'synapse down 1', 'synapse down 2']);
    assert.equal((await sam.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/sback`, { msgtype: 'm.text', body: 'synapse is back' })).status, 200);
    await waitFor('the message from the restarted Synapse at Hearth', async () => (await texts(alice, synRoom)).includes('synapse is back'));
  });

  it('a gap at Synapse (Hearth lost its queue) is filled by Synapse asking Hearth (get_missing_events)', async () => {
    const port = Number(hearthName.split(':')[1]);
    const dir = hearth.dataDir;
    await ctl('stop', synEnv, 30_000);
    for (let i = 0; i < 3; i++) {
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/gap${i}`, { msgtype: 'm.text', body: `gap ${i}` })).status, 200);
    }
    await hearth.hearth.stop();
    rmSync(join(dir, 'federation-queue'), { recursive: true, force: true }); // Hearth forgets what it owed Synapse
    await ctl('start', { ...synEnv, SYNAPSE_KEEP_DB: '1' }, 200_000);
    const restarted = await startHearth(port, dir);
    const stopRestarted = restarted.stop.bind(restarted);
    hearth = Object.assign(restarted, { stop: async () => { await stopRestarted(); rmSync(dir, { recursive: true, force: true }); } });
    alice = Object.assign(new Api(hearth.url, alice.token), { userId: alice.userId, deviceId: alice.deviceId });
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(synRoom)}/send/m.room.message/gap3`, { msgtype: 'm.text', body: 'gap 3' })).status, 200);
    let seen: string[] = [];
    await waitFor('the whole gap at Synapse', async () => {
      seen = (await texts(sam, synRoom)).filter((t) => t.startsWith('gap '));
      return seen.length === 4;
    }, 60_000);
    assert.deepEqual(seen, ['gap 0', 'gap 1', 'gap 2', 'gap 3']);
    const log = readFileSync(join(runDir, 'homeserver.log'), 'utf8');
    assert.match(log, /get_missing_events/, 'Synapse asked Hearth for the missing events');
  });

  it("media across: alice@Hearth downloads and thumbnails sam@Synapse's upload, sam downloads alice's through Synapse", async () => {
    const png = await twoTonePng(200, 100);
    const upload = async (base: string, who: User) => {
      const r = await raw(base, 'POST', '/_matrix/media/v3/upload?filename=pic.png', { token: who.token, body: png, contentType: 'image/png' });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return String(r.json.content_uri).split('/').pop()!;
    };
    const fromSynapse = await upload(synapseUrl, sam);
    const got = await raw(hearth.url, 'GET', `/_matrix/client/v1/media/download/${synapseName}/${fromSynapse}`, { token: alice.token });
    assert.equal(got.status, 200, JSON.stringify(got.json));
    assert.deepEqual(got.bytes, png);
    assert.equal(got.headers.get('content-type'), 'image/png');
    const thumb = await raw(hearth.url, 'GET', `/_matrix/client/v1/media/thumbnail/${synapseName}/${fromSynapse}?width=50&height=50&method=scale`, { token: alice.token });
    assert.equal(thumb.status, 200, JSON.stringify(thumb.json));
    assert.equal((await dimensions(thumb.bytes)).width, 50);
    const fromHearth = await upload(hearth.url, alice);
    const back = await raw(synapseUrl, 'GET', `/_matrix/client/v1/media/download/${hearthName}/${fromHearth}`, { token: sam.token });
    assert.equal(back.status, 200, JSON.stringify(back.json));
    assert.deepEqual(back.bytes, png);
    assert.equal(back.headers.get('content-type'), 'image/png');
    const backThumb = await raw(synapseUrl, 'GET', `/_matrix/client/v1/media/thumbnail/${hearthName}/${fromHearth}?width=50&height=50&method=scale`, { token: sam.token });
    assert.equal(backThumb.status, 200, JSON.stringify(backThumb.json));
  });

  it("Synapse's log holds no complaint about Hearth's events", async () => {
    const logPath = join(runDir, 'homeserver.log');
    assert.ok(existsSync(logPath), 'Synapse wrote no homeserver.log');
    const log = readFileSync(logPath, 'utf8');
    assert.ok(log.includes(hearthName), "the log mentions Hearth's server at all (INFO logging is on)");
    const lines = log.split('\n');
    // Complaints about events (signatures, hashes, auth, stripped state), and re-sent events.
    const bad = lines.filter((l) => /Signature check failed|Ignoring PDU|Ignoring received event|denied|Failed to verify|hash mismatch|failed auth|Rejecting|failed to validate/i.test(l));
    assert.deepEqual(bad, []);
    // Nothing on the federation path warned or failed at all.
    const warned = lines.filter((l) => / - (WARNING|ERROR|CRITICAL) - /.test(l) && /synapse\.(federation|handlers\.federation|crypto|event_auth|http\.matrixfederationclient|state)/.test(l));
    assert.deepEqual(warned, []);
  });
});
