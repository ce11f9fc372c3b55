// Load generator for the lake ingest benchmark, run in a worker thread so that the local cloud keeps
// the main thread: one mutual-TLS client per thing publishes `records` telemetry records (one JSON
// object of about `recordBytes` bytes per message, QoS 1) on dt/{thing}/telemetry, with a bounded
// window of unacknowledged publishes. Reports when the last PUBACK arrived.
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';
import { telemetryRecord } from './telemetry-record.mjs';

const { url, things, records, recordBytes, window, tlsFor } = workerData;

const clients = await Promise.all(
  things.map((thing) =>
    mqtt.connectAsync(url, {
      clientId: thing,
      cert: tlsFor[thing].cert,
      key: tlsFor[thing].key,
      ca: tlsFor[thing].ca,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    }),
  ),
);
const started = performance.now();
await Promise.all(
  clients.map(async (c, k) => {
    const thing = things[k];
    const topic = `dt/${thing}/telemetry`;
    const inflight = new Set();
    for (let i = 0; i < records; i++) {
      const pr = c.publishAsync(topic, telemetryRecord(i, recordBytes), { qos: 1 });
      inflight.add(pr);
      pr.finally(() => inflight.delete(pr));
      if (inflight.size >= window) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  }),
);
const elapsedMs = performance.now() - started;
await Promise.all(clients.map((c) => c.endAsync(true)));
parentPort.postMessage({ elapsedMs, published: things.length * records });
