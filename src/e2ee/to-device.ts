// /sendToDevice: queues messages for local devices and wakes their /sync; messages for users of
// other servers go to `remote` (federation: one m.direct_to_device EDU per server), or are
// dropped without it. Retries of a request (same device and txnId) are answered from the
// idempotency record and queue nothing.
//
// Invariants (durability): a request is answered 200 only once every message of it is durable:
// the remote EDUs are in the outbound queue (awaited, a failed write fails the request with 503
// and writes no idempotency record), then the local ones, then the record. A crash or failure
// in between makes the client retry; the EDU's message_id is derived from the request (sender,
// device, type, txnId, server), so a retry that queues an EDU again is dropped as a repeat by
// the receiver (which deduplicates on (origin, message_id)), and the remote part goes first so
// a retry never duplicates local messages behind a failed remote write. Messages from other servers come in
// through `deliver`, which queues them for the named local devices ("*": all of them).

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { createHash } from 'node:crypto';
import { canonicalJson, isJsonObject, dict } from '../protocol/canonical-json.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject } from '../protocol/types.js';
import type { DeviceStore, UserDataStore } from '../store/types.js';
import type { E2eeStore, ToDeviceInput } from '../store/e2ee-types.js';
import type { Notifier } from '../sync/notifier.js';

/** Per-message cap: a to-device event is delivered inside a /sync body like a PDU. */
export const MAX_TO_DEVICE_CONTENT_BYTES = 64 * 1024;
const TXN_SCOPE = 'sendToDevice';

export interface ToDeviceDeps {
  e2ee: Pick<E2eeStore, 'queueToDevice'>;
  devices: Pick<DeviceStore, 'listDevices'>;
  userData: Pick<UserDataStore, 'getTxnResponse' | 'putTxnResponse'>;
  notifier: Notifier;
  serverName: string;
  logger: Logger;
}

/** Sends to-device messages to another server (federation). */
export interface RemoteToDevice {
  /** Resolves once the EDU is durable in the outbound queue; rejects if it could not be written. */
  send(server: string, content: { sender: string; type: string; message_id: string; messages: JsonObject }): Promise<void>;
}

export class ToDeviceService {
  /** Set by the composition root when federation is on. */
  remote: RemoteToDevice | undefined;

  /** Requests in flight by idempotency key, so a concurrent retry waits instead of queueing twice. */
  private readonly inFlight = new Map<string, Promise<JsonObject>>();

  constructor(private readonly d: ToDeviceDeps) {}

  async send(sender: string, senderDevice: string, type: string, txnId: string, messages: Record<string, unknown>): Promise<JsonObject> {
    const key = `${sender}\0${senderDevice}\0${type}\0${txnId}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.sendOnce(sender, senderDevice, type, txnId, messages);
    this.inFlight.set(key, p);
    try {
      return await p;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async sendOnce(sender: string, senderDevice: string, type: string, txnId: string, messages: Record<string, unknown>): Promise<JsonObject> {
    // The scope includes the event type: the same txnId for another type is another request.
    const scope = `${TXN_SCOPE}/${type}`;
    const previous = await this.d.userData.getTxnResponse(sender, senderDevice, scope, txnId);
    if (previous) return previous;

    const local: Array<[string, JsonObject]> = [];
    const remote = new Map<string, JsonObject>();
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isJsonObject(byDevice)) throw new MatrixError('M_BAD_JSON', `messages.${userId} must be an object`);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (!isJsonObject(content)) throw new MatrixError('M_BAD_JSON', `messages.${userId}.${deviceId} must be an object`);
        if (Buffer.byteLength(canonicalJson(content)) > MAX_TO_DEVICE_CONTENT_BYTES) {
          throw new MatrixError('M_TOO_LARGE', `The message for ${userId} ${deviceId} exceeds ${MAX_TO_DEVICE_CONTENT_BYTES} bytes`);
        }
      }
      const server = serverNameOf(userId);
      if (server === this.d.serverName) local.push([userId, byDevice]);
      else if (server !== undefined && this.remote) (remote.get(server) ?? remote.set(server, dict()).get(server)!)[userId] = byDevice;
      else this.d.logger.info({ sender, userId, type }, 'dropping to-device message for a remote user (no federation)');
    }
    try {
      await Promise.all(
        [...remote].map(([server, byUser]) => this.remote!.send(server, { sender, type, message_id: messageId(sender, senderDevice, scope, txnId, server), messages: byUser })),
      );
    } catch (err) {
      this.d.logger.warn({ err, sender, type }, 'could not queue to-device messages for other servers');
      throw new MatrixError('M_UNKNOWN', 'Could not queue the messages for other servers; try again', { retry_after_ms: 1000 }, 503);
    }
    await this.queueLocal(sender, type, local);
    const response: JsonObject = dict();
    await this.d.userData.putTxnResponse(sender, senderDevice, scope, txnId, response);
    return response;
  }

  /** Messages from another server's user to local users (already checked to be well-formed). */
  async deliver(sender: string, type: string, messages: Array<[string, JsonObject]>): Promise<void> {
    await this.queueLocal(sender, type, messages.filter(([userId]) => serverNameOf(userId) === this.d.serverName));
  }

  private async queueLocal(sender: string, type: string, local: Array<[string, JsonObject]>): Promise<void> {
    const queue: ToDeviceInput[] = [];
    for (const [userId, byDevice] of local) {
      const devices = (await this.d.devices.listDevices(userId)).map((x) => x.deviceId);
      const known = new Set(devices);
      // An explicit message for a device wins over the "*" one.
      const all = isJsonObject(byDevice['*']) ? byDevice['*'] : undefined;
      const targets = new Map<string, JsonObject>();
      if (all) for (const dev of devices) targets.set(dev, all);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (deviceId !== '*' && known.has(deviceId) && isJsonObject(content)) targets.set(deviceId, content);
      }
      for (const [deviceId, content] of targets) queue.push({ userId, deviceId, type, sender, content });
    }
    if (queue.length > 0) {
      const stream = await this.d.e2ee.queueToDevice(queue);
      this.d.notifier.publish({ stream, userIds: [...new Set(queue.map((m) => m.userId))] });
    }
  }
}

/** The same for every attempt of one request, so the receiver drops a retry's copy as a repeat. */
function messageId(sender: string, device: string, scope: string, txnId: string, server: string): string {
  return createHash('sha256').update(JSON.stringify([sender, device, scope, txnId, server])).digest().subarray(0, 16).toString('base64url');
}
