/**
 * The installers' certificate authority: a root CA, optionally an intermediate signed by it, kept as PEM
 * files in one directory, and the verification certificate AWS IoT asks for when the CA is registered.
 *
 * Directory layout: `ca.crt`/`ca.key` (root), `intermediate.crt`/`intermediate.key` (when created with an
 * intermediate), `ca-chain.crt` (issuing CA first, root last). The issuing CA, the one that signs devices
 * and is registered with AWS IoT, is the intermediate when there is one, else the root.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CaExistsError, CaNotFoundError, InvalidPemError } from './errors.js';
import { EC_ALGORITHM, parseCertificate } from './x509.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const subtle = webcrypto.subtle;
const DAY_MS = 86_400_000;

export const KEY_TYPES = ['ec-p256', 'rsa-2048'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export const RSA_ALGORITHM = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
} as const;

/** Key generation, import and signing parameters of a key type. */
export function algorithmOf(keyType: KeyType): typeof EC_ALGORITHM | typeof RSA_ALGORITHM {
  return keyType === 'ec-p256' ? EC_ALGORITHM : RSA_ALGORITHM;
}

export const CA_FILES = {
  rootCert: 'ca.crt',
  rootKey: 'ca.key',
  intermediateCert: 'intermediate.crt',
  intermediateKey: 'intermediate.key',
  chain: 'ca-chain.crt',
  revoked: 'revoked.json',
  crl: 'crl.pem',
} as const;

/** A certificate with its private key and key type, loaded for signing. */
export interface SigningIdentity {
  cert: x509.X509Certificate;
  certPem: string;
  key: CryptoKey;
  keyType: KeyType;
}

export interface CaDir {
  dir: string;
  root: SigningIdentity;
  intermediate?: SigningIdentity;
  /** The CA that signs devices: the intermediate when there is one. */
  issuing: SigningIdentity;
  /** The issuing CA's certificate file. */
  issuingCertFile: string;
}

export async function generateKeys(keyType: KeyType): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(algorithmOf(keyType), true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function keyToPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** The key type of a certificate's public key (ECDSA P-256 or RSA 2048). */
export function keyTypeOf(cert: { publicKey: x509.PublicKey; subject: string }): KeyType {
  const alg = cert.publicKey.algorithm as { name?: string; namedCurve?: string; modulusLength?: number };
  if (alg.name === 'ECDSA' && alg.namedCurve === 'P-256') return 'ec-p256';
  if (alg.name === 'RSASSA-PKCS1-v1_5' && alg.modulusLength === 2048) return 'rsa-2048';
  throw new InvalidPemError(
    `unsupported key of ${cert.subject}: ${alg.name ?? 'unknown'} (expected ECDSA P-256 or RSA 2048)`,
  );
}

export async function importSigningKey(pem: string, keyType: KeyType): Promise<CryptoKey> {
  try {
    return await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), algorithmOf(keyType), true, [
      'sign',
    ]);
  } catch (err) {
    throw new InvalidPemError(`not a PKCS#8 ${keyType} private key in PEM`, { cause: err });
  }
}

/** A positive, 16-byte random serial number in hex. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/** A subject name with one common name (commas and other specials need no escaping in this form). */
export function cnName(commonName: string): x509.JsonName {
  return [{ CN: [commonName] }];
}

/** Writes a private key readable by its owner only (also when the file already existed). */
export async function writePrivateFile(path: string, data: string): Promise<void> {
  await writeFile(path, data, { mode: 0o600 });
  await chmod(path, 0o600);
}

export interface CreateCaOptions {
  dir: string;
  commonName?: string;
  keyType?: KeyType;
  intermediate?: boolean;
  /** Replace a CA that already exists in `dir`. */
  force?: boolean;
  validDays?: number;
  notBefore?: Date;
}

export interface CreatedCa {
  files: string[];
  rootCertPem: string;
  intermediateCertPem?: string;
}

/** Creates a root CA (and an intermediate signed by it) and writes it into `dir`. */
export async function createCa(opts: CreateCaOptions): Promise<CreatedCa> {
  const keyType = opts.keyType ?? 'ec-p256';
  const cn = opts.commonName ?? 'edgefleet root CA';
  const validDays = opts.validDays ?? 3650;
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + validDays * DAY_MS);
  if (!opts.force) {
    const existing = Object.values(CA_FILES)
      .filter((f) => f !== CA_FILES.revoked && f !== CA_FILES.crl)
      .filter((f) => existsSync(join(opts.dir, f)));
    if (existing.length > 0) {
      throw new CaExistsError(
        `${opts.dir} already holds a CA (${existing.join(', ')}); pass --force to replace it`,
      );
    }
  }
  const alg = algorithmOf(keyType);
  const caUsage = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

  const rootKeys = await generateKeys(keyType);
  const rootSki = await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: cnName(cn),
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys: rootKeys,
    extensions: [
      // The issuing CA allows no CA below it; a root above an intermediate allows one.
      new x509.BasicConstraintsExtension(true, opts.intermediate ? 1 : 0, true),
      new x509.KeyUsagesExtension(caUsage, true),
      rootSki,
      new x509.AuthorityKeyIdentifierExtension(rootSki.keyId),
    ],
  });
  await mkdir(opts.dir, { recursive: true });
  const files: string[] = [];
  const put = async (name: string, data: string, secret = false) => {
    const path = join(opts.dir, name);
    if (secret) await writePrivateFile(path, data);
    else await writeFile(path, data);
    files.push(path);
  };
  const rootCertPem = root.toString('pem');
  await put(CA_FILES.rootKey, await keyToPem(rootKeys.privateKey), true);
  await put(CA_FILES.rootCert, `${rootCertPem}\n`);
  if (!opts.intermediate) {
    await put(CA_FILES.chain, `${rootCertPem}\n`);
    return { files, rootCertPem };
  }
  const keys = await generateKeys(keyType);
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: cnName(`${cn} intermediate`),
    issuer: root.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + Math.ceil(validDays / 2) * DAY_MS),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(caUsage, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(rootSki.keyId),
    ],
  });
  const intermediateCertPem = intermediate.toString('pem');
  await put(CA_FILES.intermediateKey, await keyToPem(keys.privateKey), true);
  await put(CA_FILES.intermediateCert, `${intermediateCertPem}\n`);
  await put(CA_FILES.chain, `${intermediateCertPem}\n${rootCertPem}\n`);
  return { files, rootCertPem, intermediateCertPem };
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CaNotFoundError(
      `cannot read ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      {
        cause: err,
      },
    );
  }
}

async function loadIdentity(dir: string, certFile: string, keyFile: string): Promise<SigningIdentity> {
  const certPem = await readText(join(dir, certFile), 'CA certificate');
  const cert = parseCertificate(certPem);
  const keyType = keyTypeOf(cert);
  const key = await importSigningKey(await readText(join(dir, keyFile), 'CA private key'), keyType);
  // The key must be the certificate's: a signature made with it verifies with the certificate's key.
  const probe = new Uint8Array(32);
  const publicKey = await cert.publicKey.export(algorithmOf(keyType), ['verify']);
  const sig = await subtle.sign(algorithmOf(keyType), key, probe);
  if (!(await subtle.verify(algorithmOf(keyType), publicKey, sig, probe))) {
    throw new CaNotFoundError(`${join(dir, keyFile)} is not the private key of ${join(dir, certFile)}`);
  }
  return { cert, certPem: cert.toString('pem'), key, keyType };
}

/** Loads the CA of `dir`; its issuing CA is the intermediate when `intermediate.crt` exists. */
export async function loadCa(dir: string): Promise<CaDir> {
  if (!existsSync(join(dir, CA_FILES.rootCert))) {
    throw new CaNotFoundError(
      `${dir} holds no CA (${CA_FILES.rootCert} is missing); create one with \`certs ca create\``,
    );
  }
  const root = await loadIdentity(dir, CA_FILES.rootCert, CA_FILES.rootKey);
  if (!existsSync(join(dir, CA_FILES.intermediateCert))) {
    return { dir, root, issuing: root, issuingCertFile: join(dir, CA_FILES.rootCert) };
  }
  const intermediate = await loadIdentity(dir, CA_FILES.intermediateCert, CA_FILES.intermediateKey);
  return {
    dir,
    root,
    intermediate,
    issuing: intermediate,
    issuingCertFile: join(dir, CA_FILES.intermediateCert),
  };
}

/** The authority key identifier extension that names `ca` as the issuer. */
export async function authorityKeyIdOf(ca: SigningIdentity): Promise<x509.AuthorityKeyIdentifierExtension> {
  return x509.AuthorityKeyIdentifierExtension.create(ca.cert);
}

/**
 * The verification certificate of AWS IoT's RegisterCACertificate: a fresh key pair, subject
 * CN = the account's registration code, signed by the CA key.
 */
export async function createVerificationCertificate(
  ca: SigningIdentity,
  registrationCode: string,
  validDays = 1,
): Promise<string> {
  const keys = await generateKeys('ec-p256');
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: cnName(registrationCode),
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + validDays * DAY_MS),
    signingAlgorithm: algorithmOf(ca.keyType),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyIdOf(ca),
    ],
  });
  return cert.toString('pem');
}
