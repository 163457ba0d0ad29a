// A real Redis for the specs that need one: scripts/redis.sh starts it (installing redis-server
// from Debian if missing) on a loopback port, once per machine; later calls find it running.
// If it cannot start, the calling hook throws and its tests fail loudly: they are never skipped.
// It is left running for the next test run; `npm run services:stop` stops it.
//
// Each caller gets its own key prefix, so suites (and concurrent test runs) never see each
// other's keys.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

// Compiled to dist/spec/helpers/; the script lives at the package root.
const SCRIPT = fileURLToPath(new URL('../../../scripts/redis.sh', import.meta.url));

let url: string | undefined;

export function startRedis(): string {
  if (url) return url;
  let out: string;
  try {
    out = execFileSync(SCRIPT, ['start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`could not start Redis with ${SCRIPT}: ${e.stderr || e.message}`);
  }
  const line = out.trim().split('\n').pop() ?? '';
  if (!/^redis:\/\//.test(line)) throw new Error(`scripts/redis.sh start printed no URL: ${out}`);
  url = line;
  return url;
}

/** A prefix no other suite uses, ending in ':'. */
export function freshPrefix(label: string): string {
  return `hearth-test:${label}:${randomBytes(6).toString('hex')}:`;
}

/** A plain client on the test Redis, for assertions about what is stored. */
export function redisClient(connectionName?: string): Redis {
  // A name (CLIENT SETNAME) lets a spec find this connection in CLIENT LIST.
  return new Redis(startRedis(), { maxRetriesPerRequest: 3, ...(connectionName ? { connectionName } : {}) });
}

/**
 * Resolves once Redis itself has dropped every connection named `name`: a client's disconnect()
 * only starts the close, and until Redis has processed it a blocked BLPOP on that connection can
 * still be handed (and lose) a pushed element.
 */
export async function redisDropped(check: Redis, name: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = (await check.client('LIST')) as string;
    if (!list.split('\n').some((line) => line.split(' ').includes(`name=${name}`))) return;
    if (Date.now() > deadline) throw new Error(`Redis still lists connection ${name} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A Redis of the caller's own, on its own port and directory (scripts/redis.sh with
 * HEARTH_REDIS_PORT / HEARTH_REDIS_DIR), for specs that stop and restart it: the shared one on
 * 16379 is never stopped. stop() loses its data (nothing is persisted), as a crashed Redis would.
 */
export class OwnRedis {
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  start(): string {
    const out = this.run('start');
    if (!out.trim().endsWith(this.url)) throw new Error(`scripts/redis.sh start on port ${this.port} printed ${out}`);
    return this.url;
  }

  stop(): void {
    this.run('stop');
  }

  private run(cmd: 'start' | 'stop'): string {
    const env = { ...process.env, HEARTH_REDIS_PORT: String(this.port), HEARTH_REDIS_DIR: this.dir };
    try {
      return execFileSync(SCRIPT, [cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, env });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`scripts/redis.sh ${cmd} (port ${this.port}): ${e.stderr || e.message}`);
    }
  }
}
