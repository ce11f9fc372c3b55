/** Test helpers: a local cloud on free ports in a temporary data dir, devices, and waiting on events. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { LocalCloudOptionsInput } from '../../cloud/local/config.js';
import { LocalCloud } from '../../cloud/local/index.js';
import { type ProvisionedDevice, provisionThing, readDeviceFiles } from '../../cloud/local/provision.js';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';

export interface TestCloud {
  cloud: LocalCloud;
  dataDir: string;
  provision(thing: string, opts?: { validity?: { notBefore?: Date; notAfter?: Date } }): Promise<TestDevice>;
  stop(): Promise<void>;
}

export interface TestDevice extends ProvisionedDevice {
  cert: string;
  key: string;
  ca: string;
}

export function tempDir(prefix = 'edgefleet-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startTestCloud(
  dataDir = tempDir(),
  options: Omit<LocalCloudOptionsInput, 'dataDir' | 'mqttPort' | 'httpPort'> = {},
): Promise<TestCloud> {
  const cloud = await LocalCloud.start({ ...options, dataDir, mqttPort: 0, httpPort: 0 });
  const clients: MqttClient[] = [];
  return {
    cloud,
    dataDir,
    async provision(thing, opts) {
      const dev = await provisionThing(
        { thingName: thing, outDir: join(dataDir, 'devices', thing), ...opts },
        cloud,
      );
      const files = await readDeviceFiles(dev.outDir);
      return { ...dev, cert: files.cert, key: files.key, ca: files.ca };
    },
    async stop() {
      for (const c of clients) c.end(true);
      await cloud.stop();
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Options for mqtt.js that connect as a device, failing fast (no reconnects). */
/**
 * A standalone gateway configuration for `cloud` (device files as `local provision` writes them, next to
 * the file): its IoT endpoint, its HTTP endpoint for S3 and Kinesis, the data bucket. `extra` adds
 * sections; its `iot` and `aws` fields are merged into those.
 */
/** The pseudonymization section of the standalone test gateways: `$.operatorId`, with files in its folder. */
export const PSEUDONYMIZE_OPERATOR = {
  fields: ['$.operatorId'],
  keyFile: 'pseudonym.key',
  mapFile: 'pseudonym-map.jsonl',
} as const;

export function localGatewayConfig(
  cloud: LocalCloud,
  thingName: string,
  extra: { iot?: Record<string, unknown>; aws?: Record<string, unknown>; [section: string]: unknown } = {},
): Record<string, unknown> {
  const { iot, aws, ...sections } = extra;
  return {
    thingName,
    iot: {
      host: cloud.endpoints.host,
      port: cloud.endpoints.mqttPort,
      certFile: 'device.crt',
      keyFile: 'device.key',
      caFile: 'root-ca.crt',
      ...iot,
    },
    aws: { region: cloud.options.region, s3Endpoint: cloud.endpoints.httpUrl, forcePathStyle: true, ...aws },
    storage: { bucket: LOCAL_DATA_BUCKET },
    ...sections,
  };
}

export function deviceOptions(
  cloud: LocalCloud,
  dev: { cert: string; key: string; ca: string },
  clientId: string,
): IClientOptions {
  return {
    clientId,
    cert: dev.cert,
    key: dev.key,
    ca: dev.ca,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    host: cloud.endpoints.host,
    port: cloud.endpoints.mqttPort,
    protocol: 'mqtts',
  };
}

export function connectDevice(
  cloud: LocalCloud,
  dev: { cert: string; key: string; ca: string },
  clientId: string,
): Promise<MqttClient> {
  return mqtt.connectAsync(deviceOptions(cloud, dev, clientId));
}

/** How a connection attempt ended: connected (then closed by the test), refused with a CONNACK code, or a transport error. */
export async function tryConnect(
  cloud: LocalCloud,
  dev: { cert: string; key: string; ca: string },
  clientId: string,
): Promise<{ connected: boolean; error?: string; code?: number }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(deviceOptions(cloud, dev, clientId));
    let done = false;
    const finish = (r: { connected: boolean; error?: string; code?: number }) => {
      if (done) return;
      done = true;
      c.end(true);
      resolve(r);
    };
    c.once('connect', () => finish({ connected: true }));
    c.once('error', (err) =>
      finish({ connected: false, error: err.message, code: (err as { code?: number }).code }),
    );
    c.once('close', () => finish({ connected: false, error: 'closed' }));
  });
}

/** Resolves with the first message on `topic` that satisfies `pred`, or rejects after `timeoutMs`. */
export function nextMessage<T = unknown>(
  client: MqttClient,
  topic: string,
  pred: (body: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', on);
      reject(new Error(`no message on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      const body = JSON.parse(payload.toString()) as T;
      if (!pred(body)) return;
      clearTimeout(timer);
      client.off('message', on);
      resolve(body);
    };
    client.on('message', on);
  });
}

/** Resolves when the client's connection closes, or rejects after `timeoutMs`. */
export function closed(client: MqttClient, timeoutMs = 5000): Promise<void> {
  if (client.disconnected || !client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`connection still open after ${timeoutMs} ms`)),
      timeoutMs,
    );
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Collects the messages an internal broker subscriber sees; `next` waits for one matching. */
export function brokerTap(cloud: LocalCloud, filter: string) {
  const seen: { topic: string; body: Record<string, unknown> }[] = [];
  const waiters: {
    pred: (m: { topic: string; body: Record<string, unknown> }) => boolean;
    resolve: (m: { topic: string; body: Record<string, unknown> }) => void;
  }[] = [];
  const off = cloud.broker.subscribe(filter, (topic, payload) => {
    const m = { topic, body: JSON.parse(payload.toString()) as Record<string, unknown> };
    seen.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  return {
    seen,
    off,
    next(pred: (m: { topic: string; body: Record<string, unknown> }) => boolean, timeoutMs = 5000) {
      const already = seen.find(pred);
      if (already) return Promise.resolve(already);
      return new Promise<{ topic: string; body: Record<string, unknown> }>((resolve, reject) => {
        const w = {
          pred,
          resolve: (m: { topic: string; body: Record<string, unknown> }) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching message on ${filter} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

/**
 * Polls `probe` until it returns a value (not undefined; a throw counts as "not yet"), or fails after
 * `timeoutMs` naming `what` and the last error. For conditions that no event announces (objects in S3,
 * shadow documents); where an event exists, wait on the event instead.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
