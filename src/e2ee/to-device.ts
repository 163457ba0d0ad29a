// /sendToDevice: queues messages for local devices and wakes their /sync. Retries of a request
// (same device and txnId) are answered from the idempotency record and queue nothing.

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
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

export class ToDeviceService {
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

    const queue: ToDeviceInput[] = [];
    const local: Array<[string, Record<string, unknown>]> = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isJsonObject(byDevice)) throw new MatrixError('M_BAD_JSON', `messages.${userId} must be an object`);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (!isJsonObject(content)) throw new MatrixError('M_BAD_JSON', `messages.${userId}.${deviceId} must be an object`);
        if (Buffer.byteLength(canonicalJson(content)) > MAX_TO_DEVICE_CONTENT_BYTES) {
          throw new MatrixError('M_TOO_LARGE', `The message for ${userId} ${deviceId} exceeds ${MAX_TO_DEVICE_CONTENT_BYTES} bytes`);
        }
      }
      if (serverNameOf(userId) === this.d.serverName) local.push([userId, byDevice]);
      else this.d.logger.info({ sender, userId, type }, 'dropping to-device message for a remote user (no federation)');
    }
    for (const [userId, byDevice] of local) {
      const devices = (await this.d.devices.listDevices(userId)).map((x) => x.deviceId);
      const known = new Set(devices);
      // An explicit message for a device wins over the "*" one.
      const all = byDevice['*'] as JsonObject | undefined;
      const targets = new Map<string, JsonObject>();
      if (all) for (const dev of devices) targets.set(dev, all);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (deviceId !== '*' && known.has(deviceId)) targets.set(deviceId, content as JsonObject);
      }
      for (const [deviceId, content] of targets) queue.push({ userId, deviceId, type, sender, content });
    }

    if (queue.length > 0) {
      const stream = await this.d.e2ee.queueToDevice(queue);
      this.d.notifier.publish({ stream, userIds: [...new Set(queue.map((m) => m.userId))] });
    }
    const response: JsonObject = dict();
    await this.d.userData.putTxnResponse(sender, senderDevice, scope, txnId, response);
    return response;
  }
}
