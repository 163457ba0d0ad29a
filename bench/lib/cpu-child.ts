// A Hearth server in a forked child process, so the parent can read the server's CPU alone
// (process.cpuUsage() of the child, over IPC) while the parent's clients drive it. The fixed-work
// CPU benches (sync-wake-cpu, socket-request-cpu) use it: their figures are CPU per unit of
// work, which a loaded machine stretches in wall time but not in CPU.
//
// Protocol: the child sends { type: 'ready', info } once set up; the parent sends 'cpu' (answered
// with the child's cumulative user + system µs) and 'stop' (the child stops its server and exits).
// HEARTH_BENCH_PROFILE=<dir> runs the child under --cpu-prof, writing its profile there.
// 'profile-start' / 'profile-stop' (answered with 'profiled' once written) profile a window only,
// through the inspector, so that start-up and set-up are not in the samples.

import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

type Msg<T> = { type: 'ready'; info: T } | { type: 'cpu'; micros: number; system: number } | { type: 'profiled' };

/** In the child: sets up the server, then answers the parent's 'cpu' and 'stop'. */
export async function serveCpuChild<T>(setup: () => Promise<{ info: T; stop: () => Promise<void> }>): Promise<void> {
  const { info, stop } = await setup();
  let inspector: Session | undefined;
  process.on('message', (m: { type: string; path?: string }) => {
    if (m.type === 'profile-start') {
      inspector = new Session();
      inspector.connect();
      // 100 µs, not the inspector's default 1 ms: a window of a few seconds at 1 ms holds too
      // few samples to rank functions that cost a few µs per request.
      void inspector
        .post('Profiler.enable')
        .then(() => inspector!.post('Profiler.setSamplingInterval', { interval: 100 }))
        .then(() => inspector!.post('Profiler.start'));
    } else if (m.type === 'profile-stop' && inspector) {
      const s = inspector;
      inspector = undefined;
      void s.post('Profiler.stop').then(({ profile }) => {
        writeFileSync(m.path!, JSON.stringify(profile));
        s.disconnect();
        process.send!({ type: 'profiled' } satisfies Msg<T>);
      });
    } else if (m.type === 'cpu') {
      const c = process.cpuUsage();
      process.send!({ type: 'cpu', micros: c.user + c.system, system: c.system } satisfies Msg<T>);
    } else if (m.type === 'stop') {
      void stop().then(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready', info } satisfies Msg<T>);
}

export interface CpuChild<T> {
  info: T;
  /** The child's cumulative CPU (user + system) in µs. */
  cpu(): Promise<number>;
  /** The same, with its system (kernel) part: syscalls, and on loopback the peer's wake-ups. */
  cpuSplit(): Promise<{ micros: number; system: number }>;
  /** Starts sampling the child's CPU profile (a window: see the header). */
  profileStart(): void;
  /** Stops sampling and writes the .cpuprofile to `path`. */
  profileStop(path: string): Promise<void>;
  stop(): Promise<void>;
}

/** In the parent: forks `script` with `args` (which must make it call serveCpuChild) and waits until ready. */
export async function forkCpuChild<T>(script: string, args: string[]): Promise<CpuChild<T>> {
  const prof = process.env.HEARTH_BENCH_PROFILE;
  const execArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const child = fork(script, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const ready = (await next<T>(child, 'ready')) as Extract<Msg<T>, { type: 'ready' }>;
  const cpuSplit = async (): Promise<{ micros: number; system: number }> => {
    const reply = next<T>(child, 'cpu');
    child.send({ type: 'cpu' });
    const m = (await reply) as Extract<Msg<T>, { type: 'cpu' }>;
    return { micros: m.micros, system: m.system };
  };
  return {
    info: ready.info,
    cpu: async () => (await cpuSplit()).micros,
    cpuSplit,
    profileStart: () => child.send({ type: 'profile-start' }),
    profileStop: async (path) => {
      const done = next<T>(child, 'profiled');
      child.send({ type: 'profile-stop', path });
      await done;
    },
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ type: 'stop' });
      await exited;
    },
  };
}

function next<T>(child: ChildProcess, type: Msg<T>['type']): Promise<Msg<T>> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`bench server child exited (${code}) before '${type}'`));
    const on = (m: Msg<T>) => {
      if (m.type !== type) return;
      child.off('message', on);
      child.off('exit', onExit);
      resolve(m);
    };
    child.on('message', on);
    child.once('exit', onExit);
  });
}
