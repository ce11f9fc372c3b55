/**
 * Device certificates signed by the issuing CA of a CA directory: either a fresh key pair made here, or
 * a PKCS#10 request made on the device (its key never leaves the device). Device certificates carry
 * CN = thing name and the clientAuth extended key usage, as AWS IoT JITR expects.
 */
import type { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  algorithmOf,
  authorityKeyIdOf,
  type CaDir,
  cnName,
  generateKeys,
  keyToPem,
  keyTypeOf,
  randomSerial,
  writePrivateFile,
} from './ca.js';
import { CertToolingError, InvalidCsrError, type InvalidPemError } from './errors.js';

type CryptoKey = webcrypto.CryptoKey;

const DAY_MS = 86_400_000;

/** AWS IoT thing names: 1..128 of letters, digits, `:`, `_`, `-`. */
export const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

export const DEVICE_FILES = {
  cert: 'device.crt',
  key: 'device.key',
  chain: 'device-chain.crt',
} as const;

export interface IssuedDevice {
  thingName: string;
  certPem: string;
  /** Only when the key was generated here. */
  keyPem?: string;
  /** Device certificate followed by the issuing CA certificate (what the device presents for JITR). */
  chainPem: string;
  serialNumber: string;
  files: { cert: string; key?: string; chain: string };
}

async function signDeviceCertificate(
  ca: CaDir,
  thingName: string,
  publicKey: CryptoKey,
  days: number,
): Promise<x509.X509Certificate> {
  const notBefore = new Date(Date.now() - 60_000);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: cnName(thingName),
    issuer: ca.issuing.cert.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY_MS),
    signingAlgorithm: algorithmOf(ca.issuing.keyType),
    publicKey,
    signingKey: ca.issuing.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await authorityKeyIdOf(ca.issuing),
    ],
  });
}

export type DeviceRequest = { thingName: string } | { csrPem: string };

/** Parses a CSR, checks its self-signature and returns its subject CN (the thing name) and public key. */
export async function readCsr(csrPem: string): Promise<{ thingName: string; publicKey: CryptoKey }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new InvalidCsrError('not a PKCS#10 certificate signing request in PEM', { cause: err });
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (err) {
    throw new InvalidCsrError('the CSR signature cannot be checked', { cause: err });
  }
  if (!valid) throw new InvalidCsrError('the CSR signature does not verify');
  const cns = csr.subjectName.getField('CN');
  const thingName = cns[0];
  if (cns.length !== 1 || thingName === undefined) {
    throw new InvalidCsrError(
      `the CSR subject (${csr.subject || 'empty'}) must hold exactly one CN, the thing name`,
    );
  }
  if (!THING_NAME.test(thingName)) {
    throw new InvalidCsrError(
      `the CSR's CN "${thingName}" is not a thing name (1..128 letters, digits, : _ -)`,
    );
  }
  let keyType: ReturnType<typeof keyTypeOf>;
  try {
    keyType = keyTypeOf(csr);
  } catch (err) {
    throw new InvalidCsrError((err as InvalidPemError).message, { cause: err });
  }
  return { thingName, publicKey: await csr.publicKey.export(algorithmOf(keyType), ['verify']) };
}

/**
 * Issues a device certificate from `request` (a thing name: a new ECDSA P-256 key is made; or a CSR)
 * and writes device.crt, device.key (generated keys only, mode 0600) and device-chain.crt into `outDir`.
 */
export async function issueDevice(
  ca: CaDir,
  request: DeviceRequest,
  outDir: string,
  days = 365,
): Promise<IssuedDevice> {
  let thingName: string;
  let publicKey: CryptoKey;
  let keyPem: string | undefined;
  if ('csrPem' in request) {
    ({ thingName, publicKey } = await readCsr(request.csrPem));
  } else {
    if (!THING_NAME.test(request.thingName)) {
      throw new CertToolingError(
        `"${request.thingName}" is not a thing name (1..128 letters, digits, : _ -)`,
      );
    }
    thingName = request.thingName;
    const keys = await generateKeys('ec-p256');
    publicKey = keys.publicKey;
    keyPem = await keyToPem(keys.privateKey);
  }
  const cert = await signDeviceCertificate(ca, thingName, publicKey, days);
  const certPem = cert.toString('pem');
  const chainPem = `${certPem}\n${ca.issuing.certPem}\n`;
  await mkdir(outDir, { recursive: true });
  const files: IssuedDevice['files'] = {
    cert: join(outDir, DEVICE_FILES.cert),
    chain: join(outDir, DEVICE_FILES.chain),
  };
  await writeFile(files.cert, `${certPem}\n`);
  await writeFile(files.chain, chainPem);
  if (keyPem !== undefined) {
    files.key = join(outDir, DEVICE_FILES.key);
    await writePrivateFile(files.key, keyPem);
  }
  return {
    thingName,
    certPem,
    ...(keyPem !== undefined ? { keyPem } : {}),
    chainPem,
    serialNumber: cert.serialNumber,
    files,
  };
}
