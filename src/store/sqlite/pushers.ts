// Pushers and the durable push queue. Queued jobs hang off their pusher: removing a pusher
// removes its pending jobs in the same write, so nothing is ever sent for a pusher that is gone.

import type { JsonObject } from '../../protocol/types.js';
import type { PushJob, PusherRecord, PusherStore } from '../push-types.js';
import { jsonParse, type SqliteContext } from './context.js';

interface PusherRow {
  user_id: string;
  app_id: string;
  pushkey: string;
  device_id: string | null;
  kind: 'http';
  pushkey_ts: number;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data_json: string;
}

interface JobRow {
  id: number;
  user_id: string;
  app_id: string;
  pushkey: string;
  notification_json: string;
  attempts: number;
  not_before: number;
}

const PUSHER_COLUMNS =
  'user_id, app_id, pushkey, device_id, kind, pushkey_ts, app_display_name, device_display_name, profile_tag, lang, data_json';
const JOB_COLUMNS = 'id, user_id, app_id, pushkey, notification_json, attempts, not_before';

const toPusher = (r: PusherRow): PusherRecord => ({
  userId: r.user_id,
  deviceId: r.device_id,
  kind: r.kind,
  appId: r.app_id,
  pushkey: r.pushkey,
  pushkeyTs: r.pushkey_ts,
  appDisplayName: r.app_display_name,
  deviceDisplayName: r.device_display_name,
  profileTag: r.profile_tag,
  lang: r.lang,
  data: jsonParse<JsonObject>(r.data_json),
});

const toJob = (r: JobRow): PushJob => ({
  id: r.id,
  userId: r.user_id,
  appId: r.app_id,
  pushkey: r.pushkey,
  notification: jsonParse<JsonObject>(r.notification_json),
  attempts: r.attempts,
  notBefore: r.not_before,
});

export class SqlitePusherStore implements PusherStore {
  constructor(private readonly ctx: SqliteContext) {}

  async setPusher(pusher: PusherRecord, append: boolean): Promise<void> {
    this.ctx.checkOpen();
    // Serialised now: the caller keeps its object, and a bad value fails here, not in the batch.
    const data = JSON.stringify(pusher.data);
    const p = { ...pusher };
    await this.ctx.queue.write(() => {
      if (!append) {
        const others = this.ctx
          .stmt('SELECT user_id FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?')
          .all(p.appId, p.pushkey, p.userId) as { user_id: string }[];
        for (const o of others) this.removePusher(o.user_id, p.appId, p.pushkey);
      }
      this.ctx
        .stmt(
          `INSERT INTO pushers (${PUSHER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET device_id = excluded.device_id, kind = excluded.kind,
             pushkey_ts = excluded.pushkey_ts, app_display_name = excluded.app_display_name,
             device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag,
             lang = excluded.lang, data_json = excluded.data_json`,
        )
        .run(p.userId, p.appId, p.pushkey, p.deviceId, p.kind, p.pushkeyTs, p.appDisplayName, p.deviceDisplayName, p.profileTag, p.lang, data);
    });
  }

  async deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => this.removePusher(userId, appId, pushkey));
  }

  async deletePushersByKey(appId: string, pushkey: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM push_queue WHERE app_id = ? AND pushkey = ?').run(appId, pushkey);
      this.ctx.stmt('DELETE FROM pushers WHERE app_id = ? AND pushkey = ?').run(appId, pushkey);
    });
  }

  async deletePushersForDevice(userId: string, deviceId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      const keys = this.ctx
        .stmt('SELECT app_id, pushkey FROM pushers WHERE user_id = ? AND device_id = ?')
        .all(userId, deviceId) as { app_id: string; pushkey: string }[];
      for (const k of keys) this.removePusher(userId, k.app_id, k.pushkey);
    });
  }

  async getPushers(userId: string): Promise<PusherRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt(`SELECT ${PUSHER_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey`).all(userId) as PusherRow[];
    return rows.map(toPusher);
  }

  async enqueuePush(job: Omit<PushJob, 'id' | 'attempts'>): Promise<number> {
    this.ctx.checkOpen();
    const notification = JSON.stringify(job.notification);
    const { userId, appId, pushkey, notBefore } = job;
    return this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('INSERT INTO push_queue (user_id, app_id, pushkey, notification_json, attempts, not_before) VALUES (?, ?, ?, ?, 0, ?)')
        .run(userId, appId, pushkey, notification, notBefore);
      return Number(res.lastInsertRowid);
    });
  }

  async duePushes(now: number, limit: number): Promise<PushJob[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt(`SELECT ${JOB_COLUMNS} FROM push_queue WHERE not_before <= ? ORDER BY id LIMIT ?`).all(now, limit) as JobRow[];
    return rows.map(toJob);
  }

  async nextPushDue(): Promise<number | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT MIN(not_before) AS t FROM push_queue').get() as { t: number | null };
    return row.t;
  }

  async claimPush(id: number, now: number, leaseUntil: number): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(
      () => this.ctx.stmt('UPDATE push_queue SET not_before = ? WHERE id = ? AND not_before <= ?').run(leaseUntil, id, now).changes === 1,
    );
  }

  async reschedulePush(id: number, attempts: number, notBefore: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE push_queue SET attempts = ?, not_before = ? WHERE id = ?').run(attempts, notBefore, id);
    });
  }

  async deletePush(id: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM push_queue WHERE id = ?').run(id);
    });
  }

  /** Runs inside a queued write. */
  private removePusher(userId: string, appId: string, pushkey: string): boolean {
    this.ctx.stmt('DELETE FROM push_queue WHERE app_id = ? AND pushkey = ? AND user_id = ?').run(appId, pushkey, userId);
    return this.ctx.stmt('DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?').run(userId, appId, pushkey).changes > 0;
  }
}
