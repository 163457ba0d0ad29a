// `npm start` / `npx hearth start`: load config, start, and shut down cleanly on SIGTERM/SIGINT.

import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createHearth } from './app.js';
import { loadConfig } from './config/load.js';
import { createLogger } from './observability/logger.js';

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } }, allowPositionals: false });
  const config = loadConfig({ file: values.config });
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

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
