// Third-party identifiers (email addresses) held on accounts, and the validation sessions that
// prove a user controls one (src/threepid). Both are unpositioned: no client reads them as a
// stream, and every worker of a cluster reads and writes them through the store, so a session
// begun on one worker is completed (link clicked, address added) on any other.
//
// Invariants every backend keeps:
// - An address (medium, address) belongs to at most one account. addAccountThreepid answers
//   'in_use' when another account holds it and changes nothing; adding it again to its owner is
//   a no-op answered 'added'. Addresses are stored as given: callers canonicalise them.
// - listAccountThreepids is ordered by medium, then address; removing an absent one is a no-op.
// - A validation session is found by its sid, and while unvalidated and unexpired by
//   (medium, client_secret, address): openValidationSession returns that session when there is
//   one, otherwise stores the one given. Expired sessions are never returned by either lookup.

export interface AccountThreepid {
  medium: string;
  address: string;
  validatedAt: number;
  addedAt: number;
}

export interface ValidationSession {
  sid: string;
  medium: string;
  address: string;
  clientSecret: string;
  /** The highest send_attempt that sent a message; a repeat of it (or lower) sends nothing. */
  lastSendAttempt: number;
  /** The secret the message carried; replaced by each send. */
  token: string;
  nextLink: string | null;
  validatedAt: number | null;
  createdAt: number;
  /** After this the session is gone (an unvalidated token with it). */
  expiresAt: number;
}

export interface ThreepidStore {
  addAccountThreepid(userId: string, threepid: AccountThreepid): Promise<'added' | 'in_use'>;
  removeAccountThreepid(userId: string, medium: string, address: string): Promise<void>;
  listAccountThreepids(userId: string): Promise<AccountThreepid[]>;
  /** The account holding (medium, address), if any. */
  userForThreepid(medium: string, address: string): Promise<string | null>;

  /** The live unvalidated session for (medium, clientSecret, address), or `fresh` once stored. */
  openValidationSession(fresh: ValidationSession, now: number): Promise<ValidationSession>;
  getValidationSession(sid: string, now: number): Promise<ValidationSession | null>;
  /** A new message was sent for the session: its attempt, token and next_link. */
  recordValidationSend(sid: string, send: { lastSendAttempt: number; token: string; nextLink: string | null }): Promise<void>;
  /** Marks the session validated at `at` (the first time only). */
  markValidated(sid: string, at: number): Promise<void>;
}
