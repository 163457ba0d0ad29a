// Part of the composition root (src/app.ts): load shedding from limits.admission, and its counters
// on /metrics. Invariants: one Admission per process, shared by the HTTP routes, the socket server
// and the room service; the counters are read from it at scrape time (nothing counted twice).

import { Admission, SHED_REASONS } from '../admission/admission.js';
import type { HearthConfig } from '../config/load.js';
import type { Metrics } from '../observability/metrics.js';

export function createAdmission(config: HearthConfig, metrics: Metrics | undefined): Admission {
  const adm = config.limits.admission;
  const admission = new Admission({
    maxCatchups: adm.max_catchups,
    maxInflightSends: adm.max_inflight_sends,
    maxSendDelayMs: adm.max_send_delay_ms,
    sendTargetMs: adm.send_target_delay_ms,
    sendIntervalMs: adm.send_interval_ms,
    maxLagMs: adm.max_event_loop_lag_ms,
    paceTurnMs: adm.pacing_turn_ms,
    sendRetryMs: adm.send_retry_after_ms,
    catchupRetryMs: adm.catchup_retry_after_ms,
  });
  metrics?.registerCount('hearth_admission_shed_sends', 'Sends refused by load shedding (monotonic).', () => admission.stats().shedSends);
  metrics?.registerCount('hearth_admission_shed_catchups', 'Catch-ups refused by load shedding (monotonic).', () => admission.stats().shedCatchups);
  for (const kind of ['send', 'catchup'] as const) {
    for (const why of SHED_REASONS) metrics?.registerCount(`hearth_admission_shed_${kind}_${why}`, `${kind === 'send' ? 'Sends' : 'Catch-ups'} refused by load shedding for reason ${why} (monotonic).`, () => admission.shedCount(kind, why));
  }
  metrics?.registerCount('hearth_admission_paced', 'Sends and catch-ups deferred to a later loop turn (monotonic).', () => admission.stats().paced);
  metrics?.registerCount('hearth_admission_paced_gone', 'Deferred sends and catch-ups skipped because their client had gone when their turn came (monotonic).', () => admission.stats().pacedGone);
  return admission;
}
