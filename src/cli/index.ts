// `npx hearth <command>`: bin/hearth.js calls runCli(process.argv.slice(2)). Errors are thrown,
// not printed: bin/hearth.js prints the message and exits 1.

import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, resolveConfigFile } from '../config/load.js';
import { localBaseUrl } from '../config/schema.js';
import { generateConfig } from './generate-config.js';
import { parseUserArg, registerUserDirect, registerUserViaApi } from './register-user.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  fetch: typeof fetch;
  readStdin(): Promise<string>;
}

function processIo(): CliIo {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    fetch,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

const USAGE = `Usage: hearth <command> [options]

Commands:
  start [...]               Run the homeserver (config from --config or HEARTH_CONFIG).
      --config FILE           The config file.
      --host HOST             Listen address of the client API (listeners.client.host).
      --port PORT             Port of the client API (listeners.client.port).
      --server-name NAME      server_name (permanent once users exist).
  generate-config           Print a documented config with a fresh registration shared secret.
      --server-name NAME      Set server_name (the domain in user IDs; permanent once users exist).
      --output FILE           Write to FILE (mode 600) instead of stdout.
      --force                 Overwrite FILE if it exists.
  register-user             Create an account.
      --user NAME             Localpart (alice) or full user ID (@alice:server).
      --password PW           The password (visible to other local users in the process list;
      --password-file FILE      prefer this: FILE, or - for stdin).
      --admin                 Make the account a server admin.
      --config FILE           Config to read (default: HEARTH_CONFIG, else built-in defaults).
      --url URL               Client API base URL (default: from listeners.client).
      --shared-secret S       Default: registration.shared_secret from the config.
      --direct                Write to the database instead of calling the running server's
                                admin API. Refused while a server runs on that database.
  help                      Show this text (also --help, -h).
`;

export async function runCli(argv: string[], io: CliIo = processIo()): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout(USAGE);
      return;
    case 'start': {
      // src/main.ts belongs to the server itself; loaded lazily so the other commands work
      // without it and stay quick.
      const main = (await import('../main.js')) as { main(args: string[]): Promise<unknown> };
      await main.main(args);
      return;
    }
    case 'generate-config':
      return generateConfigCommand(args, io);
    case 'register-user':
      return registerUserCommand(args, io);
    default:
      throw new Error(`unknown command "${command}"\n\n${USAGE}`);
  }
}

/** Runs node:util parseArgs, adding the usage text to its errors. */
function withUsage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n\n${USAGE}`);
  }
}

function generateConfigCommand(args: string[], io: CliIo): void {
  const { values } = withUsage(() =>
    parseArgs({
      args,
      strict: true,
      options: {
        'server-name': { type: 'string' },
        output: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
      },
    }),
  );
  const text = generateConfig({ serverName: values['server-name'] });
  const output = values.output;
  if (output === undefined) {
    io.stdout(text);
    return;
  }
  // The file holds the shared secret, which lets its holder create admin accounts.
  writeFileSync(output, text, { mode: 0o600, flag: values.force === true ? 'w' : 'wx' });
  io.stderr(`Wrote ${output}\n`);
}

async function registerUserCommand(args: string[], io: CliIo): Promise<void> {
  const { values } = withUsage(() =>
    parseArgs({
      args,
      strict: true,
      options: {
        user: { type: 'string', short: 'u' },
        password: { type: 'string', short: 'p' },
        'password-file': { type: 'string' },
        admin: { type: 'boolean' },
        config: { type: 'string', short: 'c' },
        url: { type: 'string' },
        'shared-secret': { type: 'string' },
        direct: { type: 'boolean' },
      },
    }),
  );
  const userArg = values.user;
  if (userArg === undefined) throw new Error('register-user needs --user');
  const { localpart, server } = parseUserArg(userArg);
  const password = await readPassword(values.password, values['password-file'], io);
  const admin = values.admin === true;

  const config = loadConfig({ file: values.config, env: io.env });
  if (server !== null && server !== config.server_name) {
    throw new Error(`${userArg} is not on this server (server_name ${config.server_name})`);
  }

  if (values.direct === true) {
    const { openSqliteStore } = await import('../store/sqlite/index.js');
    const { runningServerPid, serverLockPath } = await import('../store/sqlite/server-lock.js');
    const { path, synchronous } = config.storage.sqlite;
    const pid = runningServerPid(path);
    if (pid !== null) {
      throw new Error(
        `the server is running (pid ${pid}) on ${path}: register through it instead (drop --direct; needs ` +
          `registration.shared_secret), or stop it first. If no server is running, remove ${serverLockPath(path)}.`,
      );
    }
    const store = await openSqliteStore({ path, synchronous });
    try {
      const userId = await registerUserDirect(store, config.server_name, localpart, password, admin);
      io.stdout(`Registered ${userId}${admin ? ' (admin)' : ''} in ${path}\n`);
    } finally {
      await store.close();
    }
    return;
  }

  const sharedSecret = values['shared-secret'] ?? config.registration.shared_secret;
  if (sharedSecret === null || sharedSecret === undefined) {
    const file = resolveConfigFile({ file: values.config, env: io.env });
    throw new Error(
      `no shared secret: set registration.shared_secret in ${file ?? 'a config file (see generate-config)'}, ` +
        'pass --shared-secret, or use --direct while the server is stopped',
    );
  }
  const userId = await registerUserViaApi({
    url: values.url ?? localBaseUrl(config.listeners.client),
    sharedSecret,
    localpart,
    password,
    admin,
    fetch: io.fetch,
  });
  io.stdout(`Registered ${userId}${admin ? ' (admin)' : ''}\n`);
}

async function readPassword(password: string | undefined, file: string | undefined, io: CliIo): Promise<string> {
  if (password !== undefined && file !== undefined) throw new Error('give --password or --password-file, not both');
  let pw = password;
  if (file !== undefined) {
    // Only the line ending is stripped: other whitespace may be part of the password.
    pw = (file === '-' ? await io.readStdin() : readFileSync(file, 'utf8')).replace(/\r?\n$/, '');
  }
  if (pw === undefined) throw new Error('register-user needs --password or --password-file');
  if (pw.length === 0) throw new Error('the password must not be empty');
  return pw;
}
