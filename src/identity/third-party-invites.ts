// Third-party invites (spec C-S "Third-party invites", S-S "Third-party invites"): inviting an
// email address through an identity server, and turning the invite into an m.room.member
// invite once the address is bound to a Matrix ID.
//
// Invariants:
// - An invite to a 3PID bound to a Matrix ID is an ordinary invite of that user. Otherwise the
//   identity server stores the invite and an m.room.third_party_invite event (state key: the
//   identity server's token) records its public keys in the room; the auth rules (rule 6) decide
//   whether the sender may send it, as for any invite.
// - A third-party invite is redeemed (onbind, exchange_third_party_invite, /join with
//   third_party_signed) only by the server of the user who sent the m.room.third_party_invite
//   event: that server signs the m.room.member invite whose sender is that user. Any other
//   server passes the signed block to it (exchange_third_party_invite).
// - Before an invite is issued, the `signed` block must verify against one of the room's
//   public keys for the token AND the identity server must still vouch for that key
//   (key_validity_url answers {"valid": true}). An unreachable identity server or a revoked key
//   refuses the invite. The auth rules (4.4.1) check the signature again when the event is
//   stored, on every server.
// - onbind tries every invite it lists; if one issued here failed, it answers that failure after
//   trying the rest (as Synapse does: the identity server learns the invite was not honoured).
//   An invite whose sender is on another server is passed on (exchange_third_party_invite) in
//   the background, at most MAX_EXCHANGES_IN_FLIGHT at once: that server's answer is not
//   waited for, as a server in the room would send the invite to the others asynchronously.

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { verifyJsonSignature } from '../protocol/crypto.js';
import { isValidRoomId, isValidUserId, serverNameOf } from '../protocol/ids.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { RoomState } from '../room/room-state.js';
import type { RoomService } from '../room/room-service.js';
import type { Store } from '../store/types.js';
import { checkIdServer, identityFailure, normaliseAddress, type IdentityClient } from './client.js';

export interface ThirdPartyInviteRequest {
  id_server: string;
  id_access_token: string;
  medium: string;
  address: string;
}

/** A redeemable invite: who sent the m.room.third_party_invite, and the identity server's signed block. */
export interface SignedInvite {
  roomId: string;
  sender: string;
  mxid: string;
  signed: JsonObject;
}

export interface ThirdPartyInviteDeps {
  serverName: string;
  identity: IdentityClient;
  rooms: Pick<RoomService, 'changeMembership' | 'send'>;
  currentState: (roomId: string) => Promise<RoomState | null>;
  store: Pick<Store, 'accounts'>;
  /** PUT exchange_third_party_invite on `destination`; absent: federation is off. */
  exchangeRemote?: (destination: string, roomId: string, event: JsonObject) => Promise<void>;
  logger: Logger;
}

type Sender = { userId: string; deviceId?: string };

const MAX_INVITES_PER_BIND = 50;
const MAX_EXCHANGES_IN_FLIGHT = 20;

export class ThirdPartyInvites {
  constructor(private readonly d: ThirdPartyInviteDeps) {}

  /** POST /rooms/{roomId}/invite with id_server, id_access_token, medium, address. */
  async invite(sender: Sender, roomId: string, req: ThirdPartyInviteRequest): Promise<void> {
    const idServer = checkIdServer(req.id_server);
    if (req.medium !== 'email' && req.medium !== 'msisdn') throw new MatrixError('M_INVALID_PARAM', 'medium must be email or msisdn');
    const address = normaliseAddress(req.medium, req.address);
    const state = await this.d.currentState(roomId);
    if (!state || !state.get('m.room.create', '')) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    if (state.membership(sender.userId) !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');

    let mxid: string | null;
    try {
      mxid = await this.d.identity.lookup(idServer, req.id_access_token, req.medium, address);
    } catch (err) {
      this.d.logger.warn({ err, idServer }, '3PID lookup failed');
      throw identityFailure(err);
    }
    if (mxid !== null && isValidUserId(mxid)) {
      await this.d.rooms.changeMembership(sender, roomId, mxid, 'invite');
      return;
    }

    const profile = await this.d.store.accounts.getUser(sender.userId);
    const info: JsonObject = { medium: req.medium, address, room_id: roomId, sender: sender.userId };
    const str = (type: string, key: string) => {
      const v = state.content(type)?.[key];
      return typeof v === 'string' ? v : undefined;
    };
    const extras: Array<[string, string | undefined]> = [
      ['room_alias', str('m.room.canonical_alias', 'alias')],
      ['room_avatar_url', str('m.room.avatar', 'url')],
      ['room_join_rules', str('m.room.join_rules', 'join_rule')],
      ['room_name', str('m.room.name', 'name')],
      ['room_type', str('m.room.create', 'type')],
      ['sender_display_name', profile?.displayname ?? undefined],
      ['sender_avatar_url', profile?.avatarUrl ?? undefined],
    ];
    for (const [k, v] of extras) if (v !== undefined) info[k] = v;
    let stored;
    try {
      stored = await this.d.identity.storeInvite(idServer, req.id_access_token, info);
    } catch (err) {
      this.d.logger.warn({ err, idServer }, '3PID store-invite failed');
      throw identityFailure(err);
    }
    const [first] = stored.publicKeys;
    const content: JsonObject = {
      display_name: stored.displayName,
      key_validity_url: first.keyValidityUrl,
      public_key: first.publicKey,
      public_keys: stored.publicKeys.map((k) => ({ public_key: k.publicKey, key_validity_url: k.keyValidityUrl })),
    };
    await this.d.rooms.send(sender, roomId, { type: 'm.room.third_party_invite', stateKey: stored.token, content });
  }

  /**
   * POST/PUT /_matrix/federation/v1/3pid/onbind from an identity server: (medium, address) is now
   * bound to one of our users; each pending invite it lists is redeemed.
   */
  async onBind(body: JsonObject): Promise<void> {
    const mxid = body.mxid;
    if (typeof mxid !== 'string' || !isValidUserId(mxid)) throw new MatrixError('M_INVALID_PARAM', 'mxid must be a user ID');
    if (serverNameOf(mxid) !== this.d.serverName) throw new MatrixError('M_FORBIDDEN', 'mxid is not a user of this server');
    if (body.invites === undefined) return;
    if (!Array.isArray(body.invites)) throw new MatrixError('M_BAD_JSON', 'invites must be a list');
    let failure: unknown;
    for (const raw of body.invites.slice(0, MAX_INVITES_PER_BIND)) {
      try {
        const invite = parseSignedInvite(raw, 'invite');
        if (invite.mxid !== mxid) throw new MatrixError('M_FORBIDDEN', 'the invite names another user');
        if (serverNameOf(invite.sender) === this.d.serverName) await this.issue(invite);
        else this.exchangeInBackground(invite);
      } catch (err) {
        this.d.logger.warn({ err, mxid }, 'third-party invite from onbind not redeemed');
        failure = err;
      }
    }
    if (failure !== undefined) throw failure instanceof MatrixError ? failure : new MatrixError('M_UNKNOWN', 'A third-party invite could not be redeemed');
  }

  private exchangesInFlight = 0;

  private exchangeInBackground(invite: SignedInvite): void {
    if (this.exchangesInFlight >= MAX_EXCHANGES_IN_FLIGHT) {
      this.d.logger.warn({ roomId: invite.roomId, mxid: invite.mxid }, 'third-party invite not passed on: too many exchanges in flight');
      return;
    }
    this.exchangesInFlight++;
    this.redeem(invite)
      .catch((err: unknown) => this.d.logger.warn({ err, roomId: invite.roomId, mxid: invite.mxid }, 'third-party invite exchange failed'))
      .finally(() => this.exchangesInFlight--);
  }

  /** /join with third_party_signed: the signed block becomes an invite first. */
  async redeemForJoin(userId: string, roomId: string, thirdPartySigned: JsonValue): Promise<void> {
    const invite = parseSignedInvite({ ...(isJsonObject(thirdPartySigned) ? { ...thirdPartySigned, signed: thirdPartySigned } : {}), room_id: roomId }, 'third_party_signed');
    if (invite.mxid !== userId) throw new MatrixError('M_FORBIDDEN', 'third_party_signed names another user');
    await this.redeem(invite);
  }

  /**
   * PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}: a server that learnt of a
   * binding asks us, the third-party invite's sender's server, to issue the invite.
   */
  async exchange(origin: string, roomId: string, body: JsonValue | undefined): Promise<void> {
    if (!isJsonObject(body)) throw new MatrixError('M_BAD_JSON', 'The body must be a partial m.room.member event');
    if (body.type !== 'm.room.member') throw new MatrixError('M_INVALID_PARAM', 'type must be m.room.member');
    if (body.room_id !== roomId) throw new MatrixError('M_INVALID_PARAM', 'room_id does not match the path');
    const content = body.content;
    if (!isJsonObject(content) || content.membership !== 'invite') throw new MatrixError('M_INVALID_PARAM', 'content.membership must be invite');
    const tpi = content.third_party_invite;
    if (!isJsonObject(tpi)) throw new MatrixError('M_INVALID_PARAM', 'content.third_party_invite is required');
    const invite = parseSignedInvite({ sender: body.sender, room_id: roomId, mxid: body.state_key, signed: tpi.signed }, 'event');
    if (serverNameOf(invite.sender) !== this.d.serverName) throw new MatrixError('M_FORBIDDEN', 'The sender is not a user of this server');
    this.d.logger.debug({ origin, roomId, mxid: invite.mxid }, 'third-party invite exchange');
    await this.issue(invite);
  }

  /** Issues the invite here when its sender is ours; otherwise asks the sender's server to. */
  private async redeem(invite: SignedInvite): Promise<void> {
    const senderServer = serverNameOf(invite.sender);
    if (senderServer === this.d.serverName) return this.issue(invite);
    if (!this.d.exchangeRemote || senderServer === undefined) throw new MatrixError('M_FORBIDDEN', 'The invite was sent from another server and federation is not enabled');
    await this.d.exchangeRemote(senderServer, invite.roomId, {
      type: 'm.room.member',
      room_id: invite.roomId,
      sender: invite.sender,
      state_key: invite.mxid,
      content: { membership: 'invite', third_party_invite: { display_name: '', signed: invite.signed } },
    });
  }

  private async issue(invite: SignedInvite): Promise<void> {
    const state = await this.d.currentState(invite.roomId);
    if (!state || !state.get('m.room.create', '')) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    const token = invite.signed.token as string;
    const tpi = state.get('m.room.third_party_invite', token)?.pdu;
    if (!tpi || !isJsonObject(tpi.content) || Object.keys(tpi.content).length === 0) {
      throw new MatrixError('M_FORBIDDEN', 'No third-party invite with this token in the room');
    }
    if (tpi.sender !== invite.sender) throw new MatrixError('M_FORBIDDEN', 'The third-party invite was sent by another user');
    // Already in (or invited): nothing to issue; a /join with third_party_signed goes on as any join.
    const current = state.membership(invite.mxid);
    if (current === 'join' || current === 'invite') return;
    await this.checkSigned(tpi.content, invite.signed);
    const displayName = typeof tpi.content.display_name === 'string' ? tpi.content.display_name : '';
    await this.d.rooms.changeMembership({ userId: invite.sender }, invite.roomId, invite.mxid, 'invite', undefined, {
      third_party_invite: { display_name: displayName, signed: invite.signed },
    });
  }

  /**
   * The signed block verifies against one of the invite's keys, and the identity server still
   * vouches for that key.
   */
  private async checkSigned(content: JsonObject, signed: JsonObject): Promise<void> {
    const keys = inviteKeys(content);
    const sigs = isJsonObject(signed.signatures) ? signed.signatures : {};
    const verifying = keys.filter((k) =>
      Object.entries(sigs).some(([server, byKey]) => isJsonObject(byKey) && Object.keys(byKey).some((keyId) => verifyJsonSignature(signed, server, keyId, k.publicKey))),
    );
    if (verifying.length === 0) throw new MatrixError('M_FORBIDDEN', 'The signature does not match the third-party invite\'s keys');
    for (const k of verifying) {
      try {
        if (await this.d.identity.isKeyValid(k.keyValidityUrl, k.publicKey)) return;
      } catch (err) {
        this.d.logger.warn({ err, url: k.keyValidityUrl }, 'third-party invite key validity check failed');
      }
    }
    throw new MatrixError('M_FORBIDDEN', 'The identity server does not vouch for the key that signed the invite');
  }
}

/** The (public key, validity URL) pairs an m.room.third_party_invite offers. */
export function inviteKeys(content: JsonObject): Array<{ publicKey: string; keyValidityUrl: string }> {
  const out: Array<{ publicKey: string; keyValidityUrl: string }> = [];
  if (typeof content.public_key === 'string' && typeof content.key_validity_url === 'string') {
    out.push({ publicKey: content.public_key, keyValidityUrl: content.key_validity_url });
  }
  if (Array.isArray(content.public_keys)) {
    for (const k of content.public_keys.slice(0, 20)) {
      if (isJsonObject(k) && typeof k.public_key === 'string' && typeof k.key_validity_url === 'string') {
        out.push({ publicKey: k.public_key, keyValidityUrl: k.key_validity_url });
      }
    }
  }
  return out;
}

/** Checks the shape of {room_id, sender, mxid, signed: {mxid, token, signatures}}. */
function parseSignedInvite(raw: unknown, what: string): SignedInvite {
  if (!isJsonObject(raw)) throw new MatrixError('M_BAD_JSON', `${what} must be an object`);
  const { room_id: roomId, sender, mxid, signed } = raw;
  if (!isValidRoomId(roomId)) throw new MatrixError('M_INVALID_PARAM', `${what}: room_id must be a room ID`);
  if (!isValidUserId(sender)) throw new MatrixError('M_INVALID_PARAM', `${what}: sender must be a user ID`);
  if (!isValidUserId(mxid)) throw new MatrixError('M_INVALID_PARAM', `${what}: mxid must be a user ID`);
  if (!isJsonObject(signed)) throw new MatrixError('M_INVALID_PARAM', `${what}: signed must be an object`);
  if (signed.mxid !== mxid) throw new MatrixError('M_INVALID_PARAM', `${what}: signed.mxid does not match`);
  if (typeof signed.token !== 'string' || signed.token === '' || signed.token.length > 255) throw new MatrixError('M_INVALID_PARAM', `${what}: signed.token must be a string`);
  if (!isJsonObject(signed.signatures)) throw new MatrixError('M_INVALID_PARAM', `${what}: signed.signatures must be an object`);
  // Kept whole: the identity server's signature covers every field it put there.
  return { roomId, sender, mxid, signed };
}
