/**
 * The local cloud's own PKI: a root CA (created once, kept in the data dir) that signs device
 * certificates and the broker's TLS server certificate.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRootCa, createServerIdentity, type PemIdentity } from '../../certs-tooling/x509.js';
import { writeFileAtomic } from './store.js';

export interface LocalPki {
  rootCa: PemIdentity;
  server: PemIdentity;
}

async function loadPair(dir: string, base: string): Promise<PemIdentity | undefined> {
  const cert = join(dir, `${base}.crt`);
  const key = join(dir, `${base}.key`);
  if (!existsSync(cert) || !existsSync(key)) return undefined;
  return { certPem: await readFile(cert, 'utf8'), keyPem: await readFile(key, 'utf8') };
}

function savePair(dir: string, base: string, id: PemIdentity): void {
  writeFileAtomic(join(dir, `${base}.key`), id.keyPem, 0o600);
  writeFileAtomic(join(dir, `${base}.crt`), id.certPem);
}

function coversNames(certPem: string, names: string[]): boolean {
  const cert = new X509Certificate(certPem);
  const san = cert.subjectAltName ?? '';
  const stillValid = new Date(cert.validTo).getTime() > Date.now() + 86_400_000;
  return stillValid && names.every((n) => san.includes(`DNS:${n}`) || san.includes(`IP Address:${n}`));
}

/**
 * Loads the root CA and server certificate from `{dataDir}/ca`, creating them on first use. The server
 * certificate is valid for `localhost`, `127.0.0.1` and `extraHosts`; it is re-issued if a name is
 * missing or it is about to expire.
 */
export async function loadOrCreatePki(dataDir: string, extraHosts: string[] = []): Promise<LocalPki> {
  const dir = join(dataDir, 'ca');
  let rootCa = await loadPair(dir, 'root-ca');
  if (!rootCa) {
    rootCa = await createRootCa('edgefleet local root CA');
    savePair(dir, 'root-ca', rootCa);
  }
  const isIp = (h: string) => /^[\d.]+$|:/.test(h);
  const hosts = [...new Set(['localhost', '127.0.0.1', ...extraHosts.filter((h) => h !== '0.0.0.0')])];
  let server = await loadPair(dir, 'server');
  if (!server || !coversNames(server.certPem, hosts)) {
    server = await createServerIdentity(
      rootCa,
      hosts.filter((h) => !isIp(h)),
      hosts.filter(isIp),
    );
    savePair(dir, 'server', server);
  }
  return { rootCa, server };
}
