// Watching requests inside a live test server (spec/helpers/server.ts): the requests the route
// table is given, the calls a service gets, and clients that leave mid-request. Every wrapper
// comes with a restore, for the specs that share one server across tests. A client leaving is
// done with once the server has seen its connection close (the request's `closed`), never after
// a fixed sleep: on a loaded machine a sleep can end before the close is seen, and the request
// then goes on as if the client were still there.

import { assert } from './assert.js';
import { until } from './until.js';
import type { ApiRequest, HandlerTable } from '../../src/api/handlers.js';

/** Captures every request the route table is given (the real HttpRequest objects). */
export function captureRequests(table: HandlerTable): { seen: ApiRequest[]; restore: () => void } {
  const dispatch = table.dispatch.bind(table);
  const seen: ApiRequest[] = [];
  table.dispatch = (req) => {
    seen.push(req);
    return dispatch(req);
  };
  return { seen, restore: () => (table.dispatch = dispatch) };
}

/** Counts the calls to `obj[key]` (passed on unchanged); `calls` is read live. */
export function countCalls<T extends object, K extends keyof T>(obj: T, key: K): { readonly calls: number; restore: () => void } {
  const original = obj[key] as unknown as (...args: unknown[]) => unknown;
  const bound = original.bind(obj);
  const counter = {
    calls: 0,
    restore: () => {
      obj[key] = bound as T[K];
    },
  };
  obj[key] = ((...args: unknown[]) => {
    counter.calls++;
    return bound(...args);
  }) as T[K];
  return counter;
}

/** A request from a client that will leave before it is answered (see `leave`). */
export interface LeavingClient {
  /**
   * The client gives up (checked: its fetch ends in an error), then waits until the server has
   * seen the connection close on the request `find` returns (checked: there is one).
   */
  leave(find: () => ApiRequest | undefined, what?: string): Promise<ApiRequest>;
  /** The client gives up (checked), without waiting on the server. */
  abort(): Promise<void>;
}

/** Sends `method path` as `token` (a JSON body with `json`), abortable by the client. */
export function leavingClient(baseUrl: string, token: string, method: 'GET' | 'PUT', path: string, json?: unknown): LeavingClient {
  const gone = new AbortController();
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (json !== undefined) headers['content-type'] = 'application/json';
  const answer = fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: gone.signal,
  }).catch((err: Error) => err);
  const abort = async (): Promise<void> => {
    gone.abort();
    assert.ok((await answer) instanceof Error, 'the client gave up');
  };
  return {
    abort,
    async leave(find, what = 'the server to see the client leave') {
      await abort();
      const req = find();
      assert.ok(req, 'the server saw the request');
      await until(what, () => req.closed === true);
      return req;
    },
  };
}
