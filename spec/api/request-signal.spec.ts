// The HTTP request's abort signal (ctx.signal) follows the connection: it is already aborted when
// the client left before a handler first read it, and it aborts when a client leaves after its
// request body was read (the request stream emits 'close' at the end of the body, with the client
// still connected, so the signal cannot follow it). Over real HTTP; the request is held at the
// token check or in the handler by wrapping a service, and the test waits until the server has
// seen the connection close.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { captureRequests, leavingClient } from '../helpers/request-probes.js';
import { until } from '../helpers/until.js';

describe('HTTP request signal: follows the connection', function () {
  this.timeout(30000);
  let srv: TestServer;
  before(async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false } } });
  });
  after(async function () {
    await srv?.stop();
  });

  it('a client gone before the handler first reads the signal: GET /events?timeout=20000 gets an aborted signal and returns at once', async function () {
    const alice = await new Api(srv.url).register('alice');
    const { seen, restore } = captureRequests(srv.hearth.routes);
    const auth = srv.hearth.services.accounts;
    const authenticate = auth.authenticate.bind(auth);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = 0;
    auth.authenticate = async (...args: Parameters<typeof authenticate>) => {
      held++;
      await gate; // the token check is in progress when the client leaves
      return authenticate(...args);
    };
    const legacy = srv.hearth.services.legacy;
    const events = legacy.events.bind(legacy);
    const calls: Array<{ abortedAtCall: boolean; settled: boolean }> = [];
    legacy.events = (a, q) => {
      const call = { abortedAtCall: q.signal.aborted, settled: false };
      calls.push(call);
      return events(a, q).finally(() => (call.settled = true));
    };
    try {
      const client = leavingClient(srv.url, alice.token!, 'GET', '/_matrix/client/v3/events?timeout=20000');
      await until('the token check holds the request', () => held === 1);
      await client.leave(() => (seen.length === 1 ? seen[0] : undefined), 'the server sees the connection close');
      release();
      await until('the handler runs', () => calls.length === 1);
      assert.equal(calls[0].abortedAtCall, true, 'the signal is aborted when first read');
      await until('the long-poll returns early, not after its 20 s timeout', () => calls[0].settled, 5000);
    } finally {
      release();
      restore();
      auth.authenticate = authenticate;
      legacy.events = events;
    }
  });

  it('a client gone after its body was read: the signal of a PUT aborts; not before, while the client waits', async function () {
    const alice = await new Api(srv.url).register('bob');
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const { seen, restore } = captureRequests(srv.hearth.routes);
    const rooms = srv.hearth.services.rooms;
    const send = rooms.send.bind(rooms);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let signal: AbortSignal | undefined;
    rooms.send = async (...args: Parameters<typeof send>) => {
      // In the handler: the body has been read, so the request stream has closed already.
      signal = seen[seen.length - 1].signal;
      await gate;
      return send(...args);
    };
    try {
      const client = leavingClient(srv.url, alice.token!, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/s1`, { msgtype: 'm.text', body: 'held' });
      await until('the handler holds the send', () => signal);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(signal!.aborted, false, 'not aborted while the client is connected');
      assert.equal(seen[seen.length - 1].closed, false);
      await client.abort();
      await until('the signal aborts once the connection closes', () => signal!.aborted, 5000);
    } finally {
      release();
      restore();
      rooms.send = send;
    }
  });
});
