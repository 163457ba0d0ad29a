// PushActionComputer: which results are stored as per-user rows and which once as a bulk result
// (PersistEventInput.pushBulk), and that the dispatcher still gets every member's result.

import { assert } from '../helpers/assert.js';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';
import { BULK_MIN, PushActionComputer } from '../../src/push/push-actions.js';
import type { PushRulesService } from '../../src/push/push-rules-service.js';
import { addRule, effectiveRuleset, emptyUserPushRules } from '../../src/push/ruleset.js';
import { RoomState } from '../../src/room/room-state.js';

const SERVER = 'example.org';
const ROOM = `!room:${SERVER}`;
const user = (l: string) => `@${l}:${SERVER}`;
const SENDER = user('sender');

let n = 0;
function pdu(type: string, sender: string, content: JsonObject, stateKey?: string): Pdu {
  const p: Pdu = {
    room_id: ROOM,
    sender,
    type,
    content,
    origin_server_ts: 1,
    depth: ++n,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: '' },
    signatures: {},
  };
  if (stateKey !== undefined) p.state_key = stateKey;
  return p;
}

/** A room with the sender and `members` joined. */
function roomWith(members: string[]): RoomState {
  const s = RoomState.empty('11');
  s.applyPersisted('$create', pdu('m.room.create', SENDER, { room_version: '11' }, ''));
  for (const m of [SENDER, ...members]) s.applyPersisted(`$join-${m}`, pdu('m.room.member', m, { membership: 'join' }, m));
  return s;
}

/** Rules: defaults, except the users muting the room; `ignoring` ignore the sender. */
function rules(o: { muting?: string[]; ignoring?: string[] } = {}): PushRulesService {
  const fake = {
    async forUsers(ids: Iterable<string>) {
      const out = new Map();
      for (const u of ids) {
        let r = emptyUserPushRules();
        if (o.muting?.includes(u)) r = addRule(r, 'room', ROOM, { actions: [] });
        out.set(u, { ruleset: effectiveRuleset(u, r), ignored: new Set(o.ignoring?.includes(u) ? [SENDER] : []) });
      }
      return out;
    },
  };
  return fake as unknown as PushRulesService;
}

const many = (count: number, prefix = 'm') => Array.from({ length: count }, (_, i) => user(`${prefix}${i}`));
const message = (content: JsonObject = {}) => pdu('m.room.message', SENDER, { msgtype: 'm.text', body: 'hi', ...content });
const ids = (xs: { userId: string }[]) => xs.map((x) => x.userId).sort();

describe('PushActionComputer', function () {
  it(`stores per-user rows only below ${BULK_MIN} members sharing a result`, async function () {
    const members = many(BULK_MIN - 1);
    const c = new PushActionComputer(rules(), SERVER);
    const r = await c.compute('$e', message(), roomWith(members));
    assert.equal(r.bulk, undefined);
    assert.deepEqual(ids(r.rows), [...members].sort());
    assert.deepEqual(r.all, r.rows);
  });

  it('stores the largest shared result once, the others as rows, everyone else in except', async function () {
    const plain = many(40);
    const mentioned = user('mentioned');
    const muting = user('muting');
    const ignoring = user('ignoring');
    const remote = '@far:elsewhere.org';
    const members = [...plain, mentioned, muting, ignoring, remote];
    const c = new PushActionComputer(rules({ muting: [muting], ignoring: [ignoring] }), SERVER);
    const r = await c.compute('$e', message({ 'm.mentions': { user_ids: [mentioned] } }), roomWith(members));
    assert.ok(r.bulk);
    assert.deepEqual(r.bulk.actions, ['notify']);
    assert.equal(r.bulk.notify, true);
    assert.equal(r.bulk.highlight, false);
    assert.equal(r.bulk.threadId, null);
    assert.deepEqual([...r.bulk.except].sort(), [ignoring, mentioned, muting].sort(), 'every joined local member not covered');
    assert.deepEqual(ids(r.rows), [mentioned]);
    assert.equal(r.rows[0].highlight, true);
    assert.deepEqual(ids(r.all), [...plain, mentioned].sort(), 'the dispatcher gets every notified member');
    assert.ok(r.all.every((a) => a.userId === mentioned || (a.notify && !a.highlight && a.actions.length === 1)));
  });

  it('carries the thread of the event', async function () {
    const c = new PushActionComputer(rules(), SERVER);
    const r = await c.compute('$e', message({ 'm.relates_to': { rel_type: 'm.thread', event_id: '$root' } }), roomWith(many(BULK_MIN)));
    assert.equal(r.bulk?.threadId, '$root');
    assert.deepEqual(r.rows, []);
    assert.equal(r.all.length, BULK_MIN);
    assert.ok(r.all.every((a) => a.threadId === '$root'));
  });

  it('keeps rows when the members left out would outnumber the shared result', async function () {
    const plain = many(BULK_MIN);
    const muting = many(BULK_MIN + 1, 'q');
    const c = new PushActionComputer(rules({ muting }), SERVER);
    const r = await c.compute('$e', message(), roomWith([...plain, ...muting]));
    assert.equal(r.bulk, undefined);
    assert.deepEqual(ids(r.rows), [...plain].sort());
  });

  it('gives an invited user a row of their own, never a place in except', async function () {
    const members = many(BULK_MIN);
    const invitee = user('invitee');
    const c = new PushActionComputer(rules(), SERVER);
    const r = await c.compute('$e', pdu('m.room.member', SENDER, { membership: 'invite' }, invitee), roomWith(members));
    // Member events of others do not notify by default; the invite notifies its target.
    assert.equal(r.bulk, undefined);
    assert.deepEqual(ids(r.rows), [invitee]);
  });
});
