/**
 * JITR activation against the local cloud: an installer's CA registered with auto-registration (through
 * `@aws-sdk/client-iot`), device certificates registered as PENDING_ACTIVATION as the broker registers
 * them, the allow-list and CRL documents in the results bucket, and the unchanged activation function run
 * by the local function registry with its execution role's session (so the IoT control plane and S3
 * authorize it as IAM would). The last test goes through MQTT: the event on
 * `$aws/events/certificates/registered/{caCertificateId}` makes the rule `edgefleet_jitr` run it.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CreatePolicyCommand,
  DeleteCertificateCommand,
  DeletePolicyCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  GetPolicyCommand,
  GetRegistrationCodeCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  RegisterCACertificateCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type CaDir, createCa, createVerificationCertificate, loadCa } from '../../certs-tooling/ca.js';
import { createCrl, crlToPem, revokeCertificate } from '../../certs-tooling/crl.js';
import { issueDevice } from '../../certs-tooling/device.js';
import type { LambdaContext } from '../../cloud/functions/index.js';
import type { JitrActivationResult } from '../../cloud/functions/jitr-activation/handler.js';
import type { CertificateRecord } from '../../cloud/local/registry.js';
import {
  JITR_ACTIVATION_FUNCTION_NAME,
  JITR_ACTIVATION_ROLE_NAME,
  JITR_ALLOW_LIST_KEY,
  type JitrAllowList,
  type JitrEvent,
  jitrCrlKey,
  jitrEventTopic,
} from '../../cloud/rules/jitr.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../../cloud/rules/policies.js';
import { LOCAL_RESULTS_BUCKET } from '../../cloud/rules/resources.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

let tc: TestCloud;
let iot: IoTClient;
let s3: S3Client;
let work: string;
let ca: CaDir;
let caId: string;

const context: LambdaContext = {
  functionName: JITR_ACTIVATION_FUNCTION_NAME,
  functionVersion: '$LATEST',
  invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${JITR_ACTIVATION_FUNCTION_NAME}`,
  memoryLimitInMB: '256',
  awsRequestId: 'test',
  logGroupName: `/aws/lambda/${JITR_ACTIVATION_FUNCTION_NAME}`,
  logStreamName: 'test',
  getRemainingTimeInMillis: () => 30_000,
};

beforeAll(async () => {
  tc = await startTestCloud();
  iot = new IoTClient(tc.cloud.sdkConfig());
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  work = tempDir('edgefleet-jitr-');
  await createCa({ dir: join(work, 'ca'), commonName: 'plant-a factory CA' });
  ca = await loadCa(join(work, 'ca'));
  const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
  const registered = await iot.send(
    new RegisterCACertificateCommand({
      caCertificate: ca.issuing.certPem,
      verificationCertificate: await createVerificationCertificate(ca.issuing, registrationCode!),
      setAsActive: true,
      allowAutoRegistration: true,
    }),
  );
  caId = registered.certificateId!;
}, 60_000);

afterAll(async () => {
  iot?.destroy();
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
  if (work) removeDir(work);
});

async function putObject(key: string, body: string | undefined): Promise<void> {
  if (body === undefined) {
    await s3.send(new DeleteObjectCommand({ Bucket: LOCAL_RESULTS_BUCKET, Key: key }));
    return;
  }
  await s3.send(new PutObjectCommand({ Bucket: LOCAL_RESULTS_BUCKET, Key: key, Body: body }));
}

const publishAllowList = (doc: JitrAllowList | undefined) =>
  putObject(JITR_ALLOW_LIST_KEY, doc === undefined ? undefined : JSON.stringify(doc));
const publishCrl = (pem: string | undefined) => putObject(jitrCrlKey(caId), pem);

/** A device certificate from the CA, registered as the broker registers it on a first connection. */
async function pendingDevice(thingName: string, days = 365) {
  const issued = await issueDevice(ca, { thingName }, join(work, 'devices', randomUUID()), days);
  const record = tc.cloud.registry.registerCertificate(issued.certPem, 'PENDING_ACTIVATION', caId);
  return { ...issued, record };
}

function jitrEvent(record: CertificateRecord): JitrEvent {
  return {
    certificateId: record.certificateId,
    caCertificateId: caId,
    timestamp: Date.now(),
    certificateStatus: 'PENDING_ACTIVATION',
    awsAccountId: tc.cloud.options.accountId,
    certificateRegistrationTimestamp: Date.parse(record.creationDate),
  };
}

async function invoke(event: unknown): Promise<JitrActivationResult> {
  const handler = tc.cloud.functions.get(JITR_ACTIVATION_FUNCTION_NAME);
  if (!handler) throw new Error(`no handler ${JITR_ACTIVATION_FUNCTION_NAME}`);
  return (await handler(event, context)) as JitrActivationResult;
}

async function statusOf(certificateId: string): Promise<string | undefined> {
  const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
  return out.certificateDescription?.status;
}

describe('the activation function', () => {
  it('activates an allow-listed CN: thing, device policy (created when missing), attachments, ACTIVE', async () => {
    await publishAllowList({ version: 1, cnPattern: 'press-[0-9]+' });
    await publishCrl(undefined);
    // The function creates the device policy from the single-source document when it does not exist.
    await iot.send(new DeletePolicyCommand({ policyName: DEVICE_POLICY_NAME }));
    const dev = await pendingDevice('press-1');

    const result = await invoke(jitrEvent(dev.record));

    expect(result).toEqual({
      status: 'activated',
      certificateId: dev.record.certificateId,
      thingName: 'press-1',
    });
    expect(await statusOf(dev.record.certificateId)).toBe('ACTIVE');
    const thing = await iot.send(new DescribeThingCommand({ thingName: 'press-1' }));
    expect(thing.thingName).toBe('press-1');
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'press-1' }));
    expect(principals.principals).toEqual([dev.record.certificateArn]);
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: dev.record.certificateArn }));
    expect(attached.policies?.map((p) => p.policyName)).toEqual([DEVICE_POLICY_NAME]);
    const policy = await iot.send(new GetPolicyCommand({ policyName: DEVICE_POLICY_NAME }));
    expect(JSON.parse(policy.policyDocument!)).toEqual(
      devicePolicyDocument(tc.cloud.options.region, tc.cloud.options.accountId),
    );

    // The broker publishes the event again on each attempt while pending: a repeat changes nothing.
    const again = await invoke(jitrEvent(dev.record));
    expect(again).toMatchObject({ status: 'ignored', reason: 'the certificate is ACTIVE' });
    expect(await statusOf(dev.record.certificateId)).toBe('ACTIVE');
  });

  it('handles concurrent duplicates of one event: one outcome, the certificate ACTIVE', async () => {
    await publishAllowList({ version: 1, cnPattern: 'press-[0-9]+' });
    const dev = await pendingDevice('press-2');
    const results = await Promise.all([1, 2, 3].map(() => invoke(jitrEvent(dev.record))));
    expect(results.filter((r) => r.status === 'revoked')).toEqual([]);
    expect(results.some((r) => r.status === 'activated')).toBe(true);
    expect(await statusOf(dev.record.certificateId)).toBe('ACTIVE');
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'press-2' }));
    expect(principals.principals).toEqual([dev.record.certificateArn]);
  });

  it('revokes a CN outside the allow-list (the pattern is anchored)', async () => {
    await publishAllowList({ version: 1, cnPattern: 'press-[0-9]+' });
    const dev = await pendingDevice('press-1x');
    const result = await invoke(jitrEvent(dev.record));
    expect(result).toMatchObject({ status: 'revoked', certificateId: dev.record.certificateId });
    expect(result.status === 'revoked' && result.reason).toMatch(/neither the CN 'press-1x' nor the serial/);
    expect(await statusOf(dev.record.certificateId)).toBe('REVOKED');
    await expect(iot.send(new DescribeThingCommand({ thingName: 'press-1x' }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
  });

  it('activates a certificate whose serial is allow-listed (any case, leading zeros)', async () => {
    const dev = await pendingDevice('cam-7');
    await publishAllowList({
      version: 1,
      cnPattern: 'press-[0-9]+',
      serials: ['abcdef', `00${dev.serialNumber.toUpperCase()}`],
    });
    const result = await invoke(jitrEvent(dev.record));
    expect(result).toEqual({
      status: 'activated',
      certificateId: dev.record.certificateId,
      thingName: 'cam-7',
    });
    expect(await statusOf(dev.record.certificateId)).toBe('ACTIVE');
  });

  it("revokes a certificate whose serial is on the CA's CRL, even when allow-listed", async () => {
    const dev = await pendingDevice('press-3');
    const revoked = await revokeCertificate(ca, dev.certPem, 'keyCompromise');
    await publishCrl(await readFile(revoked.files.crl, 'utf8'));
    await publishAllowList({ version: 1, cnPattern: 'press-[0-9]+', serials: [dev.serialNumber] });
    const result = await invoke(jitrEvent(dev.record));
    expect(result).toMatchObject({ status: 'revoked', thingName: 'press-3' });
    expect(result.status === 'revoked' && result.reason).toMatch(/certificate revocation list/);
    expect(await statusOf(dev.record.certificateId)).toBe('REVOKED');

    // Certificates not on that CRL still join.
    const other = await pendingDevice('press-4');
    expect(await invoke(jitrEvent(other.record))).toMatchObject({ status: 'activated' });
  });

  it('revokes when the CRL is not signed by the CA (fail closed)', async () => {
    await publishAllowList({ version: 1, cnPattern: 'press-[0-9]+' });
    // Same name, another key: only the signature tells them apart.
    await createCa({ dir: join(work, 'impostor'), commonName: 'plant-a factory CA' });
    const impostor = await loadCa(join(work, 'impostor'));
    await publishCrl(
      crlToPem(await createCrl(impostor, { issuer: impostor.issuing.cert.subject, revoked: [] })),
    );
    const dev = await pendingDevice('press-5');
    const result = await invoke(jitrEvent(dev.record));
    expect(result).toMatchObject({ status: 'revoked' });
    expect(result.status === 'revoked' && result.reason).toMatch(/CRL signature does not verify/);
    expect(await statusOf(dev.record.certificateId)).toBe('REVOKED');

    await publishCrl('-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n');
    const garbled = await pendingDevice('press-6');
    const out = await invoke(jitrEvent(garbled.record));
    expect(out.status === 'revoked' && out.reason).toMatch(/not an X\.509 CRL/);
    await publishCrl(undefined);
  });

  it('revokes when there is no allow-list, or an invalid one (fail closed)', async () => {
    await publishAllowList(undefined);
    const dev = await pendingDevice('press-7');
    const result = await invoke(jitrEvent(dev.record));
    expect(result).toMatchObject({ status: 'revoked' });
    expect(result.status === 'revoked' && result.reason).toMatch(/no allow-list/);
    expect(await statusOf(dev.record.certificateId)).toBe('REVOKED');

    await putObject(JITR_ALLOW_LIST_KEY, JSON.stringify({ version: 2, cnPattern: '.*' }));
    const other = await pendingDevice('press-8');
    const out = await invoke(jitrEvent(other.record));
    expect(out.status === 'revoked' && out.reason).toMatch(/allow-list .* is invalid: version/);
  });

  it('revokes an expired certificate', async () => {
    await publishAllowList({ version: 1, cnPattern: 'press-[0-9]+' });
    const dev = await pendingDevice('press-9', 0);
    const result = await invoke(jitrEvent(dev.record));
    expect(result).toMatchObject({ status: 'revoked' });
    expect(result.status === 'revoked' && result.reason).toMatch(/expired/);
    expect(await statusOf(dev.record.certificateId)).toBe('REVOKED');
  });

  it('ignores malformed events and certificates that are not pending', async () => {
    expect(await invoke({ hello: 'world' })).toMatchObject({ status: 'ignored' });
    expect(await invoke(null)).toMatchObject({ status: 'ignored' });
    const dev = await pendingDevice('press-10');
    const bad = { ...jitrEvent(dev.record), certificateStatus: 'ACTIVE' };
    expect(await invoke(bad)).toMatchObject({
      status: 'ignored',
      certificateId: dev.record.certificateId,
      reason: expect.stringMatching(/certificateStatus/),
    });
    expect(await statusOf(dev.record.certificateId)).toBe('PENDING_ACTIVATION');
    // Deactivated by an operator in the meantime: left as it is.
    await iot.send(
      new UpdateCertificateCommand({ certificateId: dev.record.certificateId, newStatus: 'INACTIVE' }),
    );
    expect(await invoke(jitrEvent(dev.record))).toMatchObject({ status: 'ignored' });
    expect(await statusOf(dev.record.certificateId)).toBe('INACTIVE');
    // An id that is not registered.
    const unknown = { ...jitrEvent(dev.record), certificateId: 'f'.repeat(64) };
    expect(await invoke(unknown)).toMatchObject({
      status: 'ignored',
      reason: 'the certificate does not exist',
    });
  });
});

describe("the function's role on the IoT control plane", () => {
  it('may do what jitrActivationRolePolicy allows and nothing else', async () => {
    const session = tc.cloud.iam.issueRoleSession(JITR_ACTIVATION_ROLE_NAME, 'probe');
    const asRole = new IoTClient({
      ...tc.cloud.sdkConfig(),
      credentials: {
        accessKeyId: session.accessKeyId,
        secretAccessKey: session.secretAccessKey,
        ...(session.sessionToken ? { sessionToken: session.sessionToken } : {}),
      },
    });
    try {
      const dev = await pendingDevice('probe-1');
      const described = await asRole.send(
        new DescribeCertificateCommand({ certificateId: dev.record.certificateId }),
      );
      expect(described.certificateDescription?.status).toBe('PENDING_ACTIVATION');
      await asRole.send(new GetPolicyCommand({ policyName: DEVICE_POLICY_NAME }));
      const denied = { name: 'AccessDeniedException', $metadata: { httpStatusCode: 403 } };
      await expect(asRole.send(new DescribeThingCommand({ thingName: 'press-1' }))).rejects.toMatchObject(
        denied,
      );
      await expect(
        asRole.send(new DeleteCertificateCommand({ certificateId: dev.record.certificateId })),
      ).rejects.toMatchObject(denied);
      await expect(
        asRole.send(new CreatePolicyCommand({ policyName: 'anything-goes', policyDocument: '{}' })),
      ).rejects.toMatchObject(denied);
      await expect(asRole.send(new ListThingsCommand({}))).rejects.toMatchObject(denied);
      expect(await statusOf(dev.record.certificateId)).toBe('PENDING_ACTIVATION');
    } finally {
      asRole.destroy();
    }
  });
});

describe('the rule edgefleet_jitr', () => {
  it('runs the function for an event published on $aws/events/certificates/registered/{caId}', async () => {
    await publishAllowList({ version: 1, cnPattern: 'gw-[a-z0-9-]+' });
    const dev = await pendingDevice('gw-rule-1');
    const active = new Promise<CertificateRecord>((resolve, reject) => {
      const timer = setTimeout(() => {
        tc.cloud.registry.off('certificateStatusChanged', on);
        reject(new Error('the certificate did not become ACTIVE within 15 s'));
      }, 15_000);
      const on = (c: CertificateRecord) => {
        if (c.certificateId !== dev.record.certificateId || c.status !== 'ACTIVE') return;
        clearTimeout(timer);
        tc.cloud.registry.off('certificateStatusChanged', on);
        resolve(c);
      };
      tc.cloud.registry.on('certificateStatusChanged', on);
    });
    await tc.cloud.broker.publish(jitrEventTopic(caId), JSON.stringify(jitrEvent(dev.record)), 1);
    await active;
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'gw-rule-1' }));
    expect(principals.principals).toEqual([dev.record.certificateArn]);
  });
});
