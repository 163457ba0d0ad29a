// Storage contract for real-time delivery: "delivered" positions (sent -> delivered -> read),
// pushers, and the durable queue of pending push notifications. Same rules as
// src/store/types.ts (async, concurrent-safe, writes resolve after commit).

import type { JsonObject } from '../protocol/types.js';

export interface DeliveredRecord {
  roomId: string;
  userId: string;
  /** Latest event of the room that a device of the user has acknowledged receiving. */
  eventId: string;
  eventStream: number;
  ts: number;
  /** Stream position at which this record was written. */
  stream: number;
}

export interface DeliveryStore {
  /**
   * Moves the user's delivered marker in the room forward to the event; returns null (nothing
   * written) when the existing marker is at or past `eventStream`. One row per (room, user).
   */
  putDelivered(input: Omit<DeliveredRecord, 'stream'>): Promise<DeliveredRecord | null>;
  getRoomDelivered(roomIds: string[]): Promise<DeliveredRecord[]>;
  /** Records written in (fromExclusive, toInclusive]. */
  getDeliveredChanges(roomIds: string[], fromExclusive: number, toInclusive: number): Promise<DeliveredRecord[]>;
}

export interface PusherRecord {
  userId: string;
  /** Device whose access token created it (pushers of a deleted device are removed). */
  deviceId: string | null;
  kind: 'http';
  appId: string;
  pushkey: string;
  pushkeyTs: number;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  /** `url` (…/_matrix/push/v1/notify), optional `format` ("event_id_only"), other gateway data. */
  data: JsonObject;
}

export interface PushJob {
  id: number;
  userId: string;
  appId: string;
  pushkey: string;
  /** The `notification` object to POST, already built. */
  notification: JsonObject;
  attempts: number;
  /** Epoch ms before which it is not retried. */
  notBefore: number;
}

export interface PusherStore {
  /**
   * Creates or replaces the pusher (key: app_id + pushkey + user). Unless `append`, other users'
   * pushers with the same app_id and pushkey are removed (spec `append: false`).
   */
  setPusher(pusher: PusherRecord, append: boolean): Promise<void>;
  deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean>;
  /** Removes every pusher with this app_id and pushkey (a gateway rejected the pushkey). */
  deletePushersByKey(appId: string, pushkey: string): Promise<void>;
  deletePushersForDevice(userId: string, deviceId: string): Promise<void>;
  getPushers(userId: string): Promise<PusherRecord[]>;

  /** Durable queue: jobs survive restarts until delivered, dropped, or their pusher is gone. */
  enqueuePush(job: Omit<PushJob, 'id' | 'attempts'>): Promise<number>;
  /** Jobs with notBefore <= now, oldest first. */
  duePushes(now: number, limit: number): Promise<PushJob[]>;
  /** The earliest notBefore of any queued job, or null when the queue is empty. */
  nextPushDue(): Promise<number | null>;
  /**
   * Claims a due job for one worker: if job `id` is still queued with notBefore <= now, moves its
   * notBefore to `leaseUntil` and resolves true; otherwise (gone, or claimed by another worker)
   * false. Atomic, so of several workers claiming one job exactly one succeeds; a worker that
   * dies holding a claim leaves the job due again at leaseUntil. The holder ends the claim with
   * deletePush or reschedulePush.
   */
  claimPush(id: number, now: number, leaseUntil: number): Promise<boolean>;
  reschedulePush(id: number, attempts: number, notBefore: number): Promise<void>;
  deletePush(id: number): Promise<void>;
}
