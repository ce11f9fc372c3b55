/**
 * The local IoT Core broker's policy matrix: what IoT Core refuses, the local broker refuses, and the
 * broker keeps serving everyone else. Behaviour as documented in the AWS IoT Core developer guide:
 * "AWS IoT Core policies", "Thing policy variables", "AWS IoT differences from MQTT specifications",
 * "Lifecycle events" and "AWS IoT Core message broker and protocol limits and quotas".
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { MqttClient } from 'mqtt';
import { createDeviceIdentity, createRootCa } from '../../certs-tooling/x509.js';
import {
  brokerTap,
  closed,
  connectDevice,
  nextMessage,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
  tryConnect,
} from '../helpers/cloud.js';

let tc: TestCloud;
let a: TestDevice;
let b: TestDevice;
let bystander: MqttClient;

beforeAll(async () => {
  tc = await startTestCloud();
  a = await tc.provision('thing-a');
  b = await tc.provision('thing-b');
  // A connected client that must be unaffected by every refusal below.
  bystander = await connectDevice(tc.cloud, b, 'thing-b');
  await bystander.subscribeAsync('things/thing-b/#', { qos: 1 });
});

afterAll(async () => {
  bystander?.end(true);
  await tc.stop();
  removeDir(tc.dataDir);
});

/** The bystander still gets its own messages: the broker is up and other clients are unaffected. */
async function bystanderStillWorks(): Promise<void> {
  const seq = Math.random();
  const got = nextMessage<{ seq: number }>(bystander, 'things/thing-b/echo', (m) => m.seq === seq);
  await bystander.publishAsync('things/thing-b/echo', JSON.stringify({ seq }), { qos: 1 });
  await got;
}

describe('CONNECT', () => {
  it('accepts a thing whose client id is its own name, and publishes a connected lifecycle event', async () => {
    const tap = brokerTap(tc.cloud, '$aws/events/presence/+/thing-a');
    const c = await connectDevice(tc.cloud, a, 'thing-a');
    const ev = await tap.next((m) => m.body.eventType === 'connected');
    expect(ev.topic).toBe('$aws/events/presence/connected/thing-a');
    expect(ev.body).toMatchObject({
      clientId: 'thing-a',
      eventType: 'connected',
      principalIdentifier: a.certificateId,
    });
    expect(typeof ev.body.sessionIdentifier).toBe('string');
    expect(typeof ev.body.timestamp).toBe('number');
    await c.endAsync();
    const gone = await tap.next((m) => m.body.eventType === 'disconnected');
    expect(gone.body).toMatchObject({
      clientInitiatedDisconnect: true,
      disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
    });
    tap.off();
  });

  it('refuses a client id that is not the thing name', async () => {
    const r = await tryConnect(tc.cloud, a, 'someone-else');
    expect(r.connected).toBe(false);
    expect(r.code).toBe(5);
    await bystanderStillWorks();
  });

  it("refuses thing A's certificate presenting thing B's name", async () => {
    const r = await tryConnect(tc.cloud, a, 'thing-b');
    expect(r).toMatchObject({ connected: false, code: 5 });
    await bystanderStillWorks();
  });

  it.each(['thing-a#', 'thing-a/+', 'thing-a/x', '#', '+'])('refuses client id %s', async (clientId) => {
    const r = await tryConnect(tc.cloud, a, clientId);
    expect(r.connected).toBe(false);
    await bystanderStillWorks();
  });

  it('refuses INACTIVE and REVOKED certificates, and closes a live connection when its certificate is deactivated', async () => {
    const c = await tc.provision('thing-c');
    const live = await connectDevice(tc.cloud, c, 'thing-c');
    const tap = brokerTap(tc.cloud, '$aws/events/presence/disconnected/thing-c');
    tc.cloud.registry.updateCertificateStatus(c.certificateId, 'INACTIVE');
    await closed(live);
    const ev = await tap.next(() => true);
    expect(ev.body.disconnectReason).toBe('AUTH_ERROR');
    tap.off();
    expect(await tryConnect(tc.cloud, c, 'thing-c')).toMatchObject({ connected: false, code: 5 });
    tc.cloud.registry.updateCertificateStatus(c.certificateId, 'REVOKED');
    expect(await tryConnect(tc.cloud, c, 'thing-c')).toMatchObject({ connected: false, code: 5 });
    await bystanderStillWorks();
  });

  it('refuses a certificate signed by an unknown CA at the TLS handshake', async () => {
    const rogueCa = await createRootCa('rogue CA');
    const rogue = await createDeviceIdentity(rogueCa, 'thing-a');
    const r = await tryConnect(tc.cloud, { cert: rogue.certPem, key: rogue.keyPem, ca: a.ca }, 'thing-a');
    expect(r.connected).toBe(false);
    expect(r.code).toBeUndefined();
    await bystanderStillWorks();
  });

  it('refuses an expired certificate even though it is registered and ACTIVE', async () => {
    const day = 86_400_000;
    const old = await tc.provision('thing-old', {
      validity: { notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) },
    });
    expect(tc.cloud.registry.describeCertificate(old.certificateId).status).toBe('ACTIVE');
    const r = await tryConnect(tc.cloud, old, 'thing-old');
    expect(r.connected).toBe(false);
    expect(r.code).toBeUndefined();
    await bystanderStillWorks();
  });

  it('an unregistered certificate from the local CA cannot connect', async () => {
    const stray = await createDeviceIdentity(tc.cloud.pki.rootCa, 'thing-a');
    const r = await tryConnect(tc.cloud, { cert: stray.certPem, key: stray.keyPem, ca: a.ca }, 'thing-a');
    expect(r).toMatchObject({ connected: false, code: 5 });
  });

  it('a second connection with the same client id closes the first (DUPLICATE_CLIENTID)', async () => {
    const tap = brokerTap(tc.cloud, '$aws/events/presence/disconnected/thing-a');
    const first = await connectDevice(tc.cloud, a, 'thing-a');
    const second = await connectDevice(tc.cloud, a, 'thing-a');
    await closed(first);
    const ev = await tap.next(() => true);
    expect(ev.body).toMatchObject({
      disconnectReason: 'DUPLICATE_CLIENTID',
      clientInitiatedDisconnect: false,
    });
    expect(second.connected).toBe(true);
    await second.endAsync();
    tap.off();
  });
});

describe('PUBLISH, SUBSCRIBE and delivery', () => {
  let dev: MqttClient;

  beforeAll(async () => {
    dev = await connectDevice(tc.cloud, a, 'thing-a');
  });
  afterAll(() => {
    dev?.end(true);
  });

  async function reconnect(): Promise<void> {
    if (!dev.connected) dev = await connectDevice(tc.cloud, a, 'thing-a');
  }

  it('lets a thing publish and subscribe on its own topics', async () => {
    await reconnect();
    const granted = await dev.subscribeAsync('things/thing-a/cmd', { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    const got = nextMessage<{ n: number }>(dev, 'things/thing-a/cmd');
    await dev.publishAsync('things/thing-a/cmd', JSON.stringify({ n: 1 }), { qos: 1 });
    expect(await got).toEqual({ n: 1 });
  });

  it.each([
    ['publish to another thing', (c: MqttClient) => c.publish('things/thing-b/cmd', 'x', { qos: 1 })],
    ['subscribe to another thing', (c: MqttClient) => c.subscribe('things/thing-b/#', { qos: 1 })],
    ['subscribe to #', (c: MqttClient) => c.subscribe('#', { qos: 0 })],
    ['subscribe to things/+/cmd', (c: MqttClient) => c.subscribe('things/+/cmd', { qos: 0 })],
    ['publish with QoS 2', (c: MqttClient) => c.publish('things/thing-a/cmd', 'x', { qos: 2 })],
    [
      'publish over 128 KB',
      (c: MqttClient) => c.publish('things/thing-a/cmd', Buffer.alloc(128 * 1024 + 1), { qos: 0 }),
    ],
    [
      'publish to a reserved response topic',
      (c: MqttClient) => c.publish('$aws/things/thing-a/shadow/update/accepted', '{}', { qos: 0 }),
    ],
    [
      'publish to a lifecycle topic',
      (c: MqttClient) => c.publish('$aws/events/presence/connected/thing-a', '{}', { qos: 0 }),
    ],
    [
      'publish to a topic with 8 slashes',
      (c: MqttClient) => c.publish('things/thing-a/1/2/3/4/5/6/7', 'x', { qos: 0 }),
    ],
  ])('disconnects the client for: %s', async (_what, act) => {
    await reconnect();
    const gone = closed(dev);
    act(dev);
    await gone;
    await bystanderStillWorks();
  });

  it('grants QoS 1 to a QoS 2 subscription', async () => {
    await reconnect();
    const granted = await dev.subscribeAsync('things/thing-a/q2', { qos: 2 });
    expect(granted[0]?.qos).toBe(1);
  });

  it('does not deliver to a subscriber a message its policy does not let it receive', async () => {
    await reconnect();
    // thing-a may subscribe to its own shadow topics; a message the service publishes on thing-b's
    // shadow topic never reaches thing-a, and a message on thing-a's topic does.
    await dev.subscribeAsync('$aws/things/thing-a/shadow/get/accepted', { qos: 0 });
    const got = nextMessage(dev, '$aws/things/thing-a/shadow/get/rejected', () => true, 5000);
    await dev.subscribeAsync('$aws/things/thing-a/shadow/get/rejected', { qos: 0 });
    const wrong: string[] = [];
    dev.on('message', (t) => {
      if (t.includes('thing-b')) wrong.push(t);
    });
    await tc.cloud.broker.publish('$aws/things/thing-b/shadow/get/rejected', '{}');
    await dev.publishAsync('$aws/things/thing-a/shadow/get', '{}', { qos: 1 });
    await got;
    expect(wrong).toEqual([]);
  });

  it('applies a policy change to live connections (cached decisions are dropped)', async () => {
    const d = await tc.provision('thing-d');
    const live = await connectDevice(tc.cloud, d, 'thing-d');
    await live.subscribeAsync('things/thing-d/x', { qos: 1 });
    const echo = nextMessage(live, 'things/thing-d/x');
    await live.publishAsync('things/thing-d/x', '{}', { qos: 1 });
    await echo;
    tc.cloud.registry.createPolicy('deny-d-x', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Deny', Action: 'iot:Publish', Resource: '*' }],
    });
    tc.cloud.registry.attachPolicy('deny-d-x', d.certificateArn);
    const gone = closed(live);
    live.publish('things/thing-d/x', '{}', { qos: 1 });
    await gone;
    await bystanderStillWorks();
  });
});

describe('internal subscribers', () => {
  it('deliver to every matching subscriber even when one unsubscribes while the message is dispatched', async () => {
    const got: string[] = [];
    const offFirst = tc.cloud.broker.subscribe('internal/+/probe', () => {
      got.push('first');
      offFirst();
    });
    const offSecond = tc.cloud.broker.subscribe('internal/a/probe', () => got.push('second'));
    try {
      await tc.cloud.broker.publish('internal/a/probe', '{}', 1);
      expect(got).toEqual(['first', 'second']);
    } finally {
      offSecond();
    }
  });
});
