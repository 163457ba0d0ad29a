#!/usr/bin/env node
// Entry point for `npx hearth ...`; the real code is compiled to dist/ by `npm install` (prepare).
import('../dist/src/cli/index.js').then((m) => m.runCli(process.argv.slice(2))).catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
