/**
 * A firmware agent in its own process, for the crash test: the configuration (FirmwareConfigSchema input)
 * and the desired document come as JSON in FIRMWARE_CONFIG and FIRMWARE_DESIRED; the shadow's get is
 * answered with that document, and every report is printed as a `report {json}` line.
 */
import { MemoryIotChannel } from '../../edge-component/adapters/memory-channel.js';
import { FirmwareConfigSchema } from '../../edge-component/config.js';
import { FirmwareAgent } from '../../edge-component/firmware/index.js';
import { FIRMWARE_SHADOW } from '../../protocol/firmware.js';
import { shadowTopics } from '../../protocol/topics.js';

const thing = 'fw-crash';
const topics = shadowTopics(thing, FIRMWARE_SHADOW);
const config = FirmwareConfigSchema.parse(JSON.parse(process.env.FIRMWARE_CONFIG ?? '{}'));
const desired: unknown = JSON.parse(process.env.FIRMWARE_DESIRED ?? 'null');
const channel = new MemoryIotChannel({ connected: false });
channel.onPublish((m) => {
  if (m.topic === topics.get) void channel.deliver(topics.getAccepted, { state: { desired }, version: 1 });
});
const agent = await FirmwareAgent.start({
  config,
  thingName: thing,
  channel,
  shadows: {
    async update(_name, doc) {
      const r = (doc as { state: { reported: { firmware: unknown } } }).state.reported.firmware;
      process.stdout.write(`report ${JSON.stringify(r)}\n`);
    },
  },
});
process.stdout.write('started\n');
channel.setConnected(true);
process.once('SIGTERM', () => {
  void agent.stop().then(() => process.exit(0));
});
