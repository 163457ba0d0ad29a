// MSC2753 peeks on SQLite (contract: src/store/peek-types.ts). Start and end run on the single
// write queue at a stream position, so the end's "was it active" check cannot race a start.

import type { PeekRecord, PeekStore } from '../peek-types.js';
import type { SqliteContext } from './context.js';

export class SqlitePeekStore implements PeekStore {
  constructor(private readonly ctx: SqliteContext) {}

  async startPeek(userId: string, deviceId: string, roomId: string): Promise<number> {
    this.ctx.checkOpen();
    return this.ctx.queue.writeAtPosition((pos) => {
      this.ctx
        .stmt(
          `INSERT INTO peeks (user_id, device_id, room_id, stream, ended_stream) VALUES (?, ?, ?, ?, NULL)
           ON CONFLICT DO UPDATE SET stream = excluded.stream, ended_stream = NULL`,
        )
        .run(userId, deviceId, roomId, pos);
      return pos;
    }, (_r, pos) => ({ kind: 'peek', stream: pos, userId, deviceId, roomId }));
  }

  async endPeek(userId: string, deviceId: string, roomId: string): Promise<number | null> {
    this.ctx.checkOpen();
    return this.ctx.queue.writeAtPosition((pos) => {
      const changed = this.ctx
        .stmt('UPDATE peeks SET ended_stream = ? WHERE user_id = ? AND device_id = ? AND room_id = ? AND ended_stream IS NULL')
        .run(pos, userId, deviceId, roomId).changes;
      return changed > 0 ? pos : null;
    }, (r, pos) => (r === null ? null : { kind: 'peek', stream: pos, userId, deviceId, roomId }));
  }

  async getPeeks(userId: string, deviceId: string): Promise<PeekRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT room_id, stream, ended_stream FROM peeks WHERE user_id = ? AND device_id = ? ORDER BY room_id')
      .all(userId, deviceId) as Array<{ room_id: string; stream: number; ended_stream: number | null }>;
    return rows.map((r) => ({ roomId: r.room_id, stream: r.stream, endedAt: r.ended_stream }));
  }
}
