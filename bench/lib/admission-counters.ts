// The server's own admission counters (hearth_admission_*: paced, shed by kind and by reason)
// read from /metrics on the client port, so a scenario can say which rule refused what it saw.
// METRICS_CONFIG goes into the server's extraConfig (a metrics listener on an ephemeral port and
// /metrics on the client port behind a secret); a build without the counters reports none.

const METRICS_SECRET = 'bench-admission-metrics';

export const METRICS_CONFIG = { metrics: { listen: { host: '127.0.0.1', port: 0 }, client_port_secret: METRICS_SECRET } };

/** hearth_admission_* counters from the client port's /metrics (null when the build has none). */
export async function admissionCounters(url: string): Promise<Record<string, number> | null> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_SECRET}` } }).catch(() => null);
  if (!res || res.status !== 200) return null;
  const out: Record<string, number> = {};
  for (const m of (await res.text()).matchAll(/^hearth_admission_(\w+) ([\d.e+]+)$/gm)) out[m[1]] = Number(m[2]);
  return Object.keys(out).length > 0 ? out : null;
}

/** after - before per counter (null when either is missing). */
export function counterDelta(before: Record<string, number> | null, after: Record<string, number> | null): Record<string, number> | null {
  if (!before || !after) return null;
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

/** The non-zero shed-by-reason counters, e.g. "send_stale 4, catchup_queue 12" ("none" if none). */
export function fmtShedReasons(delta: Record<string, number>): string {
  const parts = Object.entries(delta)
    .filter(([k, v]) => /^shed_(send|catchup)_/.test(k) && v > 0)
    .map(([k, v]) => `${k.slice('shed_'.length)} ${v}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}
