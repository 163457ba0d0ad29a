// First-run behaviour (issue 15): start-up flags, log format by terminal, one log line per
// request, `npm start` stopping with its server when killed, and register-user --direct refusing
// while a server is running. These run the real binary as child processes.

import { assert } from '../helpers/assert.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { flagOverrides } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { runningServerPid } from '../../src/store/sqlite/server-lock.js';
import { freePort, REPO_ROOT } from '../helpers/child-server.js';

interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (text += `[stderr] ${c.toString('utf8')}`));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })));
  return { child, out: () => text, exited };
}

async function until(what: string, check: () => boolean | Promise<boolean>, r: Running, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${r.out()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

function silentIo(): CliIo & { out: string[] } {
  const out: string[] = [];
  return { out, stdout: (t) => void out.push(t), stderr: () => undefined, env: {}, fetch, readStdin: async () => '' };
}

describe('first run', function () {
  this.timeout(60000);
  let dir: string;
  let configPath: string;
  let dbPath: string;
  const children: Running[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-first-run-'));
    configPath = join(dir, 'hearth.yaml');
    dbPath = join(dir, 'data', 'hearth.sqlite');
    // No listener settings here: the flags give them. JSON is valid YAML.
    writeFileSync(
      configPath,
      JSON.stringify({
        storage: { sqlite: { path: dbPath } },
        signing_key_path: join(dir, 'data', 'signing.key'),
        metrics: { enabled: false },
        log: { level: 'info' },
      }),
    );
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.child.exitCode === null && c.child.signalCode === null) {
        c.child.kill('SIGKILL');
        await c.exited;
      }
    }
    // A server orphaned by a failing npm test would keep its port: stop it through its pid file.
    const orphan = runningServerPid(dbPath);
    if (orphan !== null && orphan !== process.pid) process.kill(orphan, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs pretty lines at a terminal and JSON otherwise', async () => {
    const capture = () => {
      const lines: string[] = [];
      const destination = new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) });
      return { lines, destination: destination as unknown as { write(s: string): void } };
    };
    const tty = capture();
    createLogger({ log: { level: 'info', format: 'auto' } }, { destination: tty.destination, isTTY: true }).info({ a: 1 }, 'hello');
    const pipe = capture();
    createLogger({ log: { level: 'info', format: 'auto' } }, { destination: pipe.destination, isTTY: false }).info({ a: 1 }, 'hello');
    await new Promise((r) => setImmediate(r));
    assert.match(tty.lines[0], /^\d\d:\d\d:\d\d\.\d{3} INFO  hello a=1\n$/);
    assert.equal(JSON.parse(pipe.lines[0]).msg, 'hello');
  });

  it('validates --port', () => {
    assert.throws(() => flagOverrides({ port: 'eighty' }), /--port must be a number/);
    assert.deepEqual(flagOverrides({ port: '8448', host: '::1', 'server-name': 'example.org' }), {
      listeners: { client: { host: '::1', port: 8448 } },
      server_name: 'example.org',
    });
  });

  it('npm start -- --port/--host/--server-name: logs each request as one JSON line; killing npm frees the port', async () => {
    const port = await freePort();
    const r = run('npm', ['start', '--silent', '--', '--config', configPath, '--port', String(port), '--host', '127.0.0.1', '--server-name', 'flags.example']);
    children.push(r);
    await until('the server to listen', () => r.out().includes('Hearth is listening'), r);
    const listening = r.out().split('\n').find((l) => l.includes('Hearth is listening'))!;
    const entry = JSON.parse(listening) as { server_name: string; url: string };
    assert.equal(entry.server_name, 'flags.example', 'stdout is a pipe: JSON lines');
    assert.equal(entry.url, `http://127.0.0.1:${port}`);

    const res = await fetch(`http://127.0.0.1:${port}/_matrix/client/v3/account/whoami?access_token=SECRET_TOKEN_123`);
    assert.equal(res.status, 401);
    await until('the request line', () => r.out().includes('whoami'), r);
    const line = r.out().split('\n').find((l) => l.includes('whoami'))!;
    const req = JSON.parse(line) as Record<string, unknown>;
    assert.equal(req.level, 30, 'info');
    assert.equal(req.method, 'GET');
    assert.equal(req.path, '/_matrix/client/v3/account/whoami');
    assert.equal(req.status, 401);
    assert.equal(typeof req.ms, 'number');
    assert.ok(!r.out().includes('SECRET_TOKEN_123'), 'no access token in the logs');

    // While it runs, writing the database directly is refused.
    await assert.rejects(
      runCli(['register-user', '--direct', '--config', configPath, '--user', 'eve', '--password', 'pw'], silentIo()),
      /the server is running \(pid \d+\)/,
    );

    r.child.kill('SIGTERM'); // the pid of npm itself, as `kill <pid of npm start>` would
    const exit = await r.exited;
    assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', JSON.stringify(exit));
    await until('the port to be freed', async () => !(await portOpen(port)), r, 10000);
    await until('the server to log its stop', () => r.out().includes('Hearth stopped'), r, 5000);

    // Stopped: --direct works now (the config file has the default server_name), and the user is in the database.
    const io = silentIo();
    await runCli(['register-user', '--direct', '--config', configPath, '--user', 'eve', '--password', 'pw'], io);
    assert.match(io.out.join(''), /Registered @eve:localhost/);
    const store = await openSqliteStore({ path: dbPath });
    try {
      assert.ok(await store.accounts.getUser('@eve:localhost'));
    } finally {
      await store.close();
    }
  });

  it('register-user --direct ignores a stale pid file', async () => {
    const port = await freePort();
    const r = run(process.execPath, ['dist/src/main.js', '--config', configPath, '--port', String(port)]);
    children.push(r);
    await until('the server to listen', () => r.out().includes('Hearth is listening'), r);
    r.child.kill('SIGKILL'); // no clean stop: the pid file stays, naming a dead process
    await r.exited;
    const io = silentIo();
    await runCli(['register-user', '--direct', '--config', configPath, '--user', 'frank', '--password', 'pw'], io);
    assert.match(io.out.join(''), /Registered @frank:localhost/);
  });
});
