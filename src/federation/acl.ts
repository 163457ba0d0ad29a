// Server ACLs (m.room.server_acl, spec client-server "Server Access Control Lists").
//
// Invariants: pure. The port is ignored; an IP literal is denied unless allow_ip_literals is
// not false; then any deny glob denies, any allow glob allows, and no match denies. Globs know
// `*` and `?` only and match case-insensitively (DNS names). No ACL event: everyone allowed.

import { isIP } from 'node:net';
import type { JsonObject } from '../protocol/types.js';
import { splitServerName } from './discovery.js';

function globRegex(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function globs(v: unknown): RegExp[] {
  return Array.isArray(v) ? v.filter((g): g is string => typeof g === 'string').map(globRegex) : [];
}

export function serverAclAllows(acl: JsonObject | undefined, serverName: string): boolean {
  if (!acl) return true;
  const host = splitServerName(serverName).host;
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  if (acl.allow_ip_literals === false && isIP(bare) !== 0) return false;
  if (globs(acl.deny).some((r) => r.test(host))) return false;
  return globs(acl.allow).some((r) => r.test(host));
}
