// Wraps any Store so every domain method call is timed into hearth_db_operation_duration_seconds
// (label "<domain>.<method>", e.g. "rooms.persistEvent"). Backend-agnostic: the same metric
// serves SQLite today and Cassandra later. Wrappers are built once per method, not per call.

import type { Store } from '../store/types.js';
import type { Metrics } from './metrics.js';

export function timedStore(store: Store, metrics: Metrics): Store {
  const domains = new Map<PropertyKey, object>();
  // Top-level methods (currentPosition, on every sync) are bound once, not on every access.
  const bound = new Map<PropertyKey, { fn: unknown; bound: unknown }>();
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value === 'function') {
        const b = bound.get(prop);
        if (b && b.fn === value) return b.bound;
        const fresh = (value as (...a: unknown[]) => unknown).bind(target);
        bound.set(prop, { fn: value, bound: fresh });
        return fresh;
      }
      if (value === null || typeof value !== 'object') return value;
      let wrapped = domains.get(prop);
      if (!wrapped) {
        wrapped = timedDomain(value, String(prop), metrics);
        domains.set(prop, wrapped);
      }
      return wrapped;
    },
  });
}

function timedDomain(domain: object, name: string, metrics: Metrics): object {
  // Keyed by the method too: a method replaced on the domain object (a spec injecting a
  // failure) is what a later call runs, as on the store itself.
  const cache = new Map<PropertyKey, { method: unknown; fn: unknown }>();
  return new Proxy(domain, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const cached = cache.get(prop);
      if (cached && cached.method === value) return cached.fn;
      const histogram = metrics.dbTiming.labels({ operation: `${name}.${String(prop)}` });
      const method = value as (...a: unknown[]) => unknown;
      const fn = (...args: unknown[]) => {
        const end = histogram.startTimer();
        const out = method.apply(target, args);
        if (out instanceof Promise) return out.finally(end);
        end();
        return out;
      };
      cache.set(prop, { method: value, fn });
      return fn;
    },
  });
}
