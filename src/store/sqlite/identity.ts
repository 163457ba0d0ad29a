// 3PID bindings made at identity servers (contract: src/store/identity-types.ts). Unpositioned
// writes: no client reads them as a stream.

import type { IdentityBinding, IdentityBindingStore } from '../identity-types.js';
import type { SqliteContext } from './context.js';

export class SqliteIdentityBindingStore implements IdentityBindingStore {
  constructor(private readonly ctx: SqliteContext) {}

  async addIdentityBinding(userId: string, b: IdentityBinding): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('INSERT OR IGNORE INTO identity_bindings (user_id, medium, address, id_server) VALUES (?, ?, ?, ?)').run(userId, b.medium, b.address, b.idServer);
    });
  }

  async removeIdentityBinding(userId: string, b: IdentityBinding): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM identity_bindings WHERE user_id = ? AND medium = ? AND address = ? AND id_server = ?').run(userId, b.medium, b.address, b.idServer);
    });
  }

  async listIdentityBindings(userId: string): Promise<IdentityBinding[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT medium, address, id_server FROM identity_bindings WHERE user_id = ? ORDER BY medium, address, id_server')
      .all(userId) as Array<{ medium: string; address: string; id_server: string }>;
    return rows.map((r) => ({ medium: r.medium, address: r.address, idServer: r.id_server }));
  }
}
