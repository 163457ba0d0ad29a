// Prototype-pollution bodies against every Client-Server operation that takes a JSON body
// (issue 9, hardening).
//
// For each such operation of the official OpenAPI definitions (../shared/spec/api/client-server),
// path parameters get real values where we have them (own user ID, a fresh room and an event in
// it, own device, a key backup version, a filter, m.room.message, a random txn ID) and these
// bodies are sent with the user's access token:
//   {"__proto__":{"x":{}}}  {"constructor":{"prototype":{"x":1}}}  {"prototype":{"x":1}}
// and the same keys one and two levels deep inside every top-level property the request schema
// defines ({"P":{"__proto__":...}}, {"P":{"K":{"__proto__":...}}} where K is each property the
// schema of P names, else a user ID / device ID / "k" for record-style maps; arrays get the
// hostile object as their element).
// Asserted per request: no 5xx; an error (>= 400) is {errcode: string, error: string} (the UIA
// 401 challenge excepted, as the spec defines it without errcode); Object/Array/Function/String
// prototypes are unchanged, ({}).x is undefined and Object.prototype.constructor is Object (the
// server runs in this process). At the end /versions must still answer 200. Every distinct
// failure goes to /tmp/fuzz-findings.md (HEARTH_FUZZ_FINDINGS).

import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { bundleClientServer, HTTP_METHODS, loadClientServerFiles, RefResolver } from './openapi.js';
import { fence, writeFindingsSection } from './support.js';

const PASSWORD = 'proto password, long enough';

interface BodyOp {
  method: string;
  template: string; // basePath + path
  operationId: string;
  schema: any;
  schemaFile: string;
}

/**
 * Every operation whose request body accepts application/json, with its body schema. Read from
 * the bundled copy of the spec (openapi.ts), which adds the files the shared copy lacks.
 */
function jsonBodyOperations(root: string): BodyOp[] {
  const resolver = new RefResolver();
  const out: BodyOp[] = [];
  for (const f of loadClientServerFiles(root)) {
    for (const [p, item] of Object.entries<any>(f.doc.paths ?? {})) {
      for (const m of HTTP_METHODS) {
        const op = item[m];
        if (!op?.requestBody) continue;
        const { node: rb, file } = resolver.deref(op.requestBody, f.file);
        const media = rb?.content?.['application/json'];
        if (!media) continue;
        // trimEnd: the spec writes two paths with a trailing space to document them twice.
        out.push({ method: m.toUpperCase(), template: f.basePath.replace(/\/$/, '') + p.trimEnd(), operationId: op.operationId ?? `${m} ${p}`, schema: media.schema ?? {}, schemaFile: file });
      }
    }
  }
  return out;
}

// Hostile values as JSON text: built as strings so "__proto__" is an own key on the wire.
const HOSTILE = ['{"__proto__":{"x":{}}}', '{"constructor":{"prototype":{"x":1}}}', '{"prototype":{"x":1}}'];
// For record-style maps (user -> device -> ...), the brief's {"messages":{"__proto__":{"DEV":{}}}}.
const HOSTILE_MAP = '{"__proto__":{"DEV":{}}}';

/** The bodies to send for an operation, as JSON text with a short label each. */
function bodiesFor(op: BodyOp, resolver: RefResolver, ids: { userId: string; deviceId: string }): { label: string; text: string }[] {
  const out: { label: string; text: string }[] = HOSTILE.map((h) => ({ label: `top: ${h}`, text: h }));
  const props = resolver.properties(op.schema, op.schemaFile);
  for (const [name, { node, file }] of props) {
    const key = JSON.stringify(name);
    const isArray = node?.type === 'array' || (Array.isArray(node?.type) && node.type.includes('array'));
    const nested = resolver.properties(node, file);
    const itemProps = isArray && node.items ? resolver.properties(node.items, file) : new Map();
    for (const h of HOSTILE) {
      out.push({ label: `${name}: ${h}`, text: `{${key}:${isArray ? `[${h}]` : h}}` });
    }
    if (!isArray) out.push({ label: `${name}: ${HOSTILE_MAP}`, text: `{${key}:${HOSTILE_MAP}}` });
    // Two levels: inside each property the nested schema names, or map-style keys.
    const inner = [...(isArray ? itemProps : nested).keys()].slice(0, 4);
    const innerKeys = inner.length ? inner : [ids.userId, ids.deviceId, 'k'];
    for (const k of innerKeys) {
      const kk = JSON.stringify(k);
      for (const h of HOSTILE) {
        const level2 = `{${kk}:${h}}`;
        out.push({ label: `${name}.${k}: ${h}`, text: `{${key}:${isArray ? `[${level2}]` : level2}}` });
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Prototype integrity of this process (the server runs in it).

const WATCHED: [string, object][] = [
  ['Object.prototype', Object.prototype],
  ['Array.prototype', Array.prototype],
  ['Function.prototype', Function.prototype],
  ['String.prototype', String.prototype],
];
type Snapshot = Map<string | symbol, PropertyDescriptor>;
const snapshot = (o: object): Snapshot => new Map(Reflect.ownKeys(o).map((k) => [k, Object.getOwnPropertyDescriptor(o, k)!]));
const baselines = WATCHED.map(([name, o]) => ({ name, o, base: snapshot(o) }));
const sameDesc = (a: PropertyDescriptor, b: PropertyDescriptor) => a.value === b.value && a.get === b.get && a.set === b.set;

/** What differs from the start of the run; repairs it so the next request is judged on its own. */
function prototypeDamage(): string[] {
  const out: string[] = [];
  for (const { name, o, base } of baselines) {
    for (const k of Reflect.ownKeys(o)) {
      if (!base.has(k)) {
        const v = Object.getOwnPropertyDescriptor(o, k)?.value;
        out.push(`${name} gained ${String(k)} = ${safeJson(v)}`);
        delete (o as any)[k];
      }
    }
    for (const [k, d] of base) {
      const now = Object.getOwnPropertyDescriptor(o, k);
      if (!now || !sameDesc(now, d)) {
        out.push(`${name}.${String(k)} was ${now ? 'replaced' : 'deleted'}`);
        Object.defineProperty(o, k, d);
      }
    }
  }
  if (({} as any).x !== undefined) out.push(`({}).x is ${safeJson(({} as any).x)}`);
  if (Object.prototype.constructor !== Object) out.push('Object.prototype.constructor is no longer Object');
  return out;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 100) ?? String(v);
  } catch {
    return String(v);
  }
}

// ------------------------------------------------------------------------------------------

interface Failure {
  operation: string;
  path: string;
  body: string;
  label: string;
  status: number;
  response: string;
  problems: string[];
}

describe('fuzz: prototype keys in every JSON request body', function () {
  this.timeout(60_000);
  const bundle = bundleClientServer();
  const ops = jsonBodyOperations(bundle.dir);
  const resolver = new RefResolver();
  const failures: Failure[] = [];
  let srv: TestServer;
  let user: Awaited<ReturnType<Api['register']>>;
  let backupVersion: string;
  let filterId: string;
  let sent = 0;

  before(async () => {
    srv = await startTestServer();
    user = await new Api(srv.url).register('proto', PASSWORD);
    const backup = await user.post('/_matrix/client/v3/room_keys/version', {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo' },
    });
    backupVersion = backup.body.version ?? '1';
    const filter = await user.post(`/_matrix/client/v3/user/${enc(user.userId)}/filter`, { room: { timeline: { limit: 5 } } });
    filterId = filter.body.filter_id ?? '0';
    assert.ok(prototypeDamage().length === 0, 'prototypes intact before the run');
  });

  after(async () => {
    writeFindingsSection('proto-bodies', renderFindings(failures, ops.length, sent));
    await srv?.stop();
    rmSync(bundle.dir, { recursive: true, force: true });
  });

  /** A logged-in client: logs in again if an earlier request (e.g. /logout) ended the token. */
  async function client(): Promise<Api> {
    const who = await user.get('/_matrix/client/v3/account/whoami');
    if (who.status === 401) {
      const login = await new Api(srv.url).post('/_matrix/client/v3/login', {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: user.userId },
        password: PASSWORD,
      });
      assert.equal(login.status, 200, `re-login: ${JSON.stringify(login.body)}`);
      user.token = login.body.access_token;
    }
    return user;
  }

  async function fixtures(api: Api) {
    const room = await api.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    assert.equal(room.status, 200, `createRoom: ${JSON.stringify(room.body)}`);
    const roomId: string = room.body.room_id;
    const ev = await api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/fx${randomBytes(4).toString('hex')}`, { msgtype: 'm.text', body: 'hi' });
    return { roomId, eventId: ev.body.event_id as string };
  }

  function fillPath(template: string, fx: { roomId: string; eventId: string }): string {
    const values: Record<string, string> = {
      roomId: fx.roomId,
      roomIdOrAlias: fx.roomId,
      eventId: fx.eventId,
      userId: user.userId,
      deviceId: user.deviceId,
      eventType: 'm.room.message',
      txnId: `proto${randomBytes(6).toString('hex')}`,
      stateKey: '',
      serverName: 'localhost',
      mediaId: 'protomedia',
      version: backupVersion,
      filterId,
      roomAlias: `#proto${randomBytes(4).toString('hex')}:localhost`,
      type: 'org.example.proto',
      tag: 'u.proto',
      kind: 'override',
      ruleId: 'org.example.proto',
      relType: 'm.thread',
      receiptType: 'm.read',
      keyName: 'displayname',
      sessionId: 'protosession',
      fileName: 'proto.txt',
    };
    return template.replace(/\{([^}]+)\}/g, (_, name: string) => enc(values[name] ?? 'proto'));
  }

  for (const op of ops) {
    it(`${op.method} ${op.template} (${op.operationId})`, async () => {
      const api = await client();
      const fx = await fixtures(api);
      const bodies = bodiesFor(op, resolver, user);
      const mine: Failure[] = [];
      for (const b of bodies) {
        const path = fillPath(op.template, fx);
        let status = 0;
        let text = '';
        const problems: string[] = [];
        try {
          const res = await fetch(srv.url + path, {
            method: op.method,
            headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
            body: b.text,
            signal: AbortSignal.timeout(20_000),
          });
          status = res.status;
          text = await res.text();
        } catch (e) {
          problems.push(`request failed: ${(e as Error).message}`);
        }
        sent++;
        await new Promise((r) => setImmediate(r)); // let work queued by the request run first
        problems.push(...prototypeDamage());
        if (status >= 500) problems.push(`status ${status}`);
        if (status >= 400) {
          let j: any;
          try {
            j = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          const uia = status === 401 && j && Array.isArray(j.flows) && !('errcode' in j);
          if (!uia && !(j && typeof j.errcode === 'string' && typeof j.error === 'string')) problems.push(`error body is not {errcode, error}`);
        }
        if (problems.length) mine.push({ operation: `${op.method} ${op.template}`, path, body: b.text, label: b.label, status, response: text.slice(0, 500), problems });
        // A request that ended the token (logout) or left the room: start the next one clean.
        if (status === 401 || status === 403) await client();
      }
      failures.push(...mine);
      assert.ok(
        mine.length === 0,
        `${mine.length} of ${bodies.length} hostile bodies failed:\n` +
          mine.map((f) => `  ${f.problems.join('; ')} <- ${f.status} ${f.response.slice(0, 200)}\n    ${curl(op.method, f.path, f.body)}`).join('\n'),
      );
    });
  }

  it('the server still answers /versions with 200 and the prototypes are intact', async () => {
    const res = await new Api(srv.url).get('/_matrix/client/versions');
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.body.versions));
    assert.deepEqual(prototypeDamage(), []);
    assert.ok(ops.length >= 60, `found ${ops.length} operations with JSON bodies`);
  });
});

function curl(method: string, path: string, body: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `curl -sS -X ${method} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary ${q(body)} "$HS"${q(path)}`;
}

function renderFindings(failures: Failure[], ops: number, sent: number): string {
  // One entry per (operation, problem kind, status, errcode); the shortest body as the example.
  const groups = new Map<string, { f: Failure; count: number; labels: Set<string> }>();
  for (const f of failures) {
    let errcode = '';
    try {
      errcode = JSON.parse(f.response)?.errcode ?? '';
    } catch {
      /* not JSON */
    }
    const kinds = f.problems.map((p) => p.replace(/ = .*$/, '').replace(/ is .*$/, ' is set')).sort().join(' & ');
    const key = `${f.operation}|${kinds}|${f.status}|${errcode}`;
    const g = groups.get(key);
    if (!g) groups.set(key, { f, count: 1, labels: new Set([f.label.replace(/:.*/, '')]) });
    else {
      g.count++;
      g.labels.add(f.label.replace(/:.*/, ''));
      if (f.body.length < g.f.body.length) g.f = f;
    }
  }
  const lines = [
    '## Prototype keys in JSON bodies (spec/fuzz/proto-bodies.spec.ts)',
    '',
    `Run ${new Date().toISOString()}: ${sent} requests over ${ops} operations with JSON bodies; ${failures.length} failing requests, ${groups.size} distinct. ` +
      'Reproduce against a running server: HS=http://127.0.0.1:8008 TOKEN=<access token>; paths name the fixtures of that run (room, event), substitute your own.',
    '',
  ];
  if (!groups.size) lines.push('No failures.');
  [...groups.values()]
    .sort((a, b) => a.f.operation.localeCompare(b.f.operation))
    .forEach(({ f, count, labels }, i) => {
      lines.push(`### ${i + 1}. ${f.operation} -> ${f.status}: ${f.problems.join('; ')} (x${count})`);
      lines.push('', `Where the keys were: ${[...labels].join(', ')}. Smallest body: \`${f.body}\`. Response:`, '', fence(f.response || '<empty>', 'json'), '', fence(curl(f.operation.split(' ')[0], f.path, f.body), 'sh'), '');
    });
  return lines.join('\n');
}
