import { assert } from '../helpers/assert.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import { isRedactionSupported, redactEvent } from '../../src/protocol/redaction.js';
import type { JsonObject } from '../../src/protocol/types.js';
import { loadVector } from './vectors.js';

function ev(type: string, content: JsonObject, extra: JsonObject = {}): JsonObject {
  return {
    type,
    content,
    room_id: '!r:x',
    sender: '@u:x',
    origin_server_ts: 1,
    depth: 2,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: 'h' },
    signatures: { x: { 'ed25519:1': 's' } },
    unsigned: { age: 1 },
    ...extra,
  };
}

describe('protocol/redaction', () => {
  describe('gmsl redaction vectors', () => {
    for (const c of loadVector('gmsl-redaction.json').cases) {
      it(`${c.name} (v${c.room_version})`, () => {
        assert.equal(canonicalJson(redactEvent(c.input, c.room_version)), canonicalJson(c.expected));
      });
    }
  });

  it('does not modify or alias the input', () => {
    const input = ev('m.room.power_levels', { users: { '@a:x': 100 }, other: 1 });
    const before = canonicalJson(input);
    const out = redactEvent(input, '11');
    ((out.content as JsonObject).users as JsonObject)['@b:x'] = 5;
    assert.equal(canonicalJson(input), before);
  });

  it('always produces content, drops unsigned, keeps the protected top level', () => {
    const out = redactEvent({ type: 'X', room_id: '!r:x', unsigned: { a: 1 }, hashes: {}, extra: 1 }, '10');
    assert.deepEqual(out, { type: 'X', room_id: '!r:x', hashes: {}, content: {} });
  });

  it('v10 strips top-level redacts and v11 keeps content.redacts', () => {
    const r10 = redactEvent(ev('m.room.redaction', { reason: 'spam' }, { redacts: '$t' }), '10');
    assert.equal(r10.redacts, undefined);
    assert.deepEqual(r10.content, {});
    const r11 = redactEvent(ev('m.room.redaction', { redacts: '$t', reason: 'spam' }, { redacts: '$t' }), '11');
    assert.equal(r11.redacts, undefined);
    assert.deepEqual(r11.content, { redacts: '$t' });
  });

  it('v10 and v11 member rules, including third_party_invite.signed in v11', () => {
    const content = {
      membership: 'invite',
      displayname: 'A',
      join_authorised_via_users_server: '@b:x',
      third_party_invite: { display_name: 'a@b', signed: { mxid: '@a:x', token: 't', signatures: {} } },
    };
    assert.deepEqual(redactEvent(ev('m.room.member', content), '10').content, {
      membership: 'invite',
      join_authorised_via_users_server: '@b:x',
    });
    assert.deepEqual(redactEvent(ev('m.room.member', content), '11').content, {
      membership: 'invite',
      join_authorised_via_users_server: '@b:x',
      third_party_invite: { signed: { mxid: '@a:x', token: 't', signatures: {} } },
    });
    const noSigned = { membership: 'join', third_party_invite: { display_name: 'x' } };
    assert.deepEqual(redactEvent(ev('m.room.member', noSigned), '11').content, { membership: 'join' });
  });

  it('join_rules, history_visibility and power_levels across versions', () => {
    const jr = ev('m.room.join_rules', { join_rule: 'restricted', allow: [{ type: 'm.room_membership' }], x: 1 });
    assert.deepEqual(redactEvent(jr, '7').content, { join_rule: 'restricted' });
    assert.deepEqual(redactEvent(jr, '8').content, { join_rule: 'restricted', allow: [{ type: 'm.room_membership' }] });
    assert.deepEqual(redactEvent(jr, '11').content, { join_rule: 'restricted', allow: [{ type: 'm.room_membership' }] });
    const hv = ev('m.room.history_visibility', { history_visibility: 'shared', x: 1 });
    assert.deepEqual(redactEvent(hv, '10').content, { history_visibility: 'shared' });
    const pl = { ban: 1, events: {}, events_default: 2, invite: 3, kick: 4, redact: 5, state_default: 6, users: {}, users_default: 7, notifications: {} };
    const { invite: _i, notifications: _n, ...withoutInvite } = pl;
    assert.deepEqual(redactEvent(ev('m.room.power_levels', pl), '10').content, withoutInvite);
    const { notifications: _n2, ...withInvite } = pl;
    assert.deepEqual(redactEvent(ev('m.room.power_levels', pl), '11').content, withInvite);
  });

  it('create keeps creator before v11 and everything in v11', () => {
    const c = ev('m.room.create', { creator: '@u:x', room_version: '10', 'm.federate': false });
    assert.deepEqual(redactEvent(c, '10').content, { creator: '@u:x' });
    assert.deepEqual(redactEvent(c, '11').content, { creator: '@u:x', room_version: '10', 'm.federate': false });
  });

  it('m.room.aliases is special only before v6', () => {
    const a = ev('m.room.aliases', { aliases: ['#a:x'] });
    assert.deepEqual(redactEvent(a, '5').content, { aliases: ['#a:x'] });
    assert.deepEqual(redactEvent(a, '6').content, {});
    assert.deepEqual(redactEvent(a, '10').content, {});
  });

  it('v11 drops origin, membership and prev_state at top level; v10 keeps them', () => {
    const e = ev('m.room.message', { body: 'x' }, { origin: 'x', membership: 'join', prev_state: [] });
    const r10 = redactEvent(e, '10');
    assert.equal(r10.origin, 'x');
    assert.equal(r10.membership, 'join');
    assert.deepEqual(r10.prev_state, []);
    const r11 = redactEvent(e, '11');
    assert.equal(r11.origin, undefined);
    assert.equal(r11.membership, undefined);
    assert.equal(r11.prev_state, undefined);
    assert.deepEqual(Object.keys(r11).sort(), [
      'auth_events', 'content', 'depth', 'hashes', 'origin_server_ts', 'prev_events', 'room_id', 'sender', 'signatures', 'type',
    ]);
  });

  it('ignores content keys inherited from Object.prototype', () => {
    assert.deepEqual(redactEvent(ev('constructor', { a: 1 }), '11').content, {});
    assert.deepEqual(redactEvent(ev('toString', { a: 1 }), '10').content, {});
  });

  it('rejects unknown room versions', () => {
    assert.ok(isRedactionSupported('1') && isRedactionSupported('11') && isRedactionSupported('12'));
    assert.ok(!isRedactionSupported('13') && !isRedactionSupported('constructor'));
    assert.throws(() => redactEvent({}, '99'));
  });
});
