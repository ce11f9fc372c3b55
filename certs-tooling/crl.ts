/**
 * Revocation by a CA directory's issuing CA: `revoked.json` lists the revoked certificates, and
 * `crl.pem` is an X.509 CRL over the same list, signed by the issuing CA.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { z } from 'zod';
import { algorithmOf, authorityKeyIdOf, CA_FILES, type CaDir } from './ca.js';
import { CertToolingError, NotIssuedByCaError } from './errors.js';
import { certificateId, parseCertificate } from './x509.js';

export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

const RevokedEntry = z.object({
  serialNumber: z.string().regex(/^[0-9a-f]+$/),
  subject: z.string(),
  certificateId: z.string(),
  revokedAt: z.string(),
  reason: z.enum(REVOCATION_REASONS),
});
export type RevokedEntry = z.infer<typeof RevokedEntry>;

const RevocationList = z.object({
  issuer: z.string(),
  revoked: z.array(RevokedEntry),
});
export type RevocationList = z.infer<typeof RevocationList>;

export interface RevokeResult {
  entry: RevokedEntry;
  /** False when the certificate was already on the list (the list is left as it was). */
  added: boolean;
  files: { list: string; crl: string };
}

export async function readRevocationList(caDir: string): Promise<RevocationList | undefined> {
  const path = join(caDir, CA_FILES.revoked);
  if (!existsSync(path)) return undefined;
  try {
    return RevocationList.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (err) {
    throw new CertToolingError(`${path} is not a revocation list`, { cause: err });
  }
}

/** PEM with the `X509 CRL` label that OpenSSL and node:tls read (RFC 7468). */
export function crlToPem(crl: x509.X509Crl): string {
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL');
}

/** Signs a CRL over `list` with the issuing CA, valid for `days`. */
export async function createCrl(ca: CaDir, list: RevocationList, days = 30): Promise<x509.X509Crl> {
  const thisUpdate = new Date();
  return x509.X509CrlGenerator.create({
    issuer: ca.issuing.cert.subjectName,
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + days * 86_400_000),
    signingAlgorithm: algorithmOf(ca.issuing.keyType),
    signingKey: ca.issuing.key,
    extensions: [await authorityKeyIdOf(ca.issuing)],
    entries: list.revoked.map((e) => ({
      serialNumber: e.serialNumber,
      revocationDate: new Date(e.revokedAt),
      reason: x509.X509CrlReason[e.reason],
    })),
  });
}

export interface CrlFile {
  path: string;
  pem: string;
  /** Entries on the CRL. */
  revoked: number;
}

/**
 * The CA directory's crl.pem, checked to be a CRL signed by the issuing CA (what the JITR activation
 * function requires); undefined when the directory has none.
 */
export async function readCrlFile(ca: CaDir): Promise<CrlFile | undefined> {
  const path = join(ca.dir, CA_FILES.crl);
  if (!existsSync(path)) return undefined;
  const pem = await readFile(path, 'utf8');
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(pem.trim());
  } catch (err) {
    throw new CertToolingError(`${path} is not an X.509 CRL in PEM`, { cause: err });
  }
  const signed = crl.issuer === ca.issuing.cert.subject && (await crl.verify({ publicKey: ca.issuing.cert }));
  if (!signed) {
    throw new NotIssuedByCaError(`${path} is not signed by the issuing CA ${ca.issuing.cert.subject}`);
  }
  return { path, pem, revoked: crl.entries.length };
}

/**
 * Records `certPem` as revoked by the issuing CA of `ca` (it must have issued it) and rewrites
 * revoked.json and crl.pem.
 */
export async function revokeCertificate(
  ca: CaDir,
  certPem: string,
  reason: RevocationReason = 'unspecified',
  now = new Date(),
): Promise<RevokeResult> {
  const cert = parseCertificate(certPem);
  const issuedHere =
    cert.issuer === ca.issuing.cert.subject && (await cert.verify({ publicKey: ca.issuing.cert }));
  if (!issuedHere) {
    throw new NotIssuedByCaError(`${cert.subject} was not issued by ${ca.issuing.cert.subject}`);
  }
  const files = { list: join(ca.dir, CA_FILES.revoked), crl: join(ca.dir, CA_FILES.crl) };
  const list = (await readRevocationList(ca.dir)) ?? { issuer: ca.issuing.cert.subject, revoked: [] };
  const serialNumber = cert.serialNumber.toLowerCase();
  const existing = list.revoked.find((e) => e.serialNumber === serialNumber);
  if (existing) return { entry: existing, added: false, files };
  const entry: RevokedEntry = {
    serialNumber,
    subject: cert.subject,
    certificateId: certificateId(new Uint8Array(cert.rawData)),
    revokedAt: now.toISOString(),
    reason,
  };
  list.revoked.push(entry);
  const crl = await createCrl(ca, list);
  await writeFile(files.list, `${JSON.stringify(list, null, 2)}\n`);
  await writeFile(files.crl, `${crlToPem(crl)}\n`);
  return { entry, added: true, files };
}
