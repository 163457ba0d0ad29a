// Room operations that must run where the room is written, because they hold the room's queue
// across callbacks (room upgrades, invites to other servers, admin purges: RoomInput's
// submitHolding and exclusive), yet whose inputs and answer are plain JSON. Each is defined once
// by name; a caller runs it by name. On one node, and on a cluster worker with the room_writer
// role, it runs here; on a worker without that role the cluster composition routes it, as data,
// to the room's writer (src/cluster/owned-room-input.ts), which runs the same named operation.
//
// Invariants:
// - Arguments and answers cross as JSON: an operation takes and returns only JSON values (no
//   undefined inside arrays, no functions, no class instances); errors cross as MatrixErrors.
// - A name is defined at most once per process; running an unknown name is a bug (throws).

export type WriterOperation = (roomId: string, args: unknown[]) => Promise<unknown>;

/** How a cluster reaches the room's writer; `local` runs the operation in this process. */
export type WriterRoute = (roomId: string, name: string, args: unknown[], local: () => Promise<unknown>) => Promise<unknown>;

export class WriterOperations {
  private readonly ops = new Map<string, WriterOperation>();
  private route: WriterRoute | null = null;

  define(name: string, op: WriterOperation): void {
    if (this.ops.has(name)) throw new Error(`writer operation ${name} is defined twice`);
    this.ops.set(name, op);
  }

  /** Set once by the cluster composition. */
  routeThrough(route: WriterRoute): void {
    this.route = route;
  }

  /** Runs the named operation where the room is written. */
  async run<T>(roomId: string, name: string, args: unknown[]): Promise<T> {
    const local = () => this.local(roomId, name, args);
    return (await (this.route ? this.route(roomId, name, args, local) : local())) as T;
  }

  /** Runs the named operation here (a forwarded call being served). */
  local(roomId: string, name: string, args: unknown[]): Promise<unknown> {
    const op = this.ops.get(name);
    if (!op) throw new Error(`unknown writer operation ${name}`);
    return op(roomId, args);
  }
}
