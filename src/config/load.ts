// Reading, validating and normalising the config. Everything that can be wrong with a config is
// reported here, at start-up, as one ConfigError naming each offending key path.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configObjectSchema, hearthConfigSchema, type HearthConfig, type HearthConfigInput } from './schema.js';

export { isOpenRegistrationWarningNeeded, OPEN_REGISTRATION_WARNING } from './schema.js';
export type { HearthConfig, HearthConfigInput } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  /** YAML file to read. Falls back to env.HEARTH_CONFIG, then to built-in defaults. */
  file?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Deep-merged over the file's content before validation (so it is validated too). */
  overrides?: HearthConfigInput;
  /** Base for relative paths when there is no file. Defaults to process.cwd(). */
  cwd?: string;
}

/** The config file that loadConfig would read, or null for built-in defaults. */
export function resolveConfigFile(opts: Pick<LoadConfigOptions, 'file' | 'env' | 'cwd'> = {}): string | null {
  const env = opts.env ?? process.env;
  const file = opts.file ?? (env.HEARTH_CONFIG ? env.HEARTH_CONFIG : undefined);
  return file === undefined ? null : path.resolve(opts.cwd ?? process.cwd(), file);
}

export function loadConfig(opts: LoadConfigOptions = {}): HearthConfig {
  const file = resolveConfigFile(opts);
  const raw = file === null ? {} : readYaml(file);
  const merged = opts.overrides === undefined ? raw : deepMerge(raw, opts.overrides);
  const config = validateConfig(merged, file);
  return resolvePaths(config, file === null ? path.resolve(opts.cwd ?? process.cwd()) : path.dirname(file));
}

/** Validates an already-parsed config object; relative paths are left as they are. */
export function validateConfig(raw: unknown, source: string | null = null): HearthConfig {
  const result = hearthConfigSchema.safeParse(emptySectionsToObjects(raw, configObjectSchema));
  if (result.success) return result.data;
  const where = source === null ? '' : ` (in ${source})`;
  throw new ConfigError(result.error.issues.map((i) => `config: ${describeIssue(i)}${where}`).join('\n'));
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config: cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    // Duplicate keys are an error (the yaml default) because the second one silently winning is
    // exactly the kind of surprise strict validation is meant to prevent.
    doc = parseYaml(text, { uniqueKeys: true, prettyErrors: true });
  } catch (err) {
    throw new ConfigError(`config: cannot parse ${file}: ${(err as Error).message}`);
  }
  // An empty file (or one with only comments) means "all defaults".
  return doc ?? {};
}

function resolvePaths(config: HearthConfig, baseDir: string): HearthConfig {
  const abs = (p: string): string => path.resolve(baseDir, p);
  const absOrNull = (p: string | null): string | null => (p === null ? null : abs(p));
  const fed = config.listeners.federation;
  const sqlitePath = config.storage.sqlite.path;
  return {
    ...config,
    listeners: {
      ...config.listeners,
      federation: { ...fed, tls_certificate_path: absOrNull(fed.tls_certificate_path), tls_private_key_path: absOrNull(fed.tls_private_key_path) },
    },
    storage: {
      ...config.storage,
      // SQLite's in-memory database name is not a path.
      sqlite: { ...config.storage.sqlite, path: sqlitePath === ':memory:' ? sqlitePath : abs(sqlitePath) },
    },
    signing_key_path: abs(config.signing_key_path),
    media: { ...config.media, path: abs(config.media.path) },
    app_services: config.app_services.map(abs),
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v !== undefined) out[k] = deepMerge(base[k], v);
  }
  return out;
}

/** The object schema inside default/prefault/optional wrappers, if there is one. */
function objectSchemaOf(schema: unknown): z.ZodObject | null {
  let s = schema;
  for (let i = 0; i < 8; i++) {
    if (s instanceof z.ZodObject) return s;
    if (s instanceof z.ZodPrefault || s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
      s = s.unwrap();
    } else {
      return null;
    }
  }
  return null;
}

/**
 * YAML turns a section whose keys are all commented out (`registration:` on its own) into null.
 * Treating that as an empty section is what a reader of the file expects.
 */
function emptySectionsToObjects(raw: unknown, schema: z.ZodObject): unknown {
  if (!isPlainObject(raw)) return raw;
  const out: Record<string, unknown> = { ...raw };
  for (const [key, child] of Object.entries(schema.shape)) {
    const obj = objectSchemaOf(child);
    if (obj === null || !(key in out)) continue;
    if (out[key] === null) out[key] = {};
    out[key] = emptySectionsToObjects(out[key], obj);
  }
  return out;
}

function keyPath(parts: readonly PropertyKey[]): string {
  return parts.map(String).join('.');
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((k) => {
        const hint = suggestKey(issue.path, k);
        return `unknown key "${keyPath([...issue.path, k])}"${hint === null ? '' : ` (did you mean "${hint}"?)`}`;
      })
      .join('; ');
  }
  const at = issue.path.length === 0 ? 'the top level' : `"${keyPath(issue.path)}"`;
  return `invalid value for ${at}: ${issue.message}`;
}

/** The closest known sibling key, to turn "unknown key hots" into "did you mean host". */
function suggestKey(parent: readonly PropertyKey[], key: string): string | null {
  let schema: z.ZodObject | null = configObjectSchema;
  for (const p of parent) {
    schema = schema === null ? null : objectSchemaOf(schema.shape[String(p)]);
  }
  if (schema === null) return null;
  let best: string | null = null;
  let bestDist = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of Object.keys(schema.shape)) {
    const d = editDistance(key, candidate);
    if (d < bestDist) {
      best = candidate;
      bestDist = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
