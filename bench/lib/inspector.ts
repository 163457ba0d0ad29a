// A minimal Chrome DevTools Protocol client for a server started with --inspect: forces a full
// garbage collection and reads process.memoryUsage(), so memory figures are live objects rather
// than whatever garbage the last collection left (idle-cost), writes heap snapshots for finding
// out what a connection holds (bench/heap-diff.ts reads them), and evaluates expressions in the
// server (overload reads its event-loop delay that way).
// The bench's own server only, on loopback; never attached to anything it did not start.

import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private chunkSink: ((chunk: string) => void) | null = null;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${msg.error.message} (${msg.error.code})`));
        else p?.resolve(msg.result);
      } else if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') this.chunkSink?.(msg.params.chunk);
    });
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector closed'));
      this.pending.clear();
    });
  }

  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  private call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Two full collections (the second catches what finalizers of the first released). */
  async gc(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
  }

  async memory(): Promise<MemoryUsage> {
    return JSON.parse(String(await this.evaluate('JSON.stringify(process.memoryUsage())'))) as MemoryUsage;
  }

  /** Evaluates an expression in the server's global scope (modules through process.getBuiltinModule). */
  async evaluate(expression: string): Promise<unknown> {
    const r = await this.call('Runtime.evaluate', { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`inspector evaluate: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** Writes a .heapsnapshot (after a collection, as the profiler always does). */
  async snapshot(path: string): Promise<void> {
    const out = createWriteStream(path);
    this.chunkSink = (c) => out.write(c);
    try {
      await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      this.chunkSink = null;
      await new Promise<void>((r) => out.end(r));
    }
  }

  /** Starts the CPU profiler (sampling every `intervalUs`), for a profile of one window. */
  async profileStart(intervalUs = 100): Promise<void> {
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: intervalUs });
    await this.call('Profiler.start');
  }

  /** Stops the profiler and writes the window's .cpuprofile (bench/lib/profile-summary.ts reads it). */
  async profileStop(path: string): Promise<void> {
    const r = await this.call('Profiler.stop');
    await this.call('Profiler.disable');
    const out = createWriteStream(path);
    await new Promise<void>((resolve, reject) => {
      out.on('error', reject);
      out.end(JSON.stringify(r.profile), resolve);
    });
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * The measured window of a scenario under the profiler, when HEARTH_BENCH_WINDOW_PROFILE names a
 * directory (a Hearth child started with `inspect`): `start` at the window's start, `stop` writes
 * <dir>/<name>.cpuprofile. Without the variable (or the inspector) both do nothing.
 */
export async function windowProfiler(url: string | undefined, name: string): Promise<{ start(): Promise<void>; stop(): Promise<void> }> {
  const dir = process.env.HEARTH_BENCH_WINDOW_PROFILE;
  if (!dir || !url) return { start: async () => undefined, stop: async () => undefined };
  mkdirSync(dir, { recursive: true });
  const insp = await Inspector.connect(url);
  return {
    start: () => insp.profileStart(),
    stop: async () => {
      try {
        await insp.profileStop(join(dir, `${name}.cpuprofile`));
      } finally {
        insp.close();
      }
    },
  };
}

/** The ws:// URL a `node --inspect=127.0.0.1:0` child prints on stderr, once it has. */
export function inspectorUrl(output: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
}
