// A tiny in-process identity server (Identity Service API v2) for HTTP tests: HTTPS on loopback
// with a self-signed certificate, ed25519 keys from tweetnacl (independent of src/protocol's
// signing), and every request it received kept for the test to inspect.

import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import { generateSelfSignedCertificate } from '../../src/federation/self-signed.js';

export const ID_ACCESS_TOKEN = 'swordfish';
const PEPPER = 'matrixrocks';

export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  body: any;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64').replace(/=+$/, '');

export class FakeIdentityServer {
  readonly requests: SeenRequest[] = [];
  readonly bindings = new Map<string, string>();
  readonly invites: Array<{ medium: string; address: string; room_id: string; sender: string; token: string; body: any }> = [];
  private readonly sessions = new Map<string, { medium: string; address: string }>();
  private main = nacl.sign.keyPair();
  private ephemeral = nacl.sign.keyPair();
  private readonly revoked = new Set<string>();
  private nextToken = 0;
  private server!: Server;
  name = '';

  static async start(): Promise<FakeIdentityServer> {
    const s = new FakeIdentityServer();
    const tls = await generateSelfSignedCertificate('127.0.0.1');
    s.server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'https://x');
        const text = Buffer.concat(chunks).toString('utf8');
        const seen: SeenRequest = { method: req.method ?? '', path: url.pathname, query: url.searchParams, authorization: req.headers.authorization, body: text ? JSON.parse(text) : undefined };
        s.requests.push(seen);
        const [status, body] = s.handle(seen);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.name = `127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get publicKey(): string {
    return b64(this.main.publicKey);
  }

  /** A session as if the user had validated (medium, address) here. */
  validate(medium: string, address: string): string {
    const sid = `session_${this.sessions.size}`;
    this.sessions.set(sid, { medium, address });
    return sid;
  }

  bind(medium: string, address: string, mxid: string): void {
    this.bindings.set(`${medium}\u0000${address}`, mxid);
  }

  /** New keys: what was signed before no longer verifies against the published keys. */
  rotateKeys(): void {
    this.main = nacl.sign.keyPair();
    this.ephemeral = nacl.sign.keyPair();
  }

  /** The current main key stays published but isvalid says no. */
  revokeMainKey(): void {
    this.revoked.add(this.publicKey);
  }

  sign<T extends Record<string, unknown>>(obj: T, which: 'main' | 'ephemeral' = 'main'): T & { signatures: Record<string, Record<string, string>> } {
    const key = which === 'main' ? this.main : this.ephemeral;
    const { signatures: _s, unsigned: _u, ...rest } = obj;
    const sig = b64(nacl.sign.detached(new TextEncoder().encode(canonicalJson(rest)), key.secretKey));
    return { ...obj, signatures: { [this.name]: { 'ed25519:0': sig } } };
  }

  /** What the identity server sends a homeserver's 3pid/onbind once (medium, address) is bound. */
  onBindBody(medium: string, address: string, mxid: string): Record<string, unknown> {
    this.bind(medium, address, mxid);
    const invites = this.invites
      .filter((i) => i.medium === medium && i.address === address)
      .map((i) => ({ medium, address, mxid, room_id: i.room_id, sender: i.sender, token: i.token, signed: this.sign({ mxid, token: i.token }) }));
    return { medium, address, mxid, invites };
  }

  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  private handle(r: SeenRequest): [number, unknown] {
    const authed = r.authorization === `Bearer ${ID_ACCESS_TOKEN}`;
    const needAuth = (): [number, unknown] => [401, { errcode: 'M_UNAUTHORIZED', error: 'no token' }];
    switch (`${r.method} ${r.path}`) {
      case 'GET /_matrix/identity/v2/hash_details':
        return authed ? [200, { lookup_pepper: PEPPER, algorithms: ['none', 'sha256'] }] : needAuth();
      case 'POST /_matrix/identity/v2/lookup': {
        if (!authed) return needAuth();
        if (r.body.algorithm !== 'sha256' || r.body.pepper !== PEPPER) return [400, { errcode: 'M_INVALID_PEPPER', error: 'pepper' }];
        const mappings: Record<string, string> = {};
        for (const [key, mxid] of this.bindings) {
          const [medium, address] = key.split('\u0000');
          const hash = createHash('sha256').update(`${address} ${medium} ${PEPPER}`).digest('base64url');
          if (r.body.addresses.includes(hash)) mappings[hash] = mxid;
        }
        return [200, { mappings }];
      }
      case 'POST /_matrix/identity/v2/store-invite': {
        if (!authed) return needAuth();
        const token = `tok${this.nextToken++}`;
        this.invites.push({ medium: r.body.medium, address: r.body.address, room_id: r.body.room_id, sender: r.body.sender, token, body: r.body });
        const url = `https://${this.name}/_matrix/identity/v2/pubkey/isvalid`;
        return [200, { token, display_name: 'Bob', public_keys: [{ public_key: this.publicKey, key_validity_url: url }, { public_key: b64(this.ephemeral.publicKey), key_validity_url: url }] }];
      }
      case 'GET /_matrix/identity/v2/pubkey/isvalid': {
        const k = r.query.get('public_key');
        const current = [this.publicKey, b64(this.ephemeral.publicKey)];
        return [200, { valid: k !== null && current.includes(k) && !this.revoked.has(k) }];
      }
      case 'POST /_matrix/identity/v2/3pid/bind': {
        if (!authed) return needAuth();
        const session = this.sessions.get(r.body.sid);
        if (!session) return [400, { errcode: 'M_NO_VALID_SESSION', error: 'unknown sid' }];
        this.bind(session.medium, session.address, r.body.mxid);
        return [200, this.sign({ ...session, mxid: r.body.mxid, not_before: 0, not_after: 4582425849161, ts: 0 })];
      }
      case 'POST /_matrix/identity/v2/3pid/unbind': {
        const key = `${r.body.threepid?.medium}\u0000${r.body.threepid?.address}`;
        if (this.bindings.get(key) !== r.body.mxid) return [404, { errcode: 'M_NOT_FOUND', error: 'not bound' }];
        this.bindings.delete(key);
        return [200, {}];
      }
      default:
        return [404, { errcode: 'M_UNRECOGNIZED', error: 'unknown' }];
    }
  }
}
