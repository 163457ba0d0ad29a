// Starts real Hearth servers for tests: a fresh temporary data directory (real SQLite file),
// an OS-assigned port on loopback, and a silent logger unless HEARTH_TEST_LOG is set.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHearth, type Hearth } from '../../src/app.js';
import { validateConfig, type HearthConfigInput } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';

export interface TestServer {
  hearth: Hearth;
  url: string;
  /** The metrics listener (GET /metrics), on its own OS-assigned port; undefined with metrics off. */
  metricsUrl: string | undefined;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startTestServer(overrides: HearthConfigInput = {}, dataDir?: string): Promise<TestServer> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'hearth-test-'));
  const config = validateConfig({
    server_name: 'localhost',
    listeners: { client: { host: '127.0.0.1', port: 0 } },
    storage: { sqlite: { path: join(dir, 'hearth.sqlite'), synchronous: 'normal' } },
    signing_key_path: join(dir, 'signing.key'),
    log: { level: (process.env.HEARTH_TEST_LOG as 'debug') ?? 'silent' },
    ...overrides,
    media: { path: join(dir, 'media'), ...overrides.media },
    // No shedding on event-loop lag or send delay: test machines are shared and busy (spec/admission covers them).
    limits: { rate_limits: { enabled: false }, ...overrides.limits, admission: { max_event_loop_lag_ms: 0, max_send_delay_ms: 0, send_target_delay_ms: 0, ...overrides.limits?.admission } },
    // Never the fixed default port: tests run several servers at once.
    metrics: { ...overrides.metrics, listen: { host: '127.0.0.1', port: 0, ...overrides.metrics?.listen } },
  });
  const live = await createHearth(config, { logger: createLogger(config), processMetrics: false });
  await live.start();
  const app = releasable(live);
  let stopping: Promise<void> | undefined;
  return {
    hearth: app.hearth,
    url: live.url,
    metricsUrl: live.metricsUrl,
    dataDir: dir,
    stop() {
      stopping ??= (async () => {
        await app.hearth.stop();
        app.release();
        if (!dataDir) rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/**
 * The app behind a handle that lets go of it: until `release()` the handle forwards everything to
 * the app; after it, only the config and the base URLs answer, and anything else throws (the app
 * is stopped; its store is closed). Specs keep their servers in describe-level variables that
 * mocha's suite closures hold until the run ends, so without this every stopped server's whole
 * app (store, caches, read model) stayed reachable: about 2.5 MB per test over the suite.
 */
function releasable(app: Hearth): { hearth: Hearth; release(): void } {
  const shell = { config: app.config, url: app.url, metricsUrl: app.metricsUrl };
  let target: Hearth | undefined = app;
  const live = (key: PropertyKey): Hearth => {
    if (target) return target;
    throw new Error(`this test server was stopped: hearth.${String(key)} is gone (only config, url and metricsUrl remain)`);
  };
  const hearth = new Proxy({} as Hearth, {
    get: (_t, key) => {
      if (target) return Reflect.get(target, key);
      if (key in shell) return shell[key as keyof typeof shell];
      // What inspection, printing and `await` probe for: absent, not an error.
      if (typeof key === 'symbol' || key === 'then' || key === 'toJSON') return undefined;
      return Reflect.get(live(key), key);
    },
    set: (_t, key, value) => Reflect.set(live(key), key, value),
    has: (_t, key) => (target === undefined ? key in shell : key in target),
    ownKeys: () => Reflect.ownKeys(target ?? shell),
    getOwnPropertyDescriptor: (_t, key) => {
      const d = Reflect.getOwnPropertyDescriptor(target ?? shell, key);
      return d && { ...d, configurable: true };
    },
  });
  return {
    hearth,
    release() {
      target = undefined;
    },
  };
}

/** A minimal JSON client for HTTP-level tests. */
export class Api {
  constructor(readonly base: string, public token?: string) {}

  async req(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const h: Record<string, string> = { ...headers };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] = 'application/json';
    }
    const res = await fetch(this.base + path, { method, headers: h, body: payload });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      /* non-JSON body (e.g. /metrics) */
    }
    return { status: res.status, body: json };
  }

  get(path: string) {
    return this.req('GET', path);
  }
  post(path: string, body: unknown = {}) {
    return this.req('POST', path, body);
  }
  put(path: string, body: unknown = {}) {
    return this.req('PUT', path, body);
  }

  /** Registers with m.login.dummy and returns a client logged in as the new user. */
  async register(username: string, password = 'correct horse battery'): Promise<Api & { userId: string; deviceId: string }> {
    const first = await new Api(this.base).post('/_matrix/client/v3/register', { username, password });
    if (first.status !== 401) throw new Error(`register: expected 401, got ${first.status} ${JSON.stringify(first.body)}`);
    const res = await new Api(this.base).post('/_matrix/client/v3/register', {
      username,
      password,
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    if (res.status !== 200) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
    return Object.assign(new Api(this.base, res.body.access_token), { userId: res.body.user_id, deviceId: res.body.device_id });
  }
}

export const enc = encodeURIComponent;
