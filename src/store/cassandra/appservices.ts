// Application-service delivery state and AS room directories on Cassandra (contract:
// src/store/appservice-types.ts; behaviour as src/store/sqlite/appservices.ts).
// - appservice_state: one row per AS, plain writes (one delivering process per AS writes it).
// - appservice_rooms: one partition per AS (bounded by what that AS publishes), clustered by
//   network then room, so the listing is one ordered partition read.

import type { AppServiceRoomListing, AppServiceStore, AppServiceStreamState } from '../appservice-types.js';
import { num, type CassandraContext } from './context.js';

export class CassandraAppServiceStore implements AppServiceStore {
  constructor(private readonly ctx: CassandraContext) {}

  async getAppServiceState(appServiceId: string): Promise<AppServiceStreamState | null> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('SELECT position, last_txn_id FROM appservice_state WHERE appservice_id = ?', [appServiceId]);
    const row = rs.first();
    return row ? { position: num(row.get('position')), lastTxnId: num(row.get('last_txn_id')) } : null;
  }

  async setAppServiceState(appServiceId: string, state: AppServiceStreamState): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute('INSERT INTO appservice_state (appservice_id, position, last_txn_id) VALUES (?, ?, ?)', [
      appServiceId,
      state.position,
      state.lastTxnId,
    ]);
  }

  async setAppServiceRoom(appServiceId: string, networkId: string, roomId: string, listed: boolean): Promise<void> {
    this.ctx.checkOpen();
    if (listed) {
      await this.ctx.execute('INSERT INTO appservice_rooms (appservice_id, network_id, room_id) VALUES (?, ?, ?)', [appServiceId, networkId, roomId]);
    } else {
      await this.ctx.execute('DELETE FROM appservice_rooms WHERE appservice_id = ? AND network_id = ? AND room_id = ?', [appServiceId, networkId, roomId]);
    }
  }

  async listAppServiceRooms(appServiceId: string): Promise<AppServiceRoomListing[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT network_id, room_id FROM appservice_rooms WHERE appservice_id = ?', [appServiceId]);
    return rows.map((r) => ({ networkId: r.get('network_id') as string, roomId: r.get('room_id') as string }));
  }
}
