// Load generator for the JITR benchmark, run in a worker thread so that the local cloud keeps the main
// thread: every device connects at once over mutual TLS and, while it is refused, retries with
// exponential backoff (as the gateway's MQTT channel does); once in, it publishes one QoS 1 message.
// Reports, per device, the time from its first connection attempt to the PUBACK of that publish.
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';

const { url, devices, initialDelayMs, maxDelayMs, timeoutMs } = workerData;

/**
 * Connects without mqtt.js's reconnect. A refused connection is closed without a CONNACK (JITR), which
 * mqtt.js reports as 'close' only, so that rejects too.
 */
function connect(device) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      clientId: device.thing,
      cert: device.cert,
      key: device.key,
      ca: device.ca,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    const fail = (err) => {
      client.removeAllListeners();
      client.on('error', () => {});
      client.end(true);
      reject(err ?? new Error('connection closed'));
    };
    client.once('connect', () => {
      client.removeListener('error', fail);
      client.removeListener('close', fail);
      resolve(client);
    });
    client.once('error', fail);
    client.once('close', () => fail());
  });
}

async function join(device) {
  const started = performance.now();
  let attempts = 0;
  for (let delay = initialDelayMs; ; delay = Math.min(maxDelayMs, delay * 2)) {
    attempts++;
    if (performance.now() - started > timeoutMs)
      throw new Error(`${device.thing}: not in after ${attempts} attempts`);
    let client;
    try {
      client = await connect(device);
    } catch {
      await new Promise((r) => setTimeout(r, delay));
      continue;
    }
    try {
      await client.publishAsync(`dt/${device.thing}/heartbeat`, JSON.stringify({ ts: Date.now() }), {
        qos: 1,
      });
      return { ms: performance.now() - started, attempts };
    } finally {
      await client.endAsync(true);
    }
  }
}

const results = await Promise.all(devices.map((d) => join(d)));
parentPort.postMessage(results);
