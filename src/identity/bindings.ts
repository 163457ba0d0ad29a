// 3PID bindings at identity servers made through this homeserver (POST /account/3pid/bind),
// and their removal (/account/3pid/unbind, /account/3pid/delete, deactivation).
//
// Invariants:
// - A binding the identity server confirmed is recorded (user, medium, address, id_server), so
//   that an unbind without id_server, and deactivation, reach every identity server it was made
//   at. A record is dropped once its unbind was attempted, whatever the identity server said
//   (as Synapse: a server that does not know the binding, or cannot unbind, will not later).
// - An unbind naming id_server goes there even without a record (a binding made out of band).
// - The result is 'success' when every identity server tried confirmed the unbind, otherwise
//   'no-support' (none to try, or one answered 400/404/501); a server that cannot be reached
//   or fails otherwise is an error for the client, and its record is kept for a later retry.

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import type { IdentityBinding, IdentityBindingStore } from '../store/identity-types.js';
import { checkIdServer, identityFailure, IdentityServerError, normaliseAddress, type IdentityClient } from './client.js';

export type UnbindResult = 'success' | 'no-support';

export interface BindRequest {
  id_server: string;
  id_access_token: string;
  sid: string;
  client_secret: string;
}

export class ThreepidBindings {
  constructor(
    private readonly d: {
      identity: IdentityClient;
      store: { identityBindings: IdentityBindingStore };
      logger: Logger;
    },
  ) {}

  /** Binds the 3PID the identity server validated in session `sid` to `userId`. */
  async bind(userId: string, req: BindRequest): Promise<void> {
    const idServer = checkIdServer(req.id_server);
    let bound: { medium: string; address: string };
    try {
      bound = await this.d.identity.bind(idServer, req.id_access_token, req.sid, req.client_secret, userId);
    } catch (err) {
      this.d.logger.warn({ err, idServer }, '3PID bind failed');
      throw identityFailure(err);
    }
    await this.d.store.identityBindings.addIdentityBinding(userId, { medium: bound.medium, address: normaliseAddress(bound.medium, bound.address), idServer });
  }

  /** Unbinds (medium, address) at `idServer`, or at every identity server it was bound at through us. */
  async unbind(userId: string, medium: string, address: string, idServer?: string): Promise<UnbindResult> {
    const addr = normaliseAddress(medium, address);
    const servers =
      idServer !== undefined
        ? [checkIdServer(idServer)]
        : (await this.d.store.identityBindings.listIdentityBindings(userId)).filter((b) => b.medium === medium && b.address === addr).map((b) => b.idServer);
    if (servers.length === 0) return 'no-support';
    let result: UnbindResult = 'success';
    for (const server of servers) {
      if ((await this.unbindAt(userId, { medium, address: addr, idServer: server })) === 'no-support') result = 'no-support';
    }
    return result;
  }

  /** Deactivation: every binding made through us is undone (at `idServer` too, when given). */
  async unbindAll(userId: string, idServer?: string): Promise<UnbindResult> {
    const bindings = await this.d.store.identityBindings.listIdentityBindings(userId);
    let result: UnbindResult = 'success';
    const done = new Set<string>();
    for (const b of bindings) {
      const targets = idServer !== undefined && idServer !== b.idServer ? [b, { ...b, idServer: checkIdServer(idServer) }] : [b];
      for (const t of targets) {
        const key = `${t.medium}\u0000${t.address}\u0000${t.idServer}`;
        if (done.has(key)) continue;
        done.add(key);
        try {
          if ((await this.unbindAt(userId, t)) === 'no-support') result = 'no-support';
        } catch (err) {
          // Deactivation goes on: the account is closed whatever an identity server says.
          this.d.logger.warn({ err, userId, idServer: t.idServer }, 'could not unbind a 3PID on deactivation');
          result = 'no-support';
        }
      }
    }
    return result;
  }

  private async unbindAt(userId: string, b: IdentityBinding): Promise<UnbindResult> {
    let confirmed: boolean;
    try {
      confirmed = await this.d.identity.unbind(b.idServer, userId, b.medium, b.address);
    } catch (err) {
      if (err instanceof IdentityServerError && err.status === 400) {
        confirmed = false;
      } else {
        this.d.logger.warn({ err, idServer: b.idServer }, '3PID unbind failed');
        throw err instanceof MatrixError ? err : identityFailure(err);
      }
    }
    await this.d.store.identityBindings.removeIdentityBinding(userId, b);
    return confirmed ? 'success' : 'no-support';
  }
}
