// What the fixed-work wake benches (sync-wake-cpu, socket-wake-cpu) share: a server child with N
// logged-in accounts (the server build chosen by HEARTH_BENCH_SERVER_ROOT, as every CPU bench),
// and the store calls per delivery read from the server's /metrics counters.
//
// Invariant: the child runs the other build's own spec helpers, so an A/B compares servers only.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveCpuChild } from './cpu-child.js';

export type AccountsReady = { url: string; tokens: string[]; metricsUrl?: string };

/** Serves a test server with `members` accounts named `<prefix><i>`, each logged in once; `config` overrides the test server's. */
export async function serveAccounts(members: number, prefix: string, config: Record<string, unknown> = {}): Promise<void> {
  const root = process.env.HEARTH_BENCH_SERVER_ROOT;
  const helpers = root ? pathToFileURL(join(root, 'dist/spec/helpers/server.js')).href : '../../spec/helpers/server.js';
  const { startTestServer } = (await import(helpers)) as typeof import('../../spec/helpers/server.js');
  await serveCpuChild<AccountsReady>(async () => {
    const srv = await startTestServer({ log: { level: 'error' }, ...config });
    const { accounts } = srv.hearth.services;
    const tokens: string[] = [];
    for (let i = 0; i < members; i++) {
      const userId = await accounts.createAccount(`${prefix}${i}`, null);
      tokens.push((await accounts.login(userId, undefined, null, null)).access_token);
    }
    return { info: { url: srv.url, tokens, metricsUrl: srv.metricsUrl }, stop: () => srv.stop() };
  });
}

/** The server's store operation counts (empty without a metrics listener). */
export async function storeCalls(metricsUrl: string | undefined): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!metricsUrl) return out;
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  for (const m of text.matchAll(/^hearth_db_operation_duration_seconds_count\{operation="([^"]+)"\} (\d+)/gm)) out.set(m[1], Number(m[2]));
  return out;
}

/** "op n, ..." per delivery between two storeCalls readings, largest first. */
export function storeCallsPerDelivery(before: Map<string, number>, after: Map<string, number>, deliveries: number): string {
  const calls = [...after]
    .flatMap(([op, n]) => (n > (before.get(op) ?? 0) ? [[op, n - (before.get(op) ?? 0)] as const] : []))
    .sort((a, b) => b[1] - a[1]);
  return calls.length ? calls.map(([op, n]) => `${op} ${(n / deliveries).toFixed(2)}`).join(', ') : 'none';
}
