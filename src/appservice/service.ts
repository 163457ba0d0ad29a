// Application services (Application Service API; Client-Server API "Application Services"): the
// registrations loaded at start-up, as_token identification and user masquerading, exclusive
// namespaces, registration of namespace users, user and alias queries to the AS, third-party
// lookups proxied to the ASes that provide a protocol, AS room directories, and one delivery
// sender per AS (sender.ts).
//
// Invariants:
// - An as_token identifies exactly one AS (registration.ts refuses duplicates); tokens are
//   compared through a hash map of their SHA-256, never a user-token lookup, so an AS token is
//   never mistaken for a device's.
// - An AS may act only as its sender user or a user in its user namespaces, and only as a user
//   that exists (registered through m.login.application_service, or otherwise): anything else is
//   M_FORBIDDEN, as the spec asks.
// - A user ID or alias in some AS's exclusive namespace can be claimed only by that AS.
// - Queries to an AS never fail the client's request: an AS that errs or is down counts as
//   "does not know it".
// - Delivery: with no gate (one node) a sender per AS runs for the process's life; with a gate (a
//   cluster, gate.ts) a sender runs only while this worker holds the AS's lease: the others try to
//   take it every gate.retryMs, and a sender whose lease is lost stops and is started afresh
//   (from the stored position) if the lease comes back.

import { hashAccessToken } from '../users/credentials.js';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { parseUserId } from '../protocol/ids.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { ChangeRecord } from '../store/change-types.js';
import type { Store } from '../store/types.js';
import type { AppServiceClient } from './client.js';
import { AppServiceInterest } from './interest.js';
import { isAppServiceUser, matchesAny, matchesExclusive, type AppServiceRegistration } from './registration.js';
import type { DeliveryGate } from './gate.js';
import { AppServiceSender, type SenderOptions } from './sender.js';

export interface AppServiceIdentity {
  appServiceId: string;
  userId: string;
  /** The device named by ?device_id= when it exists for the user; otherwise one per AS. */
  deviceId: string;
  tokenHash: string;
  /** False for the AS's own user and for ASes registered with rate_limited: false. */
  rateLimited: boolean;
}

export interface AppServicesDeps {
  registrations: AppServiceRegistration[];
  store: Store;
  client: AppServiceClient;
  serverName: string;
  logger: Logger;
  delivery: SenderOptions;
  /** Push transactions from this process (app_service_delivery.enabled; in a cluster, while holding the AS's lease). */
  deliver: boolean;
  /** A cluster's per-AS lease: one worker delivers to each AS at a time. */
  gate?: DeliveryGate;
  now: () => number;
}

type Subscribe = (listener: (changes: ChangeRecord[], current: number) => void) => (() => void) | void;

const PROTOCOL_CACHE_MS = 5 * 60_000;

/** The device an AS's masqueraded requests use when it names none (one per AS, never a real device). */
export function appServiceDeviceId(appServiceId: string): string {
  return `AS_${appServiceId}`;
}

export class AppServices {
  readonly registrations: readonly AppServiceRegistration[];
  private readonly byTokenHash = new Map<string, AppServiceRegistration>();
  private readonly senders = new Map<string, AppServiceSender>();
  private contendTimer: NodeJS.Timeout | null = null;
  private contending: Promise<void> | null = null;
  private stopping = false;
  private readonly protocolCache = new Map<string, { value: JsonObject; expires: number }>();

  constructor(private readonly deps: AppServicesDeps) {
    this.registrations = deps.registrations;
    for (const r of deps.registrations) this.byTokenHash.set(hashAccessToken(r.asToken), r);
  }

  get enabled(): boolean {
    return this.registrations.length > 0;
  }

  byId(id: string): AppServiceRegistration | undefined {
    return this.registrations.find((r) => r.id === id);
  }

  /**
   * The identity behind an as_token, or null when the token is not an AS's. `userId` and
   * `deviceId` are the ?user_id= and ?device_id= query parameters.
   */
  async identify(token: string, userId: string | undefined, deviceId: string | undefined): Promise<AppServiceIdentity | null> {
    if (!this.enabled) return null;
    const tokenHash = hashAccessToken(token);
    const reg = this.byTokenHash.get(tokenHash);
    if (!reg) return null;
    const target = userId === undefined || userId === '' ? reg.senderUserId : userId;
    if (target !== reg.senderUserId) {
      let local = false;
      try {
        local = parseUserId(target).serverName === this.deps.serverName;
      } catch {
        throw new MatrixError('M_INVALID_PARAM', 'user_id is not a valid user ID', {}, 400);
      }
      if (!local || !matchesAny(reg.users, target)) {
        throw new MatrixError('M_FORBIDDEN', 'Application service cannot masquerade as this user (not in its namespaces)', {}, 403);
      }
      const user = await this.deps.store.accounts.getUser(target);
      if (!user) throw new MatrixError('M_FORBIDDEN', 'Application service has not registered this user', {}, 403);
      if (user.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated', {}, 403);
    }
    let device = appServiceDeviceId(reg.id);
    if (deviceId !== undefined && deviceId !== '') {
      if (!(await this.deps.store.devices.getDevice(target, deviceId))) {
        throw new MatrixError('M_FORBIDDEN', 'No such device for this user', {}, 403);
      }
      device = deviceId;
    }
    return { appServiceId: reg.id, userId: target, deviceId: device, tokenHash, rateLimited: reg.rateLimited && target !== reg.senderUserId };
  }

  /**
   * m.login.application_service: the user the AS behind `token` names (a localpart or a full
   * ID), which must be in its namespaces and registered.
   */
  async loginUser(token: string, user: string): Promise<string> {
    const { userId } = await this.registrant(token, user);
    if (!(await this.deps.store.accounts.getUser(userId))) throw new MatrixError('M_FORBIDDEN', 'The application service has not registered this user', {}, 403);
    return userId;
  }

  /**
   * m.login.application_service registration: the AS behind `token` and the user it names (a
   * localpart or a full ID of this server), checked against the namespaces.
   */
  async registrant(token: string, user: string): Promise<{ appServiceId: string; userId: string; localpart: string }> {
    const as = await this.identify(token, undefined, undefined);
    if (!as) throw new MatrixError('M_UNKNOWN_TOKEN', 'Unknown application service token', { soft_logout: false }, 401);
    const userId = user.startsWith('@') ? user : `@${user}:${this.deps.serverName}`;
    if (!this.isLocal(userId)) throw new MatrixError('M_INVALID_USERNAME', 'User ID is not on this server', {}, 400);
    this.checkRegistration(as.appServiceId, userId);
    return { appServiceId: as.appServiceId, userId, localpart: userId.slice(1, userId.length - this.deps.serverName.length - 1) };
  }

  /** The AS whose exclusive user namespace holds userId, or null. */
  exclusiveUserOwner(userId: string): string | null {
    return this.registrations.find((r) => matchesExclusive(r.users, userId))?.id ?? null;
  }

  /** The AS whose exclusive alias namespace holds alias, or null. */
  exclusiveAliasOwner(alias: string): string | null {
    return this.registrations.find((r) => matchesExclusive(r.aliases, alias))?.id ?? null;
  }

  /**
   * Checks that the AS may register this user ID (m.login.application_service): it must be in
   * its user namespaces (or be its sender user) and in no other AS's exclusive namespace.
   */
  checkRegistration(appServiceId: string, userId: string): void {
    const reg = this.byId(appServiceId);
    if (!reg || !isAppServiceUser(reg, userId)) throw new MatrixError('M_EXCLUSIVE', 'User ID is not in the application service\'s namespaces', {}, 400);
    const owner = this.exclusiveUserOwner(userId);
    if (owner !== null && owner !== appServiceId) throw new MatrixError('M_EXCLUSIVE', 'User ID is in another application service\'s exclusive namespace', {}, 400);
  }

  /**
   * For an unknown local user: asks the ASes whose user namespaces hold it (GET /users/{userId});
   * true when one says it exists and the user now exists here (the AS registers it before
   * answering).
   */
  async queryUser(userId: string): Promise<boolean> {
    for (const reg of this.registrations) {
      if (!matchesAny(reg.users, userId)) continue;
      if ((await this.deps.client.queryUser(reg, userId)) && (await this.deps.store.accounts.getUser(userId))) return true;
    }
    return false;
  }

  /**
   * For an unknown alias: asks the ASes whose alias namespaces hold it (GET /rooms/{alias}); the
   * room ID when one of them created it.
   */
  async queryAlias(alias: string): Promise<string | null> {
    for (const reg of this.registrations) {
      if (!matchesAny(reg.aliases, alias)) continue;
      if (!(await this.deps.client.queryAlias(reg, alias))) continue;
      const found = await this.deps.store.rooms.getAlias(alias);
      if (found) return found.roomId;
    }
    return null;
  }

  /**
   * Before a local user is used (invited): when unknown here and in some AS's user namespace,
   * gives that AS the chance to create it. Never throws; the caller goes on either way.
   */
  async ensureUser(userId: string): Promise<void> {
    if (!this.enabled || !this.isLocal(userId) || !this.registrations.some((r) => matchesAny(r.users, userId))) return;
    if (await this.deps.store.accounts.getUser(userId)) return;
    await this.queryUser(userId);
  }

  /** As ensureUser, for a local alias about to be resolved. */
  async ensureAlias(alias: string): Promise<void> {
    if (!this.enabled || !alias.endsWith(`:${this.deps.serverName}`) || !this.registrations.some((r) => matchesAny(r.aliases, alias))) return;
    if (await this.deps.store.rooms.getAlias(alias)) return;
    await this.queryAlias(alias);
  }

  /** M_EXCLUSIVE when the alias is in an exclusive namespace of an AS other than `appServiceId`. */
  checkAliasClaim(alias: string, appServiceId: string | undefined): void {
    const owner = this.exclusiveAliasOwner(alias);
    if (owner !== null && owner !== appServiceId) throw new MatrixError('M_EXCLUSIVE', 'Room alias is reserved by an application service', {}, 400);
  }

  /** Whether the alias is in the AS's alias namespaces (it may then map it without being in the room). */
  aliasInNamespace(appServiceId: string, alias: string): boolean {
    const reg = this.byId(appServiceId);
    return reg !== undefined && matchesAny(reg.aliases, alias);
  }

  private isLocal(userId: string): boolean {
    try {
      return parseUserId(userId).serverName === this.deps.serverName;
    } catch {
      return false;
    }
  }

  // --- Third-party lookups (Client-Server API "Third-party Networks") -----------------------

  /** Every protocol some AS provides, with its metadata merged across ASes. */
  async protocols(): Promise<JsonObject> {
    const names = [...new Set(this.registrations.flatMap((r) => r.protocols))];
    const out: JsonObject = Object.create(null) as JsonObject;
    await Promise.all(
      names.map(async (n) => {
        const p = await this.protocol(n);
        if (p) out[n] = p;
      }),
    );
    return out;
  }

  /**
   * One protocol's metadata: the first AS's answer with every AS's instances appended. An
   * instance with a network_id gets instance_id "<appservice id>|<network id>", the
   * third_party_instance_id that lists that AS's room directory for the network. Cached for a
   * few minutes (clients ask often; bridges answer slowly).
   */
  async protocol(name: string): Promise<JsonObject | null> {
    const cached = this.protocolCache.get(name);
    if (cached && cached.expires > this.deps.now()) return cached.value;
    let merged: JsonObject | null = null;
    const instances: JsonValue[] = [];
    for (const reg of this.registrations) {
      if (!reg.protocols.includes(name)) continue;
      const answer = await this.deps.client.thirdParty(reg, `protocol/${encodeURIComponent(name)}`, {});
      if (!isObject(answer)) continue;
      merged ??= { ...answer };
      if (Array.isArray(answer.instances)) {
        for (const inst of answer.instances) {
          if (!isObject(inst)) continue;
          const copy: JsonObject = { ...inst };
          if (typeof copy.network_id === 'string') copy.instance_id = `${reg.id}|${copy.network_id}`;
          instances.push(copy);
        }
      }
    }
    if (merged === null) return null;
    merged.instances = instances;
    this.protocolCache.set(name, { value: merged, expires: this.deps.now() + PROTOCOL_CACHE_MS });
    return merged;
  }

  /** GET /thirdparty/{kind}/{protocol}: the concatenated answers of the ASes providing it. */
  async lookup(kind: 'user' | 'location', protocol: string, fields: Record<string, string>): Promise<JsonValue[]> {
    const regs = this.registrations.filter((r) => r.protocols.includes(protocol));
    if (regs.length === 0) throw new MatrixError('M_NOT_FOUND', 'No application service provides this protocol', {}, 404);
    return this.collect(regs, `${kind}/${encodeURIComponent(protocol)}`, fields);
  }

  /** GET /thirdparty/location?alias= and /thirdparty/user?userid=: asked of every AS. */
  async reverseLookup(kind: 'user' | 'location', query: Record<string, string>): Promise<JsonValue[]> {
    return this.collect(this.registrations, kind, query);
  }

  private async collect(regs: readonly AppServiceRegistration[], path: string, query: Record<string, string>): Promise<JsonValue[]> {
    const answers = await Promise.all(regs.map((r) => this.deps.client.thirdParty(r, path, query)));
    return answers.flatMap((a) => (Array.isArray(a) ? a.filter(isObject) : []));
  }

  /**
   * POST /appservice/{appserviceId}/ping: the AS asks the server to reach it. Answers the round
   * trip in ms, or the spec's error for a missing URL, a non-2xx answer, a failure or a timeout.
   */
  async ping(callerAppServiceId: string | undefined, appServiceId: string, transactionId: string | undefined): Promise<{ duration_ms: number }> {
    const reg = this.byId(appServiceId);
    if (!reg || callerAppServiceId !== appServiceId) throw new MatrixError('M_FORBIDDEN', 'Only the application service itself may ping it', {}, 403);
    if (reg.url === null) throw new MatrixError('M_URL_NOT_SET', 'The application service has no URL', {}, 400);
    const started = this.deps.now();
    const r = await this.deps.client.ping(reg, transactionId);
    if ('error' in r) {
      if (r.error === 'timeout') throw new MatrixError('M_CONNECTION_TIMEOUT', 'The application service did not answer in time', {}, 504);
      throw new MatrixError('M_CONNECTION_FAILED', 'Could not connect to the application service', {}, 502);
    }
    if (r.status < 200 || r.status >= 300) {
      throw new MatrixError('M_BAD_STATUS', 'The application service answered with an error', { status: r.status, body: JSON.stringify(r.body ?? null) }, 502);
    }
    return { duration_ms: this.deps.now() - started };
  }

  // --- AS room directories ------------------------------------------------------------------

  async setRoomListed(appServiceId: string, networkId: string, roomId: string, listed: boolean): Promise<void> {
    if (!(await this.deps.store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Unknown room', {}, 404);
    await this.deps.store.appServices.setAppServiceRoom(appServiceId, networkId, roomId, listed);
  }

  /** Rooms listed under a third_party_instance_id ("<appservice id>|<network id>"). */
  async listedRooms(instanceId: string): Promise<string[]> {
    const bar = instanceId.indexOf('|');
    if (bar < 0) return [];
    const reg = this.byId(instanceId.slice(0, bar));
    if (!reg) return [];
    const network = instanceId.slice(bar + 1);
    return (await this.deps.store.appServices.listAppServiceRooms(reg.id)).filter((l) => l.networkId === network).map((l) => l.roomId);
  }

  /** The main directory's rooms and every room any AS lists, for include_all_networks. */
  async allNetworksRooms(): Promise<string[]> {
    const lists = await Promise.all(this.registrations.map((r) => this.deps.store.appServices.listAppServiceRooms(r.id)));
    return [...new Set([...(await this.deps.store.rooms.listPublicRooms()), ...lists.flat().map((l) => l.roomId)])];
  }

  // --- Lifecycle -------------------------------------------------------------------------------

  /**
   * Creates each AS's sender user if missing, then starts delivery. `subscribe` registers a
   * listener on the change feed (the store's completion hook).
   */
  async start(subscribe: Subscribe): Promise<void> {
    for (const reg of this.registrations) {
      if (!(await this.deps.store.accounts.getUser(reg.senderUserId))) {
        try {
          await this.deps.store.accounts.createUser({ userId: reg.senderUserId, passwordHash: null, admin: false, createdTs: this.deps.now(), displayname: reg.senderLocalpart });
        } catch (err) {
          // Another worker created it first.
          if (!(await this.deps.store.accounts.getUser(reg.senderUserId))) throw err;
        }
      }
    }
    if (!this.deps.deliver) return;
    const gate = this.deps.gate;
    if (!gate) {
      for (const reg of this.registrations) await this.startSender(reg, subscribe);
      return;
    }
    gate.onLost((id) => {
      const s = this.senders.get(id);
      if (!s) return;
      this.deps.logger.info({ appservice: id }, 'app service: delivery lease lost; stopping this worker\'s sender');
      this.senders.delete(id);
      void s.stop();
    });
    const contend = async (): Promise<void> => {
      for (const reg of this.registrations) {
        if (this.stopping) return;
        const running = this.senders.get(reg.id);
        if (running?.active) continue;
        if (running) this.senders.delete(reg.id);
        if (!(await gate.acquire(reg.id)) || this.stopping) continue;
        try {
          await this.startSender(reg, subscribe, gate);
        } catch (err) {
          this.deps.logger.warn({ err, appservice: reg.id }, 'app service: could not start delivery; leaving it to another worker');
          await gate.release(reg.id);
        }
      }
    };
    const tick = (): void => {
      if (this.contending || this.stopping) return;
      this.contending = contend().finally(() => (this.contending = null));
    };
    tick();
    await this.contending;
    this.contendTimer = setInterval(tick, gate.retryMs);
    this.contendTimer.unref();
  }

  /** The AS IDs this process is delivering to now. */
  delivering(): string[] {
    return [...this.senders.entries()].filter(([, s]) => s.active).map(([id]) => id);
  }

  private async startSender(reg: AppServiceRegistration, subscribe: Subscribe, gate?: DeliveryGate): Promise<void> {
    const sender = new AppServiceSender(
      reg,
      this.deps.store,
      this.deps.client,
      new AppServiceInterest(reg, this.deps.store.rooms),
      this.deps.delivery,
      this.deps.logger.child({ appservice: reg.id }),
      this.deps.now,
      gate && {
        held: () => gate.acquire(reg.id),
        validMs: () => gate.validMs(reg.id),
        saveInFlight: (txn) => gate.saveInFlight(reg.id, txn),
        loadInFlight: () => gate.loadInFlight(reg.id),
      },
    );
    this.senders.set(reg.id, sender);
    try {
      await sender.start(subscribe);
    } catch (err) {
      this.senders.delete(reg.id);
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.contendTimer) clearInterval(this.contendTimer);
    await this.contending;
    await Promise.all([...this.senders.values()].map((s) => s.stop()));
    this.senders.clear();
    // Released only once the senders are stopped, so the next deliverer starts from what they stored.
    await this.deps.gate?.close();
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
