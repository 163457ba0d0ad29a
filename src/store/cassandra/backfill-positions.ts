// Backfill positions for Cassandra's persistEvent (events.ts): negative, below every other
// position, from a counter of their own. Invariants: positions are taken one at a time in call
// order, each at most once across processes: a process reserves a block of them with an LWT on
// backfill_seq and hands them out from memory; a block is never reused (a crash skips its rest).

import { applied, num, type CassandraContext } from './context.js';

/** Backfill positions: negative, below every other, from a counter of their own (LWT blocks). */
export class BackfillPositions {
  private next = 0;
  private last = -1;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: CassandraContext,
    private readonly blockSize = 100,
  ) {}

  take(): Promise<number> {
    const p = this.chain.then(async () => {
      if (this.next > this.last) await this.reserve();
      return -this.next++;
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async reserve(): Promise<void> {
    await this.ctx.execute(`INSERT INTO backfill_seq (name, high) VALUES ('backfill', 0) IF NOT EXISTS`);
    let expected = num((await this.ctx.execute(`SELECT high FROM backfill_seq WHERE name = 'backfill'`, [], { consistency: 0x0009 })).first()?.['high']);
    for (let attempt = 0; attempt < 50; attempt++) {
      const rs = await this.ctx.execute(`UPDATE backfill_seq SET high = ? WHERE name = 'backfill' IF high = ?`, [expected + this.blockSize, expected]);
      if (applied(rs)) {
        this.next = expected + 1;
        this.last = expected + this.blockSize;
        return;
      }
      expected = num(rs.first()?.['high']);
    }
    throw new Error('could not reserve backfill positions: too much contention');
  }
}

