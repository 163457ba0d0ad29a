// Issue 9, item 10: pino takes the object first. A call written warn('message', err) compiles
// against pino's overloads and logs the message without the error, so failures vanish from the
// logs. This scans the source for that shape so it cannot come back.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { assert } from '../helpers/assert.js';

const root = join(process.cwd(), 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

// A logger method (console's take any order) whose first argument is a string literal and which has a second argument.
const MESSAGE_FIRST = /(?<!console)\.(fatal|error|warn|info|debug|trace)\(\s*(['"`])(?:(?!\2)[^\\]|\\.)*\2\s*,/g;

describe('hardening: error paths log the error object', () => {
  it('no logger call puts the message first and an argument after it (pino would drop it)', () => {
    const files = sources(root);
    assert.ok(files.length > 50, `expected the source tree under ${root}`);
    const offenders: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(MESSAGE_FIRST)) {
        const line = text.slice(0, m.index).split('\n').length;
        offenders.push(`${relative(process.cwd(), f)}:${line}: ${m[0]}`);
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('the scan does find the shape it looks for', () => {
    const bad = "logger.warn('batch rolled back', err); log.error(`x ${y}`, e);";
    assert.equal([...bad.matchAll(MESSAGE_FIRST)].length, 2);
    assert.equal([..."logger.warn({ err }, 'batch rolled back');".matchAll(MESSAGE_FIRST)].length, 0);
  });
});
