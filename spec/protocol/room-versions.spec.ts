// The room version table, and the version-dependent event format (event IDs, references, room
// IDs, hashes, signatures and redaction) checked for every version against the shared vectors.
import { assert } from '../helpers/assert.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import { decodeBase64, encodeBase64 } from '../../src/protocol/base64.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import { jsonSigningInput, sha256 } from '../../src/protocol/crypto.js';
import {
  authEventIds,
  checkContentHash,
  computeEventId,
  eventReference,
  newServerEventId,
  prevEventIds,
  referenceHash,
  requiredSignatureServers,
  roomIdFromCreateEvent,
  roomIdOf,
  signEvent,
  verifyEventSignature,
} from '../../src/protocol/events.js';
import { isValidEventId, isValidRoomId } from '../../src/protocol/ids.js';
import { redactEvent } from '../../src/protocol/redaction.js';
import {
  DEFAULT_ROOM_VERSION,
  SUPPORTED_ROOM_VERSIONS,
  findRoomVersion,
  roomVersionRules,
  type RoomVersion,
} from '../../src/protocol/room-versions.js';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';
import { loadVector, specKey } from './vectors.js';

const ALL: RoomVersion[] = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'];
const { key, serverName } = specKey();

describe('protocol/room-versions: the table', () => {
  it('supports exactly 1..12, all stable, default 12', () => {
    assert.deepEqual([...SUPPORTED_ROOM_VERSIONS], ALL);
    assert.equal(DEFAULT_ROOM_VERSION, '12');
    for (const v of ALL) assert.equal(roomVersionRules(v).stability, 'stable');
    for (const bad of ['0', '13', '1.0', '', 'constructor', '__proto__', 'toString']) {
      assert.equal(findRoomVersion(bad), undefined, bad);
      assert.throws(() => roomVersionRules(bad), /unsupported room version/);
    }
  });

  it('event ID formats, reference formats and room ID derivation', () => {
    const fmt = ALL.map((v) => roomVersionRules(v).eventIdFormat);
    assert.deepEqual(fmt, ['server', 'server', 'hash-base64', ...Array(9).fill('hash-base64url')]);
    assert.deepEqual(ALL.filter((v) => roomVersionRules(v).eventReferencesWithHashes), ['1', '2']);
    assert.deepEqual(ALL.filter((v) => roomVersionRules(v).roomIdFromCreateEvent), ['12']);
    assert.deepEqual(ALL.filter((v) => roomVersionRules(v).redactsInContent), ['11', '12']);
    assert.deepEqual(ALL.filter((v) => roomVersionRules(v).strictCanonicalJson), ['6', '7', '8', '9', '10', '11', '12']);
  });

  it('state resolution: v1 for room v1, v2 for v2-v11, v2.1 for v12', () => {
    assert.deepEqual(ALL.map((v) => roomVersionRules(v).stateRes), ['v1', ...Array(10).fill('v2'), 'v2.1']);
  });

  it('auth rule flags switch on in the version that introduced them and stay on (or off)', () => {
    const since = (flag: keyof ReturnType<typeof roomVersionRules>['auth']): string[] =>
      ALL.filter((v) => roomVersionRules(v).auth[flag]);
    assert.deepEqual(since('specialCaseAliases'), ['1', '2', '3', '4', '5']);
    assert.deepEqual(since('redactionRule'), ['1', '2']);
    assert.deepEqual(since('notificationsInPowerLevels'), ALL.slice(5));
    assert.deepEqual(since('knocking'), ALL.slice(6));
    assert.deepEqual(since('restrictedJoins'), ALL.slice(7));
    assert.deepEqual(since('knockRestricted'), ALL.slice(9));
    assert.deepEqual(since('integerPowerLevels'), ALL.slice(9));
    assert.deepEqual(since('floatPowerLevels'), ['1', '2', '3', '4', '5']);
    assert.deepEqual(since('creatorInContent'), ALL.slice(0, 10));
    assert.deepEqual(since('privilegedCreators'), ['12']);
  });

  it('src/ compares no room version strings: behaviour comes from the table', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = path.join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(path.resolve(process.cwd(), 'src'));
    assert.ok(files.length > 50, `found the sources (${files.length})`);
    const comparison = /[vV]ersion\s*[!=]==?\s*'[0-9]+'|'[0-9]+'\s*[!=]==?\s*[\w.]*[vV]ersion|\[('[0-9]+',\s*)+'[0-9]+'\]\.includes/;
    const offenders = files.filter((f) => !f.endsWith('room-versions.ts') && comparison.test(readFileSync(f, 'utf8')));
    assert.deepEqual(offenders, []);
  });

  it('the rule objects are frozen', () => {
    const r = roomVersionRules('12');
    assert.throws(() => {
      (r as { stateRes: string }).stateRes = 'v1';
    });
    assert.throws(() => {
      (r.auth as { knocking: boolean }).knocking = false;
    });
  });
});

describe('protocol/room-versions: vectors for every version', () => {
  describe('spec event signing (v1-v10 give the expected signature, v11/v12 the same hash)', () => {
    const v = loadVector('spec-event-signing.json');
    for (const c of v.cases) {
      for (const version of ALL) {
        it(`${c.name}, room v${version}`, () => {
          const signed = signEvent(c.input as JsonObject, serverName, key, version);
          assert.equal(signed.hashes && (signed.hashes as JsonObject).sha256, c.expected_signed.hashes.sha256);
          const expectSame = !roomVersionRules(version).redactsInContent; // v11 changed the top-level keep-list
          if (expectSame) {
            assert.equal(canonicalJson(signed), canonicalJson(c.expected_signed));
            assert.ok(verifyEventSignature(c.expected_signed, serverName, key.keyId, key.publicKey, version));
          } else {
            assert.notDeepEqual(signed.signatures, c.expected_signed.signatures);
            assert.ok(!verifyEventSignature(c.expected_signed, serverName, key.keyId, key.publicKey, version));
            assert.ok(verifyEventSignature(signed, serverName, key.keyId, key.publicKey, version));
          }
        });
      }
    }
  });

  describe('synapse event signing (room v1 rules; v2 redacts identically)', () => {
    const v = loadVector('synapse-event-signing.json');
    for (const c of v.cases) {
      for (const version of ['1', '2'] as const) {
        it(`${c.name}, room v${version}`, () => {
          const signed = signEvent(c.input as JsonObject, serverName, key, version);
          assert.equal((signed.hashes as JsonObject).sha256, c.expected.hashes.sha256);
          assert.equal(((signed.signatures as JsonObject)[serverName] as JsonObject)[key.keyId], c.expected.signature);
          // The independent oracle agrees.
          const msg = new TextEncoder().encode(jsonSigningInput(redactEvent(signed, version)));
          const ok = nacl.sign.detached.verify(msg, decodeBase64(c.expected.signature), key.publicKey);
          assert.ok(ok);
          // A v1 event with an event_id uses it as its ID.
          if (typeof c.input.event_id === 'string') assert.equal(computeEventId(signed, version), c.input.event_id);
        });
      }
    }
  });

  describe('gmsl event IDs: one digest, encoded per version', () => {
    const v = loadVector('gmsl-event-id.json');
    const input = v.cases[0].input;
    const v3 = v.cases.find((c: { room_version: string }) => c.room_version === '3').expected_event_id;
    const v4 = v.cases.find((c: { room_version: string }) => c.room_version === '4').expected_event_id;
    // The input is an m.room.create; v11 redaction keeps all of its content, so the digest changes there.
    for (const version of ALL) {
      it(`room v${version}`, () => {
        const rules = roomVersionRules(version);
        if (rules.eventIdFormat === 'server') {
          assert.throws(() => computeEventId(input, version), /lacks a valid event_id/);
          return;
        }
        const id = computeEventId(input, version);
        assert.ok(isValidEventId(id, version), id);
        if (version === '3') assert.equal(id, v3);
        else if (!rules.redactsInContent) assert.equal(id, v4);
        else {
          assert.notEqual(id, v4, 'v11+ keep all create content, so the hash differs');
          assert.equal(id, computeEventId(input, '11'));
        }
        assert.equal(v3.slice(1), encodeBase64(referenceHash(input, '3')));
      });
    }
  });

  describe('gmsl redaction: v12 redacts as v11', () => {
    const v = loadVector('gmsl-redaction.json');
    for (const c of v.cases) {
      it(`${c.name} (v${c.room_version}${c.room_version === '11' ? ' and v12' : ''})`, () => {
        assert.equal(canonicalJson(redactEvent(c.input, c.room_version)), canonicalJson(c.expected));
        if (c.room_version === '11') assert.equal(canonicalJson(redactEvent(c.input, '12')), canonicalJson(c.expected));
      });
    }
  });

  describe('room v11 chain: hashes and IDs hold under v12 rules too (same redaction and ID format)', () => {
    const chain = loadVector('room-v11-chain.json');
    for (const [i, { event_id: eventId, pdu }] of (chain.events as Array<{ event_id: string; pdu: Pdu }>).entries()) {
      it(`${i}: ${pdu.type}`, () => {
        assert.ok(checkContentHash(pdu));
        for (const version of ['11', '12'] as const) {
          assert.equal(computeEventId(pdu, version), eventId);
          assert.ok(verifyEventSignature(pdu, serverName, key.keyId, key.publicKey, version));
        }
        // Under v10 rules the create event (content.room_version kept only under v11) hashes differently.
        if (pdu.type === 'm.room.create') assert.notEqual(computeEventId(pdu, '10'), eventId);
        // v12 would derive this room's ID from the create event, but this chain's create carries a room_id.
        if (pdu.type === 'm.room.create') assert.equal(roomIdFromCreateEvent(pdu, '12'), '!' + computeEventId(pdu, '12').slice(1));
      });
    }
  });
});

describe('protocol/room-versions: v1/v2 event format', () => {
  const base = (): Pdu => ({
    room_id: '!r:domain',
    sender: '@a:domain',
    type: 'm.room.message',
    content: { body: 'hi' },
    origin_server_ts: 1_000_000,
    depth: 2,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: '' },
    signatures: {},
  });

  it('server-assigned IDs are $random:server and unique', () => {
    const ids = new Set(Array.from({ length: 50 }, () => newServerEventId('domain')));
    assert.equal(ids.size, 50);
    for (const id of ids) {
      assert.match(id, /^\$[A-Za-z0-9]{24}:domain$/);
      assert.ok(isValidEventId(id, '1') && !isValidEventId(id, '4'));
    }
  });

  it('the event_id is signed and part of the reference hash (unlike v3+)', () => {
    const a = signEvent({ ...base(), event_id: '$a:domain' }, serverName, key, '1');
    const b = signEvent({ ...base(), event_id: '$b:domain' }, serverName, key, '1');
    assert.notDeepEqual(a.signatures, b.signatures);
    assert.notDeepEqual(referenceHash(a, '1'), referenceHash(b, '1'));
    assert.ok(verifyEventSignature(a, serverName, key.keyId, key.publicKey, '1'));
    assert.ok(!verifyEventSignature({ ...a, event_id: '$b:domain' }, serverName, key.keyId, key.publicKey, '1'));
    // From v3 event_id would not count: the hash ignores it.
    assert.deepEqual(referenceHash({ ...a, event_id: '$x:y' }, '4'), referenceHash({ ...a, event_id: '$z:w' }, '4'));
  });

  it('references are [event_id, {sha256: reference hash}] pairs in v1/v2 and bare IDs from v3', () => {
    const target = signEvent({ ...base(), event_id: '$t:domain' }, serverName, key, '1');
    const ref = eventReference('$t:domain', target, '1');
    const expected = encodeBase64(sha256(canonicalJson(redactEvent(target, '1') as JsonObject & { signatures?: unknown })));
    assert.ok(Array.isArray(ref));
    assert.equal(ref[0], '$t:domain');
    // The reference hash is over the redacted event minus signatures and unsigned.
    const redacted = redactEvent(target, '1') as JsonObject;
    delete redacted.signatures;
    assert.equal(ref[1].sha256, encodeBase64(sha256(canonicalJson(redacted))));
    assert.notEqual(ref[1].sha256, expected, 'signatures are not part of the reference hash');
    for (const version of ALL.slice(2)) assert.equal(eventReference('$t', target, version), '$t');
    const pdu: Pdu = { ...base(), prev_events: [ref], auth_events: [ref] };
    assert.deepEqual(prevEventIds(pdu), ['$t:domain']);
    assert.deepEqual(authEventIds(pdu), ['$t:domain']);
    assert.deepEqual(prevEventIds({ prev_events: ['$x', '$y'] }), ['$x', '$y']);
  });

  it('v1/v2 events also need the signature of the event ID server', () => {
    const pdu = { ...base(), event_id: '$e:other.org' };
    assert.deepEqual(requiredSignatureServers(pdu, '1').sort(), ['domain', 'other.org']);
    assert.deepEqual(requiredSignatureServers(pdu, '3'), ['domain']);
    const join = { ...base(), type: 'm.room.member', content: { membership: 'join', join_authorised_via_users_server: '@x:auth.org' } };
    assert.deepEqual(requiredSignatureServers(join, '7'), ['domain']);
    assert.deepEqual(requiredSignatureServers(join, '8').sort(), ['auth.org', 'domain']);
  });
});

describe('protocol/room-versions: v12 room IDs', () => {
  const create = (): Pdu =>
    signEvent(
      {
        sender: '@alice:domain',
        type: 'm.room.create',
        state_key: '',
        content: { room_version: '12' },
        origin_server_ts: 1_700_000_000_000,
        depth: 1,
        prev_events: [],
        auth_events: [],
        hashes: { sha256: '' },
        signatures: {},
      } as Pdu,
      serverName,
      key,
      '12',
    );

  it('is ! + the create event reference hash, URL-safe, with no server part', () => {
    const c = create();
    const eventId = computeEventId(c, '12');
    const roomId = roomIdFromCreateEvent(c, '12')!;
    assert.equal(roomId, '!' + eventId.slice(1));
    assert.match(roomId, /^![A-Za-z0-9_-]{43}$/);
    assert.equal(roomId.slice(1), encodeBase64(referenceHash(c, '12')).replace(/\+/g, '-').replace(/\//g, '_'));
    assert.ok(isValidRoomId(roomId));
    assert.equal(roomIdOf(c, eventId), roomId, 'roomIdOf fills in the create event\'s room');
    assert.equal(roomIdOf({ room_id: '!x:y' }, '$whatever'), '!x:y');
  });

  it('changes with any signed field and is undefined before v12', () => {
    const c = create();
    assert.notEqual(roomIdFromCreateEvent({ ...c, origin_server_ts: c.origin_server_ts + 1 }, '12'), roomIdFromCreateEvent(c, '12'));
    for (const v of ALL.slice(0, 11)) assert.equal(roomIdFromCreateEvent({ ...c, event_id: '$a:b' }, v), undefined);
  });

  it('isValidRoomId accepts both formats and nothing else', () => {
    assert.ok(isValidRoomId('!abc:x.org'));
    assert.ok(isValidRoomId('!' + 'A'.repeat(43)));
    for (const bad of ['!' + 'A'.repeat(42), '!' + 'A'.repeat(44), '!' + 'A+'.repeat(21) + 'A', '!abc']) assert.ok(!isValidRoomId(bad), bad);
  });
});
