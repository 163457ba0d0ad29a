// Helpers for tests that drive real matrix-js-sdk clients against a Hearth test server:
// loading the SDK after the Node 20 polyfill, keeping its logging out of the test output, a
// recording fetchFn (method, path, status, errcode of every request the SDK makes), and waits on
// SDK events.

import './polyfill.js';
import { createHook, type AsyncHook } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import type { MatrixClient } from 'matrix-js-sdk';

export type Sdk = typeof import('matrix-js-sdk');

let sdkPromise: Promise<Sdk> | undefined;
/** SDK log lines (kept for failure reports instead of flooding the test output). */
export const sdkLogLines: string[] = [];

/** Loads matrix-js-sdk (dynamically, so the polyfill above has already run) with quiet logging. */
export function loadSdk(): Promise<Sdk> {
  sdkPromise ??= (async () => {
    const sdk = await import('matrix-js-sdk');
    const { logger } = await import('matrix-js-sdk/lib/logger.js');
    quiet(logger as unknown as LoglevelLike);
    return sdk;
  })();
  return sdkPromise;
}

interface LoglevelLike {
  methodFactory: (methodName: string, level: number, loggerName: unknown) => (...args: unknown[]) => void;
  rebuild?: () => void;
  setLevel(level: string | number, persist?: boolean): void;
}

/** Routes a loglevel logger into `sdkLogLines` (bounded) instead of the console. */
function quiet(l: LoglevelLike): void {
  l.methodFactory = (methodName) => (...args: unknown[]) => {
    if (sdkLogLines.length > 2000) sdkLogLines.shift();
    sdkLogLines.push(`[${methodName}] ${args.map((a) => (a instanceof Error ? a.stack ?? a.message : typeof a === 'string' ? a : safeJson(a))).join(' ')}`);
  };
  l.setLevel('debug', false);
  l.rebuild?.();
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 300) ?? String(v);
  } catch {
    return String(v);
  }
}

/** A logger for `createClient({ logger })`: everything goes to `sdkLogLines`. */
export function captureLogger(prefix = ''): any {
  const line = (level: string) => (...args: unknown[]) => {
    if (sdkLogLines.length > 2000) sdkLogLines.shift();
    sdkLogLines.push(`[${level}]${prefix} ${args.map((a) => (a instanceof Error ? a.stack ?? a.message : typeof a === 'string' ? a : safeJson(a))).join(' ')}`);
  };
  const self: any = {
    trace: line('trace'),
    debug: line('debug'),
    info: line('info'),
    log: line('log'),
    warn: line('warn'),
    error: line('error'),
    getChild: (p: string) => captureLogger(`${prefix} ${p}`),
  };
  return self;
}

export interface RecordedRequest {
  client: string;
  method: string;
  path: string;
  query: string;
  /** 0 until answered; stays 0 when the fetch failed (e.g. aborted by stopClient). */
  status: number;
  /** Whether the fetch settled (answered or failed). */
  settled: boolean;
  errcode?: string;
  /** Parsed JSON request body (when there was one). */
  body?: any;
}

/** Optionally intercepts a response before the SDK sees it (to delay it, or to replace it). */
export type ResponseHook = (req: RecordedRequest, res: Response) => Promise<Response | void> | Response | void;

/**
 * Records every request SDK clients make. `fetchFor(name)` returns a fetchFn for one client.
 * Network-level failures (e.g. aborted long-polls at stopClient) are recorded with status 0.
 */
export class RequestRecorder {
  readonly requests: RecordedRequest[] = [];
  hook: ResponseHook | null = null;
  private dispatcher: { destroy(): Promise<void> } | undefined;

  /**
   * The SDK clients' fetches go through a connection pool of their own (an undici Agent, the
   * class of Node's global fetch dispatcher), so that `close()` can drop every socket they
   * opened: undici may keep a connected socket on which it never sent a request, and such a
   * socket lingers (and, before Hearth's stop() cut all connections, kept it waiting forever).
   */
  private async pool(): Promise<unknown> {
    if (!this.dispatcher) {
      const key = Symbol.for('undici.globalDispatcher.1');
      let global = (globalThis as Record<symbol, any>)[key];
      if (!global) {
        await fetch('data:,').catch(() => undefined); // makes Node create its global dispatcher
        global = (globalThis as Record<symbol, any>)[key];
      }
      const Agent = global?.constructor as (new () => { destroy(): Promise<void> }) | undefined;
      if (!Agent) throw new Error('cannot find the fetch dispatcher class');
      this.dispatcher = new Agent();
    }
    return this.dispatcher;
  }

  /** Closes every connection the recorded clients opened. */
  async close(): Promise<void> {
    const d = this.dispatcher;
    this.dispatcher = undefined;
    await d?.destroy();
  }

  fetchFor(client: string): typeof globalThis.fetch {
    return async (input: any, init?: RequestInit): Promise<Response> => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      const method = (init?.method ?? (typeof input === 'object' && 'method' in input ? input.method : 'GET')).toUpperCase();
      let body: any;
      if (typeof init?.body === 'string') {
        try {
          body = JSON.parse(init.body);
        } catch {
          body = init.body;
        }
      }
      const rec: RecordedRequest = { client, method, path: url.pathname, query: url.search, status: 0, settled: false, body };
      this.requests.push(rec);
      let res: Response;
      try {
        res = await fetch(input, { ...init, dispatcher: await this.pool() } as RequestInit);
      } finally {
        rec.settled = true;
      }
      rec.status = res.status;
      if (res.status >= 400) {
        try {
          rec.errcode = ((await res.clone().json()) as { errcode?: string }).errcode;
        } catch {
          /* not JSON */
        }
      }
      const replaced = this.hook ? await this.hook(rec, res) : undefined;
      return replaced ?? res;
    };
  }

  of(client: string): RecordedRequest[] {
    return this.requests.filter((r) => r.client === client);
  }

  describe(list: RecordedRequest[] = this.requests): string {
    return list.map((r) => `${r.client} ${r.method} ${r.path}${r.query.length > 80 ? r.query.slice(0, 80) + '…' : r.query} -> ${r.settled ? r.status : 'pending'}${r.errcode ? ' ' + r.errcode : ''}`).join('\n');
  }
}

/**
 * Resolves once `cond()` is true, re-checking whenever `emitter` emits one of `events` (and on a
 * short poll as a safety net). Rejects after `timeoutMs` with `what` in the message.
 */
export function until<T>(
  emitter: Pick<EventEmitter, 'on' | 'off'> | null,
  events: string[],
  cond: () => T | undefined | null | false,
  what: string,
  timeoutMs = 8000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done) return;
      let v: T | undefined | null | false;
      try {
        v = cond();
      } catch (err) {
        finish();
        reject(err);
        return;
      }
      if (v) {
        finish();
        resolve(v);
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const poll = setInterval(check, 25);
    const finish = () => {
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      if (emitter) for (const e of events) emitter.off(e, check);
    };
    if (emitter) for (const e of events) emitter.on(e, check);
    check();
  });
}

/** An in-memory `Storage` so that the SDK's MemoryStore remembers filter ids between clients. */
export class MapStorage {
  private readonly m = new Map<string, string>();
  get length(): number {
    return this.m.size;
  }
  key(i: number): string | null {
    return [...this.m.keys()][i] ?? null;
  }
  getItem(k: string): string | null {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.m.set(k, String(v));
  }
  removeItem(k: string): void {
    this.m.delete(k);
  }
  clear(): void {
    this.m.clear();
  }
}

interface TrackedTimer {
  timer: { hasRef(): boolean; unref(): unknown };
  stack: string;
}

/**
 * Records every timer created from now on with the stack that created it, so a suite can check
 * what is still keeping the event loop alive once its clients and servers are stopped.
 */
export class TimerTracker {
  private readonly live = new Map<number, TrackedTimer>();
  private readonly hook: AsyncHook;

  constructor() {
    this.hook = createHook({
      init: (id, type, _trigger, resource) => {
        if (type !== 'Timeout') return;
        this.live.set(id, { timer: resource as TrackedTimer['timer'], stack: new Error().stack ?? '' });
      },
      destroy: (id) => {
        this.live.delete(id);
      },
    });
    this.hook.enable();
  }

  /** Timers that are still pending and would keep the process alive. */
  pending(): TrackedTimer[] {
    return [...this.live.values()].filter((t) => t.timer.hasRef());
  }

  stop(): void {
    this.hook.disable();
  }
}

/** What an SDK client needs to act as a logged-in device. */
export interface Creds {
  userId: string;
  accessToken: string;
  deviceId: string;
}

/**
 * Creates (without starting) an SDK client for `creds` against `baseUrl`, whose requests `rec`
 * records under `name` and whose log lines go to `sdkLogLines`; `opts` are further createClient options.
 */
export function sdkClient(sdk: Sdk, baseUrl: string, rec: RequestRecorder, name: string, creds: Creds, opts: Record<string, unknown> = {}): MatrixClient {
  return sdk.createClient({
    baseUrl,
    accessToken: creds.accessToken,
    userId: creds.userId,
    deviceId: creds.deviceId,
    fetchFn: rec.fetchFor(name),
    logger: captureLogger(` ${name}`),
    ...opts,
  });
}

/** Resolves once a started client's sync state is PREPARED or SYNCING (`who` names it in the timeout message). */
export function untilPrepared(sdk: Sdk, c: MatrixClient, who: string): Promise<boolean> {
  return until(c as any, [sdk.ClientEvent.Sync], () => ['PREPARED', 'SYNCING'].includes(c.getSyncState() ?? ''), `${who} to reach PREPARED`);
}

/**
 * For an afterEach hook: when the test that just ran failed, prints the last `requests` recorded
 * requests and the last `logLines` SDK log lines (only those `logFilter` keeps, when given).
 */
export function printSdkTrailOnFailure(ctx: Mocha.Context, rec: RequestRecorder, requests: number, logLines: number, logFilter?: (line: string) => boolean): void {
  if (ctx.currentTest?.state === 'failed') {
    console.log('--- SDK requests ---\n' + rec.describe(rec.requests.slice(-requests)));
    console.log('--- last SDK log lines ---\n' + (logFilter ? sdkLogLines.filter(logFilter) : sdkLogLines).slice(-logLines).join('\n'));
  }
}

/** Stops every client in `running`, then closes the connections their recorded fetches opened. */
export async function stopClients(running: MatrixClient[], rec: RequestRecorder): Promise<void> {
  for (const c of running) c.stopClient();
  await rec.close();
}
