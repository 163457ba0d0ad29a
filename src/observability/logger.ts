// One pino logger per server instance (tests run several servers in one process, each with its
// own level and output). "pretty" is a small built-in formatter rather than pino-pretty: it is
// only for reading logs in a terminal, and pino-pretty would be a dependency plus a worker thread.
// The default format "auto" picks pretty when stdout is a terminal and JSON otherwise.

import { pino, type DestinationStream, type Logger } from 'pino';
import type { HearthConfig } from '../config/schema.js';

export type { Logger } from 'pino';

// Credentials that may appear in logged request bodies or headers. Logging them would turn the
// log files into a credential store.
const REDACT_PATHS = [
  'password',
  'new_password',
  'access_token',
  'refresh_token',
  'token',
  'mac',
  '*.password',
  '*.new_password',
  '*.access_token',
  '*.refresh_token',
  '*.token',
  '*.mac',
  'req.headers.authorization',
  'headers.authorization',
];

export interface CreateLoggerOptions {
  /** Where log lines go. Defaults to stdout. */
  destination?: DestinationStream;
  /** Whether stdout is a terminal (decides format "auto"). Defaults to process.stdout.isTTY. */
  isTTY?: boolean;
}

/** The format "auto" stands for: pretty for a person at a terminal, JSON for everything else. */
export function resolveLogFormat(format: HearthConfig['log']['format'], isTTY: boolean): 'json' | 'pretty' {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}


export function createLogger(config: Pick<HearthConfig, 'log'>, opts: CreateLoggerOptions = {}): Logger {
  // pino's own stdout writer (synchronous, like pino's default) so the last lines before a crash are not lost.
  const out: DestinationStream = opts.destination ?? pino.destination(1);
  const format = resolveLogFormat(config.log.format, opts.isTTY ?? (opts.destination === undefined && process.stdout.isTTY === true));
  const stream = format === 'pretty' ? prettyStream(out) : out;
  return pino(
    {
      name: 'hearth',
      level: config.log.level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'err']);

/** Turns pino's JSON lines into `time LEVEL msg key=value ...` lines. */
export function prettyStream(out: DestinationStream): DestinationStream {
  return {
    write(line: string): void {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const level = LEVEL_NAMES[Number(entry.level)] ?? String(entry.level);
      const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
      let text = `${time} ${level.padEnd(5)} ${typeof entry.msg === 'string' ? entry.msg : ''}`;
      for (const [k, v] of Object.entries(entry)) {
        if (!OMIT.has(k)) text += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
      }
      const err = entry.err as { stack?: unknown; message?: unknown } | undefined;
      if (err !== undefined) text += `\n  ${String(err.stack ?? err.message ?? JSON.stringify(err))}`;
      out.write(`${text}\n`);
    },
  };
}
