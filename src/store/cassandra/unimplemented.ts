// Placeholder for a domain module of the Cassandra backend that is not written yet: every
// method rejects, naming the module, so a half-built backend fails loudly instead of quietly.
// Removed once every module exists (the contract suite runs all of them).

export function unimplemented<T extends object>(module: string): T {
  return new Proxy({} as T, {
    get(_t, prop) {
      if (prop === 'then') return undefined;
      return () => Promise.reject(new Error(`cassandra store: ${module}.${String(prop)} is not implemented yet`));
    },
  });
}
