/**
 * The simulated gateways of the firmware benchmark, in a process of their own (bench/firmware.ts forks
 * it with an IPC channel): one real FirmwareAgent per device, each on its own MQTT connection over
 * mutual TLS, applying with the built-in link mode in a directory of its own (the request, a JSON file
 * named in argv[2], lists the devices). Sends `ready` once every
 * agent is connected; stops all of them on `stop` and exits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { MqttChannel } from '../edge-component/adapters/mqtt-channel.js';
import { FirmwareConfigSchema } from '../edge-component/config.js';
import { FirmwareAgent } from '../edge-component/firmware/index.js';
import { mqttShadowClient } from '../edge-component/gateway.js';

export interface FirmwareChildRequest {
  host: string;
  port: number;
  dir: string;
  trustedKeys: Record<string, string>;
  devices: { thing: string; cert: string; key: string; ca: string }[];
}

const req = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as FirmwareChildRequest;
const logger = pino({ level: 'silent' });
const channels: MqttChannel[] = [];
const agents: FirmwareAgent[] = [];
await Promise.all(
  req.devices.map(async (d) => {
    const channel = new MqttChannel({
      host: req.host,
      port: req.port,
      cert: d.cert,
      key: d.key,
      ca: d.ca,
      clientId: d.thing,
      reconnect: { initialDelayMs: 200, maxDelayMs: 2000 },
      logger,
    });
    channels.push(channel);
    const config = FirmwareConfigSchema.parse({
      target: 'gateway',
      currentVersion: '1.0.0',
      dir: join(req.dir, d.thing),
      trustedKeys: req.trustedKeys,
      apply: { mode: 'link' },
    });
    agents.push(
      await FirmwareAgent.start({
        config,
        thingName: d.thing,
        channel,
        shadows: mqttShadowClient(channel, d.thing),
        logger,
      }),
    );
    await new Promise<void>((resolve) => {
      if (channel.connected) return resolve();
      const off = channel.onStateChange((s) => {
        if (s === 'connected') {
          off();
          resolve();
        }
      });
    });
  }),
);
process.send?.({ kind: 'ready' });
process.on('message', async (m: { kind?: string }) => {
  if (m.kind !== 'stop') return;
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(channels.map((c) => c.close()));
  process.send?.({ kind: 'stopped', rssMB: process.resourceUsage().maxRSS / 1024 }, () => process.exit(0));
});
