// Value schemas shared by the config's sections (src/config/schema.ts composes them). Invariants:
// a port of 0 asks the OS for a free one; a server pattern is a Matrix server name or *.domain;
// a CIDR is whatever src/net/outbound-guard.ts parses, so what the config accepts the guard uses.

import { z } from 'zod';
import { parseCidr } from '../../net/outbound-guard.js';

// Matrix server-name grammar (spec appendix "Server Name"): hostname or IP literal, optional port.
export const SERVER_NAME_RE = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::\d{1,5})?$/;

// 0 asks the OS for a free port (tests); the server reports the bound one.
export const port = z.int().min(0).max(65535);
export const host = z.string().min(1);
export const filePath = z.string().min(1);
// An IP range: a.b.c.d/n, an IPv6 prefix, or a single address.
export const serverPattern = z
  .string()
  .refine((s) => SERVER_NAME_RE.test(s) || /^\*\.[A-Za-z0-9.-]{1,253}$/.test(s), { error: 'must be a server name or *.domain' });
export const cidr = z.string().refine((s) => parseCidr(s) !== null, { error: 'must be an IP range (CIDR such as 10.0.0.0/8 or fc00::/7) or address' });

