// Filter type globs (src/sync/filter.ts): `*` matches any run of characters, including none, and
// a pathological client pattern costs polynomial, not exponential, time.

import { assert } from '../helpers/assert.js';
import { eventMatches } from '../../src/sync/filter.js';

const matches = (pattern: string, type: string) => eventMatches({ types: [pattern] }, type);

describe('sync/filter: type globs', () => {
  it('matches exact types, prefixes, infixes and empty runs', () => {
    assert.equal(matches('m.room.message', 'm.room.message'), true);
    assert.equal(matches('m.room.message', 'm.room.messages'), false);
    assert.equal(matches('m.room.*', 'm.room.topic'), true);
    assert.equal(matches('m.room.*', 'm.room.'), true);
    assert.equal(matches('m.room.*', 'm.space.child'), false);
    assert.equal(matches('*.child', 'm.space.child'), true);
    assert.equal(matches('m.*.c*d', 'm.space.child'), true);
    assert.equal(matches('m.*.c*x', 'm.space.child'), false);
    assert.equal(matches('*', ''), true);
    assert.equal(matches('a**b', 'ab'), true);
    assert.equal(matches('a*b*', 'acbxb'), true);
    assert.equal(matches('a*b', 'acbx'), false);
    assert.equal(matches('.', 'x'), false, 'pattern characters other than * are literal');
    assert.equal(eventMatches({ notTypes: ['m.room.*'] }, 'm.room.name'), false);
  });

  it('a pattern of many stars against a long non-matching type finishes at once', () => {
    const pattern = 'a*'.repeat(120) + 'b';
    const type = 'a'.repeat(255);
    // A backtracking `.*`-per-star regex would not return within the mocha timeout here.
    assert.equal(matches(pattern, type), false);
    assert.equal(matches(pattern, type + 'b'), true);
  });
});
