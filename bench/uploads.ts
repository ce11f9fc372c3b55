/**
 * Upload benchmark: the edge uploader (MQTT-vended temporary credentials, @aws-sdk/client-s3 and
 * multipart uploads) into the local S3, against writing the same bytes with fs.writeFile + fsync, in the
 * same run; and the credential round trip over MQTT (request -> rule -> vending function -> STS ->
 * response).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { LocalCloud } from '../cloud/local/index.js';
import { provisionThing, readDeviceFiles } from '../cloud/local/provision.js';
import { MqttChannel } from '../edge-component/adapters/mqtt-channel.js';
import { mqttCredentialProvider } from '../edge-component/credentials.js';
import { S3Uploader } from '../edge-component/uploader.js';
import { median, percentile } from './stats.js';

export interface UploadBenchOptions {
  dataDir: string;
  /** Objects per size. */
  counts: { small: number; medium: number; large: number };
  credentialRequests: number;
}

export interface SizeRow {
  label: string;
  bytes: number;
  count: number;
  uploaderMBps: number;
  fsMBps: number;
  ratio: number;
}

const MB = 1024 * 1024;

async function writeFsync(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function waitConnected(channel: MqttChannel, timeoutMs = 10_000): Promise<void> {
  if (channel.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('the gateway did not connect'));
    }, timeoutMs);
    const off = channel.onStateChange((s) => {
      if (s !== 'connected') return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

export async function benchUploads(opts: UploadBenchOptions, log: (s: string) => void) {
  const cloud = await LocalCloud.start({ dataDir: opts.dataDir, mqttPort: 0, httpPort: 0 });
  const scratch = mkdtempSync(join(tmpdir(), 'edgefleet-bench-fs-'));
  const thing = 'bench-uploader';
  const dev = await provisionThing(
    { thingName: thing, outDir: join(opts.dataDir, 'devices', thing) },
    cloud,
  ).then((d) => readDeviceFiles(d.outDir));
  const channel = new MqttChannel({
    host: cloud.endpoints.host,
    port: cloud.endpoints.mqttPort,
    cert: dev.cert,
    key: dev.key,
    ca: dev.ca,
    clientId: thing,
    logger: pino({ level: 'silent' }),
  });
  const credentials = mqttCredentialProvider({ channel, thingName: thing });
  try {
    await waitConnected(channel);

    // Credential round trip: every call goes to the cloud (forceRefresh).
    const rtt: number[] = [];
    for (let i = 0; i < opts.credentialRequests + 5; i++) {
      const t0 = performance.now();
      await credentials({ forceRefresh: true });
      if (i >= 5) rtt.push(performance.now() - t0);
    }
    log(`  credentials: ${rtt.length} round trips, p50 ${percentile(rtt, 50).toFixed(1)} ms`);

    const uploader = new S3Uploader({
      thingName: thing,
      bucket: cloud.options.buckets[0]!,
      region: cloud.options.region,
      s3Endpoint: cloud.endpoints.httpUrl,
      forcePathStyle: true,
      credentials,
    });
    const sizes = [
      { label: '64 KB', bytes: 64 * 1024, count: opts.counts.small },
      { label: '1 MB', bytes: MB, count: opts.counts.medium },
      { label: '32 MB', bytes: 32 * MB, count: opts.counts.large },
    ];
    const rows: SizeRow[] = [];
    let seq = 0;
    for (const size of sizes) {
      const data = new Uint8Array(randomBytes(size.bytes));
      // Warm-up of both paths.
      await uploader.upload({ key: `raw/${thing}/bench/warm-${seq++}`, source: { data } });
      await writeFsync(join(scratch, `warm-${seq++}`), data);
      const up: number[] = [];
      const fsRuns: number[] = [];
      for (let i = 0; i < size.count; i++) {
        // Alternate so that machine noise hits both alike.
        let t0 = performance.now();
        await uploader.upload({ key: `raw/${thing}/bench/${size.bytes}-${seq++}`, source: { data } });
        up.push(size.bytes / MB / ((performance.now() - t0) / 1000));
        t0 = performance.now();
        await writeFsync(join(scratch, `f-${seq++}`), data);
        fsRuns.push(size.bytes / MB / ((performance.now() - t0) / 1000));
      }
      const u = median(up);
      const f = median(fsRuns);
      rows.push({
        label: size.label,
        bytes: size.bytes,
        count: size.count,
        uploaderMBps: u,
        fsMBps: f,
        ratio: u / f,
      });
      log(`  ${size.label}: uploader ${u.toFixed(1)} MB/s, writeFile+fsync ${f.toFixed(1)} MB/s`);
    }
    return {
      uploads: rows,
      credentials: { n: rtt.length, p50: percentile(rtt, 50), p99: percentile(rtt, 99) },
    };
  } finally {
    await credentials.close();
    await channel.close();
    await cloud.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
