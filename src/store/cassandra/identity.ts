// 3PID bindings made at identity servers on Cassandra (contract: src/store/identity-types.ts;
// behaviour as src/store/sqlite/identity.ts). One partition per user, clustered by medium,
// address, id_server, so a user's list is one ordered partition read; plain idempotent writes.

import type { IdentityBinding, IdentityBindingStore } from '../identity-types.js';
import type { CassandraContext } from './context.js';

export class CassandraIdentityBindingStore implements IdentityBindingStore {
  constructor(private readonly ctx: CassandraContext) {}

  async addIdentityBinding(userId: string, b: IdentityBinding): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute('INSERT INTO identity_bindings (user_id, medium, address, id_server) VALUES (?, ?, ?, ?)', [userId, b.medium, b.address, b.idServer]);
  }

  async removeIdentityBinding(userId: string, b: IdentityBinding): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute('DELETE FROM identity_bindings WHERE user_id = ? AND medium = ? AND address = ? AND id_server = ?', [userId, b.medium, b.address, b.idServer]);
  }

  async listIdentityBindings(userId: string): Promise<IdentityBinding[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT medium, address, id_server FROM identity_bindings WHERE user_id = ?', [userId]);
    return rows.map((r) => ({ medium: r.get('medium') as string, address: r.get('address') as string, idServer: r.get('id_server') as string }));
  }
}
