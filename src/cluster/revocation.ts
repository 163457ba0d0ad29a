// Socket revocation on logout, across processes. A device's sockets may be held by any process;
// the one that deletes the device announces it, and every process (itself included) closes the
// sockets it holds for that device. On a single node the local Broadcast delivers synchronously,
// so this is the same direct call it always was.
//
// Invariant: a socket that misses the announcement (Redis down) still ends: the socket server
// answers its next request frame with M_UNKNOWN_TOKEN and then closes (socket-server.ts).
// A socket that only listens is not re-checked: that gap remains while Redis is down.

import type { Logger } from 'pino';
import type { Broadcast } from './shared-state.js';

const CHANNEL = 'device-revoked';

export class DeviceRevocations {
  constructor(
    private readonly broadcast: Broadcast,
    private readonly logger: Logger,
  ) {}

  /** Calls `onRevoked` for every device deleted by any process, this one included. */
  async listen(onRevoked: (userId: string, deviceId: string) => void): Promise<void> {
    await this.broadcast.subscribe(CHANNEL, (message) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch (err) {
        this.logger.warn({ err }, 'device revocation: unreadable message');
        return;
      }
      if (Array.isArray(parsed) && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') onRevoked(parsed[0], parsed[1]);
      else this.logger.warn({ message }, 'device revocation: malformed message');
    });
  }

  async revoked(userId: string, deviceId: string): Promise<void> {
    try {
      await this.broadcast.publish(CHANNEL, JSON.stringify([userId, deviceId]));
    } catch (err) {
      // The device is already gone from the store; its sockets fail their next token check.
      this.logger.warn({ err, userId, deviceId }, 'device revocation: announcing failed');
    }
  }
}
