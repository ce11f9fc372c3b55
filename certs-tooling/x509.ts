/**
 * X.509 helpers on @peculiar/x509 and WebCrypto: ECDSA P-256 keys, CA and leaf certificates in PEM,
 * and AWS IoT certificate ids (the SHA-256 hex of the DER encoding).
 */
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { InvalidPemError } from './errors.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(
  webcrypto as unknown as x509.CryptoProvider extends { set(c: infer C): void } ? C : never,
);

export const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const subtle = webcrypto.subtle;

export interface PemIdentity {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** Distinguished name, e.g. `CN=gateway-1, O=edgefleet`. */
  subject: string;
  publicKey: CryptoKey;
  issuer: PemIdentity;
  notBefore?: Date;
  notAfter?: Date;
  /** DNS names and IP addresses for a server certificate. */
  dnsNames?: string[];
  ipAddresses?: string[];
  isCa?: boolean;
  usage: 'server' | 'client' | 'ca';
}

const DAY_MS = 86_400_000;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function importPrivateKey(pem: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(pem);
    return await subtle.importKey('pkcs8', der, EC_ALGORITHM, true, ['sign']);
  } catch (err) {
    throw new InvalidPemError('not a PKCS#8 ECDSA P-256 private key in PEM', { cause: err });
  }
}

export function parseCertificate(pem: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (err) {
    throw new InvalidPemError('not an X.509 certificate in PEM', { cause: err });
  }
}

/** AWS IoT's certificate id: lower-case hex SHA-256 of the certificate's DER bytes. */
export function certificateId(pemOrDer: string | Uint8Array): string {
  const der = typeof pemOrDer === 'string' ? new Uint8Array(parseCertificate(pemOrDer).rawData) : pemOrDer;
  return createHash('sha256').update(der).digest('hex');
}

function serial(): string {
  // Positive 16-byte serial number.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

/** Creates a self-signed root CA valid for `validDays`. */
export async function createRootCa(
  commonName: string,
  validDays = 3650,
  notBefore = new Date(),
): Promise<PemIdentity> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + validDays * DAY_MS),
    signingAlgorithm: EC_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
}

/** Issues a certificate for `publicKey`, signed by `issuer`. */
export async function issueCertificate(opts: IssueOptions): Promise<string> {
  const issuerCert = parseCertificate(opts.issuer.certPem);
  const signingKey = await importPrivateKey(opts.issuer.keyPem);
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + 365 * DAY_MS);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(opts.usage === 'ca', undefined, true),
    await x509.SubjectKeyIdentifierExtension.create(opts.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuerCert),
  ];
  if (opts.usage === 'ca') {
    extensions.push(
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    );
  } else {
    extensions.push(
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        opts.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
      ]),
    );
  }
  const names: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.subject,
    issuer: issuerCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: EC_ALGORITHM,
    publicKey: opts.publicKey,
    signingKey,
    extensions,
  });
  return cert.toString('pem');
}

/** A new key pair and a client certificate for it, signed by `ca`. */
export async function createDeviceIdentity(
  ca: PemIdentity,
  commonName: string,
  validity?: { notBefore?: Date; notAfter?: Date },
): Promise<PemIdentity> {
  const keys = await generateKeyPair();
  const certPem = await issueCertificate({
    subject: `CN=${commonName}`,
    publicKey: keys.publicKey,
    issuer: ca,
    usage: 'client',
    ...validity,
  });
  return { certPem, keyPem: await privateKeyToPem(keys.privateKey) };
}

/** A new key pair and a TLS server certificate for the given names, signed by `ca`. */
export async function createServerIdentity(
  ca: PemIdentity,
  dnsNames: string[],
  ipAddresses: string[],
): Promise<PemIdentity> {
  const keys = await generateKeyPair();
  const certPem = await issueCertificate({
    subject: `CN=${dnsNames[0] ?? ipAddresses[0] ?? 'localhost'}`,
    publicKey: keys.publicKey,
    issuer: ca,
    usage: 'server',
    dnsNames,
    ipAddresses,
  });
  return { certPem, keyPem: await privateKeyToPem(keys.privateKey) };
}

/** A new key pair and a PKCS#10 certificate signing request for `CN=commonName`. */
export async function createCsr(commonName: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: EC_ALGORITHM,
  });
  return { csrPem: csr.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
}

/** Verifies a CSR's self-signature and issues a client certificate for its key, signed by `ca`. */
export async function issueFromCsr(
  ca: PemIdentity,
  csrPem: string,
  validity?: { notBefore?: Date; notAfter?: Date },
): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new InvalidPemError('not a PKCS#10 certificate signing request in PEM', { cause: err });
  }
  if (!(await csr.verify())) throw new InvalidPemError('the CSR signature does not verify');
  const publicKey = await csr.publicKey.export(EC_ALGORITHM, ['verify']);
  return issueCertificate({ subject: csr.subject, publicKey, issuer: ca, usage: 'client', ...validity });
}
