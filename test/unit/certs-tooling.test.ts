/** The installers' certificate tooling: CA directories, verification certificates, devices, revocation. */
import { createPrivateKey, X509Certificate as NodeX509 } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createCa, createVerificationCertificate, type KeyType, loadCa } from '../../certs-tooling/ca.js';
import { readRevocationList, revokeCertificate } from '../../certs-tooling/crl.js';
import { issueDevice } from '../../certs-tooling/device.js';
import {
  CaExistsError,
  CaNotFoundError,
  InvalidCsrError,
  NotIssuedByCaError,
} from '../../certs-tooling/errors.js';
import { certificateId, createCsr } from '../../certs-tooling/x509.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});
function dir(): string {
  const d = tempDir('edgefleet-certs-');
  dirs.push(d);
  return d;
}

const CA_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

function ext<T extends x509.Extension>(cert: x509.X509Certificate, type: new (raw: ArrayBuffer) => T): T {
  const e = cert.getExtension(type);
  if (!e) throw new Error(`${cert.subject} lacks ${type.name}`);
  return e;
}

function expectCaExtensions(cert: x509.X509Certificate, pathLength: number | undefined) {
  const bc = ext(cert, x509.BasicConstraintsExtension);
  expect(bc.ca).toBe(true);
  expect(bc.critical).toBe(true);
  expect(bc.pathLength).toBe(pathLength);
  const ku = ext(cert, x509.KeyUsagesExtension);
  expect(ku.critical).toBe(true);
  expect(ku.usages).toBe(CA_USAGE);
  expect(ext(cert, x509.SubjectKeyIdentifierExtension).keyId).toMatch(/^[0-9a-f]{40}$/);
  expect(ext(cert, x509.AuthorityKeyIdentifierExtension).keyId).toMatch(/^[0-9a-f]{40}$/);
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe.each<KeyType>(['ec-p256', 'rsa-2048'])('a CA with an intermediate (%s)', (keyType) => {
  it('has the right extensions, a verifiable chain and private keys readable by the owner only', async () => {
    const d = dir();
    await createCa({ dir: d, commonName: 'Plant 7 CA', keyType, intermediate: true });
    const root = new x509.X509Certificate(await readFile(join(d, 'ca.crt'), 'utf8'));
    const inter = new x509.X509Certificate(await readFile(join(d, 'intermediate.crt'), 'utf8'));
    expectCaExtensions(root, 1);
    expectCaExtensions(inter, 0);
    expect(root.subject).toBe('CN=Plant 7 CA');
    expect(inter.issuer).toBe(root.subject);
    expect(ext(inter, x509.AuthorityKeyIdentifierExtension).keyId).toBe(
      ext(root, x509.SubjectKeyIdentifierExtension).keyId,
    );
    expect(await root.verify({ publicKey: root, signatureOnly: true })).toBe(true);
    expect(await inter.verify({ publicKey: root, signatureOnly: true })).toBe(true);
    expect(mode(join(d, 'ca.key'))).toBe(0o600);
    expect(mode(join(d, 'intermediate.key'))).toBe(0o600);
    const chain = await readFile(join(d, 'ca-chain.crt'), 'utf8');
    expect(chain.indexOf(inter.toString('pem'))).toBe(0);
    expect(chain).toContain(root.toString('pem'));

    const ca = await loadCa(d);
    expect(ca.issuing.cert.subject).toBe('CN=Plant 7 CA intermediate');
    expect(ca.issuing.keyType).toBe(keyType);

    const out = join(d, 'dev');
    const dev = await issueDevice(ca, { thingName: 'press-12' }, out, 30);
    const cert = new x509.X509Certificate(dev.certPem);
    expect(cert.subject).toBe('CN=press-12');
    expect(ext(cert, x509.BasicConstraintsExtension).ca).toBe(false);
    expect(ext(cert, x509.KeyUsagesExtension).usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(ext(cert, x509.ExtendedKeyUsageExtension).usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(ext(cert, x509.AuthorityKeyIdentifierExtension).keyId).toBe(
      ext(inter, x509.SubjectKeyIdentifierExtension).keyId,
    );
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe(30 * 86_400_000);

    const nRoot = new NodeX509(root.toString('pem'));
    const nInter = new NodeX509(inter.toString('pem'));
    const nDev = new NodeX509(dev.certPem);
    expect(nDev.verify(nInter.publicKey)).toBe(true);
    expect(nDev.verify(nRoot.publicKey)).toBe(false);
    expect(nDev.checkIssued(nInter)).toBe(true);
    expect(nInter.verify(nRoot.publicKey)).toBe(true);
    expect(nInter.checkIssued(nRoot)).toBe(true);
    expect(nRoot.ca && nInter.ca && !nDev.ca).toBe(true);

    expect(mode(join(out, 'device.key'))).toBe(0o600);
    const chainFile = await readFile(join(out, 'device-chain.crt'), 'utf8');
    expect(chainFile.indexOf(dev.certPem)).toBe(0);
    expect(chainFile).toContain(inter.toString('pem'));
  });
});

describe('a root-only CA', () => {
  it('is the issuing CA (pathLen 0) and signs devices itself', async () => {
    const d = dir();
    await createCa({ dir: d });
    expect(existsSync(join(d, 'intermediate.crt'))).toBe(false);
    const ca = await loadCa(d);
    expectCaExtensions(ca.root.cert, 0);
    expect(ca.issuing).toBe(ca.root);
    const dev = await issueDevice(ca, { thingName: 'solo' }, join(d, 'dev'));
    expect(new NodeX509(dev.certPem).checkIssued(new NodeX509(ca.root.certPem))).toBe(true);
  });

  it('is never overwritten without force, and a missing CA is reported', async () => {
    const d = dir();
    await createCa({ dir: d });
    const before = await readFile(join(d, 'ca.key'), 'utf8');
    await expect(createCa({ dir: d })).rejects.toBeInstanceOf(CaExistsError);
    expect(await readFile(join(d, 'ca.key'), 'utf8')).toBe(before);
    await createCa({ dir: d, force: true });
    expect(await readFile(join(d, 'ca.key'), 'utf8')).not.toBe(before);
    await expect(loadCa(join(d, 'nothing'))).rejects.toBeInstanceOf(CaNotFoundError);
  });
});

describe('the verification certificate', () => {
  it('has CN = registration code, a fresh key and a signature by the CA key', async () => {
    const d = dir();
    await createCa({ dir: d, intermediate: true });
    const ca = await loadCa(d);
    const pem = await createVerificationCertificate(ca.issuing, 'f3a1b2c4d5e6f708');
    const cert = new x509.X509Certificate(pem);
    expect(cert.subject).toBe('CN=f3a1b2c4d5e6f708');
    expect(cert.issuer).toBe(ca.issuing.cert.subject);
    expect(await cert.verify({ publicKey: ca.issuing.cert, signatureOnly: true })).toBe(true);
    const n = new NodeX509(pem);
    expect(n.verify(new NodeX509(ca.issuing.certPem).publicKey)).toBe(true);
    expect(n.publicKey.equals(new NodeX509(ca.issuing.certPem).publicKey)).toBe(false);
  });
});

describe('signing a CSR made on the device', () => {
  it('issues for the CSR key with CN = thing name and writes no key', async () => {
    const d = dir();
    await createCa({ dir: d, intermediate: true });
    const ca = await loadCa(d);
    const { csrPem, keyPem } = await createCsr('line-3-cam');
    const out = join(d, 'dev');
    const dev = await issueDevice(ca, { csrPem }, out);
    expect(dev.thingName).toBe('line-3-cam');
    expect(dev.keyPem).toBeUndefined();
    expect(existsSync(join(out, 'device.key'))).toBe(false);
    const n = new NodeX509(dev.certPem);
    expect(n.subject).toBe('CN=line-3-cam');
    expect(n.checkIssued(new NodeX509(ca.issuing.certPem))).toBe(true);
    expect(n.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
  });

  it('rejects a CSR whose signature does not verify, and one without a thing-name CN', async () => {
    const d = dir();
    await createCa({ dir: d });
    const ca = await loadCa(d);
    const { csrPem } = await createCsr('good-name');
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const der = new Uint8Array(csr.rawData);
    der[der.length - 3] = der[der.length - 3]! ^ 0xff;
    const tampered = x509.PemConverter.encode(der.buffer, 'CERTIFICATE REQUEST');
    await expect(issueDevice(ca, { csrPem: tampered }, join(d, 'x'))).rejects.toBeInstanceOf(InvalidCsrError);
    const bad = await createCsr('not a thing name!');
    await expect(issueDevice(ca, { csrPem: bad.csrPem }, join(d, 'y'))).rejects.toThrow(/not a thing name/);
    await expect(issueDevice(ca, { csrPem: 'garbage' }, join(d, 'z'))).rejects.toBeInstanceOf(
      InvalidCsrError,
    );
  });
});

describe('revocation', () => {
  it('records the serial in revoked.json and a CRL signed by the issuing CA, once', async () => {
    const d = dir();
    await createCa({ dir: d, intermediate: true });
    const ca = await loadCa(d);
    const dev = await issueDevice(ca, { thingName: 'lost-1' }, join(d, 'dev'));
    const r = await revokeCertificate(ca, dev.certPem, 'keyCompromise');
    expect(r.added).toBe(true);
    expect(r.entry).toMatchObject({
      serialNumber: dev.serialNumber.toLowerCase(),
      subject: 'CN=lost-1',
      certificateId: certificateId(dev.certPem),
      reason: 'keyCompromise',
    });
    expect((await readRevocationList(d))?.revoked).toHaveLength(1);
    expect((await revokeCertificate(ca, dev.certPem)).added).toBe(false);
    expect((await readRevocationList(d))?.revoked).toHaveLength(1);

    const crlPem = await readFile(join(d, 'crl.pem'), 'utf8');
    expect(crlPem).toMatch(/^-----BEGIN X509 CRL-----/);
    const crl = new x509.X509Crl(crlPem);
    expect(crl.issuer).toBe(ca.issuing.cert.subject);
    expect(await crl.verify({ publicKey: ca.issuing.cert })).toBe(true);
    const entry = crl.findRevoked(new x509.X509Certificate(dev.certPem));
    expect(entry?.reason).toBe(x509.X509CrlReason.keyCompromise);

    const other = await issueDevice(ca, { thingName: 'lost-2' }, join(d, 'dev2'));
    await revokeCertificate(ca, other.certPem);
    expect((await readRevocationList(d))?.revoked.map((e) => e.subject)).toEqual(['CN=lost-1', 'CN=lost-2']);
    expect(new x509.X509Crl(await readFile(join(d, 'crl.pem'), 'utf8')).entries).toHaveLength(2);
  });

  it('refuses a certificate another CA issued', async () => {
    const a = dir();
    const b = dir();
    await createCa({ dir: a });
    await createCa({ dir: b });
    const dev = await issueDevice(await loadCa(b), { thingName: 'foreign' }, join(b, 'dev'));
    await expect(revokeCertificate(await loadCa(a), dev.certPem)).rejects.toBeInstanceOf(NotIssuedByCaError);
  });
});
