// Behaviour SyTest's federation tests found wrong (docs/conformance.md), each checked here between
// two real Hearth servers on loopback (or by requests signed with a server's real key, for the
// deprecated v1 endpoints a Hearth never sends itself):
// - joining (and leaving, rejecting) a v1/v2 room of another server: those versions' event IDs
//   are chosen by the server creating the event, so the membership event built from a make_join
//   template needs one of ours;
// - the v1 forms of send_join, send_leave and invite (deprecated, still in the spec) are answered
//   as `[200, body]`;
// - a server that knows only the v1 send_join/invite (404 for v2) is asked with v1;
// - a resident server's refusal of a join (make_join 4xx) reaches the client with its status and
//   errcode, a make_join naming a version we do not know or another than the room's create event
//   refuses the join, a make_join naming none with a template that is no v1/v2 event goes on to
//   send_join and is refused with the version of the answer's create event, and an invite the invitee's server answers with something unusable is a 502,
//   not a 500 (400 M_BAD_JSON where the answer is JSON but not Matrix JSON, as Synapse);
// - a federation body that is JSON but not Matrix JSON (a float) is M_BAD_JSON, not M_NOT_JSON;
// - a user invited into a room its server did not know pages back through the history between
//   the invite and the join (backfilled from the join's gap first), in order, in small pages;
// - a server banned by the room's server ACL is refused /backfill, /get_missing_events and
//   /invite (403), like the other room endpoints; not banned, it may invite a user the room's
//   other server does not have (in a room that server is in), and get_missing_events without
//   its lists is an empty answer (SyTest's control requests, as Synapse answers them);
// - an erased user's events are served to other servers redacted (/event, /backfill,
//   /get_missing_events), as Synapse serves them;
// - default_room_version: the version of rooms created without one, and the capability.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, fedRequest, freePort, serverName, signedFedRequest, signingKeyOf, startFederated, syncUntil, timeline, waitFor, watchRequests, type User } from '../helpers/federation.js';
import { newServerEventId, signEvent } from '../../src/protocol/events.js';
import { FederationError } from '../../src/federation/client.js';
import type { JsonObject } from '../../src/protocol/types.js';

describe('federation: what SyTest found', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let alice: User;
  let bob: User;

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    a = await startFederated(pa);
    b = await startFederated(pb);
    nameA = serverName(a);
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  for (const version of ['1', '2']) {
    it(`a user of B joins a room of A with version ${version} (server-chosen event IDs), talks, and leaves`, async () => {
      const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_version: version });
      assert.equal(room.status, 200, JSON.stringify(room.body));
      const roomId: string = room.body.room_id;
      const join = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(nameA)}`, {});
      assert.equal(join.status, 200, JSON.stringify(join.body));
      const member = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
      assert.equal(member.body.membership, 'join');
      // The join's ID is B's own `$random:B`, and A stored it under that ID.
      const joins = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=10`);
      const joinEvent = joins.body.chunk.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId);
      assert.match(joinEvent.event_id, new RegExp(`^\\$[^:]+:${serverName(b).replace(/\./g, '\\.')}$`));
      // Messages both ways.
      const sent = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: `from B in v${version}` });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      await syncUntil(alice, (body) => timeline(body, roomId).find((e: any) => e.content?.body === `from B in v${version}`));
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t2`, { msgtype: 'm.text', body: `from A in v${version}` })).status, 200);
      await syncUntil(bob, (body) => timeline(body, roomId).find((e: any) => e.content?.body === `from A in v${version}`));
      assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {})).status, 200);
      // B sends its leave (B's own event, in B's copy of the DAG) to A.
      await waitFor(async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`)).body.membership === 'leave', 15_000, 'the leave at A');
    });
  }

  it('a user of B rejects an invite to a v1 room B does not know (make_leave/send_leave with a server-chosen ID)', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: '1' });
    const roomId: string = room.body.room_id;
    const dave = await new Api(b.url).register('dave');
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: dave.userId })).status, 200);
    await syncUntil(dave, (body) => body.rooms?.invite?.[roomId]);
    const leave = await dave.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {});
    assert.equal(leave.status, 200, JSON.stringify(leave.body));
    const m = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(dave.userId)}`);
    assert.equal(m.body.membership, 'leave');
  });

  it('a user invited into a room B did not know pages back through its history in pages of 6 (backfill from the join)', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { invite: [bob.userId] });
    const roomId: string = room.body.room_id;
    for (let i = 1; i <= 20; i++) {
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/h${i}`, { msgtype: 'm.text', body: `history ${i}` })).status, 200);
    }
    await syncUntil(bob, (body) => body.rooms?.invite?.[roomId]);
    assert.equal((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}`, {})).status, 200);
    const next = (await bob.get('/_matrix/client/v3/sync?timeout=0')).body.next_batch;
    const seen: string[] = [];
    let from: string | undefined = next;
    let first = true;
    for (let page = 0; page < 12 && from; page++) {
      const res = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=6&from=${enc(from)}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      if (first) assert.equal(res.body.chunk.length, 6, 'the first page is full: the history was fetched from A');
      first = false;
      seen.push(...res.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body));
      from = res.body.end;
    }
    assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => `history ${20 - i}`));
  });

  it('v1 send_join, send_leave and invite answer [200, body]', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_version: '1' });
    const roomId: string = room.body.room_id;
    const keyB = await signingKeyOf(b);
    const nameB = serverName(b);
    const eve = `@eve:${nameB}`;
    const member = async (membership: 'join' | 'leave') => {
      const made = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/make_${membership}/${enc(roomId)}/${enc(eve)}${membership === 'join' ? '?ver=1' : ''}`);
      assert.equal(made.status, 200, JSON.stringify(made.body));
      const eventId = newServerEventId(nameB);
      const draft = { ...made.body.event, event_id: eventId, origin_server_ts: Date.now() } as JsonObject;
      return { eventId, pdu: signEvent(draft, nameB, keyB, '1') };
    };
    const j = await member('join');
    const sj = await signedFedRequest(b, a, 'PUT', `/_matrix/federation/v1/send_join/${enc(roomId)}/${enc(j.eventId)}`, j.pdu);
    assert.equal(sj.status, 200, JSON.stringify(sj.body));
    assert.ok(Array.isArray(sj.body) && sj.body[0] === 200, JSON.stringify(sj.body).slice(0, 200));
    assert.ok(sj.body[1].state.some((e: any) => e.type === 'm.room.create'));
    assert.ok(Array.isArray(sj.body[1].auth_chain));
    assert.equal((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(eve)}`)).body.membership, 'join');
    const l = await member('leave');
    const sl = await signedFedRequest(b, a, 'PUT', `/_matrix/federation/v1/send_leave/${enc(roomId)}/${enc(l.eventId)}`, l.pdu);
    assert.equal(sl.status, 200, JSON.stringify(sl.body));
    assert.deepEqual(sl.body, [200, {}]);
    assert.equal((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(eve)}`)).body.membership, 'leave');

    // B invites alice (A) into a v1 room B holds: A countersigns the bare event and answers [200, {event}].
    const theirs = await bob.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: '1' });
    const theirRoom: string = theirs.body.room_id;
    const state = await bob.get(`/_matrix/client/v3/rooms/${enc(theirRoom)}/state`);
    const pick = (type: string, key = '') => state.body.find((e: any) => e.type === type && e.state_key === key).event_id;
    const prev = (await b.hearth.store.rooms.getForwardExtremities(theirRoom)) as string[];
    const prevEvents = await Promise.all(prev.map(async (id) => [id, (await b.hearth.store.rooms.getEvent(id))!.pdu.hashes]));
    const authIds = [pick('m.room.create'), pick('m.room.power_levels'), pick('m.room.join_rules'), pick('m.room.member', bob.userId)];
    const auth = await Promise.all(authIds.map(async (id) => [id, (await b.hearth.store.rooms.getEvent(id))!.pdu.hashes]));
    const depth = Math.max(...(await Promise.all(prev.map(async (id) => (await b.hearth.store.rooms.getEvent(id))!.pdu.depth)))) + 1;
    const inviteId = newServerEventId(nameB);
    const invite = signEvent(
      { event_id: inviteId, room_id: theirRoom, type: 'm.room.member', state_key: alice.userId, sender: bob.userId, content: { membership: 'invite' }, origin: nameB, origin_server_ts: Date.now(), depth, prev_events: prevEvents, auth_events: auth } as unknown as JsonObject,
      nameB,
      keyB,
      '1',
    );
    const inv = await signedFedRequest(b, a, 'PUT', `/_matrix/federation/v1/invite/${enc(theirRoom)}/${enc(inviteId)}`, invite);
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    assert.equal(inv.body[0], 200);
    assert.ok(inv.body[1].event.signatures[nameA], 'A countersigned the invite');
    await syncUntil(alice, (body) => body.rooms?.invite?.[theirRoom]);
  });

  it('once a user of A is erased, A serves their events to B redacted (/event, /backfill, /get_missing_events)', async () => {
    const erin = await new Api(a.url).register('erin', 'correct horse battery');
    const room = await erin.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    assert.equal((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(nameA)}`, {})).status, 200);
    const sent = await erin.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/e1`, { msgtype: 'm.text', body: 'soon erased' });
    const eventId: string = sent.body.event_id;
    const after = await alice.post(`/_matrix/client/v3/join/${enc(roomId)}`, {});
    assert.equal(after.status, 200, JSON.stringify(after.body)); // the room's latest event: get_missing_events walks back from it
    const read = async () => {
      const ev = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/event/${enc(eventId)}`);
      assert.equal(ev.status, 200, JSON.stringify(ev.body));
      const ext = (await a.hearth.store.rooms.getForwardExtremities(roomId)) as string[];
      const bf = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/backfill/${enc(roomId)}?${ext.map((v) => `v=${enc(v)}`).join('&')}&limit=20`);
      const gme = await signedFedRequest(b, a, 'POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { earliest_events: [], latest_events: ext, limit: 20 });
      const find = (list: any[]) => list.find((e: any) => e.event_id === eventId || (e.type === 'm.room.message' && e.sender === erin.userId));
      return [ev.body.pdus[0], find(bf.body.pdus ?? []), find(gme.body.events ?? [])];
    };
    for (const pdu of await read()) assert.equal(pdu?.content?.body, 'soon erased');
    const first = await erin.post('/_matrix/client/v3/account/deactivate', { erase: true });
    const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: erin.userId }, password: 'correct horse battery', session: first.body.session };
    assert.equal((await erin.post('/_matrix/client/v3/account/deactivate', { erase: true, auth })).status, 200);
    for (const pdu of await read()) {
      assert.ok(pdu, 'still served');
      assert.deepEqual(pdu.content, {}, JSON.stringify(pdu));
    }
    // Others' events are untouched.
    const ext = (await a.hearth.store.rooms.getForwardExtremities(roomId)) as string[];
    const join = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/event/${enc(ext[0])}`);
    assert.equal(join.body.pdus[0].sender, alice.userId);
    assert.equal(join.body.pdus[0].content.membership, 'join');
  });

  it('in a room A is in, B may invite a user A does not have; get_missing_events with no lists is empty, not 400', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    assert.equal((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(nameA)}`, {})).status, 200);
    // bob (B) invites a user of A nobody registered: B asks A's /invite, which countersigns it.
    const ghost = `@ghost:${nameA}`;
    const inv = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: ghost });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    await waitFor(async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(ghost)}`)).body.membership === 'invite', 15_000, 'the invite at A');
    // A room A is not in: nobody to show the invite to, still refused.
    const theirs = await bob.post('/_matrix/client/v3/createRoom', { preset: 'private_chat' });
    const refused = await bob.post(`/_matrix/client/v3/rooms/${enc(theirs.body.room_id)}/invite`, { user_id: ghost });
    assert.notEqual(refused.status, 200, JSON.stringify(refused.body));
    // Both lists missing count as empty (as Synapse); a list of the wrong type is still refused.
    const gme = await signedFedRequest(b, a, 'POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, {});
    assert.equal(gme.status, 200, JSON.stringify(gme.body));
    assert.deepEqual(gme.body, { events: [] });
    const bad = await signedFedRequest(b, a, 'POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { latest_events: 'x' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.errcode, 'M_BAD_JSON');
  });
});

describe('federation: v1-only peers, refusals and bad answers', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let alice: User;
  let bob: User;

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
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

  function isSignedBy(pdu: JsonObject, server: string): boolean {
    const sigs = pdu.signatures as JsonObject | undefined;
    return !!sigs && typeof sigs === 'object' && Object.keys((sigs[server] ?? {}) as JsonObject).length > 0;
  }

  /** Makes A's requests to B whose path starts with `prefix` fail as a server without that endpoint answers. */
  function withoutEndpoint(prefix: string): () => void {
    const client = a.hearth.federation!.core.client;
    const previous = client.request;
    client.request = async (destination, req) => {
      if (destination === serverName(b) && req.path.startsWith(prefix)) throw new FederationError(destination, 404, undefined, `${req.method} ${req.path}: 404 (test: no such endpoint)`);
      return previous.call(client, destination, req);
    };
    return () => void (client.request = previous);
  }

  it('joins through v1 send_join when the resident server answers 404 to v2', async () => {
    const room = await bob.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    const log = watchRequests(a);
    const restore = withoutEndpoint('/_matrix/federation/v2/send_join/');
    try {
      const join = await alice.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(b))}`, {});
      assert.equal(join.status, 200, JSON.stringify(join.body));
    } finally {
      restore();
    }
    assert.ok(log.some((l) => l.startsWith(`PUT ${serverName(b)} /_matrix/federation/v1/send_join/`)), log.join('\n'));
    assert.equal((await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`)).body.membership, 'join');
    // A holds the room's state from the unwrapped v1 answer.
    assert.equal((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.create/`)).status, 200);
  });

  it('invites into a v1/v2 room through v1 invite when the invitee\'s server answers 404 to v2', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: '2', name: 'old' });
    const roomId: string = room.body.room_id;
    const restore = withoutEndpoint('/_matrix/federation/v2/invite/');
    try {
      const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
      assert.equal(inv.status, 200, JSON.stringify(inv.body));
    } finally {
      restore();
    }
    const invited = await syncUntil(bob, (body) => body.rooms?.invite?.[roomId]);
    assert.ok(invited.invite_state.events.some((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId));
    assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {})).status, 200);
  });

  it('a v12 room is never invited into through v1 (its receiver would take it for v1/v2): 404 to v2 is a 502', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: '12' });
    const log = watchRequests(a);
    const restore = withoutEndpoint('/_matrix/federation/v2/invite/');
    try {
      const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/invite`, { user_id: bob.userId });
      assert.equal(inv.status, 502, JSON.stringify(inv.body));
      assert.equal(inv.body.errcode, 'M_UNKNOWN');
    } finally {
      restore();
    }
    assert.ok(!log.some((l) => l.includes('/v1/invite/')), log.join('\n'));
  });

  it('a join whose make_join names another version than the create event, or one we do not know, is refused', async () => {
    const room = await bob.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_version: '10' });
    const roomId: string = room.body.room_id;
    const client = a.hearth.federation!.core.client;
    const previous = client.request;
    const joinWith = async (version: string | undefined) => {
      client.request = async (destination, req) => {
        const res = await previous.call(client, destination, req);
        if (!req.path.startsWith('/_matrix/federation/v1/make_join/')) return res;
        const out = { ...(res as JsonObject) };
        if (version === undefined) delete out.room_version;
        else out.room_version = version;
        return out;
      };
      try {
        return await alice.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(b))}`, {});
      } finally {
        client.request = previous;
      }
    };
    // v9 and v10 events look alike: the create event's declared version is what gives it away.
    const lied = await joinWith('9');
    assert.equal(lied.status, 502, JSON.stringify(lied.body));
    assert.match(lied.body.error, /no create event/);
    const unknown = await joinWith('sytest-room-ver');
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
    assert.equal(unknown.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
    // No version means 1 or 2 (spec); this template is not even a v1 event.
    assert.notEqual((await joinWith(undefined)).status, 200);
    assert.equal(await a.hearth.store.rooms.getRoom(roomId), null, 'nothing kept of the room');
    const honest = await alice.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(b))}`, {});
    assert.equal(honest.status, 200, JSON.stringify(honest.body));
    assert.equal((await a.hearth.store.rooms.getRoom(roomId))?.roomVersion, '10');
  });

  it('a make_join without a version whose template is no v1 event still goes to send_join, and the join is refused with the create event\'s version', async () => {
    // SyTest's `Outbound federation rejects m.room.create events with an unknown room version`:
    // the resident's version is only in its create event, which only send_join's answer carries.
    const resident = 'resident.invalid';
    const roomId = `!unknownver:${resident}`;
    const client = a.hearth.federation!.core.client;
    const previous = client.request;
    const sent: JsonObject[] = [];
    const create = { type: 'm.room.create', state_key: '', room_id: roomId, sender: `@creator:${resident}`, content: { creator: `@creator:${resident}`, room_version: 'sytest-room-ver' }, depth: 1, prev_events: [], auth_events: [], origin_server_ts: 1, hashes: { sha256: 'x' }, signatures: {} };
    client.request = async (destination, req) => {
      if (destination !== resident) return previous.call(client, destination, req);
      if (req.path.startsWith('/_matrix/federation/v1/make_join/')) {
        // v3-style references (plain IDs), no room_version.
        return { event: { type: 'm.room.member', room_id: roomId, sender: alice.userId, state_key: alice.userId, content: { membership: 'join' }, depth: 3, prev_events: ['$prev'], auth_events: ['$create', '$rules'], origin_server_ts: 1 } } as JsonObject;
      }
      if (req.path.startsWith('/_matrix/federation/v2/send_join/')) {
        sent.push(req.body as JsonObject);
        return { state: [create], auth_chain: [create] } as JsonObject;
      }
      throw new FederationError(destination, 404, 'M_UNRECOGNIZED', `${req.method} ${req.path}: not here`);
    };
    try {
      const join = await alice.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${resident}`, {});
      assert.equal(join.status, 400, JSON.stringify(join.body));
      assert.equal(join.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
      assert.equal(join.body.room_version, 'sytest-room-ver');
    } finally {
      client.request = previous;
    }
    assert.equal(sent.length, 1, 'send_join asked once');
    assert.equal(sent[0]!.sender, alice.userId);
    assert.ok(isSignedBy(sent[0]!, serverName(a)), 'our join, signed by us');
    assert.equal(await a.hearth.store.rooms.getRoom(roomId), null, 'nothing kept of the room');
    const m = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`);
    assert.notEqual(m.status, 200);
  });

  it('an invite answered with something that is not Matrix JSON is a 502, not a 500', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat' });
    const client = a.hearth.federation!.core.client;
    const previous = client.request;
    client.request = async (destination, req) => {
      if (req.path.startsWith('/_matrix/federation/v2/invite/')) throw new FederationError(destination, 200, undefined, `${req.method} ${req.path}: not JSON`);
      return previous.call(client, destination, req);
    };
    try {
      const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/invite`, { user_id: bob.userId });
      assert.equal(inv.status, 502, JSON.stringify(inv.body));
    } finally {
      client.request = previous;
    }
  });

  it('an invite the invitee\'s server answers with a float in the event is 400 M_BAD_JSON (as Synapse)', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', room_version: '6' });
    const inbound = b.hearth.federation!.inbound;
    const previous = inbound.invite;
    // B's real answer, countersigned, with a value canonical JSON cannot carry.
    inbound.invite = async (...args: Parameters<typeof previous>) => {
      const res = await previous.apply(inbound, args);
      return { event: { ...(res.event as JsonObject), bad_val: 1.1 } as unknown as JsonObject };
    };
    try {
      const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/invite`, { user_id: bob.userId });
      assert.equal(inv.status, 400, JSON.stringify(inv.body));
      assert.equal(inv.body.errcode, 'M_BAD_JSON');
    } finally {
      inbound.invite = previous;
    }
    const member = await alice.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/state/m.room.member/${enc(bob.userId)}`);
    assert.equal(member.status, 404, 'no invite in the room');
  });

  it('a join the resident server refuses reaches the client with its status and errcode', async () => {
    const room = await bob.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    const carol = await new Api(a.url).register('carol');
    assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/ban`, { user_id: carol.userId })).status, 200);
    const join = await carol.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(b))}`, {});
    assert.equal(join.status, 403, JSON.stringify(join.body));
    assert.equal(join.body.errcode, 'M_FORBIDDEN');
  });

  it('a server banned by the room\'s ACL is refused backfill, get_missing_events and invite with 403', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    // ACLs match the host without its port, and both servers here are 127.0.0.1: IP literals are
    // refused as a whole (A's own users are not subject to its ACL).
    const acl = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, { allow: ['*'], deny: [], allow_ip_literals: false });
    assert.equal(acl.status, 200, JSON.stringify(acl.body));
    const banned = 'Server is banned from this room by its server ACL';
    const bf = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(acl.body.event_id)}&limit=10`);
    assert.equal(bf.status, 403, JSON.stringify(bf.body));
    assert.equal(bf.body.error, banned);
    const gme = await signedFedRequest(b, a, 'POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { earliest_events: [], latest_events: [acl.body.event_id], limit: 10 });
    assert.equal(gme.status, 403, JSON.stringify(gme.body));
    assert.equal(gme.body.error, banned);
    const inv = await signedFedRequest(b, a, 'PUT', `/_matrix/federation/v2/invite/${enc(roomId)}/${enc('$whatever')}`, { room_version: '12', event: {}, invite_room_state: [] });
    assert.equal(inv.status, 403, JSON.stringify(inv.body));
    assert.equal(inv.body.error, banned);
  });

  it('a body that is JSON but not Matrix JSON (a float) is M_BAD_JSON', async () => {
    const room = await bob.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    // Read before the signature is checked (a float has no canonical JSON to sign anyway).
    const res = await fedRequest(b.hearth.federation!.url, 'PUT', `/_matrix/federation/v2/send_join/${enc(room.body.room_id)}/${enc('$x')}`, {}, { type: 'm.room.member', content: { membership: 'join', bad: 1.1 } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.errcode, 'M_BAD_JSON');
  });
});

describe('config: default_room_version', function () {
  this.timeout(30_000);
  let c: TestServer;
  before(async () => {
    c = await startFederated(await freePort(), undefined, { default_room_version: '10' });
  });
  after(async () => {
    await c?.stop();
  });

  it('rooms created without a version, and /capabilities, use it', async () => {
    const carol = await new Api(c.url).register('carol');
    const caps = await carol.get('/_matrix/client/v3/capabilities');
    assert.equal(caps.body.capabilities['m.room_versions'].default, '10');
    const room = await carol.post('/_matrix/client/v3/createRoom', {});
    const create = await carol.get(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/state/m.room.create/`);
    assert.equal(create.body.room_version, '10');
    // An explicit version still wins.
    const v12 = await carol.post('/_matrix/client/v3/createRoom', { room_version: '12' });
    assert.equal((await carol.get(`/_matrix/client/v3/rooms/${enc(v12.body.room_id)}/state/m.room.create/`)).body.room_version, '12');
  });
});
