// Pushers and the durable push queue on Cassandra (tables: migrations/0004-users.ts; the queue
// itself is push-queue.ts).
//
// - A pusher is written to `pushers` (by user) and `pushers_by_key` (who holds an app_id +
//   pushkey, for append: false and for a gateway's rejection) in one logged batch.
// - Removing a pusher marks its queued jobs done, so nothing is sent for a pusher that is gone
//   (a job enqueued while its pusher is being removed is dropped by the worker, which looks the
//   pusher up before sending).
// - device_id and profile_tag store '' for null.

import type cassandra from 'cassandra-driver';
import type { JsonObject } from '../../protocol/types.js';
import type { PushJob, PusherRecord, PusherStore } from '../push-types.js';
import { storedText, textOrNull } from './accounts.js';
import { jsonParse, num, type CassandraContext } from './context.js';
import { PushQueue } from './push-queue.js';

const PUSHER_COLUMNS =
  'user_id, app_id, pushkey, device_id, kind, pushkey_ts, app_display_name, device_display_name, profile_tag, lang, data_json';

const toPusher = (r: cassandra.types.Row): PusherRecord => ({
  userId: r['user_id'] as string,
  deviceId: textOrNull(r['device_id']),
  kind: r['kind'] as 'http',
  appId: r['app_id'] as string,
  pushkey: r['pushkey'] as string,
  pushkeyTs: num(r['pushkey_ts']),
  appDisplayName: r['app_display_name'] as string,
  deviceDisplayName: r['device_display_name'] as string,
  profileTag: textOrNull(r['profile_tag']),
  lang: r['lang'] as string,
  data: jsonParse<JsonObject>(r['data_json'] as string),
});

export class CassandraPusherStore implements PusherStore {
  private readonly queue: PushQueue;

  constructor(private readonly ctx: CassandraContext) {
    this.queue = new PushQueue(ctx);
  }

  async setPusher(pusher: PusherRecord, append: boolean): Promise<void> {
    this.ctx.checkOpen();
    // Serialised now: the caller keeps its object, and a bad value fails here.
    const data = JSON.stringify(pusher.data);
    const p = { ...pusher };
    if (!append) {
      const holders = await this.ctx.all('SELECT user_id FROM pushers_by_key WHERE app_id = ? AND pushkey = ?', [p.appId, p.pushkey]);
      for (const h of holders) {
        const other = h['user_id'] as string;
        if (other !== p.userId) await this.removePusher(other, p.appId, p.pushkey);
      }
    }
    await this.ctx.batch([
      {
        query: `INSERT INTO pushers (${PUSHER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [
          p.userId,
          p.appId,
          p.pushkey,
          storedText(p.deviceId),
          p.kind,
          p.pushkeyTs,
          p.appDisplayName,
          p.deviceDisplayName,
          storedText(p.profileTag),
          p.lang,
          data,
        ],
      },
      { query: 'INSERT INTO pushers_by_key (app_id, pushkey, user_id) VALUES (?, ?, ?)', params: [p.appId, p.pushkey, p.userId] },
    ]);
  }

  async deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.removePusher(userId, appId, pushkey);
  }

  async deletePushersByKey(appId: string, pushkey: string): Promise<void> {
    this.ctx.checkOpen();
    const holders = await this.ctx.all('SELECT user_id FROM pushers_by_key WHERE app_id = ? AND pushkey = ?', [appId, pushkey]);
    await this.queue.finishForPusher((k) => k.appId === appId && k.pushkey === pushkey);
    const users = holders.map((h) => h['user_id'] as string);
    for (const userId of users) {
      await this.ctx.execute('DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?', [userId, appId, pushkey]);
    }
    if (users.length > 0) await this.ctx.execute('DELETE FROM pushers_by_key WHERE app_id = ? AND pushkey = ?', [appId, pushkey]);
  }

  async deletePushersForDevice(userId: string, deviceId: string): Promise<void> {
    this.ctx.checkOpen();
    for (const p of await this.getPushers(userId)) {
      if (p.deviceId === deviceId) await this.removePusher(userId, p.appId, p.pushkey);
    }
  }

  async getPushers(userId: string): Promise<PusherRecord[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all(`SELECT ${PUSHER_COLUMNS} FROM pushers WHERE user_id = ?`, [userId]);
    return rows.map(toPusher);
  }

  async enqueuePush(job: Omit<PushJob, 'id' | 'attempts'>): Promise<number> {
    this.ctx.checkOpen();
    return this.queue.enqueue(job);
  }

  async duePushes(now: number, limit: number): Promise<PushJob[]> {
    this.ctx.checkOpen();
    return this.queue.due(now, limit);
  }

  async nextPushDue(): Promise<number | null> {
    this.ctx.checkOpen();
    return this.queue.nextDue();
  }

  async claimPush(id: number, now: number, leaseUntil: number): Promise<boolean> {
    this.ctx.checkOpen();
    return this.queue.claim(id, now, leaseUntil);
  }

  async reschedulePush(id: number, attempts: number, notBefore: number): Promise<void> {
    this.ctx.checkOpen();
    await this.queue.reschedule(id, attempts, notBefore);
  }

  async deletePush(id: number): Promise<void> {
    this.ctx.checkOpen();
    await this.queue.finish(id);
  }

  private async removePusher(userId: string, appId: string, pushkey: string): Promise<boolean> {
    const existing = await this.ctx.execute('SELECT user_id FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?', [
      userId,
      appId,
      pushkey,
    ]);
    if (existing.rowLength === 0) return false;
    await this.queue.finishForPusher((k) => k.userId === userId && k.appId === appId && k.pushkey === pushkey);
    await this.ctx.batch([
      { query: 'DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?', params: [userId, appId, pushkey] },
      { query: 'DELETE FROM pushers_by_key WHERE app_id = ? AND pushkey = ? AND user_id = ?', params: [appId, pushkey, userId] },
    ]);
    return true;
  }
}
