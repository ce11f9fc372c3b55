// Load generator for the broker benchmark, run in a worker thread so that the broker under test keeps
// the main thread: P publishers and S subscribers over mutual TLS; every subscriber subscribes to every
// publisher's topic. Reports how long all deliveries took.
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';

const { url, publishers, subscribers, messages, qos, payloadBytes, tlsFor } = workerData;

function connect(clientId) {
  const tls = tlsFor[clientId];
  return mqtt.connectAsync(url, {
    clientId,
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
}

const subs = await Promise.all(Array.from({ length: subscribers }, (_, i) => connect(`bench-sub-${i}`)));
const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => connect(`bench-pub-${i}`)));
await Promise.all(subs.map((s) => s.subscribeAsync('bench/+/data', { qos })));

const expected = publishers * messages * subscribers;
let received = 0;
let resolveDone;
const done = new Promise((r) => {
  resolveDone = r;
});
for (const s of subs) {
  s.on('message', () => {
    received += 1;
    if (received === expected) resolveDone();
  });
}
const payload = Buffer.alloc(payloadBytes, 97);
const started = performance.now();
await Promise.all(
  pubs.map(async (p, i) => {
    const topic = `bench/bench-pub-${i}/data`;
    // Bounded window of unacknowledged publishes per client.
    const window = 64;
    const inflight = new Set();
    for (let m = 0; m < messages; m++) {
      const pr = p.publishAsync(topic, payload, { qos });
      inflight.add(pr);
      pr.finally(() => inflight.delete(pr));
      if (inflight.size >= window) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  }),
);
const timeout = setTimeout(() => resolveDone(), 60_000);
await done;
clearTimeout(timeout);
const elapsedMs = performance.now() - started;
await Promise.all([...subs, ...pubs].map((c) => c.endAsync(true)));
parentPort.postMessage({ elapsedMs, received, expected });
