/**
 * JITR activation. The rule `edgefleet_jitr` passes every message AWS IoT publishes on
 * `$aws/events/certificates/registered/{caCertificateId}` (a device certificate signed by a registered CA
 * was just registered as PENDING_ACTIVATION). For each the function:
 *
 * 1. describes the certificate; one that is no longer PENDING_ACTIVATION is left alone (AWS IoT publishes
 *    the event again on each connection attempt while it is pending, so duplicates are expected);
 * 2. reads the certificate (CN, serial, validity) and checks that its CA signed it;
 * 3. reads the installers' allow-list (`JITR_ALLOW_LIST_KEY` in the results bucket; none: refuse) and
 *    the CA's CRL (`jitrCrlKey(caCertificateId)`; none: nothing is revoked; one the CA did not sign:
 *    refuse);
 * 4. accepts the certificate when its CN matches the anchored `cnPattern` or its serial is listed, its
 *    serial is not on the CRL and it is within its validity: creates the thing (name = CN), creates the
 *    device policy if it is missing, attaches the policy to the certificate and the certificate to the
 *    thing, and only then activates the certificate, so that the device never connects half-provisioned;
 * 5. otherwise revokes the certificate, with the reason logged.
 *
 * Every step is idempotent, so concurrent and repeated events are harmless. A malformed event is logged
 * and ignored (a retry could not change it); a service error fails the invocation, and the device's next
 * attempt publishes the event again.
 */
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  type CertificateDescription,
  CreatePolicyCommand,
  CreateThingCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  GetPolicyCommand,
  IoTClient,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  JITR_ACTIVATION_FUNCTION_NAME,
  JITR_ACTIVATION_ROLE_NAME,
  JITR_ALLOW_LIST_KEY,
  type JitrAllowList,
  JitrAllowListSchema,
  type JitrEvent,
  JitrEventSchema,
  jitrCrlKey,
} from '../../rules/jitr.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../../rules/policies.js';
import type { Handler } from '../index.js';
import { type FunctionDefinition, type FunctionRuntime, requireEnv } from '../runtime.js';
import {
  decide,
  issuedBy,
  JitrRefusal,
  parsePem,
  type RevocationList,
  readCrl,
  readDeviceCertificate,
} from './certificates.js';

export type JitrActivationResult =
  | { status: 'activated'; certificateId: string; thingName: string }
  | { status: 'revoked'; certificateId: string; reason: string; thingName?: string }
  | { status: 'ignored'; certificateId?: string; reason: string };

const errorName = (err: unknown): string | undefined => (err as { name?: string }).name;

/** S3 answers a missing key with NoSuchKey, or AccessDenied when the caller may not list the bucket. */
const isMissingObject = (err: unknown) => errorName(err) === 'NoSuchKey' || errorName(err) === 'AccessDenied';

/** The account of an IoT ARN (`arn:PARTITION:iot:REGION:ACCOUNT:...`). */
const accountOf = (arn: string | undefined): string | undefined =>
  /^arn:[^:]+:iot:[^:]*:(\d{12}):/.exec(arn ?? '')?.[1];

export function createJitrActivationHandler(runtime: FunctionRuntime): Handler {
  const resultsBucket = requireEnv(runtime, 'RESULTS_BUCKET');
  const devicePolicyName = runtime.env.DEVICE_POLICY_NAME || DEVICE_POLICY_NAME;
  const base = { region: runtime.region, ...runtime.clientConfig };
  const iot = new IoTClient(base);
  const s3 = new S3Client({
    ...base,
    ...(runtime.env.S3_FORCE_PATH_STYLE === 'true' ? { forcePathStyle: true } : {}),
  });
  const log = runtime.logger;

  /** The object's text, or undefined when it does not exist (or may not be read). */
  async function readObject(key: string): Promise<string | undefined> {
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: resultsBucket, Key: key }));
      return (await out.Body?.transformToString('utf8')) ?? '';
    } catch (err) {
      if (isMissingObject(err)) return undefined;
      throw err;
    }
  }

  async function readAllowList(): Promise<JitrAllowList> {
    const where = `s3://${resultsBucket}/${JITR_ALLOW_LIST_KEY}`;
    const text = await readObject(JITR_ALLOW_LIST_KEY);
    if (text === undefined) throw new JitrRefusal(`no allow-list at ${where} (or it may not be read)`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new JitrRefusal(`the allow-list ${where} is not JSON`);
    }
    const parsed = JitrAllowListSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new JitrRefusal(
        `the allow-list ${where} is invalid: ${issue.path.join('.') || '(document)'}: ${issue.message}`,
      );
    }
    return parsed.data;
  }

  async function readRevocations(
    caCertificateId: string,
    ca: Parameters<typeof readCrl>[1],
    now: Date,
  ): Promise<RevocationList> {
    const key = jitrCrlKey(caCertificateId);
    const text = await readObject(key);
    if (text === undefined) {
      log.warn(
        { caCertificateId, key },
        `no CRL at s3://${resultsBucket}/${key} (or it may not be read): no certificate of this CA is taken as revoked`,
      );
      return { serials: new Set(), thisUpdate: now };
    }
    const crl = await readCrl(text, ca);
    if (crl.nextUpdate && crl.nextUpdate < now) {
      log.warn(
        { caCertificateId, key, nextUpdate: crl.nextUpdate.toISOString() },
        'the CRL is past its next update; its entries still apply, publish a fresh one',
      );
    }
    return crl;
  }

  /** The device policy, created from the single-source document when it does not exist yet. */
  async function ensureDevicePolicy(account: string): Promise<void> {
    try {
      await iot.send(new GetPolicyCommand({ policyName: devicePolicyName }));
      return;
    } catch (err) {
      if (errorName(err) !== 'ResourceNotFoundException') throw err;
    }
    try {
      await iot.send(
        new CreatePolicyCommand({
          policyName: devicePolicyName,
          policyDocument: JSON.stringify(devicePolicyDocument(runtime.region, account)),
        }),
      );
      log.info({ policyName: devicePolicyName }, 'device policy created');
    } catch (err) {
      // Another invocation created it in the meantime.
      if (errorName(err) !== 'ResourceAlreadyExistsException') throw err;
    }
  }

  async function activate(
    event: JitrEvent,
    certificateArn: string,
    thingName: string,
  ): Promise<JitrActivationResult> {
    const { certificateId } = event;
    try {
      await iot.send(new CreateThingCommand({ thingName }));
    } catch (err) {
      // The thing exists (made by an earlier attempt, or provisioned with attributes): it is reused.
      if (errorName(err) !== 'ResourceAlreadyExistsException') throw err;
    }
    await ensureDevicePolicy(accountOf(certificateArn) ?? event.awsAccountId);
    await iot.send(new AttachPolicyCommand({ policyName: devicePolicyName, target: certificateArn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName, principal: certificateArn }));
    try {
      await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' }));
    } catch (err) {
      // Revoked (or being transferred) since it was described: nothing to activate any more.
      if (errorName(err) !== 'CertificateStateException') throw err;
      const reason = `the certificate cannot be activated any more: ${(err as Error).message}`;
      log.warn({ certificateId, thingName, reason }, 'certificate not activated');
      return { status: 'ignored', certificateId, reason };
    }
    log.info({ certificateId, thingName, policyName: devicePolicyName }, 'certificate activated');
    return { status: 'activated', certificateId, thingName };
  }

  async function revoke(
    certificateId: string,
    reason: string,
    thingName?: string,
  ): Promise<JitrActivationResult> {
    try {
      await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'REVOKED' }));
    } catch (err) {
      if (errorName(err) !== 'CertificateStateException') throw err;
      log.warn({ certificateId, reason, error: (err as Error).message }, 'certificate could not be revoked');
      return { status: 'ignored', certificateId, reason: `not revoked: ${(err as Error).message}` };
    }
    log.warn({ certificateId, thingName, reason }, 'certificate revoked');
    return { status: 'revoked', certificateId, reason, ...(thingName !== undefined ? { thingName } : {}) };
  }

  return async (input): Promise<JitrActivationResult> => {
    const parsed = JitrEventSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const reason = `not a JITR event: ${issue.path.join('.') || '(event)'}: ${issue.message}`;
      const raw = (input ?? {}) as { certificateId?: unknown };
      const certificateId = typeof raw.certificateId === 'string' ? raw.certificateId : undefined;
      log.warn({ certificateId, reason }, 'event ignored');
      return { status: 'ignored', ...(certificateId !== undefined ? { certificateId } : {}), reason };
    }
    const event = parsed.data;
    const { certificateId } = event;

    let description: CertificateDescription;
    try {
      const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
      if (!out.certificateDescription) throw new Error('DescribeCertificate returned no description');
      description = out.certificateDescription;
    } catch (err) {
      if (errorName(err) !== 'ResourceNotFoundException') throw err;
      log.info({ certificateId }, 'certificate no longer exists: event ignored');
      return { status: 'ignored', certificateId, reason: 'the certificate does not exist' };
    }
    if (description.status !== 'PENDING_ACTIVATION') {
      log.info({ certificateId, status: description.status }, 'certificate not pending: event ignored');
      return { status: 'ignored', certificateId, reason: `the certificate is ${description.status}` };
    }
    const certificateArn = description.certificateArn;
    const caCertificateId = description.caCertificateId;
    if (!certificateArn || !description.certificatePem) {
      throw new Error(`DescribeCertificate of ${certificateId} returned no ARN or PEM`);
    }
    if (caCertificateId === undefined) {
      return revoke(certificateId, 'the certificate was registered without a CA certificate');
    }
    if (caCertificateId !== event.caCertificateId) {
      log.warn(
        { certificateId, eventCa: event.caCertificateId, caCertificateId },
        "the event names another CA than the certificate's registration; the registration's CA is used",
      );
    }

    const now = new Date();
    let thingName: string | undefined;
    try {
      const device = readDeviceCertificate(description.certificatePem);
      thingName = device.commonName;
      let caPem: string | undefined;
      try {
        const out = await iot.send(new DescribeCACertificateCommand({ certificateId: caCertificateId }));
        caPem = out.certificateDescription?.certificatePem;
      } catch (err) {
        if (errorName(err) !== 'ResourceNotFoundException') throw err;
      }
      if (caPem === undefined) throw new JitrRefusal(`the CA certificate ${caCertificateId} does not exist`);
      const ca = parsePem(caPem, 'CA certificate');
      if (!(await issuedBy(device.cert, ca))) {
        throw new JitrRefusal(`the certificate is not signed by the CA certificate ${caCertificateId}`);
      }
      const allowList = await readAllowList();
      const crl = await readRevocations(caCertificateId, ca, now);
      const decision = decide(device, allowList, crl, now);
      if (!decision.accept) return await revoke(certificateId, decision.reason, thingName);
      return await activate(event, certificateArn, decision.thingName);
    } catch (err) {
      if (!(err instanceof JitrRefusal)) throw err;
      return revoke(certificateId, err.message, thingName);
    }
  };
}

export const jitrActivation: FunctionDefinition = {
  name: JITR_ACTIVATION_FUNCTION_NAME,
  roleName: JITR_ACTIVATION_ROLE_NAME,
  environment: ['RESULTS_BUCKET', 'DEVICE_POLICY_NAME', 'S3_FORCE_PATH_STYLE'],
  create: createJitrActivationHandler,
};
