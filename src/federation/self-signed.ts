// A self-signed TLS certificate for the federation listener when none is configured.
//
// node:crypto verifies and parses X.509 but cannot issue certificates; @peculiar/x509 does, on
// node's own WebCrypto (no OpenSSL binary, no native code of its own).
// Invariants: the certificate is valid from one hour ago for `days` days, its subject and SAN
// name the host (an IP literal goes into an iPAddress SAN, a name into a dNSName SAN), and the
// result parses with node's X509Certificate and verifies with its own public key.

import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface SelfSignedCertificate {
  cert: string;
  key: string;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export async function generateSelfSignedCertificate(host: string, days = 365): Promise<SelfSignedCertificate> {
  const crypto = webcrypto as unknown as Crypto;
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // a positive INTEGER
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      // The subject is informational; clients check the SAN. A fixed CN avoids escaping IPv6 colons.
      name: [{ CN: [isIP(bare) ? 'hearth-federation' : bare] }],
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + days * 86400_000),
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: isIP(bare) ? 'ip' : 'dns', value: bare }])],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyB64 = pkcs8.toString('base64').replace(/.{64}/g, '$&\n');
  return {
    cert: cert.toString('pem'),
    key: `-----BEGIN PRIVATE KEY-----\n${keyB64}${keyB64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`,
  };
}
