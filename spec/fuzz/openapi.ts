// The official Client-Server OpenAPI definitions, read for the fuzz tests.
//
// The spec ships one OpenAPI document per area (73 files under api/client-server/), each with its
// own `servers[0].variables.basePath` and relative `$ref`s into definitions/, ../../schemas and
// ../../event-schemas. Schemathesis takes one document, so `bundleClientServer()` copies the whole
// `spec` folder into a temporary directory (so every relative `$ref` still resolves) and writes one
// merged document beside the per-area files whose paths carry each file's basePath default.
//
// Fix-ups applied to the copy (only to the merged document; the referenced files stay untouched):
//  - components (parameters, responses, schemas, headers, examples, requestBodies) are renamed
//    `<file stem>__<name>` and each file's internal `#/components/...` refs rewritten to match, so
//    two files defining the same component name (content-repo and authed-content-repo both define
//    `serverName`, `mediaId`, ...) cannot collide. securitySchemes are shared by name (every file
//    refs the same definitions/security.yaml entry) and kept as they are.
//  - `servers` is replaced by a single `http://127.0.0.1` entry with no basePath (schemathesis is
//    given the real base URL with --url); the basePath lives in each path.
//  - Operation-level `servers` overrides (none today) would be dropped; none are present.
//  - The two paths the spec writes with a trailing space (a trick to document one endpoint twice)
//    are merged into the real path; see the loop before the merged file is written.
//  - api/identity/definitions/request_{email,msisdn}_validation.yaml, which the client-server
//    definitions $ref but shared/spec does not contain, are written as small stubs (MISSING_FILES);
//    without them schemathesis fails the six .../requestToken operations as unresolvable.
//  - FIXUPS is the place for edits to the copied files should schemathesis choke on one (none
//    needed with 4.32.5). Every applied fix-up is listed in BundleResult.fixups.

import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

/** The repository root: the nearest folder above this file with a package.json (works from dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repo root not found');
    dir = up;
  }
  return dir;
}

/** The shared spec folder: ../shared/spec beside the repository (as laid out for CI too). */
export function specRoot(): string {
  const dir = process.env.HEARTH_SPEC_DIR ?? resolve(repoRoot(), '..', 'shared', 'spec');
  if (!existsSync(join(dir, 'api', 'client-server'))) throw new Error(`Matrix spec not found at ${dir}`);
  return dir;
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

export interface CsFile {
  file: string; // absolute path
  stem: string;
  basePath: string;
  doc: any;
}

export function loadClientServerFiles(root = specRoot()): CsFile[] {
  const dir = join(root, 'api', 'client-server');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const file = join(dir, f);
      const doc = parseYaml(readFileSync(file, 'utf8'));
      const basePath = doc?.servers?.[0]?.variables?.basePath?.default;
      if (typeof basePath !== 'string') throw new Error(`${f}: no servers[0].variables.basePath.default`);
      return { file, stem: f.replace(/\.yaml$/, ''), basePath, doc };
    });
}

const COMPONENT_KINDS = ['parameters', 'responses', 'schemas', 'headers', 'examples', 'requestBodies', 'links', 'callbacks'];

function renameInternalRefs(node: any, stem: string): any {
  if (Array.isArray(node)) return node.map((n) => renameInternalRefs(n, stem));
  if (node && typeof node === 'object') {
    const out: any = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/')) {
        const [, , kind, name, ...rest] = v.split('/');
        out[k] = ['#', 'components', kind, kind === 'securitySchemes' ? name : `${stem}__${name}`, ...rest].join('/');
      } else {
        out[k] = renameInternalRefs(v, stem);
      }
    }
    return out;
  }
  return node;
}

/** A schema change made in the copy so schemathesis can load or generate from it. */
interface Fixup {
  /** file relative to the spec root */
  file: string;
  why: string;
  apply(doc: any): boolean; // true when it changed something
}

// Schema fix-ups for schemathesis. Each entry says why.
const FIXUPS: Fixup[] = [];

/**
 * Files the client-server definitions `$ref` that the shared copy of the spec does not include
 * (it has no api/identity/). Without them schemathesis reports "Unresolvable reference" and skips
 * the six .../requestToken operations. Written into the copy with the fields the Client-Server spec
 * documents for these requests (minimal schemas of our own, not the identity spec's text).
 */
const MISSING_FILES: Record<string, { why: string; doc: unknown }> = {
  'api/identity/definitions/request_email_validation.yaml': {
    why: 'stub for the identity-service email validation request (api/identity/ is not in shared/spec)',
    doc: {
      type: 'object',
      properties: {
        client_secret: { type: 'string', description: 'Client-generated secret, [0-9a-zA-Z.=_-], 1-255 chars.' },
        email: { type: 'string', description: 'The email address to validate.' },
        send_attempt: { type: 'integer', description: 'Send counter.' },
        next_link: { type: 'string', description: 'Optional redirect after validation.' },
      },
      required: ['client_secret', 'email', 'send_attempt'],
    },
  },
  'api/identity/definitions/request_msisdn_validation.yaml': {
    why: 'stub for the identity-service phone-number validation request (api/identity/ is not in shared/spec)',
    doc: {
      type: 'object',
      properties: {
        client_secret: { type: 'string', description: 'Client-generated secret, [0-9a-zA-Z.=_-], 1-255 chars.' },
        country: { type: 'string', description: 'Two-letter country code.' },
        phone_number: { type: 'string', description: 'The phone number to validate.' },
        send_attempt: { type: 'integer', description: 'Send counter.' },
        next_link: { type: 'string', description: 'Optional redirect after validation.' },
      },
      required: ['client_secret', 'country', 'phone_number', 'send_attempt'],
    },
  },
};

/** Every `$ref` to a file that does not exist under `dir` (after the fix-ups). */
export function missingRefs(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      if (e.isDirectory()) walk(full);
      else if (/\.(ya?ml|json)$/.test(e.name)) {
        const text = readFileSync(full, 'utf8');
        for (const m of text.matchAll(/"?\$ref"?\s*:\s*["']?([^"'#\s,}]+)/g)) {
          if (!existsSync(resolve(dirname(full), m[1]))) out.push(`${full.slice(dir.length + 1)} -> ${m[1]}`);
        }
      }
    }
  };
  walk(dir);
  return out;
}

export interface BundleResult {
  dir: string; // the temporary copy's root (holds api/, schemas/, event-schemas/)
  file: string; // the merged document
  operations: number;
  files: number;
  fixups: string[];
}

/** Copies the spec into a temporary folder and writes the merged document; see the header comment. */
export function bundleClientServer(outParent = tmpdir()): BundleResult {
  const src = specRoot();
  const dir = mkdtempSync(join(outParent, 'hearth-cs-spec-'));
  cpSync(src, dir, { recursive: true });
  // The copy of a read-only tree is read-only too; make it writable so fix-ups and cleanup work.
  chmodTree(dir);
  const applied: string[] = [];
  for (const [rel, { why, doc }] of Object.entries(MISSING_FILES)) {
    const path = join(dir, rel);
    if (existsSync(path)) continue; // a later copy of the spec that ships it wins
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(doc, null, 1));
    applied.push(`${rel}: ${why}`);
  }
  for (const fx of FIXUPS) {
    const path = join(dir, fx.file);
    const doc = parseYaml(readFileSync(path, 'utf8'));
    if (fx.apply(doc)) {
      writeFileSync(path, JSON.stringify(doc, null, 1)); // JSON is valid YAML: the .yaml name stays
      applied.push(`${fx.file}: ${fx.why}`);
    }
  }
  const files = loadClientServerFiles(dir);
  const merged: any = {
    openapi: '3.1.0',
    info: { title: 'Matrix Client-Server API (all areas, merged for fuzzing)', version: '1.0.0' },
    servers: [{ url: 'http://127.0.0.1' }],
    paths: {},
    components: { securitySchemes: {} },
  };
  let operations = 0;
  for (const f of files) {
    const doc = renameInternalRefs(f.doc, f.stem);
    for (const [kind, entries] of Object.entries<any>(doc.components ?? {})) {
      merged.components[kind] ??= {};
      for (const [name, value] of Object.entries(entries)) {
        if (kind === 'securitySchemes') {
          const prev = merged.components.securitySchemes[name];
          if (prev && JSON.stringify(prev) !== JSON.stringify(value)) throw new Error(`${f.stem}: securityScheme ${name} differs`);
          merged.components.securitySchemes[name] = value;
        } else if (COMPONENT_KINDS.includes(kind)) {
          merged.components[kind][`${f.stem}__${name}`] = value;
        } else {
          throw new Error(`${f.stem}: unknown component kind ${kind}`);
        }
      }
    }
    for (const [p, item] of Object.entries<any>(doc.paths ?? {})) {
      const full = f.basePath.replace(/\/$/, '') + p;
      const target = (merged.paths[full] ??= {});
      for (const [k, v] of Object.entries<any>(item)) {
        if (target[k] !== undefined) throw new Error(`${full} ${k} defined twice`);
        if ((HTTP_METHODS as readonly string[]).includes(k)) {
          operations++;
          if (v.servers) delete v.servers;
          // Tag every operation with its area so reports can group by file.
          v.tags = [...new Set([...(v.tags ?? []), f.stem])];
        }
        target[k] = v;
      }
    }
  }
  // Two areas spell a path with a trailing space ("/rooms/{roomId}/invite ", "/events ") so that
  // the same endpoint can be documented twice (invite by user ID and by 3PID; /events for sync
  // and for peeking). Sent as is, it would only ever hit ".../invite%20" (a 404). Merge each into
  // the real path: parameters united, request bodies as anyOf, responses united.
  for (const key of Object.keys(merged.paths)) {
    if (key === key.trimEnd()) continue;
    const real = key.trimEnd();
    const target = (merged.paths[real] ??= {});
    for (const [m, op] of Object.entries<any>(merged.paths[key])) {
      if (!(HTTP_METHODS as readonly string[]).includes(m)) continue;
      if (target[m]) {
        target[m] = mergeOperations(target[m], op);
        operations--;
        applied.push(`paths["${key}"].${m}: merged into "${real}" (the spec's trailing-space duplicate)`);
      } else {
        target[m] = op;
        applied.push(`paths["${key}"].${m}: moved to "${real}" (the spec's trailing-space duplicate)`);
      }
    }
    delete merged.paths[key];
  }
  const file = join(dir, 'api', 'client-server', 'hearth-merged.json');
  writeFileSync(file, JSON.stringify(merged, null, 1));
  const missing = missingRefs(dir);
  if (missing.length) throw new Error(`unresolvable $refs in the spec copy (add a fix-up):\n${missing.join('\n')}`);
  return { dir, file, operations, files: files.length, fixups: applied };
}

/** One operation accepting what either of two definitions of the same endpoint accepts. */
function mergeOperations(a: any, b: any): any {
  const params = [...(a.parameters ?? [])];
  const keyOf = (p: any) => (p.$ref ? p.$ref : `${p.in}:${p.name}`);
  const seen = new Set(params.map(keyOf));
  for (const p of b.parameters ?? []) {
    if (!seen.has(keyOf(p))) params.push(p.required && p.in !== 'path' ? { ...p, required: false } : p);
  }
  const out: any = { ...a, parameters: params, tags: [...new Set([...(a.tags ?? []), ...(b.tags ?? [])])] };
  out.summary = `${a.summary ?? ''} / ${b.summary ?? ''}`;
  if (a.requestBody || b.requestBody) {
    if (a.requestBody?.$ref || b.requestBody?.$ref) throw new Error('mergeOperations: requestBody $ref not handled');
    const content: any = {};
    for (const rb of [a.requestBody, b.requestBody]) {
      for (const [media, m] of Object.entries<any>(rb?.content ?? {})) {
        if (!content[media]) content[media] = { schema: m.schema ?? {} };
        else content[media] = { schema: { anyOf: [content[media].schema, m.schema ?? {}] } };
      }
    }
    out.requestBody = { required: Boolean(a.requestBody?.required && b.requestBody?.required), content };
  }
  out.responses = { ...(b.responses ?? {}), ...(a.responses ?? {}) };
  return out;
}

function chmodTree(dir: string): void {
  // cpSync keeps modes; a read-only source gives a read-only copy: chmod -R u+w.
  const walk = (p: string) => {
    const st = statSync(p);
    chmodSync(p, st.mode | 0o200);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
}

// ---------------------------------------------------------------------------------------------
// $ref resolution (for the prototype-key spec, which needs each operation's body schema).

export class RefResolver {
  private cache = new Map<string, any>();

  load(file: string): any {
    let doc = this.cache.get(file);
    if (doc === undefined) {
      doc = parseYaml(readFileSync(file, 'utf8'));
      this.cache.set(file, doc);
    }
    return doc;
  }

  /** Follows `$ref` chains at the top of `node` (found in `file`); returns the target and its file. */
  deref(node: any, file: string, depth = 0): { node: any; file: string } {
    if (depth > 50) throw new Error(`ref loop at ${file}`);
    if (!node || typeof node !== 'object' || typeof node.$ref !== 'string') return { node, file };
    const [target, pointer = ''] = node.$ref.split('#');
    const tfile = target ? resolve(dirname(file), target) : file;
    let cur = this.load(tfile);
    for (const raw of pointer.split('/').filter(Boolean)) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      cur = cur?.[key];
    }
    if (cur === undefined) throw new Error(`unresolved $ref ${node.$ref} in ${file}`);
    return this.deref(cur, tfile, depth + 1);
  }

  /**
   * The object properties a schema defines (following $ref, allOf, oneOf/anyOf), each with its
   * own resolved schema. Used to place prototype keys inside every property the schema names.
   */
  properties(schema: any, file: string, depth = 0): Map<string, { node: any; file: string }> {
    const out = new Map<string, { node: any; file: string }>();
    if (depth > 10) return out;
    const { node, file: f } = this.deref(schema, file);
    if (!node || typeof node !== 'object') return out;
    for (const [k, v] of Object.entries<any>(node.properties ?? {})) out.set(k, this.deref(v, f));
    for (const group of ['allOf', 'oneOf', 'anyOf']) {
      for (const sub of node[group] ?? []) {
        for (const [k, v] of this.properties(sub, f, depth + 1)) if (!out.has(k)) out.set(k, v);
      }
    }
    return out;
  }
}
