// A real HTTP server playing an application service for the appservice specs: records every
// transaction (with its ID and Authorization header), can fail transactions on demand, and
// answers user/alias/third-party queries through handlers the test sets.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface ReceivedTxn {
  txnId: string;
  auth: string | undefined;
  events: any[];
  /** The status this fake answered with. */
  status: number;
}

export type QueryHandler = (path: string, query: URLSearchParams) => Promise<{ status: number; body: unknown }> | { status: number; body: unknown };

export class FakeAppService {
  readonly txns: ReceivedTxn[] = [];
  readonly queries: Array<{ path: string; auth: string | undefined; query: URLSearchParams; body: string }> = [];
  /** Answer the next n transactions with 500. */
  failNext = 0;
  /** While true every transaction is answered 500. */
  down = false;
  onQuery: QueryHandler = () => ({ status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } });
  private server: Server | undefined;
  private waiters: Array<() => void> = [];
  url = '';

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Every event acknowledged (200) so far, in arrival order. */
  acknowledged(): any[] {
    return this.txns.filter((t) => t.status === 200).flatMap((t) => t.events);
  }

  /** Resolves once `pred` holds over the acknowledged events (checked after each transaction). */
  async waitFor(pred: (events: any[]) => boolean, what: string, timeoutMs = 10_000): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.acknowledged())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.acknowledged().map((e) => [e.type, e.content?.body ?? e.state_key]))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.acknowledged();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const m = /^\/_matrix\/app\/v1\/transactions\/([^/]+)$/.exec(url.pathname);
    if (m && req.method === 'PUT') {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      let status = 200;
      if (this.down) status = 500;
      else if (this.failNext > 0) {
        this.failNext--;
        status = 500;
      }
      this.txns.push({ txnId: decodeURIComponent(m[1]!), auth, events: body.events, status });
      reply(status, status === 200 ? {} : { errcode: 'M_UNKNOWN', error: 'down' });
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
      return;
    }
    this.queries.push({ path: decodeURIComponent(url.pathname), auth, query: url.searchParams, body: Buffer.concat(chunks).toString('utf8') });
    const r = await this.onQuery(decodeURIComponent(url.pathname), url.searchParams);
    reply(r.status, r.body);
  }
}

export interface RegistrationFile {
  id: string;
  url: string | null;
  as_token: string;
  hs_token: string;
  sender_localpart: string;
  namespaces: Record<string, Array<{ regex: string; exclusive: boolean }>>;
  [k: string]: unknown;
}

/** Writes registration YAML files into a fresh temporary directory; returns their paths. */
export function writeRegistrations(...regs: Array<Record<string, unknown>>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-as-'));
  return regs.map((r, i) => {
    const p = join(dir, `reg-${i}.yaml`);
    writeFileSync(p, stringify(r));
    return p;
  });
}
