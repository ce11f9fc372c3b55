/**
 * JITR benchmark: 100 new devices (certificates from a registered CA with auto-registration, never
 * registered themselves) connect at once; each is refused while the broker registers its certificate
 * and the rule `edgefleet_jitr` runs the activation function, and retries with backoff until it is in.
 * Per device: first connection attempt -> PUBACK of its first publish. Baseline, in the same run: as
 * many devices provisioned beforehand (ACTIVE certificates) connecting and publishing at once.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { GetRegistrationCodeCommand, IoTClient, RegisterCACertificateCommand } from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createCa, createVerificationCertificate, loadCa } from '../certs-tooling/ca.js';
import { issueDevice } from '../certs-tooling/device.js';
import { LocalCloud } from '../cloud/local/index.js';
import { provisionThing, readDeviceFiles } from '../cloud/local/provision.js';
import { JITR_ALLOW_LIST_KEY } from '../cloud/rules/jitr.js';
import { LOCAL_RESULTS_BUCKET } from '../cloud/rules/resources.js';
import { median, percentile } from './stats.js';

export interface JitrBenchOptions {
  dataDir: string;
  devices: number;
  rounds: number;
}

interface Device {
  thing: string;
  cert: string;
  key: string;
  ca: string;
}

export interface JitrBenchResult {
  devices: number;
  rounds: { p50Ms: number; p99Ms: number; allMs: number; baselineP50Ms: number; baselineP99Ms: number }[];
  p50Ms: number;
  p99Ms: number;
  /** Until the last device was in. */
  allMs: number;
  attemptsMedian: number;
  baselineP50Ms: number;
  baselineP99Ms: number;
  ratioP50: number;
}

function runJoins(url: string, devices: Device[]) {
  const worker = new Worker(new URL('./jitr-load.mjs', import.meta.url), {
    workerData: { url, devices, initialDelayMs: 50, maxDelayMs: 1000, timeoutMs: 120_000 },
  });
  return new Promise<{ ms: number; attempts: number }[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  }).finally(() => worker.terminate());
}

async function round(dir: string, n: number, r: number) {
  const cloud = await LocalCloud.start({ dataDir: dir, mqttPort: 0, httpPort: 0 });
  const iot = new IoTClient(cloud.sdkConfig());
  const s3 = new S3Client({ ...cloud.sdkConfig(), forcePathStyle: true });
  try {
    const rootCa = cloud.pki.rootCa.certPem;
    // Baseline: devices provisioned beforehand.
    const provisioned: Device[] = [];
    for (let i = 0; i < n; i++) {
      const thing = `bench-pre-${r}-${i}`;
      const out = join(dir, 'devices', thing);
      await provisionThing({ thingName: thing, outDir: out }, cloud);
      const f = await readDeviceFiles(out);
      provisioned.push({ thing, cert: f.cert, key: f.key, ca: f.ca });
    }
    // JITR: a factory CA registered with auto-registration, the allow-list, new device certificates.
    const caDir = join(dir, 'factory-ca');
    await createCa({ dir: caDir, commonName: `bench factory CA ${r}` });
    const ca = await loadCa(caDir);
    const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
    await iot.send(
      new RegisterCACertificateCommand({
        caCertificate: ca.issuing.certPem,
        verificationCertificate: await createVerificationCertificate(ca.issuing, registrationCode!),
        setAsActive: true,
        allowAutoRegistration: true,
      }),
    );
    await s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_RESULTS_BUCKET,
        Key: JITR_ALLOW_LIST_KEY,
        Body: JSON.stringify({ version: 1, cnPattern: 'bench-jitr-.*' }),
      }),
    );
    const fresh: Device[] = [];
    for (let i = 0; i < n; i++) {
      const thing = `bench-jitr-${r}-${i}`;
      const d = await issueDevice(ca, { thingName: thing }, join(dir, 'jitr', thing));
      fresh.push({ thing, cert: d.chainPem, key: d.keyPem!, ca: rootCa });
    }
    const baseline = await runJoins(cloud.endpoints.mqttUrl, provisioned);
    const joins = await runJoins(cloud.endpoints.mqttUrl, fresh);
    const ms = joins.map((j) => j.ms);
    const base = baseline.map((j) => j.ms);
    return {
      p50Ms: percentile(ms, 50),
      p99Ms: percentile(ms, 99),
      allMs: Math.max(...ms),
      attempts: median(joins.map((j) => j.attempts)),
      baselineP50Ms: percentile(base, 50),
      baselineP99Ms: percentile(base, 99),
    };
  } finally {
    iot.destroy();
    s3.destroy();
    await cloud.stop();
  }
}

export async function benchJitr(opts: JitrBenchOptions, log: (s: string) => void): Promise<JitrBenchResult> {
  const rounds: JitrBenchResult['rounds'] = [];
  const attempts: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const x = await round(join(opts.dataDir, `round-${r}`), opts.devices, r);
    rounds.push({
      p50Ms: x.p50Ms,
      p99Ms: x.p99Ms,
      allMs: x.allMs,
      baselineP50Ms: x.baselineP50Ms,
      baselineP99Ms: x.baselineP99Ms,
    });
    attempts.push(x.attempts);
    log(
      `  round ${r + 1}: JITR join p50 ${x.p50Ms.toFixed(0)} ms, p99 ${x.p99Ms.toFixed(0)} ms, all in ${x.allMs.toFixed(0)} ms (median ${x.attempts} attempts); provisioned devices p50 ${x.baselineP50Ms.toFixed(0)} ms, p99 ${x.baselineP99Ms.toFixed(0)} ms`,
    );
  }
  const p50Ms = median(rounds.map((x) => x.p50Ms));
  const baselineP50Ms = median(rounds.map((x) => x.baselineP50Ms));
  return {
    devices: opts.devices,
    rounds,
    p50Ms,
    p99Ms: median(rounds.map((x) => x.p99Ms)),
    allMs: median(rounds.map((x) => x.allMs)),
    attemptsMedian: median(attempts),
    baselineP50Ms,
    baselineP99Ms: median(rounds.map((x) => x.baselineP99Ms)),
    ratioP50: p50Ms / baselineP50Ms,
  };
}
