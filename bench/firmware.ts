/**
 * Firmware rollout benchmark: a signed firmware (256 KiB) rolled out through the `firmware` named shadow
 * to 200 simulated gateways at once (real firmware agents in a child process, each on its own MQTT/TLS
 * connection: verify, download the presigned artifact from the local S3, stage, switch the link,
 * report). Measures the time until every gateway reports `succeeded`, the shadow updates the local
 * cloud handled per second (every accepted update of the firmware shadows: the rollout's desired
 * documents and the gateways' reports), and the local cloud's peak RSS (this process, sampled).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { S3Client } from '@aws-sdk/client-s3';
import { generateSignerKey, publishFirmware, signerKey } from '../cli/fleet/firmware.js';
import { runRollout } from '../cli/fleet/rollout.js';
import { LocalCloud } from '../cloud/local/index.js';
import { provisionThing, readDeviceFiles } from '../cloud/local/provision.js';
import { LOCAL_FIRMWARE_BUCKET } from '../cloud/rules/resources.js';
import { bundleScript, COMPONENT_ENV } from './child.js';
import type { FirmwareChildRequest } from './firmware-child.js';
import { median } from './stats.js';

export interface FirmwareBenchOptions {
  dataDir: string;
  gateways: number;
  rounds: number;
}

export interface FirmwareBenchResult {
  gateways: number;
  firmwareBytes: number;
  rounds: { allSucceededMs: number; shadowUpdatesPerSec: number; cloudPeakRssMB: number }[];
  allSucceededMs: number;
  shadowUpdatesPerSec: number;
  cloudPeakRssMB: number;
  cloudRssBeforeMB: number;
  gatewaysProcessRssMB: number;
}

const FIRMWARE_BYTES = 256 * 1024;

async function round(dir: string, n: number, script: string) {
  const cloud = await LocalCloud.start({ dataDir: dir, mqttPort: 0, httpPort: 0 });
  const s3 = new S3Client({ ...cloud.sdkConfig(), forcePathStyle: true });
  const iot = new IoTClient(cloud.sdkConfig());
  const iotData = new IoTDataPlaneClient(cloud.sdkConfig());
  let child: ReturnType<typeof fork> | undefined;
  try {
    const devices: FirmwareChildRequest['devices'] = [];
    for (let i = 0; i < n; i++) {
      const thing = `bench-fw-${i}`;
      const out = join(dir, 'devices', thing);
      await provisionThing({ thingName: thing, outDir: out }, cloud);
      const f = await readDeviceFiles(out);
      devices.push({ thing, cert: f.cert, key: f.key, ca: f.ca });
    }
    const signer = generateSignerKey();
    const trustedKeys = { [signer.keyId]: signer.publicKeyPem };
    const file = join(dir, 'firmware.bin');
    writeFileSync(file, randomBytes(FIRMWARE_BYTES));
    await publishFirmware({
      s3,
      bucket: LOCAL_FIRMWARE_BUCKET,
      file,
      target: 'gateway',
      version: '1.1.0',
      privateKey: signerKey(signer.privateKeyPem),
      keyId: signer.keyId,
      expiresInDays: 1,
    });
    const request: FirmwareChildRequest = {
      host: cloud.endpoints.host,
      port: cloud.endpoints.mqttPort,
      dir: join(dir, 'gateways'),
      trustedKeys,
      devices,
    };
    // The request (every device's key and certificate) is too large for argv: it goes in a file.
    const requestFile = join(dir, 'firmware-child.json');
    writeFileSync(requestFile, JSON.stringify(request), { mode: 0o600 });
    const c = fork(script, [requestFile], {
      env: { ...process.env, ...COMPONENT_ENV },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child = c;
    const messages: { kind: string; rssMB?: number }[] = [];
    const next = (kind: string) =>
      new Promise<{ kind: string; rssMB?: number }>((resolve, reject) => {
        const seen = messages.find((m) => m.kind === kind);
        if (seen) return resolve(seen);
        const onMessage = (m: { kind: string }) => {
          if (m.kind === kind) {
            c.off('message', onMessage);
            resolve(m);
          }
        };
        c.on('message', onMessage);
        c.once('exit', (code) => reject(new Error(`firmware bench child exited with ${code}`)));
      });
    c.on('message', (m: { kind: string }) => messages.push(m));
    await next('ready');
    let updates = 0;
    cloud.broker.subscribe('$aws/things/+/shadow/name/firmware/update/accepted', () => {
      updates++;
    });
    const rssBefore = process.memoryUsage().rss / 2 ** 20;
    let peak = rssBefore;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss / 2 ** 20);
    }, 50);
    const started = performance.now();
    const result = await runRollout(
      { iot, iotData, s3 },
      {
        bucket: LOCAL_FIRMWARE_BUCKET,
        target: 'gateway',
        version: '1.1.0',
        selection: { things: devices.map((d) => d.thing) },
        trustedKeys,
        maxConcurrency: n,
        abortFailureRate: 0,
        waveTimeoutMs: 600_000,
        urlExpiresSeconds: 3600,
        pollIntervalMs: 250,
      },
    );
    const elapsed = performance.now() - started;
    clearInterval(sampler);
    if (result.succeeded !== n) {
      throw new Error(`firmware rollout: ${result.succeeded} of ${n} gateways succeeded`);
    }
    c.send({ kind: 'stop' });
    const stopped = await next('stopped');
    return {
      allSucceededMs: elapsed,
      shadowUpdatesPerSec: updates / (elapsed / 1000),
      cloudPeakRssMB: peak,
      cloudRssBeforeMB: rssBefore,
      gatewaysRssMB: stopped.rssMB ?? 0,
    };
  } finally {
    child?.kill();
    s3.destroy();
    iot.destroy();
    iotData.destroy();
    await cloud.stop();
  }
}

export async function benchFirmware(
  opts: FirmwareBenchOptions,
  log: (s: string) => void,
): Promise<FirmwareBenchResult> {
  const script = await bundleScript(new URL('./firmware-child.ts', import.meta.url), 'firmware-child');
  const rounds: FirmwareBenchResult['rounds'] = [];
  const before: number[] = [];
  const children: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const x = await round(join(opts.dataDir, `round-${r}`), opts.gateways, script);
    rounds.push({
      allSucceededMs: x.allSucceededMs,
      shadowUpdatesPerSec: x.shadowUpdatesPerSec,
      cloudPeakRssMB: x.cloudPeakRssMB,
    });
    before.push(x.cloudRssBeforeMB);
    children.push(x.gatewaysRssMB);
    log(
      `  round ${r + 1}: all ${opts.gateways} succeeded in ${x.allSucceededMs.toFixed(0)} ms, ${x.shadowUpdatesPerSec.toFixed(0)} firmware shadow updates/s, local cloud RSS ${x.cloudRssBeforeMB.toFixed(0)} -> ${x.cloudPeakRssMB.toFixed(0)} MB`,
    );
  }
  return {
    gateways: opts.gateways,
    firmwareBytes: FIRMWARE_BYTES,
    rounds,
    allSucceededMs: median(rounds.map((x) => x.allSucceededMs)),
    shadowUpdatesPerSec: median(rounds.map((x) => x.shadowUpdatesPerSec)),
    cloudPeakRssMB: Math.max(...rounds.map((x) => x.cloudPeakRssMB)),
    cloudRssBeforeMB: median(before),
    gatewaysProcessRssMB: Math.max(...children),
  };
}
