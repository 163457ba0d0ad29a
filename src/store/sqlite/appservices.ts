// Application-service delivery state and AS room directories (contract: src/store/appservice-types.ts).
// Unpositioned writes: neither is a stream a client reads.

import type { AppServiceRoomListing, AppServiceStore, AppServiceStreamState } from '../appservice-types.js';
import type { SqliteContext } from './context.js';

export class SqliteAppServiceStore implements AppServiceStore {
  constructor(private readonly ctx: SqliteContext) {}

  async getAppServiceState(appServiceId: string): Promise<AppServiceStreamState | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT position, last_txn_id FROM appservice_state WHERE appservice_id = ?').get(appServiceId) as
      | { position: number; last_txn_id: number }
      | undefined;
    return row ? { position: row.position, lastTxnId: row.last_txn_id } : null;
  }

  async setAppServiceState(appServiceId: string, state: AppServiceStreamState): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx
        .stmt(
          `INSERT INTO appservice_state (appservice_id, position, last_txn_id) VALUES (?, ?, ?)
           ON CONFLICT DO UPDATE SET position = excluded.position, last_txn_id = excluded.last_txn_id`,
        )
        .run(appServiceId, state.position, state.lastTxnId);
    });
  }

  async setAppServiceRoom(appServiceId: string, networkId: string, roomId: string, listed: boolean): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      if (listed) {
        this.ctx.stmt('INSERT OR IGNORE INTO appservice_rooms (appservice_id, network_id, room_id) VALUES (?, ?, ?)').run(appServiceId, networkId, roomId);
      } else {
        this.ctx.stmt('DELETE FROM appservice_rooms WHERE appservice_id = ? AND network_id = ? AND room_id = ?').run(appServiceId, networkId, roomId);
      }
    });
  }

  async listAppServiceRooms(appServiceId: string): Promise<AppServiceRoomListing[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT network_id, room_id FROM appservice_rooms WHERE appservice_id = ? ORDER BY network_id, room_id')
      .all(appServiceId) as Array<{ network_id: string; room_id: string }>;
    return rows.map((r) => ({ networkId: r.network_id, roomId: r.room_id }));
  }
}
