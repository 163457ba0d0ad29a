// Two real Hearth servers in this process, different names and ports on loopback, talking over
// their TLS federation listeners (self-signed certificates generated at start; verify_tls off,
// loopback allowed for federation only). Everything goes through HTTP: client APIs on each side,
// federation between them.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, collect, fedRequest, freePort, startFederated, syncUntil, waitFor } from '../helpers/federation.js';
import { buildXMatrixAuthorization } from '../../src/protocol/x-matrix.js';
import { generateSigningKey, signJson } from '../../src/protocol/crypto.js';
import type { JsonObject } from '../../src/protocol/types.js';

describe('federation: two Hearth servers on loopback', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let nameB: string;
  let alice: Api & { userId: string };
  let bob: Api & { userId: string };
  let roomId: string;
  /** A `joined`-history event from before bob joined (history test). */
  let hiddenFromB: { roomId: string; eventId: string } | undefined;

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    nameA = `127.0.0.1:${pa}`;
    nameB = `127.0.0.1:${pb}`;
    a = await startFederated(pa);
    b = await startFederated(pb);
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('serves a self-signed key document on the TLS listener', async () => {
    const fed = a.hearth.federation;
    assert.ok(fed && fed.url.startsWith('https://'));
    const res = await fedRequest(fed.url, 'GET', '/_matrix/key/v2/server', {});
    assert.equal(res.status, 200);
    assert.equal(res.body.server_name, nameA);
    assert.ok(res.body.valid_until_ts > Date.now());
    assert.equal(Object.keys(res.body.verify_keys).length, 1);
    assert.ok(res.body.signatures[nameA]);
  });

  it('notary: B answers for A\'s keys, signed by both', async () => {
    const res = await fedRequest(b.hearth.federation!.url, 'POST', '/_matrix/key/v2/query', {}, { server_keys: { [nameA]: {} } });
    assert.equal(res.status, 200);
    assert.equal(res.body.server_keys.length, 1);
    assert.equal(res.body.server_keys[0].server_name, nameA);
    assert.ok(res.body.server_keys[0].signatures[nameA] && res.body.server_keys[0].signatures[nameB]);
    // GET /query/{serverName}, and the older form with a key ID (r0; Synapse still serves it),
    // which answers every key of the server.
    for (const path of [`/_matrix/key/v2/query/${enc(nameA)}`, `/_matrix/key/v2/query/${enc(nameA)}/${enc('ed25519:nonesuch')}`]) {
      const got = await fedRequest(b.hearth.federation!.url, 'GET', path, {});
      assert.equal(got.status, 200, `${path}: ${JSON.stringify(got.body)}`);
      assert.deepEqual(got.body.server_keys.map((k: any) => k.server_name), [nameA]);
      assert.ok(got.body.server_keys[0].signatures[nameB], 'signed by the notary');
    }
  });

  it('alice@A creates a room and invites bob@B; the invite is in bob\'s /sync; bob joins through A', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'across' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    // The invite shows in bob's /sync on B, with A's signature and B's.
    let bobSince: string | undefined;
    const invited = await syncUntil(bob, (body) => {
      bobSince = body.next_batch;
      return body.rooms?.invite?.[roomId];
    });
    const own = invited.invite_state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId);
    assert.equal(own?.content.membership, 'invite');
    assert.equal(own?.sender, alice.userId);
    // The invite_room_state A sent along (full PDUs) names the room before bob joins.
    assert.equal(invited.invite_state.events.find((e: any) => e.type === 'm.room.name')?.content.name, 'across');
    assert.ok(invited.invite_state.events.some((e: any) => e.type === 'm.room.member' && e.state_key === alice.userId && e.content.membership === 'join'));
    // No server named: the inviter's server is asked.
    const join = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    assert.equal(join.body.room_id, roomId);
    // A sees bob joined (the join went through A's room input via send_join).
    const members = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
    assert.equal(members.status, 200);
    assert.deepEqual(Object.keys(members.body.joined).sort(), [alice.userId, bob.userId].sort());
    // B has the room's state: the name set on A.
    const name = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`);
    assert.equal(name.status, 200, JSON.stringify(name.body));
    assert.equal(name.body.name, 'across');
    // Bob's next /sync brings the room with its state (it came with send_join, not as timeline).
    const section = await syncUntil(bob, (body) => body.rooms?.join?.[roomId], 15_000, bobSince);
    const all = [...section.state.events, ...section.timeline.events];
    assert.equal(all.find((e: any) => e.type === 'm.room.name')?.content.name, 'across');
    assert.ok(all.some((e: any) => e.type === 'm.room.create'));
  });

  it('a user of B joins a public room of A by ID with server_name (no invite)', async () => {
    const pub = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'open' });
    assert.equal(pub.status, 200);
    const carol = await new Api(b.url).register('carol');
    const noVia = await carol.post(`/_matrix/client/v3/join/${enc(pub.body.room_id)}`, {});
    assert.equal(noVia.status, 404, 'a v12 room ID names no server: without server_name it is unknown');
    const join = await carol.post(`/_matrix/client/v3/join/${enc(pub.body.room_id)}?server_name=${enc(nameA)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    const members = await alice.get(`/_matrix/client/v3/rooms/${enc(pub.body.room_id)}/joined_members`);
    assert.ok(members.body.joined[carol.userId]);
  });

  it('a user of B joins a room of A with history and pages back through it (backfill from A)', async () => {
    const pub = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    for (let i = 0; i < 4; i++) {
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(pub.body.room_id)}/send/m.room.message/old${i}`, { msgtype: 'm.text', body: `old ${i}` })).status, 200);
    }
    const frank = await new Api(b.url).register('frank');
    assert.equal((await frank.post(`/_matrix/client/v3/join/${enc(pub.body.room_id)}?server_name=${enc(nameA)}`, {})).status, 200);
    const res = await frank.get(`/_matrix/client/v3/rooms/${enc(pub.body.room_id)}/messages?dir=b&limit=20`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const texts = [...res.body.chunk].reverse().filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
    assert.deepEqual(texts, ['old 0', 'old 1', 'old 2', 'old 3']);
    // Stored here now: B answers the same page without asking A again.
    const again = await frank.get(`/_matrix/client/v3/rooms/${enc(pub.body.room_id)}/messages?dir=b&limit=20`);
    assert.deepEqual(again.body.chunk.map((e: any) => e.event_id), res.body.chunk.map((e: any) => e.event_id));
    const stored = await b.hearth.store.rooms.getEvent(res.body.chunk.find((e: any) => e.content?.body === 'old 0').event_id);
    assert.ok(stored && stored.stream < 0, 'backfilled history sits below the stream');
  });

  it('a user of B rejects an invite to a room B does not know, through make_leave/send_leave on A', async () => {
    const dave = await new Api(b.url).register('dave');
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat' });
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/invite`, { user_id: dave.userId })).status, 200);
    const since = await syncUntil(dave, (body) => (body.rooms?.invite?.[room.body.room_id] ? body.next_batch : undefined));
    const leave = await dave.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/leave`, {});
    assert.equal(leave.status, 200, JSON.stringify(leave.body));
    const m = await alice.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/state/m.room.member/${enc(dave.userId)}`);
    assert.equal(m.body.membership, 'leave');
    const after = await dave.get(`/_matrix/client/v3/sync?timeout=5000&since=${enc(since)}`);
    assert.ok(after.body.rooms?.leave?.[room.body.room_id], JSON.stringify(after.body.rooms));
  });

  it('query/directory and query/profile answer B for A\'s aliases and users', async () => {
    const { readSigningKeyFile } = await import('../../src/protocol/keyfile.js');
    const keyB = (await readSigningKeyFile(b.hearth.config.signing_key_path))[0];
    const alias = `#across:${nameA}`;
    assert.equal((await alice.put(`/_matrix/client/v3/directory/room/${enc(alias)}`, { room_id: roomId })).status, 200);
    assert.equal((await alice.put(`/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, { displayname: 'Alice A' })).status, 200);
    const ask = async (path: string) => {
      const auth = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: nameB, destination: nameA }, keyB);
      return fedRequest(a.hearth.federation!.url, 'GET', path, { authorization: auth });
    };
    const dir = await ask(`/_matrix/federation/v1/query/directory?room_alias=${enc(alias)}`);
    assert.equal(dir.status, 200, JSON.stringify(dir.body));
    assert.equal(dir.body.room_id, roomId);
    assert.deepEqual([...dir.body.servers].sort(), [nameA, nameB].sort());
    assert.equal((await ask(`/_matrix/federation/v1/query/directory?room_alias=${enc(`#nope:${nameA}`)}`)).status, 404);
    const prof = await ask(`/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}&field=displayname`);
    assert.deepEqual(prof.body, { displayname: 'Alice A' });
  });

  it('a user of B resolves and joins a room of A by its alias (query/directory through federation)', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'byalias' });
    assert.equal(room.status, 200, JSON.stringify(room.body));
    const erin = await new Api(b.url).register('erin');
    const alias = `#byalias:${nameA}`;
    const looked = await erin.get(`/_matrix/client/v3/directory/room/${enc(alias)}`);
    assert.equal(looked.status, 200, JSON.stringify(looked.body));
    assert.equal(looked.body.room_id, room.body.room_id);
    assert.deepEqual(looked.body.servers, [nameA]);
    assert.equal((await erin.get(`/_matrix/client/v3/directory/room/${enc(`#none:${nameA}`)}`)).status, 404);
    const join = await erin.post(`/_matrix/client/v3/join/${enc(alias)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    assert.equal(join.body.room_id, room.body.room_id);
    const members = await alice.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/joined_members`);
    assert.ok(members.body.joined[erin.userId]);
  });

  it('messages cross both ways and arrive in order in each side\'s /sync', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/a${i}`, { msgtype: 'm.text', body: `from alice ${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const atB = await collect(bob, roomId, (texts) => texts.filter((t) => t.startsWith('from alice')).length >= 3);
    assert.deepEqual(atB.filter((t) => t.startsWith('from alice')), ['from alice 0', 'from alice 1', 'from alice 2']);
    for (let i = 0; i < 3; i++) {
      const r = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/b${i}`, { msgtype: 'm.text', body: `from bob ${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const atA = await collect(alice, roomId, (texts) => texts.filter((t) => t.startsWith('from bob')).length >= 3);
    assert.deepEqual(atA.filter((t) => t.startsWith('from bob')), ['from bob 0', 'from bob 1', 'from bob 2']);
    assert.deepEqual(atA.filter((t) => t.startsWith('from alice')), ['from alice 0', 'from alice 1', 'from alice 2']);
  });

  it('typing and read receipts cross as EDUs', async () => {
    const t = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 20000 });
    assert.equal(t.status, 200);
    const typing = await syncUntil(alice, (body) => {
      const ev = (body.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find((e: any) => e.type === 'm.typing');
      return ev?.content.user_ids.includes(bob.userId) ? ev : undefined;
    });
    assert.deepEqual(typing.content.user_ids, [bob.userId]);

    const msgs = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
    const last = msgs.body.chunk[0].event_id;
    const rr = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {});
    assert.equal(rr.status, 200, JSON.stringify(rr.body));
    const receipt = await syncUntil(bob, (body) => {
      const ev = (body.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find((e: any) => e.type === 'm.receipt' && e.content[last]);
      return ev?.content[last]['m.read'][alice.userId] ? ev : undefined;
    });
    assert.ok(receipt.content[last]['m.read'][alice.userId].ts > 0);
  });

  it('refuses a forged X-Matrix request with 401 M_UNAUTHORIZED', async () => {
    const base = a.hearth.federation!.url;
    const path = `/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}`;
    const wrongKey = { ...generateSigningKey('forged'), keyId: (await fedRequest(b.hearth.federation!.url, 'GET', '/_matrix/key/v2/server', {})).body && Object.keys((await fedRequest(b.hearth.federation!.url, 'GET', '/_matrix/key/v2/server', {})).body.verify_keys)[0] };
    const forged = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: nameB, destination: nameA }, wrongKey);
    const res = await fedRequest(base, 'GET', path, { authorization: forged });
    assert.equal(res.status, 401);
    assert.equal(res.body.errcode, 'M_UNAUTHORIZED');
    const none = await fedRequest(base, 'GET', path, {});
    assert.equal(none.status, 401);
  });

  it('refuses a PDU whose signature is forged; it never reaches the timeline', async () => {
    // A correctly authenticated transaction (X-Matrix by B's real key, taken from B's key file)
    // carrying an event whose signature is garbage.
    const { readSigningKeyFile } = await import('../../src/protocol/keyfile.js');
    const keyB = (await readSigningKeyFile(b.hearth.config.signing_key_path))[0];
    const state = await a.hearth.roomInput.currentState(roomId);
    assert.ok(state);
    const tmpl = await a.hearth.roomInput.template(roomId, { type: 'm.room.message', sender: bob.userId, content: { msgtype: 'm.text', body: 'forged' } });
    assert.ok(tmpl);
    const { signEvent } = await import('../../src/protocol/events.js');
    const pdu = signEvent(tmpl.pdu, nameB, keyB, tmpl.version) as unknown as JsonObject;
    const sigs = pdu.signatures as Record<string, Record<string, string>>;
    const keyId = Object.keys(sigs[nameB])[0];
    sigs[nameB][keyId] = sigs[nameB][keyId].replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    const txn = { origin: nameB, origin_server_ts: Date.now(), pdus: [pdu], edus: [] };
    const path = `/_matrix/federation/v1/send/forged1`;
    const auth = buildXMatrixAuthorization({ method: 'PUT', uri: path, origin: nameB, destination: nameA, content: txn }, keyB);
    const res = await fedRequest(a.hearth.federation!.url, 'PUT', path, { authorization: auth }, txn);
    assert.equal(res.status, 200);
    const results = Object.values(res.body.pdus) as any[];
    assert.equal(results.length, 1);
    assert.match(results[0].error, /signature/);
    const msgs = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
    assert.ok(!msgs.body.chunk.some((e: any) => e.content?.body === 'forged'));
    void signJson;
  });

  it('history is served only to servers whose users could see it', async () => {
    const { readSigningKeyFile } = await import('../../src/protocol/keyfile.js');
    const keyB = (await readSigningKeyFile(b.hearth.config.signing_key_path))[0];
    const ask = async (path: string) => {
      const auth = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: nameB, destination: nameA }, keyB);
      return fedRequest(a.hearth.federation!.url, 'GET', path, { authorization: auth });
    };
    // `shared` history (the default): B has a member joined now, so it may read from the start,
    // even events from before bob joined (his client may page back through them).
    const first = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=1`);
    assert.equal(first.body.chunk[0].type, 'm.room.create');
    const shared = await ask(`/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(first.body.chunk[0].event_id)}`);
    assert.equal(shared.status, 200, JSON.stringify(shared.body));
    // `joined` history: what was sent before bob joined stays hidden from B.
    const room = await alice.post('/_matrix/client/v3/createRoom', {
      preset: 'private_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    });
    const hidden = await alice.put(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/send/m.room.message/before`, { msgtype: 'm.text', body: 'before bob' });
    assert.equal(hidden.status, 200);
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/invite`, { user_id: bob.userId })).status, 200);
    await syncUntil(bob, (body) => body.rooms?.invite?.[room.body.room_id]);
    assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/join`, {})).status, 200);
    hiddenFromB = { roomId: room.body.room_id, eventId: hidden.body.event_id };
    const early = await ask(`/_matrix/federation/v1/state_ids/${enc(room.body.room_id)}?event_id=${enc(hidden.body.event_id)}`);
    assert.equal(early.status, 403, JSON.stringify(early.body));
    assert.equal((await ask(`/_matrix/federation/v1/event/${enc(hidden.body.event_id)}`)).status, 404);
    // The latest event: bob is joined there, so B may read it and its state.
    const latest = await alice.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/messages?dir=b&limit=1`);
    const lastId = latest.body.chunk[0].event_id;
    const ev = await ask(`/_matrix/federation/v1/event/${enc(lastId)}`);
    assert.equal(ev.status, 200, JSON.stringify(ev.body));
    assert.equal(ev.body.pdus.length, 1);
    const st = await ask(`/_matrix/federation/v1/state_ids/${enc(room.body.room_id)}?event_id=${enc(lastId)}`);
    assert.equal(st.status, 200);
    const createId = (await alice.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/messages?dir=f&limit=1`)).body.chunk[0].event_id;
    assert.ok(st.body.pdu_ids.includes(createId), 'the create event is in the state');
    assert.ok(Array.isArray(st.body.auth_chain_ids) && st.body.auth_chain_ids.length > 0);
  });

  it('event_auth answers the auth chain of an event B may see, and refuses one from before B was in the room', async () => {
    const { readSigningKeyFile } = await import('../../src/protocol/keyfile.js');
    const keyB = (await readSigningKeyFile(b.hearth.config.signing_key_path))[0];
    const ask = async (path: string) => {
      const auth = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: nameB, destination: nameA }, keyB);
      return fedRequest(a.hearth.federation!.url, 'GET', path, { authorization: auth });
    };
    const latest = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
    const last = latest.body.chunk[0];
    const res = await ask(`/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(last.event_id)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const types = res.body.auth_chain.map((e: any) => e.type);
    // A v12 room: the create event is named by the room ID, not cited in auth_events.
    for (const t of ['m.room.power_levels', 'm.room.member', 'm.room.join_rules']) assert.ok(types.includes(t), `auth chain has ${t}`);
    const stored = await a.hearth.store.rooms.getEvent(last.event_id);
    const { authEventIds, computeEventId } = await import('../../src/protocol/events.js');
    const chainIds = new Set(res.body.auth_chain.map((e: any) => computeEventId(e, '12')));
    for (const id of authEventIds(stored!.pdu)) assert.ok(chainIds.has(id), `cites ${id}`);
    // `joined` history from before bob joined (the previous test's room) stays refused.
    assert.ok(hiddenFromB, 'set by the history test');
    const early = await ask(`/_matrix/federation/v1/event_auth/${enc(hiddenFromB.roomId)}/${enc(hiddenFromB.eventId)}`);
    assert.equal(early.status, 403);
    assert.equal((await ask(`/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc('$nope')}`)).status, 404);
  });

  it('a server that was down catches up (the durable queue keeps each room\'s newest event), even across the sender\'s restart', async () => {
    const dirA = a.dataDir;
    const dirB = b.dataDir;
    const portA = Number(nameA.split(':')[1]);
    const portB = Number(nameB.split(':')[1]);
    await b.hearth.stop();
    for (let i = 0; i < 3; i++) {
      const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/down${i}`, { msgtype: 'm.text', body: `while down ${i}` });
      assert.equal(r.status, 200);
    }
    // All three wait in A's queue (in its database); A counts B as behind, so after the
    // transaction in flight its transactions carry only the room's newest event, and B fills
    // the gap with get_missing_events.
    const sender = a.hearth.federation!.core.sender;
    await waitFor(async () => sender.catchingUp(nameB) && (await sender.backlog(nameB)) === 3, 5000, 'A to queue three PDUs for B');
    await a.hearth.stop();
    a = await startFederated(portA, dirA);
    b = await startFederated(portB, dirB);
    alice = Object.assign(new Api(a.url, alice.token), { userId: alice.userId }) as typeof alice;
    bob = Object.assign(new Api(b.url, bob.token), { userId: bob.userId }) as typeof bob;
    const texts: string[] = [];
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const res = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=10`);
      texts.length = 0;
      for (const e of [...res.body.chunk].reverse()) if (e.type === 'm.room.message' && e.content.body.startsWith('while down')) texts.push(e.content.body);
      if (texts.length >= 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(texts, ['while down 0', 'while down 1', 'while down 2']);
  });

  it('a gap (a lost queue) is filled with get_missing_events: the event is accepted, not an outlier', async () => {
    const portA = Number(nameA.split(':')[1]);
    const portB = Number(nameB.split(':')[1]);
    const dirA = a.dataDir;
    const dirB = b.dataDir;
    await a.hearth.stop();
    const r0 = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gap0`, { msgtype: 'm.text', body: 'gap 0' });
    assert.equal(r0.status, 200);
    // B forgets it owed A "gap 0": its queue for A is marked sent past it.
    await waitFor(async () => (await b.hearth.federation!.core.sender.backlog(nameA)) === 1, 5000, 'B to queue gap 0');
    await b.hearth.store.federationQueue.completeTxn(nameA, { txnId: 'forgotten', upto: b.hearth.store.currentPosition(), catchUp: false });
    await b.hearth.stop();
    a = await startFederated(portA, dirA);
    b = await startFederated(portB, dirB);
    alice = Object.assign(new Api(a.url, alice.token), { userId: alice.userId }) as typeof alice;
    bob = Object.assign(new Api(b.url, bob.token), { userId: bob.userId }) as typeof bob;
    const r1 = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gap1`, { msgtype: 'm.text', body: 'gap 1' });
    assert.equal(r1.status, 200);
    let texts: string[] = [];
    await waitFor(async () => {
      const res = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=5`);
      texts = [...res.body.chunk].reverse().filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
      return texts.includes('gap 1');
    });
    assert.deepEqual(texts.slice(-2), ['gap 0', 'gap 1']);
    const stored = await a.hearth.store.rooms.getEvent(r1.body.event_id);
    assert.equal(stored?.outlier, false);
  });

  it('bob leaves; A sees the leave', async () => {
    const r = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const deadline = Date.now() + 15_000;
    let members: any;
    while (Date.now() < deadline) {
      members = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
      if (!members.body.joined[bob.userId]) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.deepEqual(Object.keys(members.body.joined), [alice.userId]);
  });

  it('re-invite shows in bob\'s /sync (B knows the room now), bob re-joins from B\'s state, and a kick crosses', async () => {
    const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const invited = await syncUntil(bob, (body) => body.rooms?.invite?.[roomId]);
    assert.ok(invited.invite_state.events.some((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId && e.content.membership === 'invite'));
    const join = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
    await waitFor(async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`)).body.joined[bob.userId] !== undefined);
    const kick = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/kick`, { user_id: bob.userId, reason: 'bye' });
    assert.equal(kick.status, 200, JSON.stringify(kick.body));
    await waitFor(async () => {
      const m = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
      return m.status === 200 && m.body.membership === 'leave' && m.body.reason === 'bye';
    });
    const send = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/afterkick`, { msgtype: 'm.text', body: 'x' });
    assert.equal(send.status, 403);
  });

  it('a server ACL banning B refuses B\'s make_join and PDUs at A', async () => {
    const acl = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, { allow: ['*'], deny: ['127.0.0.1'], allow_ip_literals: true });
    assert.equal(acl.status, 200, JSON.stringify(acl.body));
    const { readSigningKeyFile } = await import('../../src/protocol/keyfile.js');
    const keyB = (await readSigningKeyFile(b.hearth.config.signing_key_path))[0];
    const path = `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(bob.userId)}?ver=12`;
    const auth = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: nameB, destination: nameA }, keyB);
    const res = await fedRequest(a.hearth.federation!.url, 'GET', path, { authorization: auth });
    assert.equal(res.status, 403);
    assert.match(res.body.error, /ACL/);
    const tmpl = await a.hearth.roomInput.template(roomId, { type: 'm.room.message', sender: bob.userId, content: { msgtype: 'm.text', body: 'banned' } });
    const { signEvent } = await import('../../src/protocol/events.js');
    const pdu = signEvent(tmpl!.pdu, nameB, keyB, tmpl!.version) as unknown as JsonObject;
    const txn = { origin: nameB, origin_server_ts: Date.now(), pdus: [pdu], edus: [] };
    const sendPath = '/_matrix/federation/v1/send/acl1';
    const sendAuth = buildXMatrixAuthorization({ method: 'PUT', uri: sendPath, origin: nameB, destination: nameA, content: txn }, keyB);
    const sent = await fedRequest(a.hearth.federation!.url, 'PUT', sendPath, { authorization: sendAuth }, txn);
    assert.equal(sent.status, 200);
    assert.match((Object.values(sent.body.pdus)[0] as any).error, /ACL/);
  });
});
