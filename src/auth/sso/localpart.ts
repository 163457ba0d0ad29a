// The Matrix localpart an SSO username maps to (the same mapping Synapse applies to CAS users):
// lowercased, then every byte of its UTF-8 form outside [a-z0-9._\-/] written as "=xx" (lower-case
// hex, "=" itself included, so the mapping is injective), and a leading "_" escaped too ("=5f";
// such names are left to application services). The result is always a valid registration
// localpart; the empty name maps to the empty string, which callers refuse.

const ALLOWED = /^[a-z0-9._\-/]$/;

export function mapUsernameToLocalpart(username: string): string {
  let out = '';
  for (const byte of Buffer.from(username.toLowerCase(), 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && ALLOWED.test(c) ? c : `=${byte.toString(16).padStart(2, '0')}`;
  }
  return out.startsWith('_') ? `=5f${out.slice(1)}` : out;
}
