/**
 * The JITR activation decision (cloud/functions/jitr-activation/certificates.ts): serial normalization,
 * the anchored CN pattern, validity, the CRL (issuer and signature) and thing names.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type CaDir, createCa, loadCa } from '../../certs-tooling/ca.js';
import { createCrl, crlToPem } from '../../certs-tooling/crl.js';
import { issueDevice } from '../../certs-tooling/device.js';
import {
  anchoredPattern,
  type DeviceCertificate,
  decide,
  issuedBy,
  JitrRefusal,
  normalizeSerial,
  parsePem,
  readCrl,
  readDeviceCertificate,
} from '../../cloud/functions/jitr-activation/certificates.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const DAY = 86_400_000;
const noCrl = { serials: new Set<string>(), thisUpdate: new Date() };

let work: string;
let ca: CaDir;
let other: CaDir;

beforeAll(async () => {
  work = tempDir('edgefleet-jitr-decision-');
  await createCa({ dir: join(work, 'ca'), commonName: 'Line CA' });
  await createCa({ dir: join(work, 'other'), commonName: 'Other CA' });
  ca = await loadCa(join(work, 'ca'));
  other = await loadCa(join(work, 'other'));
});

afterAll(() => removeDir(work));

const device = (over: Partial<DeviceCertificate>): DeviceCertificate => ({
  cert: undefined as never,
  commonName: 'gw-1',
  serial: 'ab',
  notBefore: new Date(Date.now() - DAY),
  notAfter: new Date(Date.now() + DAY),
  ...over,
});

describe('serial numbers and patterns', () => {
  it('compares serials as lower-case hex without separators or leading zeros', () => {
    expect(normalizeSerial('00AB:cd')).toBe('abcd');
    expect(normalizeSerial('000')).toBe('0');
    expect(normalizeSerial('0a 0B')).toBe('a0b');
  });

  it('anchors the CN pattern, alternations included', () => {
    expect(anchoredPattern('gw-[0-9]').test('gw-1')).toBe(true);
    expect(anchoredPattern('gw-[0-9]').test('gw-10')).toBe(false);
    expect(anchoredPattern('a|b').test('ab')).toBe(false);
    expect(anchoredPattern('a|b').test('b')).toBe(true);
  });
});

describe('decide', () => {
  const now = new Date();
  it('accepts an allow-listed CN or serial and names the thing after the CN', () => {
    expect(decide(device({}), { version: 1, cnPattern: 'gw-.*' }, noCrl, now)).toEqual({
      accept: true,
      thingName: 'gw-1',
    });
    expect(decide(device({}), { version: 1, serials: ['00AB'] }, noCrl, now)).toEqual({
      accept: true,
      thingName: 'gw-1',
    });
  });

  it('refuses a certificate that is not yet valid, one with no CN, and a CN that is no thing name', () => {
    const early = decide(
      device({ notBefore: new Date(now.getTime() + DAY) }),
      { version: 1, cnPattern: '.*' },
      noCrl,
      now,
    );
    expect(early).toMatchObject({ accept: false, reason: expect.stringMatching(/not valid before/) });
    const { commonName: _cn, ...nameless } = device({});
    expect(decide(nameless, { version: 1, serials: ['ab'] }, noCrl, now)).toMatchObject({
      accept: false,
      reason: expect.stringMatching(/no single CN/),
    });
    expect(decide(device({ commonName: 'gw 1' }), { version: 1, cnPattern: '.*' }, noCrl, now)).toMatchObject(
      {
        accept: false,
        reason: expect.stringMatching(/is not a thing name/),
      },
    );
  });

  it('refuses everything when the allow-list has neither a pattern nor serials', () => {
    expect(decide(device({}), { version: 1 }, noCrl, now)).toMatchObject({ accept: false });
  });
});

describe('certificates and CRLs', () => {
  it('reads CN, serial and validity, and checks the issuing CA', async () => {
    const issued = await issueDevice(ca, { thingName: 'press-9' }, join(work, 'dev'), 10);
    const d = readDeviceCertificate(issued.certPem);
    expect(d.commonName).toBe('press-9');
    expect(d.serial).toBe(normalizeSerial(issued.serialNumber));
    expect(d.notAfter.getTime() - d.notBefore.getTime()).toBe(10 * DAY);
    expect(await issuedBy(d.cert, parsePem(ca.issuing.certPem, 'CA'))).toBe(true);
    expect(await issuedBy(d.cert, parsePem(other.issuing.certPem, 'CA'))).toBe(false);
    expect(() => readDeviceCertificate('not a certificate')).toThrow(JitrRefusal);
  });

  it("accepts only a CRL issued and signed by the CA, with the entries' serials", async () => {
    const entry = {
      serialNumber: '0abc',
      subject: 'CN=x',
      certificateId: 'x',
      revokedAt: new Date().toISOString(),
      reason: 'keyCompromise' as const,
    };
    const crl = crlToPem(await createCrl(ca, { issuer: ca.issuing.cert.subject, revoked: [entry] }));
    const read = await readCrl(crl, parsePem(ca.issuing.certPem, 'CA'));
    expect([...read.serials]).toEqual(['abc']);
    expect(read.nextUpdate?.getTime()).toBeGreaterThan(Date.now());
    await expect(readCrl(crl, parsePem(other.issuing.certPem, 'CA'))).rejects.toThrow(/issued by/);
    await expect(readCrl('garbage', parsePem(ca.issuing.certPem, 'CA'))).rejects.toThrow(JitrRefusal);
  });
});
