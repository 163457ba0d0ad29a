// Email addresses held on accounts (GET /account/3pid, /account/3pid/add, /delete, login by
// address, password reset by address, registration with an email stage).
//
// Invariants: an address is added only from a session this server validated (EmailValidation),
// belongs to one account at a time (M_THREEPID_IN_USE otherwise), and is looked up in the
// canonical form the session stored. Deactivation removes every address of the account, so it
// can be used again and no longer logs anyone in.

import { MatrixError } from '../errors.js';
import type { ThreepidStore } from '../store/threepid-types.js';
import { canonicalEmail, type EmailValidation, type ValidatedThreepid } from './validation.js';

export interface ThreepidView {
  medium: string;
  address: string;
  validated_at: number;
  added_at: number;
}

export class AccountThreepids {
  constructor(
    private readonly d: {
      store: { threepids: ThreepidStore };
      /** Null when email is off: nothing can be validated, so nothing added. */
      validation: EmailValidation | null;
      now?: () => number;
    },
  ) {}

  async list(userId: string): Promise<ThreepidView[]> {
    return (await this.d.store.threepids.listAccountThreepids(userId)).map((t) => ({ medium: t.medium, address: t.address, validated_at: t.validatedAt, added_at: t.addedAt }));
  }

  /** The validated address of a session, to add once the caller's checks pass. */
  async validatedCreds(creds: { sid?: unknown; client_secret?: unknown }): Promise<ValidatedThreepid> {
    if (!this.d.validation) throw new MatrixError('M_THREEPID_AUTH_FAILED', 'Email validation is not enabled on this server');
    return this.d.validation.validated(creds);
  }

  async addValidated(userId: string, v: ValidatedThreepid): Promise<void> {
    const now = (this.d.now ?? Date.now)();
    const result = await this.d.store.threepids.addAccountThreepid(userId, { medium: v.medium, address: v.address, validatedAt: v.validatedAt, addedAt: now });
    if (result === 'in_use') throw new MatrixError('M_THREEPID_IN_USE', 'This address is already in use by another account');
  }

  /** Removes (medium, address) from the account; whether it was there. */
  async remove(userId: string, medium: string, address: string): Promise<boolean> {
    const addr = canonicalOf(medium, address);
    if (addr === null || (await this.d.store.threepids.userForThreepid(medium, addr)) !== userId) return false;
    await this.d.store.threepids.removeAccountThreepid(userId, medium, addr);
    return true;
  }

  async removeAll(userId: string): Promise<void> {
    for (const t of await this.d.store.threepids.listAccountThreepids(userId)) await this.d.store.threepids.removeAccountThreepid(userId, t.medium, t.address);
  }

  /** The account holding the address, if any (login, password reset). */
  async userFor(medium: string, address: string): Promise<string | null> {
    const addr = canonicalOf(medium, address);
    return addr === null ? null : this.d.store.threepids.userForThreepid(medium, addr);
  }
}

/** The stored form of an address; null for one that cannot be on any account. */
function canonicalOf(medium: string, address: string): string | null {
  if (medium !== 'email') return address;
  try {
    return canonicalEmail(address);
  } catch {
    return null;
  }
}
