// One-time upgrade of the per-process outbound queue directory (`federation-queue/` beside the
// SQLite database, one JSON file per destination, written by versions before the store-backed
// queue) into the store's queue, so PDUs and durable EDUs waiting at the upgrade are not lost.
//
// Invariants: runs once per directory (renamed to `federation-queue.imported` when done, so a
// restart does not queue the same items twice); items keep their file order (the transaction in
// flight first, then the waiting ones); an unreadable file is logged and left in the renamed
// directory. The old transaction ID is not kept: its PDUs go out again in a new transaction
// (receivers drop events they already have by ID).

import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Pdu } from '../protocol/types.js';
import type { Edu, FederationSender } from './sender.js';

interface LegacyFile {
  name: string;
  pending?: Pdu[];
  edus?: Edu[];
  inflight?: { pdus?: Pdu[]; edus?: Edu[] };
}

/** Queues what `dir` held; returns how many items. */
export async function importLegacyQueue(dir: string, sender: Pick<FederationSender, 'sendPdu' | 'sendEdu'>, logger: Logger): Promise<number> {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    try {
      const saved = JSON.parse(readFileSync(join(dir, file), 'utf8')) as LegacyFile;
      if (typeof saved.name !== 'string') continue;
      for (const pdu of [...(saved.inflight?.pdus ?? []), ...(saved.pending ?? [])]) {
        await sender.sendPdu([saved.name], pdu);
        n++;
      }
      for (const edu of [...(saved.inflight?.edus ?? []), ...(saved.edus ?? [])]) {
        await sender.sendEdu([saved.name], { edu_type: edu.edu_type, content: edu.content });
        n++;
      }
    } catch (err) {
      logger.warn({ err, file }, 'federation: unreadable legacy queue file skipped');
    }
  }
  renameSync(dir, `${dir}.imported`);
  logger.info({ items: n }, 'federation: the legacy queue directory was moved into the store');
  return n;
}
