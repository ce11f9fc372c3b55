/**
 * Provisioning of a device for the local cloud: thing, key pair (made on this machine, never sent),
 * certificate signed by the local root CA, default device policy, and the files a device needs.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createCsr, issueFromCsr } from '../../certs-tooling/x509.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../rules/policies.js';
import { type LocalCloudOptions, type LocalCloudOptionsInput, parseLocalCloudOptions } from './config.js';
import { readRootCredentials } from './credentials.js';
import { LocalCloudError } from './errors.js';
import { type LocalCloud, runningLocalCloud, seedRegistry } from './index.js';
import { loadOrCreatePki } from './pki.js';
import { Registry, ThingNameSchema } from './registry.js';
import { writeFileAtomic, writeJsonFile } from './store.js';

export interface ProvisionedDevice {
  thingName: string;
  certificateId: string;
  certificateArn: string;
  outDir: string;
  files: { cert: string; key: string; rootCa: string; endpoint: string };
}

export interface ProvisionOptions extends LocalCloudOptionsInput {
  thingName: string;
  outDir: string;
  attributes?: Record<string, string>;
  /** Validity of the device certificate (tests use it for expired certificates). */
  validity?: { notBefore?: Date; notAfter?: Date };
}

/**
 * Provisions a thing. With `cloud` (a local cloud in this process) its registry is used; while another
 * process runs the local cloud on the data dir, its IoT control-plane API is used (as against AWS);
 * otherwise the registry in the data dir is opened directly.
 */
export async function provisionThing(opts: ProvisionOptions, cloud?: LocalCloud): Promise<ProvisionedDevice> {
  const name = ThingNameSchema.safeParse(opts.thingName);
  if (!name.success)
    throw new LocalCloudError(`thing name '${opts.thingName}': ${name.error.issues[0]?.message}`);
  const base = cloud?.options ?? parseLocalCloudOptions(opts);
  let registry: Registry;
  let pki: Awaited<ReturnType<typeof loadOrCreatePki>>;
  let endpoint: { host: string; mqttPort: number; httpPort: number };
  if (cloud) {
    registry = cloud.registry;
    pki = cloud.pki;
    endpoint = {
      host: cloud.endpoints.host,
      mqttPort: cloud.endpoints.mqttPort,
      httpPort: cloud.endpoints.httpPort,
    };
  } else {
    const running = runningLocalCloud(base.dataDir);
    if (running) return provisionThroughApi(opts, base, running);
    mkdirSync(base.dataDir, { recursive: true });
    pki = await loadOrCreatePki(base.dataDir, [base.host]);
    registry = new Registry(base.dataDir, { region: base.region, accountId: base.accountId });
    seedRegistry(registry, pki, base);
    const host = base.host === '0.0.0.0' ? '127.0.0.1' : base.host;
    endpoint = { host, mqttPort: base.mqttPort, httpPort: base.httpPort };
  }

  registry.createThing(opts.thingName, opts.attributes ?? {});
  const { csrPem, keyPem } = await createCsr(opts.thingName);
  const certPem = await issueFromCsr(pki.rootCa, csrPem, opts.validity);
  const caId = registry
    .listCaCertificates()
    .find((c) => c.certificatePem.trim() === pki.rootCa.certPem.trim())?.certificateId;
  const cert = registry.registerCertificate(certPem, 'ACTIVE', caId);
  registry.putPolicy(DEVICE_POLICY_NAME, devicePolicyDocument(base.region, base.accountId));
  registry.attachPolicy(DEVICE_POLICY_NAME, cert.certificateArn);
  registry.attachThingPrincipal(opts.thingName, cert.certificateArn);

  const { outDir, files } = writeDeviceFiles(opts.outDir, {
    keyPem,
    certPem,
    rootCaPem: pki.rootCa.certPem,
    endpoint: { ...endpoint, thingName: opts.thingName, region: base.region },
  });
  return {
    thingName: opts.thingName,
    certificateId: cert.certificateId,
    certificateArn: cert.certificateArn,
    outDir,
    files,
  };
}

function writeDeviceFiles(
  outDirInput: string,
  device: { keyPem: string; certPem: string; rootCaPem: string; endpoint: Record<string, unknown> },
): { outDir: string; files: ProvisionedDevice['files'] } {
  const outDir = resolve(outDirInput);
  mkdirSync(outDir, { recursive: true });
  const files = {
    cert: join(outDir, 'device.crt'),
    key: join(outDir, 'device.key'),
    rootCa: join(outDir, 'root-ca.crt'),
    endpoint: join(outDir, 'endpoint.json'),
  };
  writeFileAtomic(files.key, device.keyPem, 0o600);
  writeFileAtomic(files.cert, device.certPem);
  writeFileAtomic(files.rootCa, device.rootCaPem);
  writeJsonFile(files.endpoint, device.endpoint);
  return { outDir, files };
}

/**
 * Provisions through the IoT control-plane API of the local cloud another process runs on the data dir,
 * with the account's root credentials: CreateThing, a key and CSR made here (the key never leaves this
 * machine), CreateCertificateFromCsr (active), AttachPolicy (the device policy the cloud seeded) and
 * AttachThingPrincipal. endpoint.json gets the running cloud's real host and ports.
 */
async function provisionThroughApi(
  opts: ProvisionOptions,
  base: LocalCloudOptions,
  running: { pid: number; host: string; mqttPort: number; httpPort: number },
): Promise<ProvisionedDevice> {
  if (opts.validity) {
    throw new LocalCloudError(
      'a certificate validity cannot be chosen when provisioning through the running local cloud (its CA issues the certificate)',
    );
  }
  const credentials = readRootCredentials(base.dataDir);
  if (!credentials) {
    throw new LocalCloudError(
      `${join(base.dataDir, 'credentials.json')} is missing; cannot call the running local cloud`,
    );
  }
  const rootCaFile = join(base.dataDir, 'ca', 'root-ca.crt');
  if (!existsSync(rootCaFile)) throw new LocalCloudError(`${rootCaFile} is missing`);
  const rootCaPem = await readFile(rootCaFile, 'utf8');
  const endpointUrl = `http://${running.host}:${running.httpPort}`;
  // Loaded on demand: only this path needs the SDK client.
  const {
    AttachPolicyCommand,
    AttachThingPrincipalCommand,
    CreateCertificateFromCsrCommand,
    CreateThingCommand,
    IoTClient,
  } = await import('@aws-sdk/client-iot');
  const iot = new IoTClient({ region: base.region, endpoint: endpointUrl, credentials, maxAttempts: 1 });
  const step = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      const e = err as Error;
      throw new LocalCloudError(
        `provisioning through the local cloud at ${endpointUrl} (pid ${running.pid}) failed at ${what}: ${e.name}: ${e.message}`,
        { cause: err },
      );
    }
  };
  try {
    const thing = await step('CreateThing', () =>
      iot.send(
        new CreateThingCommand({
          thingName: opts.thingName,
          ...(opts.attributes ? { attributePayload: { attributes: opts.attributes } } : {}),
        }),
      ),
    );
    const { csrPem, keyPem } = await createCsr(opts.thingName);
    const cert = await step('CreateCertificateFromCsr', () =>
      iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: true })),
    );
    const { certificateArn, certificateId, certificatePem } = cert;
    if (!certificateArn || !certificateId || !certificatePem) {
      throw new LocalCloudError(
        `the local cloud at ${endpointUrl} answered CreateCertificateFromCsr without a certificate`,
      );
    }
    await step('AttachPolicy', () =>
      iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: certificateArn })),
    );
    await step('AttachThingPrincipal', () =>
      iot.send(new AttachThingPrincipalCommand({ thingName: opts.thingName, principal: certificateArn })),
    );
    // The running cloud's region is the one in its ARNs.
    const region = thing.thingArn?.split(':')[3] || base.region;
    const written = writeDeviceFiles(opts.outDir, {
      keyPem,
      certPem: certificatePem,
      rootCaPem,
      endpoint: {
        host: running.host,
        mqttPort: running.mqttPort,
        httpPort: running.httpPort,
        thingName: opts.thingName,
        region,
      },
    });
    return { thingName: opts.thingName, certificateId, certificateArn, ...written };
  } finally {
    iot.destroy();
  }
}

/** Reads what `provisionThing` wrote, for a device client. */
export async function readDeviceFiles(dir: string) {
  if (!existsSync(join(dir, 'device.crt')))
    throw new LocalCloudError(`${dir} holds no provisioned device (device.crt missing)`);
  const [cert, key, ca, endpoint] = await Promise.all([
    readFile(join(dir, 'device.crt'), 'utf8'),
    readFile(join(dir, 'device.key'), 'utf8'),
    readFile(join(dir, 'root-ca.crt'), 'utf8'),
    readFile(join(dir, 'endpoint.json'), 'utf8'),
  ]);
  return {
    cert,
    key,
    ca,
    endpoint: JSON.parse(endpoint) as { host: string; mqttPort: number; httpPort: number; thingName: string },
  };
}
