// Which servers this server federates with (federation.allowed_servers / denied_servers).
//
// Invariants: a server refused here is refused both ways. Inbound requests from it answer 403
// before its keys are fetched; outbound requests to it fail before discovery, so nothing of
// ours (PDUs, EDUs, key or profile queries) reaches it and nothing of its is fetched.
// Patterns are exact server names (with port, if any) or "*.domain" (any subdomain, not the
// domain itself); comparison is case-insensitive on the host part, as DNS is.

export interface FederationPolicyConfig {
  /** null: every server not denied. A list: only these (minus the denied). */
  allowed_servers: string[] | null;
  denied_servers: string[];
}

export class FederationPolicy {
  private readonly allowed: ((s: string) => boolean) | null;
  private readonly denied: (s: string) => boolean;

  constructor(cfg: FederationPolicyConfig) {
    this.allowed = cfg.allowed_servers === null ? null : matcher(cfg.allowed_servers);
    this.denied = matcher(cfg.denied_servers);
  }

  allows(server: string): boolean {
    if (this.denied(server)) return false;
    return this.allowed === null || this.allowed(server);
  }
}

function matcher(patterns: string[]): (s: string) => boolean {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const p of patterns) {
    const l = p.toLowerCase();
    if (l.startsWith('*.')) suffixes.push(l.slice(1));
    else exact.add(l);
  }
  return (server) => {
    const s = server.toLowerCase();
    if (exact.has(s)) return true;
    const host = s.replace(/:\d+$/, '');
    return suffixes.some((suf) => host.endsWith(suf) && host.length > suf.length);
  };
}
