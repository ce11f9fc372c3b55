import { X509Certificate } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DescribeCACertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { certificateId, createCsr } from '../../certs-tooling/x509.js';
import { runCli, SPAWNING_TEST_MS } from '../helpers/cli.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

let work: string;
let tc: TestCloud;
beforeAll(async () => {
  work = tempDir('edgefleet-certs-cli-');
  tc = await startTestCloud();
});
afterAll(async () => {
  await tc?.stop();
  removeDir(work);
  if (tc) removeDir(tc.dataDir);
});

it(
  'ca create, device issue (new key and CSR), revoke',
  async () => {
    const ca = join(work, 'ca');
    const created = await runCli([
      'certs',
      'ca',
      'create',
      '--out',
      ca,
      '--cn',
      'Plant CA',
      '--intermediate',
    ]);
    expect(created).toMatchObject({ code: 0 });
    expect(created.out).toMatch(/created root and intermediate CA \(ec-p256\)/);
    expect(statSync(join(ca, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(ca, 'intermediate.key')).mode & 0o777).toBe(0o600);

    const again = await runCli(['certs', 'ca', 'create', '--out', ca]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/--force/);

    const dev = join(work, 'dev');
    const issued = await runCli(['certs', 'device', 'issue', '--ca', ca, '--thing', 'press-1', '--out', dev]);
    expect(issued).toMatchObject({ code: 0 });
    expect(issued.out).toMatch(/issued device certificate for thing press-1/);
    expect(statSync(join(dev, 'device.key')).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(dev, 'device.crt'), 'utf8'));
    const inter = new X509Certificate(await readFile(join(ca, 'intermediate.crt'), 'utf8'));
    expect(cert.subject).toBe('CN=press-1');
    expect(cert.verify(inter.publicKey)).toBe(true);
    expect(await readFile(join(dev, 'device-chain.crt'), 'utf8')).toContain(inter.toString().trim());

    const { csrPem } = await createCsr('cam-9');
    const csrFile = join(work, 'cam-9.csr');
    await writeFile(csrFile, csrPem);
    const fromCsr = join(work, 'cam');
    const signed = await runCli(['certs', 'device', 'issue', '--ca', ca, '--csr', csrFile, '--out', fromCsr]);
    expect(signed).toMatchObject({ code: 0 });
    expect(existsSync(join(fromCsr, 'device.key'))).toBe(false);
    expect(new X509Certificate(await readFile(join(fromCsr, 'device.crt'), 'utf8')).subject).toBe('CN=cam-9');

    const revoked = await runCli([
      'certs',
      'device',
      'revoke',
      '--ca',
      ca,
      '--cert',
      join(dev, 'device.crt'),
      '--reason',
      'keyCompromise',
    ]);
    expect(revoked).toMatchObject({ code: 0 });
    expect(revoked.out).toMatch(/revoked CN=press-1/);
    expect(revoked.out).toContain(cert.serialNumber.toLowerCase());
    const list = JSON.parse(await readFile(join(ca, 'revoked.json'), 'utf8')) as { revoked: unknown[] };
    expect(list.revoked).toHaveLength(1);
  },
  SPAWNING_TEST_MS,
);

it(
  'rejects bad flags naming the flag, with exit 2',
  async () => {
    const ca = join(work, 'ca-flags');
    const keyType = await runCli(['certs', 'ca', 'create', '--out', ca, '--key-type', 'dsa']);
    expect(keyType.code).toBe(2);
    expect(keyType.err).toMatch(/--key-type/);
    expect((await runCli(['certs', 'ca', 'create', '--out', ca])).code).toBe(0);
    const both = await runCli(['certs', 'device', 'issue', '--ca', ca, '--out', join(work, 'x')]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/--thing/);
    const name = await runCli(['certs', 'device', 'issue', '--ca', ca, '--thing', 'bad name', '--out', work]);
    expect(name.code).toBe(2);
    expect(name.err).toMatch(/--thing/);
    const days = await runCli([
      'certs',
      'device',
      'issue',
      '--ca',
      ca,
      '--thing',
      't',
      '--days',
      '0',
      '--out',
      work,
    ]);
    expect(days.code).toBe(2);
    expect(days.err).toMatch(/--days/);
    const target = await runCli(['certs', 'ca', 'register', '--ca', ca]);
    expect(target.code).toBe(2);
    expect(target.err).toMatch(/--local/);
    const reason = await runCli([
      'certs',
      'device',
      'revoke',
      '--ca',
      ca,
      '--cert',
      'x.crt',
      '--reason',
      'bored',
    ]);
    expect(reason.code).toBe(2);
    expect(reason.err).toMatch(/--reason/);
  },
  SPAWNING_TEST_MS,
);

it(
  'ca register --local registers the issuing CA as ACTIVE with auto-registration',
  async () => {
    const ca = join(work, 'ca-reg');
    expect((await runCli(['certs', 'ca', 'create', '--out', ca, '--intermediate'])).code).toBe(0);
    const reg = await runCli([
      'certs',
      'ca',
      'register',
      '--ca',
      ca,
      '--local',
      '--auto-registration',
      '--data-dir',
      tc.dataDir,
    ]);
    expect(reg.err).toBe('');
    expect(reg.code).toBe(0);
    const id = /certificate id\s+([0-9a-f]{64})/.exec(reg.out)?.[1];
    expect(id).toBe(certificateId(await readFile(join(ca, 'intermediate.crt'), 'utf8')));
    expect(reg.out).toMatch(/certificate ARN\s+arn:aws:iot:us-east-1:\d{12}:cacert\//);

    const iot = new IoTClient(tc.cloud.sdkConfig());
    try {
      const d = await iot.send(new DescribeCACertificateCommand({ certificateId: id }));
      expect(d.certificateDescription).toMatchObject({
        certificateId: id,
        status: 'ACTIVE',
        autoRegistrationStatus: 'ENABLE',
      });
    } finally {
      iot.destroy();
    }

    const dup = await runCli(['certs', 'ca', 'register', '--ca', ca, '--local', '--data-dir', tc.dataDir]);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/ResourceAlreadyExistsException/);

    const none = await runCli([
      'certs',
      'ca',
      'register',
      '--ca',
      ca,
      '--local',
      '--data-dir',
      join(work, 'nope'),
    ]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no local cloud is running/);
  },
  SPAWNING_TEST_MS,
);
