/**
 * Device shadows through the local cloud's two doors: the reserved MQTT topics ("Device Shadow MQTT
 * topics") and the data-plane HTTP API used unchanged through @aws-sdk/client-iot-data-plane
 * ("Device Shadow REST API").
 */

import {
  ConflictException,
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  InvalidRequestException,
  IoTDataPlaneClient,
  ListNamedShadowsForThingCommand,
  PublishCommand,
  ResourceNotFoundException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { MqttClient } from 'mqtt';
import { shadowTopics } from '../../protocol/topics.js';
import {
  connectDevice,
  nextMessage,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';

type Doc = Record<string, unknown> & { version?: number; state?: Record<string, unknown> };

let tc: TestCloud;
let dev: TestDevice;
let mq: MqttClient;
let data: IoTDataPlaneClient;
const THING = 'shadow-thing';
const t = shadowTopics(THING);
const named = shadowTopics(THING, 'config');

const decode = (p: Uint8Array | undefined): Doc => JSON.parse(Buffer.from(p ?? []).toString()) as Doc;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

beforeAll(async () => {
  tc = await startTestCloud();
  dev = await tc.provision(THING);
  mq = await connectDevice(tc.cloud, dev, THING);
  await mq.subscribeAsync(`$aws/things/${THING}/shadow/#`, { qos: 1 });
  data = new IoTDataPlaneClient(tc.cloud.sdkConfig());
});

afterAll(async () => {
  data?.destroy();
  mq?.end(true);
  await tc.stop();
  removeDir(tc.dataDir);
});

describe('over MQTT', () => {
  it('update -> accepted, delta and documents; get -> accepted; delete -> accepted', async () => {
    const accepted = nextMessage<Doc>(mq, t.updateAccepted, (d) => d.clientToken === 'u1');
    const documents = nextMessage<Doc>(mq, t.updateDocuments, (d) => d.clientToken === 'u1');
    const delta = nextMessage<Doc>(mq, t.updateDelta, (d) => d.clientToken === 'u1');
    await mq.publishAsync(
      t.update,
      JSON.stringify({ state: { desired: { color: 'red' } }, clientToken: 'u1' }),
      { qos: 1 },
    );
    const acc = await accepted;
    expect(acc).toMatchObject({ state: { desired: { color: 'red' } }, version: 1, clientToken: 'u1' });
    expect((await delta).state).toEqual({ color: 'red' });
    const docs = await documents;
    expect(docs).toMatchObject({ current: { state: { desired: { color: 'red' } }, version: 1 } });

    const got = nextMessage<Doc>(mq, t.getAccepted, (d) => d.clientToken === 'g1');
    await mq.publishAsync(t.get, JSON.stringify({ clientToken: 'g1' }), { qos: 1 });
    expect(await got).toMatchObject({
      state: { desired: { color: 'red' }, delta: { color: 'red' } },
      version: 1,
    });

    const deleted = nextMessage<Doc>(mq, t.deleteAccepted, (d) => d.clientToken === 'd1');
    await mq.publishAsync(t.delete, JSON.stringify({ clientToken: 'd1' }), { qos: 1 });
    expect(await deleted).toMatchObject({ version: 1, clientToken: 'd1' });

    const missing = nextMessage<Doc>(mq, t.getRejected, (d) => d.clientToken === 'g2');
    await mq.publishAsync(t.get, JSON.stringify({ clientToken: 'g2' }), { qos: 1 });
    expect(await missing).toMatchObject({ code: 404, clientToken: 'g2' });
  });

  it('answers bad input on /update/rejected with the error document', async () => {
    const rejected = nextMessage<Doc>(mq, t.updateRejected, (d) => d.code === 400);
    await mq.publishAsync(t.update, '{not json', { qos: 1 });
    const err = await rejected;
    expect(typeof err.message).toBe('string');
    expect(typeof err.timestamp).toBe('number');
  });

  it('keeps named shadows apart from the classic shadow', async () => {
    const accepted = nextMessage<Doc>(mq, named.updateAccepted);
    await mq.publishAsync(named.update, JSON.stringify({ state: { reported: { rate: 5 } } }), { qos: 1 });
    expect(await accepted).toMatchObject({ state: { reported: { rate: 5 } } });
    const r = await data.send(new GetThingShadowCommand({ thingName: THING, shadowName: 'config' }));
    expect(decode(r.payload)).toMatchObject({ state: { reported: { rate: 5 } } });
  });
});

describe('over the data-plane API (@aws-sdk/client-iot-data-plane)', () => {
  it('UpdateThingShadow publishes accepted and delta to the device; GetThingShadow returns the document', async () => {
    const delta = nextMessage<Doc>(
      mq,
      t.updateDelta,
      (d) => (d.state as Record<string, unknown>)?.mode === 'run',
    );
    const r = await data.send(
      new UpdateThingShadowCommand({
        thingName: THING,
        payload: json({ state: { desired: { mode: 'run' } } }),
      }),
    );
    const acc = decode(r.payload);
    expect(acc.state).toEqual({ desired: { mode: 'run' } });
    const d = await delta;
    expect(d.version).toBe(acc.version);
    const got = decode((await data.send(new GetThingShadowCommand({ thingName: THING }))).payload);
    expect(got.state).toMatchObject({ desired: { mode: 'run' }, delta: { mode: 'run' } });
  });

  it('answers a stale version with ConflictException (409)', async () => {
    const cur = decode((await data.send(new GetThingShadowCommand({ thingName: THING }))).payload);
    const err = await data
      .send(
        new UpdateThingShadowCommand({
          thingName: THING,
          payload: json({ state: { desired: { a: 1 } }, version: (cur.version ?? 0) - 1 }),
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictException);
    expect((err as ConflictException).$metadata.httpStatusCode).toBe(409);
    expect((err as Error).message).toBe('Version conflict');
  });

  it('answers a missing shadow with ResourceNotFoundException (404) and bad JSON with InvalidRequestException', async () => {
    const nf = await data
      .send(new GetThingShadowCommand({ thingName: THING, shadowName: 'nope' }))
      .catch((e: unknown) => e);
    expect(nf).toBeInstanceOf(ResourceNotFoundException);
    const bad = await data
      .send(new UpdateThingShadowCommand({ thingName: THING, payload: Buffer.from('{"state":') }))
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidRequestException);
  });

  it('lists named shadows with pagination', async () => {
    for (const n of ['n1', 'n2', 'n3']) {
      await data.send(
        new UpdateThingShadowCommand({
          thingName: THING,
          shadowName: n,
          payload: json({ state: { reported: { n } } }),
        }),
      );
    }
    const first = await data.send(new ListNamedShadowsForThingCommand({ thingName: THING, pageSize: 2 }));
    expect(first.results).toHaveLength(2);
    expect(first.nextToken).toBeDefined();
    const second = await data.send(
      new ListNamedShadowsForThingCommand({ thingName: THING, pageSize: 2, nextToken: first.nextToken }),
    );
    const all = [...(first.results ?? []), ...(second.results ?? [])];
    expect(all).toEqual(expect.arrayContaining(['config', 'n1', 'n2', 'n3']));
    expect(all).not.toContain('$classic');
  });

  it('DeleteThingShadow deletes, and a second delete is 404', async () => {
    await data.send(
      new UpdateThingShadowCommand({
        thingName: THING,
        shadowName: 'tmp',
        payload: json({ state: { reported: { x: 1 } } }),
      }),
    );
    const del = decode(
      (await data.send(new DeleteThingShadowCommand({ thingName: THING, shadowName: 'tmp' }))).payload,
    );
    expect(del.version).toBe(1);
    const again = await data
      .send(new DeleteThingShadowCommand({ thingName: THING, shadowName: 'tmp' }))
      .catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ResourceNotFoundException);
  });

  it('Publish delivers to device subscribers, with the topic path-encoded', async () => {
    await mq.subscribeAsync(`things/${THING}/cmd/reboot`, { qos: 1 });
    const got = nextMessage<Doc>(mq, `things/${THING}/cmd/reboot`);
    await data.send(
      new PublishCommand({ topic: `things/${THING}/cmd/reboot`, qos: 1, payload: json({ now: true }) }),
    );
    expect(await got).toEqual({ now: true });
  });

  it('Publish to a shadow update topic updates the shadow', async () => {
    const acc = nextMessage<Doc>(mq, t.updateAccepted, (d) => d.clientToken === 'via-publish');
    await data.send(
      new PublishCommand({
        topic: t.update,
        qos: 1,
        payload: json({ state: { reported: { via: 'publish' } }, clientToken: 'via-publish' }),
      }),
    );
    expect(await acc).toMatchObject({ state: { reported: { via: 'publish' } } });
  });
});

describe('bad input over HTTP gets the documented rejection', () => {
  const send = (payload: Uint8Array) =>
    data
      .send(new UpdateThingShadowCommand({ thingName: THING, shadowName: 'bad', payload }))
      .catch((e: unknown) => e);

  it.each([
    ['non-UTF-8 bytes', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 415, 'UnsupportedDocumentEncodingException'],
    ['missing state', json({ desired: { a: 1 } }), 400, 'InvalidRequestException'],
    ['non-object desired', json({ state: { desired: 'on' } }), 400, 'InvalidRequestException'],
    [
      'clientToken over 64 bytes',
      json({ state: { reported: { a: 1 } }, clientToken: 'x'.repeat(65) }),
      400,
      'InvalidRequestException',
    ],
    [
      'nesting deeper than 6 levels',
      json({ state: { reported: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } } }),
      400,
      'InvalidRequestException',
    ],
    [
      'state over 8 KB',
      json({ state: { reported: { blob: 'x'.repeat(9000) } } }),
      413,
      'RequestEntityTooLargeException',
    ],
  ])('%s -> %i %s', async (_what, payload, status, name) => {
    const err = (await send(payload)) as Error & { $metadata: { httpStatusCode: number } };
    expect(err.name).toBe(name);
    expect(err.$metadata.httpStatusCode).toBe(status);
  });
});

describe('request signing', () => {
  it('refuses a wrong secret and an unknown access key', async () => {
    const cfg = tc.cloud.sdkConfig();
    const wrong = new IoTDataPlaneClient({
      ...cfg,
      credentials: { ...cfg.credentials, secretAccessKey: 'not-the-secret' },
    });
    const e1 = await wrong.send(new GetThingShadowCommand({ thingName: THING })).catch((e: unknown) => e);
    expect((e1 as Error).name).toBe('InvalidSignatureException');
    expect((e1 as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode).toBe(403);
    wrong.destroy();
    const unknown = new IoTDataPlaneClient({
      ...cfg,
      credentials: { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x'.repeat(40) },
    });
    const e2 = await unknown.send(new GetThingShadowCommand({ thingName: THING })).catch((e: unknown) => e);
    expect((e2 as Error).name).toBe('UnrecognizedClientException');
    unknown.destroy();
  });
});
