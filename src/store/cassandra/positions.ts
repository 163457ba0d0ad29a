// Global stream positions for the Cassandra backend.
//
// One row (stream_seq 'global') holds the highest position any instance may have handed out.
// An instance reserves a block of positions with one LWT on that row and hands them out from
// memory through a StreamIdGenerator, which keeps the watermark rule of ../stream-id.ts: a
// position completes only when its write is acknowledged, and readers never pass the lowest
// unfinished one.
//
// On open the instance starts above the stored high, so positions abandoned by an earlier run
// (reserved but never written) are skipped, never reused.
//
// Several instances on one keyspace get disjoint blocks. Positions in another instance's block
// are treated here as finished (abandoned) when this instance jumps over them: that keeps
// positions unique, but a reader on this instance does not wait for another instance's
// in-flight writes. The cross-instance watermark belongs to the cluster layer (src/cluster).

import type cassandra from 'cassandra-driver';
import { StreamIdGenerator } from '../stream-id.js';
import { applied, num } from './context.js';

const ROW = 'global';

export class PositionAllocator {
  /** Highest position of the block this instance holds. */
  private blockHigh: number;
  /** Serialises reservations so positions are handed out in call order. */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly client: cassandra.Client,
    readonly gen: StreamIdGenerator,
    private readonly blockSize: number,
  ) {
    this.blockHigh = gen.maxReserved();
  }

  static async open(
    client: cassandra.Client,
    opts: { blockSize?: number; onListenerError?: (err: unknown) => void } = {},
  ): Promise<PositionAllocator> {
    await client.execute(`INSERT INTO stream_seq (name, high) VALUES (?, ?) IF NOT EXISTS`, [ROW, 0], {
      prepare: true,
      serialConsistency: 0x0009 /* LOCAL_SERIAL */,
    });
    const high = await readHigh(client);
    const gen = new StreamIdGenerator(high, { onListenerError: opts.onListenerError });
    return new PositionAllocator(client, gen, opts.blockSize ?? 1000);
  }

  /** The next position, reserving a new block first when this one is used up. */
  reserve(): Promise<number> {
    const next = this.chain.then(async () => {
      if (this.gen.maxReserved() >= this.blockHigh) await this.extend();
      return this.gen.reserve();
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async extend(): Promise<void> {
    let expected = this.blockHigh;
    for (let attempt = 0; attempt < 50; attempt++) {
      const target = expected + this.blockSize;
      const rs = await this.client.execute(`UPDATE stream_seq SET high = ? WHERE name = ? IF high = ?`, [target, ROW, expected], {
        prepare: true,
        serialConsistency: 0x0009,
      });
      if (applied(rs)) {
        // Positions between our last one and the block start went to other instances.
        for (let p = this.gen.maxReserved() + 1; p <= expected; p++) this.gen.abandon(this.gen.reserve());
        this.blockHigh = target;
        return;
      }
      const row = rs.first();
      expected = row && row['high'] !== null && row['high'] !== undefined ? num(row['high']) : await readHigh(this.client);
    }
    throw new Error('could not reserve stream positions: too much contention on stream_seq');
  }
}

async function readHigh(client: cassandra.Client): Promise<number> {
  const rs = await client.execute(`SELECT high FROM stream_seq WHERE name = ?`, [ROW], { prepare: true, consistency: 0x0009 });
  const row = rs.first();
  if (!row) throw new Error('stream_seq row missing');
  return num(row['high']);
}
