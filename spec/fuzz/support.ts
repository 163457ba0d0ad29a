// Shared pieces of the fuzz specs: the Schemathesis virtualenv, a server-side request counter,
// a /versions liveness poller, and the findings file (/tmp/fuzz-findings.md by default).

import { execFile } from 'node:child_process';
import dc from 'node:diagnostics_channel';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { repoRoot } from './openapi.js';

/**
 * Runs scripts/fuzz-setup.sh (idempotent: a second run only checks the venv) and returns the
 * venv's python. The first run on a fresh machine installs python3-venv with apt-get if needed
 * and schemathesis from PyPI (~15 s).
 */
export async function ensureFuzzVenv(): Promise<{ python: string; schemathesis: string }> {
  const script = join(repoRoot(), 'scripts', 'fuzz-setup.sh');
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('bash', [script], { timeout: 15 * 60_000, maxBuffer: 64 << 20 }, (err, out, errOut) => {
      if (err) reject(new Error(`${script} failed: ${err.message}\n${errOut}`));
      else resolve(out);
    });
  });
  const python = stdout.trim().split('\n').pop()!.trim();
  const schemathesis = join(python, '..', 'schemathesis');
  if (!existsSync(python) || !existsSync(schemathesis)) throw new Error(`fuzz-setup gave ${python}; no schemathesis beside it`);
  return { python, schemathesis };
}

/**
 * Counts the HTTP requests that reach the server listening on `port`, through node's
 * `http.server.request.start` diagnostics channel: below Koa and every middleware, so it counts
 * requests the app rejects, 404s and requests that crash a handler alike.
 */
export class RequestCounter {
  total = 0;
  readonly statuses = new Map<number, number>();
  private readonly onStart = (msg: unknown) => {
    const { server, response } = msg as { server: Server; response: ServerResponse; request: IncomingMessage };
    const addr = server.address();
    if (!addr || typeof addr === 'string' || addr.port !== this.port) return;
    this.total++;
    response.once('finish', () => this.statuses.set(response.statusCode, (this.statuses.get(response.statusCode) ?? 0) + 1));
  };

  constructor(private readonly port: number) {
    dc.subscribe('http.server.request.start', this.onStart);
  }

  close(): void {
    dc.unsubscribe('http.server.request.start', this.onStart);
  }

  serverErrors(): number {
    let n = 0;
    for (const [s, c] of this.statuses) if (s >= 500) n += c;
    return n;
  }
}

/** Polls GET /_matrix/client/versions every `everyMs` while a fuzz run goes on. */
export class VersionsPoller {
  polls = 0;
  readonly failures: string[] = [];
  private timer?: NodeJS.Timeout;
  private inFlight = false;

  constructor(private readonly base: string, private readonly everyMs = 2000) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.everyMs);
  }

  async poll(): Promise<boolean> {
    if (this.inFlight) return true;
    this.inFlight = true;
    this.polls++;
    try {
      const res = await fetch(`${this.base}/_matrix/client/versions`, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { versions?: unknown };
      if (res.status !== 200 || !Array.isArray(body.versions)) {
        this.failures.push(`${new Date().toISOString()} /versions answered ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
        return false;
      }
      return true;
    } catch (e) {
      this.failures.push(`${new Date().toISOString()} /versions failed: ${(e as Error).message}`);
      return false;
    } finally {
      this.inFlight = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export function findingsPath(): string {
  return process.env.HEARTH_FUZZ_FINDINGS ?? '/tmp/fuzz-findings.md';
}

/**
 * Replaces this spec's section of the findings file (other specs' sections stay), so both fuzz
 * specs can report into one markdown file in any order.
 */
export function writeFindingsSection(name: string, markdown: string): void {
  const path = findingsPath();
  const begin = `<!-- begin ${name} -->`;
  const end = `<!-- end ${name} -->`;
  let text = existsSync(path) ? readFileSync(path, 'utf8') : '# Fuzz findings\n\nWritten by spec/fuzz/*.spec.ts; each section is replaced by the next run of its spec.\n';
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + section + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(path, text);
}

/** A fenced code block that survives backticks inside. */
export function fence(text: string, lang = ''): string {
  const ticks = text.includes('```') ? '````' : '```';
  return `${ticks}${lang}\n${text}\n${ticks}`;
}
