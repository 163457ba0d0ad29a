// MSC2753 peeks on Cassandra (contract: src/store/peek-types.ts; behaviour as
// src/store/sqlite/peeks.ts). A device's peeks are one partition (user, device), a row per room.
// Start and end of one (device, room) from this instance are chained, so the row written last
// is the one with the higher position and the end's read-then-write sees the latest start. Two
// instances racing on one device's peek of one room (one client, two requests at once) settle
// by last write; either outcome is a state the client asked for.
// An active peek's ended_stream is the sentinel -1 (context.ts: never bind null, which writes a
// tombstone per (re)peek); rows written with null before that read as active too.

import type { PeekRecord, PeekStore } from '../peek-types.js';
import { num, numOrNull, type CassandraContext } from './context.js';
import { KeyedChain } from '../../keyed-chain.js';

export class CassandraPeekStore implements PeekStore {
  private readonly chain = new KeyedChain();

  constructor(private readonly ctx: CassandraContext) {}

  async startPeek(userId: string, deviceId: string, roomId: string): Promise<number> {
    this.ctx.checkOpen();
    return this.chain.run(key(userId, deviceId, roomId), () =>
      this.ctx.writeAtPosition(
        async (pos) => {
          await this.ctx.execute('INSERT INTO peeks (user_id, device_id, room_id, stream, ended_stream) VALUES (?, ?, ?, ?, ?)', [userId, deviceId, roomId, pos, ACTIVE]);
          return pos;
        },
        (_r, pos) => ({ kind: 'peek', stream: pos, userId, deviceId, roomId }),
      ),
    );
  }

  async endPeek(userId: string, deviceId: string, roomId: string): Promise<number | null> {
    this.ctx.checkOpen();
    return this.chain.run(key(userId, deviceId, roomId), () =>
      this.ctx.writeAtPosition(
        async (pos) => {
          const row = (await this.ctx.execute('SELECT ended_stream FROM peeks WHERE user_id = ? AND device_id = ? AND room_id = ?', [userId, deviceId, roomId])).first();
          if (!row || endedAt(row.get('ended_stream')) !== null) return null;
          await this.ctx.execute('UPDATE peeks SET ended_stream = ? WHERE user_id = ? AND device_id = ? AND room_id = ?', [pos, userId, deviceId, roomId]);
          return pos;
        },
        (r, pos) => (r === null ? null : { kind: 'peek', stream: pos, userId, deviceId, roomId }),
      ),
    );
  }

  async getPeeks(userId: string, deviceId: string): Promise<PeekRecord[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT room_id, stream, ended_stream FROM peeks WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    return rows.map((r) => ({ roomId: r['room_id'] as string, stream: num(r['stream']), endedAt: endedAt(r['ended_stream']) }));
  }
}

const ACTIVE = -1;

function endedAt(v: unknown): number | null {
  const n = numOrNull(v);
  return n === null || n === ACTIVE ? null : n;
}

function key(userId: string, deviceId: string, roomId: string): string {
  return `${userId}\u0000${deviceId}\u0000${roomId}`;
}
