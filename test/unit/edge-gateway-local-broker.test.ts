/**
 * Ingest from a plain local MQTT broker (aedes on a free port): a QoS 1 record is acknowledged to the
 * sensor only once it is durable in the spool (or in deadletter).
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { ManualClock } from '../../edge-component/adapters/manual-clock.js';
import { MemoryIotChannel } from '../../edge-component/adapters/memory-channel.js';
import { parseGatewayConfig } from '../../edge-component/config.js';
import { Gateway, STREAMS } from '../../edge-component/gateway.js';
import type { UploadRequest, UploadResult } from '../../edge-component/uploader.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

let broker: Aedes;
let server: Server;
let port: number;
const dir = tempDir('edgefleet-gw-broker-');

beforeAll(async () => {
  broker = await Aedes.createBroker();
  server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  removeDir(dir);
});

it('ingests JSON records published to the local broker, deadlettering malformed ones', async () => {
  const config = parseGatewayConfig({
    thingName: 'gw-local',
    aws: { region: 'eu-central-1' },
    storage: { bucket: 'data-bucket' },
    credentials: { source: 'tes' },
    spool: { dir },
    ingest: { localBroker: { url: `mqtt://127.0.0.1:${port}`, topics: ['sensors/#'] } },
  });
  const subscribed = new Promise<void>((resolve) =>
    broker.on('subscribe', (subs) => {
      if (subs.some((s) => s.topic === 'sensors/#')) resolve();
    }),
  );
  const uploader = {
    upload: async (_req: UploadRequest): Promise<UploadResult> => {
      throw new Error('offline');
    },
  };
  const gw = await Gateway.start(config, {
    channel: new MemoryIotChannel({ connected: false }),
    uploader,
    clock: new ManualClock(),
  });
  const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  try {
    await subscribed;
    await sensor.publishAsync('sensors/line-1', JSON.stringify({ temp: 21.5 }), { qos: 1 });
    await sensor.publishAsync('sensors/line-1', '{"temp": ', { qos: 1 });
    // publishAsync resolved on the PUBACK to the broker; wait for the gateway's own processing.
    const depth = (s: string) => gw.spool.stats().streams.find((x) => x.name === s)?.depth;
    const deadline = Date.now() + 5000;
    while ((depth(STREAMS.telemetry) !== 1 || depth(STREAMS.deadletter) !== 1) && Date.now() < deadline) {
      await new Promise((r) => setImmediate(r));
    }
    expect(depth(STREAMS.telemetry)).toBe(1);
    expect(depth(STREAMS.deadletter)).toBe(1);
    const [entry] = await gw.spool.read(STREAMS.telemetry, { maxEntries: 1, maxBytes: 1 << 20 });
    expect(JSON.parse(Buffer.from(entry!.bytes).toString())).toEqual({ temp: 21.5 });
  } finally {
    await sensor.endAsync();
    await gw.stop();
  }
});
