/**
 * Provisioning of a device for the local cloud: thing, key pair (made on this machine, never sent),
 * certificate signed by the local root CA, default device policy, and the files a device needs.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createCsr, issueFromCsr } from '../../certs-tooling/x509.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../rules/policies.js';
import { type LocalCloudOptionsInput, parseLocalCloudOptions } from './config.js';
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
 * Provisions a thing. With `cloud` (a local cloud in this process) its registry is used; otherwise the
 * registry in the data dir is opened directly, which is refused while another process runs the cloud.
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
    if (running) {
      throw new LocalCloudError(
        `the local cloud is running on ${base.dataDir} (pid ${running.pid}); stop it to provision from another process, or provision from its own process`,
      );
    }
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

  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const files = {
    cert: join(outDir, 'device.crt'),
    key: join(outDir, 'device.key'),
    rootCa: join(outDir, 'root-ca.crt'),
    endpoint: join(outDir, 'endpoint.json'),
  };
  writeFileAtomic(files.key, keyPem, 0o600);
  writeFileAtomic(files.cert, certPem);
  writeFileAtomic(files.rootCa, pki.rootCa.certPem);
  writeJsonFile(files.endpoint, { ...endpoint, thingName: opts.thingName, region: base.region });
  return {
    thingName: opts.thingName,
    certificateId: cert.certificateId,
    certificateArn: cert.certificateArn,
    outDir,
    files,
  };
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
