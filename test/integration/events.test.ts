/**
 * Exactly-once events (QoS 2 emulation): the rule edgefleet_events runs the event acknowledgement
 * function, which stores each message id once (a conditional write) and acknowledges every delivery.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { MqttClient } from 'mqtt';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { type EventAck, eventObjectKey, eventTopics } from '../../protocol/events.js';
import { connectDevice, nextMessage, removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let gw: MqttClient;
const THING = 'gw-events';
const topics = eventTopics(THING);

beforeAll(async () => {
  tc = await startTestCloud();
  const dev = await tc.provision(THING);
  gw = await connectDevice(tc.cloud, dev, THING);
  await gw.subscribeAsync(topics.ack, { qos: 1 });
});

afterAll(async () => {
  gw?.end(true);
  await tc.stop();
  removeDir(tc.dataDir);
});

async function send(event: Record<string, unknown>, msgId: string): Promise<EventAck> {
  const ack = nextMessage<EventAck>(gw, topics.ack, (a) => a.msgId === msgId, 10_000);
  await gw.publishAsync(topics.events, JSON.stringify(event), { qos: 1 });
  return ack;
}

it('stores an event once and acknowledges the first delivery as accepted, a retransmission as duplicate', async () => {
  const msgId = randomUUID();
  const event = { msgId, type: 'alarm', ts: Date.UTC(2026, 10, 23, 8), data: { code: 'OVERHEAT', temp: 91 } };
  expect(await send(event, msgId)).toEqual({ msgId, status: 'accepted' });
  expect(await send(event, msgId)).toEqual({ msgId, status: 'duplicate' });
  expect(await send(event, msgId)).toEqual({ msgId, status: 'duplicate' });
  const file = join(tc.dataDir, 's3', LOCAL_DATA_BUCKET, eventObjectKey(THING, msgId, event.ts));
  expect(existsSync(file)).toBe(true);
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ thingName: THING, ...event });
  const dir = join(tc.dataDir, 's3', LOCAL_DATA_BUCKET, 'events', THING, 'dt=2026-11-23');
  expect(readdirSync(dir).filter((f) => f.startsWith(msgId))).toHaveLength(1);
});

it('acknowledges a malformed event with a message id as rejected, naming the field', async () => {
  const msgId = randomUUID();
  const ack = await send({ msgId, type: '', ts: 1 }, msgId);
  expect(ack).toMatchObject({ msgId, status: 'rejected', error: expect.stringMatching(/^type:/) });
});

it('two different events are both accepted', async () => {
  const a = randomUUID();
  const b = randomUUID();
  expect((await send({ msgId: a, type: 'state', ts: 5 }, a)).status).toBe('accepted');
  expect((await send({ msgId: b, type: 'state', ts: 5 }, b)).status).toBe('accepted');
});
