// Application-service registration files (the Application Service API's registration format:
// id, url, as_token, hs_token, sender_localpart, namespaces, rate_limited, protocols), read and
// checked once at start-up.
//
// Invariants:
// - Every problem with any file is reported at start-up as one AppServiceConfigError naming the
//   file and the key: unreadable YAML, unknown keys, a regex that does not compile, and IDs,
//   as_tokens, hs_tokens or sender users that two registrations share (an as_token must name
//   exactly one AS, and two services must never be mistaken for each other).
// - Namespace regexes match from the start of the string, not necessarily to its end (as
//   Synapse applies them, so registrations written for it behave the same here).
// - A registration is immutable once loaded; everything derived (the sender's user ID, the
//   compiled regexes) is computed here once.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export class AppServiceConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AppServiceConfigError';
  }
}

const namespaceList = z
  .array(z.strictObject({ regex: z.string().min(1).max(1000), exclusive: z.boolean() }))
  .max(1000)
  .default([]);

const registrationSchema = z.strictObject({
  id: z.string().min(1).max(255),
  url: z.string().url().max(2000).nullable(),
  as_token: z.string().min(1).max(1024),
  hs_token: z.string().min(1).max(1024),
  sender_localpart: z.string().regex(/^[a-z0-9._=\-/+]+$/, { error: 'must be a valid localpart (a-z 0-9 . _ = - / +)' }).max(200),
  namespaces: z
    .strictObject({ users: namespaceList, aliases: namespaceList, rooms: namespaceList })
    .prefault({}),
  rate_limited: z.boolean().default(true),
  protocols: z.array(z.string().min(1).max(255)).max(100).nullable().default([]),
  receive_ephemeral: z.boolean().default(false),
  // Accepted so that files written for other servers load; not used by Hearth.
  'de.sorunome.msc2409.push_ephemeral': z.boolean().optional(),
  'org.matrix.msc3202': z.boolean().optional(),
});

export interface Namespace {
  regex: RegExp;
  exclusive: boolean;
}

export interface AppServiceRegistration {
  id: string;
  /** Base URL without a trailing slash; null: the AS receives no traffic. */
  url: string | null;
  asToken: string;
  hsToken: string;
  senderLocalpart: string;
  /** @sender_localpart:server_name */
  senderUserId: string;
  users: Namespace[];
  aliases: Namespace[];
  rooms: Namespace[];
  rateLimited: boolean;
  protocols: string[];
  /** Where it was read from (for messages). */
  source: string;
}

function compile(source: string, where: string): RegExp {
  try {
    return new RegExp(`^(?:${source})`);
  } catch (err) {
    throw new AppServiceConfigError(`${where}: invalid regex ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
}

/** Validates one registration document (already parsed from YAML). */
export function parseRegistration(doc: unknown, source: string, serverName: string): AppServiceRegistration {
  const r = registrationSchema.safeParse(doc ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `app service ${source}: ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new AppServiceConfigError(lines.join('\n'));
  }
  const d = r.data;
  const ns = (kind: 'users' | 'aliases' | 'rooms'): Namespace[] =>
    d.namespaces[kind].map((n, i) => ({ regex: compile(n.regex, `app service ${source}: namespaces.${kind}.${i}.regex`), exclusive: n.exclusive }));
  return {
    id: d.id,
    url: d.url === null ? null : d.url.replace(/\/+$/, ''),
    asToken: d.as_token,
    hsToken: d.hs_token,
    senderLocalpart: d.sender_localpart,
    senderUserId: `@${d.sender_localpart}:${serverName}`,
    users: ns('users'),
    aliases: ns('aliases'),
    rooms: ns('rooms'),
    rateLimited: d.rate_limited,
    protocols: d.protocols ?? [],
    source,
  };
}

/** Reads and checks every registration file; throws one AppServiceConfigError listing all problems. */
export function loadRegistrations(paths: readonly string[], serverName: string, read: (p: string) => string = (p) => readFileSync(p, 'utf8')): AppServiceRegistration[] {
  const problems: string[] = [];
  const regs: AppServiceRegistration[] = [];
  for (const path of paths) {
    let doc: unknown;
    try {
      doc = parseYaml(read(path), { uniqueKeys: true });
    } catch (err) {
      problems.push(`app service ${path}: cannot read: ${(err as Error).message}`);
      continue;
    }
    try {
      regs.push(parseRegistration(doc, path, serverName));
    } catch (err) {
      if (!(err instanceof AppServiceConfigError)) throw err;
      problems.push(err.message);
    }
  }
  const unique = (what: string, key: (r: AppServiceRegistration) => string): void => {
    const seen = new Map<string, string>();
    for (const r of regs) {
      const k = key(r);
      const other = seen.get(k);
      if (other !== undefined) problems.push(`app service ${r.source}: ${what} is also used by ${other}`);
      else seen.set(k, r.source);
    }
  };
  unique('id', (r) => r.id);
  unique('as_token', (r) => r.asToken);
  unique('hs_token', (r) => r.hsToken);
  unique('sender_localpart', (r) => r.senderLocalpart);
  for (const r of regs) {
    if (regs.some((o) => o !== r && o.hsToken === r.asToken)) problems.push(`app service ${r.source}: as_token is another service's hs_token`);
  }
  if (problems.length > 0) throw new AppServiceConfigError(problems.join('\n'));
  return regs;
}

export function matchesAny(list: readonly Namespace[], value: string): boolean {
  return list.some((n) => n.regex.test(value));
}

export function matchesExclusive(list: readonly Namespace[], value: string): boolean {
  return list.some((n) => n.exclusive && n.regex.test(value));
}

/** The AS's own user or a user in its namespaces. */
export function isAppServiceUser(reg: AppServiceRegistration, userId: string): boolean {
  return userId === reg.senderUserId || matchesAny(reg.users, userId);
}
