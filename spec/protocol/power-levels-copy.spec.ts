// copyablePowerLevels and requiredToCopyState (src/protocol/power-levels.ts): power levels from a
// room of any version made acceptable to v10+ rooms (integers only), and the level a user needs
// to recreate a room's state, as room upgrades use them.

import { assert } from '../helpers/assert.js';
import { checkEventAuth } from '../../src/protocol/auth-rules.js';
import { copyablePowerLevels, requiredToCopyState } from '../../src/protocol/power-levels.js';
import type { JsonObject } from '../../src/protocol/types.js';
import { planPowerLevels } from '../../src/room/room-upgrade.js';

describe('copyablePowerLevels', () => {
  it('turns numeric strings (legal before v10) into integers, and drops what is no level', () => {
    const old: JsonObject = {
      ban: '50',
      kick: ' 40 ',
      redact: 'lots',
      invite: 0,
      events_default: '-5',
      state_default: 50,
      users_default: null,
      events: { 'm.room.name': '75', 'm.room.topic': 'x', 'm.room.power_levels': 100 },
      users: { '@a:hs': '100', '@b:hs': true, '@c:hs': 20 },
      notifications: { room: '20' },
      historical: 100,
      'org.example.custom': { keep: 'me' },
    };
    assert.deepEqual(copyablePowerLevels(old), {
      ban: 50,
      kick: 40,
      invite: 0,
      events_default: -5,
      state_default: 50,
      events: { 'm.room.name': 75, 'm.room.power_levels': 100 },
      users: { '@a:hs': 100, '@c:hs': 20 },
      notifications: { room: 20 },
      historical: 100,
      'org.example.custom': { keep: 'me' },
    });
  });

  it('leaves integer content equal, and does not share maps with its input', () => {
    const old: JsonObject = { users: { '@a:hs': 100 }, events: {}, ban: 50 };
    const copy = copyablePowerLevels(old);
    assert.deepEqual(copy, old);
    (copy.users as JsonObject)['@b:hs'] = 1;
    assert.deepEqual(old.users, { '@a:hs': 100 });
  });

  it('non-object maps become empty ones, which v10+ auth rules accept', () => {
    const copy = copyablePowerLevels({ users: 'nope', events: [1, 2] as unknown as JsonObject });
    assert.deepEqual(copy, { users: {}, events: {} });
    const create = { type: 'm.room.create', state_key: '', sender: '@a:hs', content: { room_version: '11' }, room_id: '!r:hs', origin_server_ts: 0, depth: 1, prev_events: [], auth_events: [], hashes: { sha256: '' }, signatures: {} };
    const join = { ...create, type: 'm.room.member', state_key: '@a:hs', content: { membership: 'join' }, depth: 2 };
    const pl = { ...create, type: 'm.room.power_levels', content: { ...copyablePowerLevels({ ban: '50', users: { '@a:hs': '100' } }) }, depth: 3 };
    const state = new Map<string, any>([['m.room.create\u0000', create], ['m.room.member\u0000@a:hs', join]]);
    checkEventAuth(pl as any, '11', (t, k) => state.get(`${t}\u0000${k}`));
    assert.throws(() => checkEventAuth({ ...pl, content: { ban: '50', users: { '@a:hs': 100 } } } as any, '11', (t, k) => state.get(`${t}\u0000${k}`)));
  });
});

describe('requiredToCopyState', () => {
  it('is the highest of state_default, ban and every event level', () => {
    assert.equal(requiredToCopyState({}), 50);
    assert.equal(requiredToCopyState({ state_default: 20, ban: 30 }), 30);
    assert.equal(requiredToCopyState({ state_default: 20, ban: 30, events: { 'm.room.power_levels': 100, 'm.room.tombstone': 150 } }), 150);
    assert.equal(requiredToCopyState({ state_default: 70, ban: 10, events: { 'm.room.name': 5 } }), 70);
  });
});

describe('planPowerLevels (room upgrades)', () => {
  const old: JsonObject = { users: { '@a:hs': 100, '@m:hs': 60, '@x:hs': '70' }, state_default: 50, events: { 'm.room.tombstone': 60, 'm.room.power_levels': 100 } };

  it('to a version without privileged creators: the upgrader is raised to copy everything, final levels are the old ones', () => {
    const { initial, final } = planPowerLevels(old, '@m:hs', [], null);
    assert.deepEqual(final.users, { '@a:hs': 100, '@m:hs': 60, '@x:hs': 70 });
    assert.deepEqual(initial.users, { '@a:hs': 100, '@m:hs': 100, '@x:hs': 70 });
    const same = planPowerLevels(old, '@a:hs', [], null);
    assert.equal(same.initial, same.final, 'no raise, no second event');
  });

  it('to a version with privileged creators: creators leave users, no raise, tombstone kept above state_default', () => {
    const { initial, final } = planPowerLevels(old, '@m:hs', [], ['@m:hs', '@x:hs']);
    assert.equal(initial, final);
    assert.deepEqual(final.users, { '@a:hs': 100 });
    assert.equal((final.events as JsonObject)['m.room.tombstone'], 60);
    const low = planPowerLevels({ state_default: 80, events: { 'm.room.tombstone': 80 } }, '@m:hs', [], ['@m:hs']);
    assert.equal((low.final.events as JsonObject)['m.room.tombstone'], 150);
    const high = planPowerLevels({ state_default: 200 }, '@m:hs', [], ['@m:hs']);
    assert.equal((high.final.events as JsonObject)['m.room.tombstone'], 201);
  });

  it('from privileged creators to a version without: the old creators are listed above everyone', () => {
    const { final } = planPowerLevels({ users: { '@b:hs': 120 }, events: { 'm.room.tombstone': 150 } }, '@c:hs', ['@c:hs', '@d:hs'], null);
    assert.deepEqual(final.users, { '@b:hs': 120, '@c:hs': 150, '@d:hs': 150 });
    const { final: f2 } = planPowerLevels({ users: { '@b:hs': 300 } }, '@c:hs', ['@c:hs'], null);
    assert.equal((f2.users as JsonObject)['@c:hs'], 301);
  });
});
