// A tiny in-process CAS server (/cas/proxyValidate answers for the tickets a test registers) and
// reCAPTCHA siteverify API (accepts "good-captcha" with secret "private-key"), for the SSO specs.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Seen {
  path: string;
  query: URLSearchParams;
  body: string;
}

/** The fake CAS and siteverify: tickets map to CAS users (with attributes), or to a failure. */
export class FakeIdp {
  server!: Server;
  url = '';
  seen: Seen[] = [];
  tickets = new Map<string, { user: string; attrs?: Record<string, string> } | 'fail'>();

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(({ status, type, body }) => {
        res.writeHead(status, { 'content-type': type });
        res.end(body);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; type: string; body: string }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const u = new URL(req.url ?? '/', 'http://x');
    const seen = { path: u.pathname, query: u.searchParams, body: Buffer.concat(chunks).toString() };
    this.seen.push(seen);
    if (u.pathname === '/cas/proxyValidate') {
      const t = this.tickets.get(u.searchParams.get('ticket') ?? '');
      if (t === undefined || t === 'fail') {
        return { status: 200, type: 'text/xml', body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="INVALID_TICKET">no</cas:authenticationFailure></cas:serviceResponse>` };
      }
      const attrs = Object.entries(t.attrs ?? {}).map(([k, v]) => `<cas:${k}>${v}</cas:${k}>`).join('');
      return {
        status: 200,
        type: 'text/xml',
        body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>${t.user}</cas:user><cas:attributes>${attrs}</cas:attributes></cas:authenticationSuccess></cas:serviceResponse>`,
      };
    }
    if (u.pathname === '/siteverify') {
      const form = new URLSearchParams(seen.body);
      const ok = form.get('secret') === 'private-key' && form.get('response') === 'good-captcha';
      return { status: 200, type: 'application/json', body: JSON.stringify({ success: ok }) };
    }
    return { status: 404, type: 'text/plain', body: 'no' };
  }

  last(path: string): Seen {
    const s = [...this.seen].reverse().find((x) => x.path === path);
    assert.ok(s, `no request to ${path}`);
    return s;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export async function raw(url: string): Promise<{ status: number; location: string | null; type: string | null; text: string; headers: Headers }> {
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), type: res.headers.get('content-type'), text: await res.text(), headers: res.headers };
}

/** Decodes the HTML attribute escaping of the page's link. */
export function unescapeHtml(s: string): string {
  return s.replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)));
}

/** Follows the SSO redirect to the fake CAS and comes back with a ticket for `user`: the ticket page. */
export async function casTicketPage(idp: FakeIdp, serverUrl: string, user: string, redirectUrl: string, attrs: Record<string, string> = {}) {
  const start = await raw(`${serverUrl}/_matrix/client/v3/login/sso/redirect?redirectUrl=${encodeURIComponent(redirectUrl)}`);
  assert.equal(start.status, 302);
  const service = new URL(start.location!).searchParams.get('service')!;
  const ticket = `ST-${idp.tickets.size + 1}-${Math.random().toString(36).slice(2)}`;
  idp.tickets.set(ticket, { user, attrs });
  return { page: await raw(`${service}&ticket=${ticket}`), service, ticket };
}

/** The login token in a ticket page's link. */
export function loginTokenIn(html: string): string {
  const m = /href="([^"]*loginToken=[^"]*)"/.exec(html);
  assert.ok(m, `no login link in ${html}`);
  return new URL(unescapeHtml(m[1]!)).searchParams.get('loginToken')!;
}
