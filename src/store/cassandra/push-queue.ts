// The durable push-job queue on Cassandra, shared by any number of pusher workers (table
// push_jobs, see migrations/0004-users.ts). No row is ever deleted:
//
// - A job's id encodes when it was enqueued: id = ms * 1024 + n (n counts jobs of one ms on
//   this instance). It stays below 2^53 until the year 2248, grows on each instance, and is
//   unique because the insert is an LWT (INSERT IF NOT EXISTS); a collision with another
//   instance just takes the next id.
// - Jobs live in partitions of BUCKET_MS of enqueue time (bucket = id / 1024 / BUCKET_MS), and
//   expire with their partition's TTL (a week; TWCS drops whole sstables).
// - The schedule cells (not_before, attempts, claim) are written by LWT only: the enqueue,
//   claimPush (IF done = null AND not_before <= now) and reschedulePush (IF EXISTS). Of
//   several workers claiming one job exactly one is applied; the lease is a later not_before.
// - Finishing a job is a plain write of `done` (a cell no LWT writes); a claim checks it.
// - Scans (duePushes, nextPushDue) read the partitions from the low-water bucket (row 'low' of
//   push_queue_meta) to the newest one. A scan that finds the older partitions all done moves
//   the low-water mark up, but never past MARGIN_MS before now: an instance whose clock is a
//   little behind may still enqueue there.

import { randomBytes, randomInt } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import type { JsonObject } from '../../protocol/types.js';
import type { PushJob } from '../push-types.js';
import { applied, jsonParse, num, type CassandraContext, type CqlStatement } from './context.js';
import { PUSH_JOB_TTL_S } from './migrations/0004-users.js';

const PER_MS = 1024;
const BUCKET_MS = 10 * 60_000;
const MARGIN_MS = 10 * 60_000;
const JOB_COLUMNS = 'bucket, id, user_id, app_id, pushkey, notification_json, attempts, not_before, done';

export const bucketOf = (id: number): number => Math.floor(id / PER_MS / BUCKET_MS);
const bucketAt = (ms: number): number => Math.floor(ms / BUCKET_MS);

/** Whether an LWT failed without telling if it was applied (timeout or unknown result). */
function casOutcomeUnknown(err: unknown): boolean {
  const e = err as { code?: number; writeType?: string } | null;
  // 0x1100 write timeout (writeType CAS), 0x1700 CAS write unknown.
  return e !== null && typeof e === 'object' && ((e.code === 0x1100 && e.writeType === 'CAS') || e.code === 0x1700);
}

interface ScanResult {
  jobs: PushJob[];
  /** Key and pusher of every live job, for removing a pusher's jobs. */
  keys: Array<{ id: number; userId: string; appId: string; pushkey: string }>;
}

export class PushQueue {
  private lastId = 0;
  private lowEnsured = false;

  constructor(private readonly ctx: CassandraContext) {}

  async enqueue(job: Omit<PushJob, 'id' | 'attempts'>): Promise<number> {
    const notification = JSON.stringify(job.notification);
    for (let attempt = 0; attempt < 20; attempt++) {
      const id = Math.max(this.lastId + 1, Date.now() * PER_MS);
      this.lastId = id;
      await this.ensureLow(id);
      const token = randomBytes(9).toString('base64url');
      const params = [bucketOf(id), id, job.userId, job.appId, job.pushkey, notification, job.notBefore, token, ttlFor(id)];
      let ok: boolean;
      try {
        ok = applied(
          await this.ctx.execute(
            `INSERT INTO push_jobs (bucket, id, user_id, app_id, pushkey, notification_json, attempts, not_before, claim)
             VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) IF NOT EXISTS USING TTL ?`,
            params,
          ),
        );
      } catch (err) {
        if (!casOutcomeUnknown(err)) throw err;
        ok = (await this.serialClaimOf(id)) === token;
      }
      if (ok) return id;
      // Another instance took this id in the same millisecond: skip a little further.
      this.lastId += randomInt(1, 64);
    }
    throw new Error('push queue: could not find a free job id');
  }

  async due(now: number, limit: number): Promise<PushJob[]> {
    const max = Math.floor(limit);
    if (!(max > 0)) return [];
    const { jobs } = await this.scan();
    return jobs.filter((j) => j.notBefore <= now).slice(0, max);
  }

  async nextDue(): Promise<number | null> {
    const { jobs } = await this.scan();
    let min: number | null = null;
    for (const j of jobs) if (min === null || j.notBefore < min) min = j.notBefore;
    return min;
  }

  async claim(id: number, now: number, leaseUntil: number): Promise<boolean> {
    if (!Number.isSafeInteger(id) || id <= 0) return false;
    const token = randomBytes(9).toString('base64url');
    try {
      return applied(
        await this.ctx.execute(
          'UPDATE push_jobs USING TTL ? SET not_before = ?, claim = ? WHERE bucket = ? AND id = ? IF done = null AND not_before <= ?',
          [ttlFor(id), leaseUntil, token, bucketOf(id), id, now],
        ),
      );
    } catch (err) {
      if (!casOutcomeUnknown(err)) throw err;
      // Contended: whether this claim won is what the job's claim token now says.
      return (await this.serialClaimOf(id)) === token;
    }
  }

  async reschedule(id: number, attempts: number, notBefore: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id <= 0) return;
    await this.ctx.execute('UPDATE push_jobs USING TTL ? SET attempts = ?, not_before = ?, claim = ? WHERE bucket = ? AND id = ? IF EXISTS', [
      ttlFor(id),
      attempts,
      notBefore,
      '',
      bucketOf(id),
      id,
    ]);
  }

  async finish(id: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id <= 0) return;
    await this.ctx.execute('UPDATE push_jobs USING TTL ? SET done = true WHERE bucket = ? AND id = ?', [ttlFor(id), bucketOf(id), id]);
  }

  /** Marks every live job of the pusher done (its pusher was removed). */
  async finishForPusher(match: (k: { userId: string; appId: string; pushkey: string }) => boolean): Promise<void> {
    const { keys } = await this.scan();
    const stmts: CqlStatement[] = keys
      .filter(match)
      .map((k) => ({ query: 'UPDATE push_jobs USING TTL ? SET done = true WHERE bucket = ? AND id = ?', params: [ttlFor(k.id), bucketOf(k.id), k.id] }));
    // Different partitions: independent writes, a few at a time.
    for (let i = 0; i < stmts.length; i += 16) {
      await Promise.all(stmts.slice(i, i + 16).map((s) => this.ctx.execute(s.query, s.params)));
    }
  }

  /** Every job not done, oldest first, from the low-water bucket on. */
  private async scan(): Promise<ScanResult> {
    const now = Date.now();
    const floor = bucketAt(now - PUSH_JOB_TTL_S * 1000);
    const lowRow = (await this.ctx.execute(`SELECT low_bucket FROM push_queue_meta WHERE name = 'low'`)).first();
    // No mark: nothing was ever enqueued (the first enqueue sets it).
    if (!lowRow) return { jobs: [], keys: [] };
    const low = Math.max(num(lowRow['low_bucket']), floor);
    const high = Math.max(bucketAt(now + MARGIN_MS), bucketOf(this.lastId));
    const jobs: PushJob[] = [];
    const keys: ScanResult['keys'] = [];
    let lowestLive: number | null = null;
    for (let b = low; b <= high; b++) {
      const rows = await this.ctx.all(`SELECT ${JOB_COLUMNS} FROM push_jobs WHERE bucket = ?`, [b]);
      for (const r of rows) {
        const job = toJob(r);
        if (job === null) continue;
        if (lowestLive === null) lowestLive = b;
        jobs.push(job);
        keys.push({ id: job.id, userId: job.userId, appId: job.appId, pushkey: job.pushkey });
      }
    }
    const newLow = Math.min(lowestLive ?? high, bucketAt(now - MARGIN_MS));
    if (newLow > num(lowRow['low_bucket'])) {
      await this.ctx.execute(`INSERT INTO push_queue_meta (name, low_bucket) VALUES ('low', ?)`, [newLow]);
    }
    return { jobs, keys };
  }

  /** Makes sure the low-water mark exists and is at or below the bucket of `id`. */
  private async ensureLow(id: number): Promise<void> {
    if (this.lowEnsured) return;
    const row = (await this.ctx.execute(`SELECT low_bucket FROM push_queue_meta WHERE name = 'low'`)).first();
    const want = Math.min(bucketOf(id), bucketAt(Date.now() - MARGIN_MS));
    if (!row || num(row['low_bucket']) > want) {
      await this.ctx.execute(`INSERT INTO push_queue_meta (name, low_bucket) VALUES ('low', ?)`, [want]);
    }
    this.lowEnsured = true;
  }

  private async serialClaimOf(id: number): Promise<string | null> {
    const row = (
      await this.ctx.execute('SELECT claim FROM push_jobs WHERE bucket = ? AND id = ?', [bucketOf(id), id], {
        consistency: 0x0009 /* LOCAL_SERIAL */,
      })
    ).first();
    return row ? ((row['claim'] as string | null) ?? null) : null;
  }
}

/** Seconds the job's cells have left: all of a job's cells expire together with its row. */
function ttlFor(id: number): number {
  const ageS = Math.floor((Date.now() - id / PER_MS) / 1000);
  return Math.max(1, PUSH_JOB_TTL_S - Math.max(0, ageS));
}

function toJob(r: cassandra.types.Row): PushJob | null {
  // Done, or a row a late `done` write left behind for a job that had already expired.
  if (r['done'] === true || typeof r['notification_json'] !== 'string' || r['not_before'] === null) return null;
  return {
    id: num(r['id']),
    userId: r['user_id'] as string,
    appId: r['app_id'] as string,
    pushkey: r['pushkey'] as string,
    notification: jsonParse<JsonObject>(r['notification_json']),
    attempts: (r['attempts'] as number | null) ?? 0,
    notBefore: num(r['not_before']),
  };
}
