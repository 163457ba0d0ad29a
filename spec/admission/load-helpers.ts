// Helpers for the admission specs that offer an open-loop load over HTTP against a store whose
// commits are slowed or stalled by a wrapper (overload.spec.ts, normal-load.spec.ts): the server
// with the admission config under test, alice and her room, the time each send spends in the
// server, and the timeline counted once the load is over.
// The server runs without metrics: with them the store is wrapped in timing proxies, which keep
// the methods they saw first, and the slowed persistEvent would not be the one room input calls.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import type { PersistEventInput, PersistEventResult } from '../../src/store/types.js';

type AdmissionConfigInput = NonNullable<NonNullable<HearthConfigInput['limits']>['admission']>;

export interface LoadServer {
  srv: TestServer;
  alice: Api;
  roomId: string;
  /** Time in the server of each send that got through (RoomService.send, which holds the admission slot), in ms. */
  inServer: number[];
}

/**
 * Starts a server with `admission` (rate limits off), registers alice and creates her room, then
 * routes every store.rooms.persistEvent through `slow`: it is given the write, already queued (positions
 * and order as usual), and answers when the write is to count as durable.
 */
export async function startLoadServer(
  admission: AdmissionConfigInput,
  slow: (written: Promise<PersistEventResult>, input: PersistEventInput) => Promise<PersistEventResult>,
): Promise<LoadServer> {
  const srv = await startTestServer({ metrics: { enabled: false }, limits: { rate_limits: { enabled: false }, admission } });
  try {
    const alice = await new Api(srv.url).register('alice');
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const rooms = srv.hearth.store.rooms;
    const persist = rooms.persistEvent.bind(rooms);
    rooms.persistEvent = (input: PersistEventInput): Promise<PersistEventResult> => slow(persist(input), input);
    // The client's own times would also hold its queueing in this process, which shares the event loop.
    const inServer: number[] = [];
    const service = srv.hearth.services.rooms;
    const send = service.send.bind(service);
    service.send = async (...args: Parameters<typeof send>) => {
      const t0 = performance.now();
      const r = await send(...args);
      inServer.push(performance.now() - t0);
      return r;
    };
    return { srv, alice, roomId, inServer };
  } catch (err) {
    await srv.stop();
    throw err;
  }
}

/** How many times each m.room.message event is in the room's timeline, read back page by page. */
export async function countTimelineMessages(user: Api, roomId: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  let from: string | undefined;
  for (let page = 0; page < 20; page++) {
    const r = await user.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1000${from ? `&from=${enc(from)}` : ''}`);
    assert.equal(r.status, 200);
    for (const e of r.body.chunk as Array<{ event_id: string; type: string }>) {
      if (e.type === 'm.room.message') seen.set(e.event_id, (seen.get(e.event_id) ?? 0) + 1);
    }
    if (!r.body.end || r.body.chunk.length === 0) break;
    from = r.body.end;
  }
  return seen;
}
