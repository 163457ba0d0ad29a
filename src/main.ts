// `npm start` / `npx hearth start`: load config, start, and shut down cleanly on SIGTERM/SIGINT.

import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createHearth } from './app.js';
import { loadConfig, type HearthConfigInput } from './config/load.js';
import { createLogger } from './observability/logger.js';

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string' },
      'server-name': { type: 'string' },
    },
    allowPositionals: false,
  });
  const config = loadConfig({ file: values.config, overrides: flagOverrides(values) });
  const logger = createLogger(config);
  const hearth = await createHearth(config, { logger });
  await hearth.start();
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    hearth.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Command-line flags win over the config file; they are validated like the file. */
export function flagOverrides(values: { host?: string; port?: string; 'server-name'?: string }): HearthConfigInput {
  const client: { host?: string; port?: number } = {};
  if (values.host !== undefined) client.host = values.host;
  if (values.port !== undefined) {
    if (!/^\d{1,5}$/.test(values.port)) throw new Error(`--port must be a number from 0 to 65535, not "${values.port}"`);
    client.port = Number(values.port);
  }
  const out: HearthConfigInput = {};
  if (Object.keys(client).length > 0) out.listeners = { client } as HearthConfigInput['listeners'];
  if (values['server-name'] !== undefined) out.server_name = values['server-name'];
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
