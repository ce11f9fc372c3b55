/**
 * Just-in-time registration in the local IoT Core broker, as the AWS IoT Core developer guide documents
 * it ("Register a client certificate when the client connects to AWS IoT just-in-time registration
 * (JITR)"): a client certificate signed by a registered CA that is ACTIVE with auto-registration on is
 * registered as PENDING_ACTIVATION the first time it connects, the registration message goes to
 * `$aws/events/certificates/registered/{caCertificateId}`, and the connection is closed; every later
 * attempt while the certificate is pending publishes the message again. Once the certificate is ACTIVE,
 * attached to a thing and given a policy, the device connects like any other. Everything else is
 * refused without a message: a CA that is not registered or is INACTIVE (at the TLS handshake), an
 * expired certificate (TLS), a REVOKED or INACTIVE certificate, a CA with auto-registration DISABLE.
 *
 * The CA is the project's own (certs-tooling), a root and an intermediate: the intermediate, which
 * signs the devices, is registered through `@aws-sdk/client-iot`, and each device presents its
 * certificate followed by the intermediate's, as JITR asks of a first connection.
 */
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCertificateCommand,
  GetRegistrationCodeCommand,
  IoTClient,
  RegisterCACertificateCommand,
  UpdateCACertificateCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import pino from 'pino';
import {
  algorithmOf,
  authorityKeyIdOf,
  type CaDir,
  cnName,
  createCa,
  createVerificationCertificate,
  generateKeys,
  keyToPem,
  loadCa,
  randomSerial,
} from '../../certs-tooling/ca.js';
import { issueDevice } from '../../certs-tooling/device.js';
import { createHandlerRegistry } from '../../cloud/functions/index.js';
import { RulesEngine } from '../../cloud/local/rules-engine.js';
import { parseRuleDefinitions } from '../../cloud/rules/definitions.js';
import { JITR_EVENTS_FILTER, JitrEventSchema, jitrEventTopic } from '../../cloud/rules/jitr.js';
import { DEVICE_POLICY_NAME } from '../../cloud/rules/policies.js';
import {
  brokerTap,
  closed,
  connectDevice,
  removeDir,
  startTestCloud,
  type TestCloud,
  tempDir,
  tryConnect,
} from '../helpers/cloud.js';

type Tap = ReturnType<typeof brokerTap>;

/** What a device holds: its key, and its certificate followed by the issuing CA's (what it presents). */
interface Device {
  thingName: string;
  certPem: string;
  /** The chain the device presents: its certificate, then the issuing CA certificate. */
  cert: string;
  key: string;
  /** The local cloud's server CA, which the device trusts. */
  ca: string;
  certificateId: string;
}

let tc: TestCloud;
let iot: IoTClient;
let work: string;
let plant: CaDir;
let plantCaId: string;
let events: Tap;
let markers: Tap;
let rules: RulesEngine;
/** What a rule on `$aws/events/certificates/registered/+` passed to its Lambda action. */
const ruleEvents: Record<string, unknown>[] = [];
let ruleWaiter: ((e: Record<string, unknown>) => void) | undefined;

const sha256Hex = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

/** A CA (root + intermediate) made by the certs tooling. */
async function makeCa(name: string): Promise<CaDir> {
  const dir = join(work, name);
  await createCa({ dir, commonName: `${name} CA`, intermediate: true });
  return loadCa(dir);
}

/** Registers the CA's issuing (intermediate) certificate as an installer does, through the IoT API. */
async function registerCa(ca: CaDir, opts: { autoRegistration: boolean }): Promise<string> {
  const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
  const verification = await createVerificationCertificate(ca.issuing, registrationCode!);
  const out = await iot.send(
    new RegisterCACertificateCommand({
      caCertificate: ca.issuing.certPem,
      verificationCertificate: verification,
      setAsActive: true,
      allowAutoRegistration: opts.autoRegistration,
    }),
  );
  return out.certificateId!;
}

async function makeDevice(ca: CaDir, thingName: string): Promise<Device> {
  const issued = await issueDevice(ca, { thingName }, join(work, 'devices', randomUUID()));
  return {
    thingName,
    certPem: issued.certPem,
    cert: issued.chainPem,
    key: issued.keyPem!,
    ca: tc.cloud.pki.rootCa.certPem,
    certificateId: sha256Hex(issued.certPem),
  };
}

/** A device certificate from `ca` whose validity ended yesterday. */
async function makeExpiredDevice(ca: CaDir, thingName: string): Promise<Device> {
  const day = 86_400_000;
  const keys = await generateKeys('ec-p256');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: cnName(thingName),
    issuer: ca.issuing.cert.subjectName,
    notBefore: new Date(Date.now() - 10 * day),
    notAfter: new Date(Date.now() - day),
    signingAlgorithm: algorithmOf(ca.issuing.keyType),
    publicKey: keys.publicKey,
    signingKey: ca.issuing.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await authorityKeyIdOf(ca.issuing),
    ],
  });
  const certPem = cert.toString('pem');
  return {
    thingName,
    certPem,
    cert: `${certPem}\n${ca.issuing.certPem}\n`,
    key: await keyToPem(keys.privateKey),
    ca: tc.cloud.pki.rootCa.certPem,
    certificateId: sha256Hex(certPem),
  };
}

/**
 * Resolves once every message the broker published before this call has reached the taps: a marker
 * published now comes after them. Used to show that a refused attempt published no event.
 */
async function settled(): Promise<void> {
  const marker = randomUUID();
  await tc.cloud.broker.publish('edgefleet-test/jitr-marker', JSON.stringify({ marker }), 1);
  await markers.next((m) => m.body.marker === marker);
}

function eventsFor(certificateId: string) {
  return events.seen.filter((m) => m.body.certificateId === certificateId);
}

async function certificateStatus(certificateId: string): Promise<string | undefined> {
  const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
  return out.certificateDescription?.status;
}

async function isRegistered(certificateId: string): Promise<boolean> {
  try {
    await iot.send(new DescribeCertificateCommand({ certificateId }));
    return true;
  } catch (err) {
    if ((err as { name?: string }).name === 'ResourceNotFoundException') return false;
    throw err;
  }
}

beforeAll(async () => {
  tc = await startTestCloud();
  // The broker's behaviour is under test, not the project's activation rule: the project's rules are
  // stopped so that nothing activates or revokes the certificates registered here.
  await tc.cloud.rules.stop();
  iot = new IoTClient(tc.cloud.sdkConfig());
  work = tempDir('edgefleet-jitr-broker-');
  events = brokerTap(tc.cloud, JITR_EVENTS_FILTER);
  markers = brokerTap(tc.cloud, 'edgefleet-test/jitr-marker');
  // A rule on the registration events, as the project's activation rule is, with a Lambda action that
  // records what it is given.
  const handlers = createHandlerRegistry({
    test_jitr_sink: async (event) => {
      const e = event as Record<string, unknown>;
      ruleEvents.push(e);
      ruleWaiter?.(e);
      return {};
    },
  });
  rules = RulesEngine.start({
    broker: tc.cloud.broker,
    rules: parseRuleDefinitions([
      {
        name: 'test_jitr_events',
        sql: `SELECT *, topic(5) AS topicCa FROM '${JITR_EVENTS_FILTER}'`,
        actions: [{ type: 'lambda', functionName: 'test_jitr_sink' }],
      },
    ]),
    handlers,
    aws: tc.cloud.sdkConfig(),
    region: tc.cloud.options.region,
    accountId: tc.cloud.options.accountId,
    logger: pino({ level: 'silent' }),
  });
  plant = await makeCa('plant-a');
  plantCaId = await registerCa(plant, { autoRegistration: true });
});

afterAll(async () => {
  events?.off();
  markers?.off();
  await rules?.stop();
  iot?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
  if (work) removeDir(work);
});

/** The rule's Lambda event for `certificateId`, waiting for it if it has not come yet. */
function ruleEventFor(certificateId: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const seen = ruleEvents.find((e) => e.certificateId === certificateId);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the rule got no registration event')), timeoutMs);
    ruleWaiter = (e) => {
      if (e.certificateId !== certificateId) return;
      clearTimeout(timer);
      ruleWaiter = undefined;
      resolve(e);
    };
  });
}

describe('a device certificate signed by a registered CA with auto-registration', () => {
  let gw: Device;
  let first: Record<string, unknown>;

  beforeAll(async () => {
    gw = await makeDevice(plant, 'gw-jitr-1');
  });

  it('is registered as PENDING_ACTIVATION on its first connection, which is closed', async () => {
    expect(await isRegistered(gw.certificateId)).toBe(false);
    const before = Date.now();
    const r = await tryConnect(tc.cloud, gw, gw.thingName);
    // The connection is closed without a CONNACK.
    expect(r).toEqual({ connected: false, error: expect.any(String) });
    expect(r.code).toBeUndefined();

    const described = await iot.send(new DescribeCertificateCommand({ certificateId: gw.certificateId }));
    expect(described.certificateDescription).toMatchObject({
      certificateId: gw.certificateId,
      status: 'PENDING_ACTIVATION',
      caCertificateId: plantCaId,
    });

    const ev = await events.next((m) => m.body.certificateId === gw.certificateId);
    expect(ev.topic).toBe(jitrEventTopic(plantCaId));
    first = JitrEventSchema.parse(ev.body);
    expect(ev.body).toEqual({
      certificateId: gw.certificateId,
      caCertificateId: plantCaId,
      timestamp: expect.any(Number),
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: tc.cloud.options.accountId,
      certificateRegistrationTimestamp: expect.any(String),
    });
    expect(ev.body.timestamp as number).toBeGreaterThanOrEqual(before);
    expect(Number(ev.body.certificateRegistrationTimestamp)).toBe(
      described.certificateDescription!.creationDate!.getTime(),
    );
  });

  it('reaches a rule on $aws/events/certificates/registered/+ and its Lambda action', async () => {
    const e = await ruleEventFor(gw.certificateId);
    expect(e).toMatchObject({
      certificateId: gw.certificateId,
      caCertificateId: plantCaId,
      certificateStatus: 'PENDING_ACTIVATION',
      topicCa: plantCaId,
    });
  });

  it('publishes the event again on each later attempt while the certificate is pending', async () => {
    const count = eventsFor(gw.certificateId).length;
    const r = await tryConnect(tc.cloud, gw, gw.thingName);
    expect(r.connected).toBe(false);
    expect(r.code).toBeUndefined();
    const again = await events.next(
      (m) => m.body.certificateId === gw.certificateId && eventsFor(gw.certificateId).indexOf(m) >= count,
    );
    expect(again.topic).toBe(jitrEventTopic(plantCaId));
    expect(again.body).toMatchObject({
      certificateStatus: 'PENDING_ACTIVATION',
      caCertificateId: plantCaId,
      certificateRegistrationTimestamp: first.certificateRegistrationTimestamp,
    });
    expect(again.body.timestamp as number).toBeGreaterThanOrEqual(first.timestamp as number);
    expect(await certificateStatus(gw.certificateId)).toBe('PENDING_ACTIVATION');
  });

  it('connects with its thing name and publishes once activated, attached to its thing and given a policy', async () => {
    const { certificateDescription } = await iot.send(
      new DescribeCertificateCommand({ certificateId: gw.certificateId }),
    );
    const arn = certificateDescription!.certificateArn!;
    await iot.send(new UpdateCertificateCommand({ certificateId: gw.certificateId, newStatus: 'ACTIVE' }));
    await iot.send(new CreateThingCommand({ thingName: gw.thingName }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: gw.thingName, principal: arn }));
    await iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: arn }));

    const count = eventsFor(gw.certificateId).length;
    const connectedTap = brokerTap(tc.cloud, `$aws/events/presence/connected/${gw.thingName}`);
    const data = brokerTap(tc.cloud, `dt/${gw.thingName}/hello`);
    const client = await connectDevice(tc.cloud, gw, gw.thingName);
    try {
      const connected = await connectedTap.next(() => true);
      expect(connected.body.principalIdentifier).toBe(gw.certificateId);
      await client.publishAsync(`dt/${gw.thingName}/hello`, JSON.stringify({ hello: 1 }), { qos: 1 });
      expect((await data.next((m) => m.body.hello === 1)).body).toEqual({ hello: 1 });
      await settled();
      expect(eventsFor(gw.certificateId)).toHaveLength(count);
    } finally {
      connectedTap.off();
      data.off();
      await client.endAsync();
    }
  });

  it('a second connection with the same certificate and client id takes over; the first is DUPLICATE_CLIENTID', async () => {
    const gone = brokerTap(tc.cloud, `$aws/events/presence/disconnected/${gw.thingName}`);
    const one = await connectDevice(tc.cloud, gw, gw.thingName);
    try {
      const two = await connectDevice(tc.cloud, gw, gw.thingName);
      try {
        await closed(one);
        const ev = await gone.next((m) => m.body.disconnectReason === 'DUPLICATE_CLIENTID');
        expect(ev.body).toMatchObject({
          clientId: gw.thingName,
          eventType: 'disconnected',
          clientInitiatedDisconnect: false,
          principalIdentifier: gw.certificateId,
          disconnectReason: 'DUPLICATE_CLIENTID',
        });
        expect(two.connected).toBe(true);
      } finally {
        await two.endAsync();
      }
    } finally {
      gone.off();
      one.end(true);
    }
  });
});

describe('refused without a registration event', () => {
  it('a certificate signed by a CA that is not registered (TLS handshake)', async () => {
    const rogue = await makeCa('rogue');
    const dev = await makeDevice(rogue, 'gw-rogue-1');
    const r = await tryConnect(tc.cloud, dev, dev.thingName);
    expect(r.connected).toBe(false);
    expect(r.code).toBeUndefined();
    await settled();
    expect(eventsFor(dev.certificateId)).toHaveLength(0);
    expect(await isRegistered(dev.certificateId)).toBe(false);
  });

  it('a certificate signed by a CA set INACTIVE (TLS handshake), and registered again once it is ACTIVE', async () => {
    const ca = await makeCa('plant-b');
    const caId = await registerCa(ca, { autoRegistration: true });
    await iot.send(new UpdateCACertificateCommand({ certificateId: caId, newStatus: 'INACTIVE' }));
    const dev = await makeDevice(ca, 'gw-plant-b-1');
    const r = await tryConnect(tc.cloud, dev, dev.thingName);
    expect(r.connected).toBe(false);
    expect(r.code).toBeUndefined();
    await settled();
    expect(eventsFor(dev.certificateId)).toHaveLength(0);
    expect(await isRegistered(dev.certificateId)).toBe(false);

    // The trust store follows the CA's status: ACTIVE again, the same device is registered.
    await iot.send(new UpdateCACertificateCommand({ certificateId: caId, newStatus: 'ACTIVE' }));
    await tryConnect(tc.cloud, dev, dev.thingName);
    const ev = await events.next((m) => m.body.certificateId === dev.certificateId);
    expect(ev.topic).toBe(jitrEventTopic(caId));
    expect(await certificateStatus(dev.certificateId)).toBe('PENDING_ACTIVATION');
  });

  it.each(['REVOKED', 'INACTIVE'] as const)(
    'a certificate registered just in time and then %s',
    async (status) => {
      const dev = await makeDevice(plant, `gw-${status.toLowerCase()}-1`);
      await tryConnect(tc.cloud, dev, dev.thingName);
      await events.next((m) => m.body.certificateId === dev.certificateId);
      await iot.send(new UpdateCertificateCommand({ certificateId: dev.certificateId, newStatus: status }));
      const count = eventsFor(dev.certificateId).length;
      const r = await tryConnect(tc.cloud, dev, dev.thingName);
      expect(r).toMatchObject({ connected: false, code: 5 });
      await settled();
      expect(eventsFor(dev.certificateId)).toHaveLength(count);
      expect(await certificateStatus(dev.certificateId)).toBe(status);
    },
  );

  it('a certificate whose CA has auto-registration DISABLE', async () => {
    const ca = await makeCa('plant-c');
    await registerCa(ca, { autoRegistration: false });
    const dev = await makeDevice(ca, 'gw-plant-c-1');
    const r = await tryConnect(tc.cloud, dev, dev.thingName);
    expect(r).toMatchObject({ connected: false, code: 5 });
    await settled();
    expect(eventsFor(dev.certificateId)).toHaveLength(0);
    expect(await isRegistered(dev.certificateId)).toBe(false);
  });

  it('a certificate whose CA had auto-registration turned off (UpdateCACertificate DISABLE)', async () => {
    await iot.send(
      new UpdateCACertificateCommand({ certificateId: plantCaId, newAutoRegistrationStatus: 'DISABLE' }),
    );
    try {
      const dev = await makeDevice(plant, 'gw-disabled-1');
      const r = await tryConnect(tc.cloud, dev, dev.thingName);
      expect(r).toMatchObject({ connected: false, code: 5 });
      await settled();
      expect(eventsFor(dev.certificateId)).toHaveLength(0);
      expect(await isRegistered(dev.certificateId)).toBe(false);
    } finally {
      await iot.send(
        new UpdateCACertificateCommand({ certificateId: plantCaId, newAutoRegistrationStatus: 'ENABLE' }),
      );
    }
  });

  it('an expired certificate signed by the registered CA (TLS handshake)', async () => {
    const dev = await makeExpiredDevice(plant, 'gw-expired-1');
    const r = await tryConnect(tc.cloud, dev, dev.thingName);
    expect(r.connected).toBe(false);
    expect(r.code).toBeUndefined();
    await settled();
    expect(eventsFor(dev.certificateId)).toHaveLength(0);
    expect(await isRegistered(dev.certificateId)).toBe(false);
  });
});
