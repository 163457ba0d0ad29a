// Ports for servers a spec starts on fixed numbers (federation listeners named after their port,
// child processes, peers). They come from 21000-31999, below the kernel's ephemeral range
// (32768-60999 here): a port picked by binding port 0 is an ephemeral one, and an outbound
// connection of any test could take it between the probe and the server's own listen
// (EADDRINUSE in a CI rehearsal). Each process walks the range from its own offset, and every
// candidate is probed with a listen first.

import { createServer } from 'node:net';

const FIRST = 21_000;
const SPAN = 11_000;
let next = (process.pid * 97) % SPAN;

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port that was free a moment ago and that nothing hands out on its own. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < SPAN; i++) {
    const port = FIRST + next;
    next = (next + 1) % SPAN;
    if (await probe(port)) return port;
  }
  throw new Error(`no free port in ${FIRST}-${FIRST + SPAN - 1}`);
}
