import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { certificateId } from '../../certs-tooling/x509.js';
import type { LambdaContext } from '../../cloud/functions/index.js';
import {
  JITR_ACTIVATION_FUNCTION_NAME,
  JITR_ALLOW_LIST_KEY,
  type JitrEvent,
  jitrCrlKey,
} from '../../cloud/rules/jitr.js';
import { LOCAL_RESULTS_BUCKET } from '../../cloud/rules/resources.js';
import { runCli, SPAWNING_TEST_MS } from '../helpers/cli.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const context: LambdaContext = {
  functionName: JITR_ACTIVATION_FUNCTION_NAME,
  functionVersion: '$LATEST',
  invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${JITR_ACTIVATION_FUNCTION_NAME}`,
  memoryLimitInMB: '256',
  awsRequestId: 'e2e',
  logGroupName: `/aws/lambda/${JITR_ACTIVATION_FUNCTION_NAME}`,
  logStreamName: 'e2e',
  getRemainingTimeInMillis: () => 30_000,
};

let work: string;
let tc: TestCloud;
let s3: S3Client;
let iot: IoTClient;
beforeAll(async () => {
  work = tempDir('edgefleet-certs-jitr-cli-');
  tc = await startTestCloud();
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  iot = new IoTClient(tc.cloud.sdkConfig());
});
afterAll(async () => {
  s3?.destroy();
  iot?.destroy();
  await tc?.stop();
  removeDir(work);
  if (tc) removeDir(tc.dataDir);
});

async function getText(key: string): Promise<string> {
  const out = await s3.send(new GetObjectCommand({ Bucket: LOCAL_RESULTS_BUCKET, Key: key }));
  return (await out.Body?.transformToString('utf8')) ?? '';
}

it(
  'jitr publish --local writes the allow-list and the CRL the activation function decides with',
  async () => {
    const ca = join(work, 'ca');
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
    expect(reg).toMatchObject({ code: 0, err: '' });
    const caId = certificateId(await readFile(join(ca, 'intermediate.crt'), 'utf8'));
    const issue = async (thing: string) => {
      const dir = join(work, thing);
      expect(
        (await runCli(['certs', 'device', 'issue', '--ca', ca, '--thing', thing, '--out', dir])).code,
      ).toBe(0);
      return readFile(join(dir, 'device.crt'), 'utf8');
    };
    const kept = await issue('press-1');
    const lost = await issue('press-2');
    const revoked = await runCli([
      'certs',
      'device',
      'revoke',
      '--ca',
      ca,
      '--cert',
      join(work, 'press-2', 'device.crt'),
    ]);
    expect(revoked.code).toBe(0);

    const published = await runCli([
      'certs',
      'jitr',
      'publish',
      '--ca',
      ca,
      '--local',
      '--cn-pattern',
      'press-[0-9]+',
      '--serial',
      'ABCDEF01',
      '0c',
      '--data-dir',
      tc.dataDir,
    ]);
    expect(published.err).toBe('');
    expect(published.code).toBe(0);
    expect(published.out).toContain(`s3://${LOCAL_RESULTS_BUCKET}/${JITR_ALLOW_LIST_KEY}`);
    expect(published.out).toContain(`s3://${LOCAL_RESULTS_BUCKET}/${jitrCrlKey(caId)} (1 revoked`);
    expect(JSON.parse(await getText(JITR_ALLOW_LIST_KEY))).toEqual({
      version: 1,
      cnPattern: 'press-[0-9]+',
      serials: ['ABCDEF01', '0c'],
    });
    expect(await getText(jitrCrlKey(caId))).toBe(await readFile(join(ca, 'crl.pem'), 'utf8'));

    // The activation function reads exactly these documents.
    const handler = tc.cloud.functions.get(JITR_ACTIVATION_FUNCTION_NAME)!;
    const decide = async (pem: string) => {
      const record = tc.cloud.registry.registerCertificate(pem, 'PENDING_ACTIVATION', caId);
      const event: JitrEvent = {
        certificateId: record.certificateId,
        caCertificateId: caId,
        timestamp: Date.now(),
        certificateStatus: 'PENDING_ACTIVATION',
        awsAccountId: tc.cloud.options.accountId,
        certificateRegistrationTimestamp: Date.now(),
      };
      await handler(event, context);
      const out = await iot.send(new DescribeCertificateCommand({ certificateId: record.certificateId }));
      return out.certificateDescription?.status;
    };
    expect(await decide(kept)).toBe('ACTIVE');
    expect(await decide(lost)).toBe('REVOKED');

    // A CA without crl.pem: the allow-list is written, no CRL is uploaded.
    const fresh = join(work, 'fresh');
    expect((await runCli(['certs', 'ca', 'create', '--out', fresh])).code).toBe(0);
    const noCrl = await runCli([
      'certs',
      'jitr',
      'publish',
      '--ca',
      fresh,
      '--local',
      '--serial',
      '01',
      '--data-dir',
      tc.dataDir,
    ]);
    expect(noCrl.code).toBe(0);
    expect(noCrl.out).toMatch(/CRL\s+none: .* has no crl\.pem/);
    expect(JSON.parse(await getText(JITR_ALLOW_LIST_KEY))).toEqual({ version: 1, serials: ['01'] });
  },
  SPAWNING_TEST_MS,
);

it(
  'rejects bad flags naming the flag (exit 2), and a missing local cloud (exit 1)',
  async () => {
    const ca = join(work, 'ca-flags');
    expect((await runCli(['certs', 'ca', 'create', '--out', ca])).code).toBe(0);
    const base = ['certs', 'jitr', 'publish', '--ca', ca];
    const nothing = await runCli([...base, '--local', '--data-dir', tc.dataDir]);
    expect(nothing.code).toBe(2);
    expect(nothing.err).toMatch(/--cn-pattern\/--serial/);
    const regex = await runCli([...base, '--local', '--cn-pattern', 'press-(', '--data-dir', tc.dataDir]);
    expect(regex.code).toBe(2);
    expect(regex.err).toMatch(/invalid --cn-pattern: must be a valid regular expression/);
    const serial = await runCli([...base, '--local', '--serial', 'xyz', '--data-dir', tc.dataDir]);
    expect(serial.code).toBe(2);
    expect(serial.err).toMatch(/invalid --serial/);
    const target = await runCli([...base, '--cn-pattern', 'x']);
    expect(target.code).toBe(2);
    expect(target.err).toMatch(/--local\/--aws/);
    const bucket = await runCli([...base, '--aws', '--cn-pattern', 'x']);
    expect(bucket.code).toBe(2);
    expect(bucket.err).toMatch(/--results-bucket: is required with --aws/);
    const none = await runCli([...base, '--local', '--cn-pattern', 'x', '--data-dir', join(work, 'nope')]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no local cloud is running/);

    // A crl.pem that another CA signed is not published (the function would refuse every device).
    const otherCa = join(work, 'ca-other');
    expect((await runCli(['certs', 'ca', 'create', '--out', otherCa])).code).toBe(0);
    const dev = join(work, 'other-dev');
    expect(
      (await runCli(['certs', 'device', 'issue', '--ca', otherCa, '--thing', 'x-1', '--out', dev])).code,
    ).toBe(0);
    expect(
      (await runCli(['certs', 'device', 'revoke', '--ca', otherCa, '--cert', join(dev, 'device.crt')])).code,
    ).toBe(0);
    await copyFile(join(otherCa, 'crl.pem'), join(ca, 'crl.pem'));
    const foreign = await runCli([...base, '--local', '--cn-pattern', 'x', '--data-dir', tc.dataDir]);
    expect(foreign.code).toBe(1);
    expect(foreign.err).toMatch(/crl\.pem is not signed by the issuing CA/);
  },
  SPAWNING_TEST_MS,
);
