// Builds the end-to-end encryption services from the store; the composition root calls this once.

import type { Logger } from 'pino';
import type { Store } from '../store/types.js';
import type { E2eeStore } from '../store/e2ee-types.js';
import type { Notifier } from '../sync/notifier.js';
import { CrossSigningService } from './cross-signing.js';
import { DeviceListTracker } from './device-lists.js';
import { KeyBackupService } from './key-backup.js';
import { KeyService } from './key-service.js';
import { ToDeviceService } from './to-device.js';

export interface E2eeServices {
  keys: KeyService;
  crossSigning: CrossSigningService;
  /** Also the source of /sync `device_lists`. */
  deviceLists: DeviceListTracker;
  toDevice: ToDeviceService;
  keyBackup: KeyBackupService;
}

export interface E2eeDeps {
  store: Pick<Store, 'devices' | 'rooms' | 'userData' | 'currentPosition'>;
  e2ee: E2eeStore;
  notifier: Notifier;
  serverName: string;
  logger: Logger;
}

export function createE2eeServices({ store, e2ee, notifier, serverName, logger }: E2eeDeps): E2eeServices {
  const deviceLists = new DeviceListTracker(store.rooms, e2ee);
  const keys = new KeyService({
    devices: store.devices,
    e2ee,
    deviceLists,
    notifier,
    serverName,
    currentPosition: () => store.currentPosition(),
    logger,
  });
  return {
    keys,
    crossSigning: new CrossSigningService(e2ee, store.devices, keys),
    deviceLists,
    toDevice: new ToDeviceService({ e2ee, devices: store.devices, userData: store.userData, notifier, serverName, logger }),
    keyBackup: new KeyBackupService(e2ee),
  };
}
