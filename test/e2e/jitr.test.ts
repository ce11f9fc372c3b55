/**
 * A new device joins by just-in-time registration with no manual step: the installer creates a CA,
 * registers it with auto-registration and publishes the allow-list; a gateway with a certificate from
 * that CA (never registered) connects in standalone mode, is refused while its certificate is
 * PENDING_ACTIVATION, and the rule `edgefleet_jitr` runs the activation function, which creates the
 * thing, attaches the device policy and activates the certificate; the gateway's reconnect then
 * succeeds and its first event is acknowledged by the cloud.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DescribeCertificateCommand,
  DescribeThingCommand,
  GetRegistrationCodeCommand,
  IoTClient,
  ListThingPrincipalsCommand,
  RegisterCACertificateCommand,
} from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pino from 'pino';
import { createCa, createVerificationCertificate, loadCa } from '../../certs-tooling/ca.js';
import { issueDevice } from '../../certs-tooling/device.js';
import { certificateId } from '../../certs-tooling/x509.js';
import { JITR_ALLOW_LIST_KEY, jitrEventTopic } from '../../cloud/rules/jitr.js';
import { LOCAL_DATA_BUCKET, LOCAL_RESULTS_BUCKET } from '../../cloud/rules/resources.js';
import { loadGatewayConfig } from '../../edge-component/config.js';
import { eventually, removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';
import { startStandaloneGateway } from '../helpers/gateway.js';

const THING = 'gw-jitr-1';
const logger = pino({ level: 'silent' });
let tc: TestCloud;
let iot: IoTClient;
let work: string;

beforeAll(async () => {
  tc = await startTestCloud();
  iot = new IoTClient(tc.cloud.sdkConfig());
  work = tempDir('edgefleet-jitr-e2e-');
});

afterAll(async () => {
  iot?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
  if (work) removeDir(work);
});

it('a gateway with a certificate from a registered CA joins on its own and gets its first event acknowledged', async () => {
  // The installer: a factory CA, registered with auto-registration, and the allow-list.
  const caDir = join(work, 'ca');
  await createCa({ dir: caDir, commonName: 'plant-a factory CA' });
  const ca = await loadCa(caDir);
  const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
  const verification = await createVerificationCertificate(ca.issuing, registrationCode!);
  const registered = await iot.send(
    new RegisterCACertificateCommand({
      caCertificate: ca.issuing.certPem,
      verificationCertificate: verification,
      setAsActive: true,
      allowAutoRegistration: true,
    }),
  );
  const s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  await s3.send(
    new PutObjectCommand({
      Bucket: LOCAL_RESULTS_BUCKET,
      Key: JITR_ALLOW_LIST_KEY,
      Body: JSON.stringify({ version: 1, cnPattern: 'gw-jitr-[0-9]+' }),
    }),
  );
  s3.destroy();
  const events: string[] = [];
  tc.cloud.broker.subscribe(jitrEventTopic(registered.certificateId!), (_topic, payload) => {
    events.push(payload.toString());
  });

  // The device: a key and a certificate from the factory CA, nothing registered in the cloud.
  const devDir = join(work, 'device');
  const device = await issueDevice(ca, { thingName: THING }, devDir);
  writeFileSync(join(devDir, 'root-ca.crt'), tc.cloud.pki.rootCa.certPem);
  const file = join(devDir, 'gw.json');
  writeFileSync(
    file,
    JSON.stringify({
      thingName: THING,
      iot: {
        host: tc.cloud.endpoints.host,
        port: tc.cloud.endpoints.mqttPort,
        // The device presents its certificate with the issuing CA's, as JITR requires.
        certFile: 'device-chain.crt',
        keyFile: 'device.key',
        caFile: 'root-ca.crt',
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      },
      aws: { region: tc.cloud.options.region, s3Endpoint: tc.cloud.endpoints.httpUrl, forcePathStyle: true },
      storage: { bucket: LOCAL_DATA_BUCKET },
      spool: { dir: 'spool' },
      events: { retransmitInitialMs: 500, retransmitMaxMs: 2000 },
    }),
  );
  const gw = await startStandaloneGateway(loadGatewayConfig(file), logger);
  const { gateway } = gw;
  try {
    // The first event is spooled at once and sent as soon as the gateway is let in.
    await gateway.emitEvent('state-change', { state: 'installed' });
    await eventually(
      () => (gateway.counters.eventsAcked === 1 ? true : undefined),
      'first event acknowledged',
      30_000,
    );
    // The cloud registered the certificate on the first connection and told the rule about it.
    const id = certificateId(device.certPem);
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(events[0]!)).toMatchObject({
      certificateId: id,
      caCertificateId: registered.certificateId,
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: tc.cloud.options.accountId,
    });
    const cert = await iot.send(new DescribeCertificateCommand({ certificateId: id }));
    expect(cert.certificateDescription).toMatchObject({
      status: 'ACTIVE',
      caCertificateId: registered.certificateId,
    });
    await iot.send(new DescribeThingCommand({ thingName: THING }));
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: THING }));
    expect(principals.principals).toEqual([cert.certificateDescription!.certificateArn]);
  } finally {
    await gw.stop();
  }
});
