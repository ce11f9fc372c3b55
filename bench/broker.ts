/**
 * Broker benchmark: MQTT over TLS, 256-byte payloads, 10 publishers to 10 subscribers (every subscriber
 * receives every publisher), QoS 0 and QoS 1. The local IoT Core broker (certificate checks and IoT
 * policies at CONNECT, PUBLISH, SUBSCRIBE and every delivery) against plain aedes over the same TLS
 * setup with no policy, alternated in the same run. Also the shadow update round-trip over MQTT.
 */
import { once } from 'node:events';
import { createServer } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { LocalCloud } from '../cloud/local/index.js';
import { provisionThing, readDeviceFiles } from '../cloud/local/provision.js';
import { shadowTopics } from '../protocol/topics.js';
import { median, percentile } from './stats.js';

export interface BrokerBenchOptions {
  dataDir: string;
  rounds: number;
  messagesPerPublisher: number;
  shadowUpdates: number;
}

type Tls = { cert: string; key: string; ca: string };

const PUBLISHERS = 10;
const SUBSCRIBERS = 10;
const PAYLOAD = 256;

function runLoad(url: string, qos: 0 | 1, messages: number, tlsFor: Record<string, Tls>) {
  const worker = new Worker(new URL('./mqtt-load.mjs', import.meta.url), {
    workerData: {
      url,
      publishers: PUBLISHERS,
      subscribers: SUBSCRIBERS,
      messages,
      qos,
      payloadBytes: PAYLOAD,
      tlsFor,
    },
  });
  return new Promise<{ elapsedMs: number; received: number; expected: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  }).finally(() => worker.terminate());
}

/** Plain aedes behind node:tls with the same certificates and client-certificate request, no hooks. */
async function startPlainAedes(cloud: LocalCloud) {
  const aedes = await Aedes.createBroker();
  const server = createServer(
    {
      cert: cloud.pki.server.certPem,
      key: cloud.pki.server.keyPem,
      ca: [cloud.pki.rootCa.certPem],
      minVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      socket.setNoDelay(true);
      aedes.handle(socket);
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtts://127.0.0.1:${port}`,
    async close() {
      await new Promise<void>((r) => aedes.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface ThroughputRow {
  qos: 0 | 1;
  baselineMsgsPerSec: number;
  policyMsgsPerSec: number;
  ratio: number;
  baselineRuns: number[];
  policyRuns: number[];
}

export async function benchBroker(opts: BrokerBenchOptions, log: (s: string) => void) {
  const cloud = await LocalCloud.start({ dataDir: opts.dataDir, mqttPort: 0, httpPort: 0 });
  try {
    // Bench things: publishers may publish only to bench/{own name}/data; subscribers may subscribe to and
    // receive bench/*/data. Every check is a real policy evaluation with the thing-name variable.
    const thing = '$' + '{iot:Connection.Thing.ThingName}';
    const arn = (k: string, r: string) =>
      `arn:aws:iot:${cloud.options.region}:${cloud.options.accountId}:${k}/${r}`;
    cloud.registry.putPolicy('bench', {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: arn('client', thing),
          Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
        },
        {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: arn('topic', `bench/${thing}/data`),
        },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', 'bench/+/data') },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', 'bench/*/data') },
      ],
    });
    const tlsFor: Record<string, Tls> = {};
    const names = [
      ...Array.from({ length: PUBLISHERS }, (_, i) => `bench-pub-${i}`),
      ...Array.from({ length: SUBSCRIBERS }, (_, i) => `bench-sub-${i}`),
    ];
    for (const name of names) {
      let dev = cloud.registry.findThing(name)
        ? await readDeviceFiles(`${opts.dataDir}/devices/${name}`).catch(() => undefined)
        : undefined;
      if (!dev) {
        await provisionThing({ thingName: name, outDir: `${opts.dataDir}/devices/${name}` }, cloud);
        dev = await readDeviceFiles(`${opts.dataDir}/devices/${name}`);
      }
      const certArn = cloud.registry.listThingPrincipals(name)[0]!;
      cloud.registry.detachPolicy('edgefleet-device', certArn);
      cloud.registry.attachPolicy('bench', certArn);
      tlsFor[name] = { cert: dev.cert, key: dev.key, ca: dev.ca };
    }

    const plain = await startPlainAedes(cloud);
    const rows: ThroughputRow[] = [];
    try {
      for (const qos of [0, 1] as const) {
        // Warm-up of both, then alternate so that machine noise hits both alike.
        await runLoad(plain.url, qos, 200, tlsFor);
        await runLoad(cloud.endpoints.mqttUrl, qos, 200, tlsFor);
        const base: number[] = [];
        const pol: number[] = [];
        for (let r = 0; r < opts.rounds; r++) {
          for (const [target, into] of [
            [plain.url, base],
            [cloud.endpoints.mqttUrl, pol],
          ] as const) {
            const res = await runLoad(target, qos, opts.messagesPerPublisher, tlsFor);
            if (res.received !== res.expected) {
              log(
                `  note: ${target === plain.url ? 'baseline' : 'policy'} QoS ${qos} delivered ${res.received}/${res.expected}`,
              );
            }
            into.push((res.received / res.elapsedMs) * 1000);
          }
          log(
            `  QoS ${qos} round ${r + 1}/${opts.rounds}: baseline ${base.at(-1)!.toFixed(0)} msg/s, policies ${pol.at(-1)!.toFixed(0)} msg/s`,
          );
        }
        const b = median(base);
        const p = median(pol);
        rows.push({
          qos,
          baselineMsgsPerSec: b,
          policyMsgsPerSec: p,
          ratio: p / b,
          baselineRuns: base,
          policyRuns: pol,
        });
      }
    } finally {
      await plain.close();
    }

    // Shadow update round-trip: publish /update, wait for /update/accepted, sequentially.
    const dev = await readDeviceFiles(`${opts.dataDir}/devices/bench-pub-0`);
    cloud.registry.attachPolicy('edgefleet-device', cloud.registry.listThingPrincipals('bench-pub-0')[0]!);
    const client = await mqtt.connectAsync(cloud.endpoints.mqttUrl, {
      clientId: 'bench-pub-0',
      cert: dev.cert,
      key: dev.key,
      ca: dev.ca,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    const t = shadowTopics('bench-pub-0');
    await client.subscribeAsync([t.updateAccepted, t.updateRejected], { qos: 1 });
    const rtt: number[] = [];
    for (let i = 0; i < opts.shadowUpdates + 20; i++) {
      const token = `b${i}`;
      const started = performance.now();
      const got = new Promise<void>((resolve) => {
        const on = (_topic: string, payload: Buffer) => {
          if ((JSON.parse(payload.toString()) as { clientToken?: string }).clientToken === token) {
            client.off('message', on);
            resolve();
          }
        };
        client.on('message', on);
      });
      await client.publishAsync(
        t.update,
        JSON.stringify({ state: { reported: { seq: i } }, clientToken: token }),
        { qos: 1 },
      );
      await got;
      if (i >= 20) rtt.push(performance.now() - started);
    }
    await client.endAsync();
    return {
      throughput: rows,
      shadow: { n: rtt.length, p50: percentile(rtt, 50), p99: percentile(rtt, 99) },
    };
  } finally {
    await cloud.stop();
  }
}
