// A pid file next to the SQLite database (`<db>.pid`) that a running server holds, so tools that
// write the database directly (register-user --direct) can refuse while a server is using it:
// two writers would each keep their own stream positions and caches, and the server would
// never see the other's writes. A file whose process is gone is stale and ignored; a pid reused
// by another process is possible, so the refusal message says which file to remove.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';

export function serverLockPath(dbPath: string): string {
  return `${dbPath}.pid`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of a live server holding the database, or null. */
export function runningServerPid(dbPath: string): number | null {
  if (dbPath === ':memory:') return null;
  let text: string;
  try {
    text = readFileSync(serverLockPath(dbPath), 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  return alive(pid) ? pid : null;
}

/** Records this process as the server using the database (overwrites a stale file). */
export function writeServerLock(dbPath: string, pid = process.pid): void {
  if (dbPath === ':memory:') return;
  writeFileSync(serverLockPath(dbPath), `${pid}\n`);
}

/** Removes the file if it still names this process. */
export function removeServerLock(dbPath: string, pid = process.pid): void {
  if (dbPath === ':memory:') return;
  try {
    if (Number(readFileSync(serverLockPath(dbPath), 'utf8').trim()) === pid) rmSync(serverLockPath(dbPath), { force: true });
  } catch {
    // already gone
  }
}
