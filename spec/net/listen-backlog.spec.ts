// The client listener's listen(2) backlog (listeners.client.backlog) reaches the kernel: on a
// listening TCP socket Linux reports the backlog as the Send-Q that `ss -lnt` prints (capped by
// net.core.somaxconn), so these specs read it back from a real server rather than trusting the
// argument we pass.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { assert } from '../helpers/assert.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The backlog the kernel holds for the listening socket on 127.0.0.1:port (Linux, `ss`). */
function kernelBacklog(port: number): number {
  const out = execFileSync('ss', ['-lntH', `sport = :${port}`], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.includes(`127.0.0.1:${port}`));
  assert.ok(line, `no listening socket on port ${port} in:\n${out}`);
  // State Recv-Q Send-Q Local Peer (ss prints no state column with -l on some versions: take the
  // column before the local address).
  const cols = line.trim().split(/\s+/);
  const local = cols.findIndex((c) => c.endsWith(`:${port}`));
  return Number(cols[local - 1]);
}

const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());

describe('client listener backlog', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('passes listeners.client.backlog to listen()', async () => {
    server = await startTestServer({ listeners: { client: { host: '127.0.0.1', port: 0, backlog: 37 } } });
    assert.equal(kernelBacklog(Number(new URL(server.url).port)), 37);
    const res = await fetch(`${server.url}/_matrix/client/versions`);
    assert.equal(res.status, 200);
  });

  it('defaults to 4096 (the kernel caps it at somaxconn), not Node\'s 511', async () => {
    server = await startTestServer();
    assert.equal(kernelBacklog(Number(new URL(server.url).port)), Math.min(4096, somaxconn));
  });
});
