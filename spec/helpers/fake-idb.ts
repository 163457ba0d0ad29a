// IndexedDB for Node, scoped to one suite: installs fake-indexeddb's classes on globalThis (where
// matrix-sdk-crypto-wasm looks them up at call time: `indexedDB`, `IDBKeyRange`, `instanceof
// IDBRequest`, …) with a factory of its own, so no database outlives the suite, and puts back
// whatever was there before on uninstall. Other spec files in the same mocha process keep seeing
// no IndexedDB.

import * as fake from 'fake-indexeddb';

const NAMES = [
  'IDBCursor',
  'IDBCursorWithValue',
  'IDBDatabase',
  'IDBFactory',
  'IDBIndex',
  'IDBKeyRange',
  'IDBObjectStore',
  'IDBOpenDBRequest',
  'IDBRecord',
  'IDBRequest',
  'IDBTransaction',
  'IDBVersionChangeEvent',
] as const;

export interface FakeIndexedDB {
  /** The factory installed as `globalThis.indexedDB` (fresh: it holds only this suite's databases). */
  indexedDB: IDBFactory;
  /** Restores the previous globals (normally: none). */
  uninstall(): void;
}

export function installFakeIndexedDB(): FakeIndexedDB {
  const g = globalThis as Record<string, unknown>;
  const saved = new Map<string, PropertyDescriptor | undefined>();
  const factory = new fake.IDBFactory();
  const values: Record<string, unknown> = { indexedDB: factory };
  for (const n of NAMES) values[n] = (fake as Record<string, unknown>)[n];
  for (const [name, value] of Object.entries(values)) {
    saved.set(name, Object.getOwnPropertyDescriptor(g, name));
    Object.defineProperty(g, name, { value, enumerable: false, configurable: true, writable: true });
  }
  return {
    indexedDB: factory,
    uninstall() {
      for (const [name, desc] of saved) {
        if (desc) Object.defineProperty(g, name, desc);
        else delete g[name];
      }
      saved.clear();
    },
  };
}
