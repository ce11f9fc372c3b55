/**
 * The gateway's direct MQTT adapter against the local IoT Core broker (mutual TLS, device policy):
 * connect as the thing, publish and subscribe, reconnect with backoff and resubscribe after the broker
 * drops the connection; and the MQTT credential provider over it, answered by a responder in the test.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { MqttChannel } from '../../edge-component/adapters/mqtt-channel.js';
import { mqttCredentialProvider } from '../../edge-component/credentials.js';
import { ChannelClosedError, ChannelNotConnectedError } from '../../edge-component/errors.js';
import type { ChannelState, IotChannel } from '../../edge-component/ports.js';
import { credentialsTopics, decodeCredentialsRequest } from '../../protocol/credentials.js';
import {
  connectDevice,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';

let tc: TestCloud;
const channels: MqttChannel[] = [];

beforeAll(async () => {
  tc = await startTestCloud();
});

afterAll(async () => {
  for (const c of channels) await c.close();
  await tc.stop();
  removeDir(tc.dataDir);
});

function open(dev: TestDevice, thing: string): MqttChannel {
  const c = new MqttChannel({
    host: tc.cloud.endpoints.host,
    port: tc.cloud.endpoints.mqttPort,
    cert: dev.cert,
    key: dev.key,
    ca: dev.ca,
    clientId: thing,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    connectTimeoutMs: 5000,
    logger: pino({ level: 'silent' }),
  });
  channels.push(c);
  return c;
}

function waitForState(c: IotChannel, state: ChannelState, timeoutMs = 5000): Promise<void> {
  if (c.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`channel not ${state} within ${timeoutMs} ms (is ${c.state})`));
    }, timeoutMs);
    const off = c.onStateChange((s) => {
      if (s !== state) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** Resolves with the next message a subscription handler receives. */
function receiver() {
  const waiting: ((m: { topic: string; body: string }) => void)[] = [];
  const got: { topic: string; body: string }[] = [];
  return {
    handler: (topic: string, payload: Buffer) => {
      const m = { topic, body: payload.toString() };
      const w = waiting.shift();
      if (w) w(m);
      else got.push(m);
    },
    next(timeoutMs = 5000): Promise<{ topic: string; body: string }> {
      const m = got.shift();
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
        waiting.push((msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
      });
    },
  };
}

describe('MqttChannel', () => {
  it('connects as the thing, publishes at QoS 1 and receives on its subscriptions', async () => {
    const thing = 'gw-chan-1';
    const dev = await tc.provision(thing);
    let onStatus: (m: { topic: string; clientId: string | undefined }) => void = () => {};
    const status = new Promise<{ topic: string; clientId: string | undefined }>((resolve) => {
      onStatus = resolve;
    });
    const off = tc.cloud.broker.subscribe(`things/${thing}/status`, (topic, _p, meta) => {
      onStatus({ topic, clientId: meta.clientId });
    });
    const c = open(dev, thing);
    expect(c.state).toBe('connecting');
    await waitForState(c, 'connected');
    const r = receiver();
    await c.subscribe(`things/${thing}/commands/+`, r.handler, 1);
    await tc.cloud.broker.publish(`things/${thing}/commands/reboot`, '{"now":true}', 1);
    expect(await r.next()).toEqual({ topic: `things/${thing}/commands/reboot`, body: '{"now":true}' });
    await c.publish(`things/${thing}/status`, JSON.stringify({ ok: true }), 1);
    expect(await status).toEqual({ topic: `things/${thing}/status`, clientId: thing });
    off();
    await c.close();
    expect(c.state).toBe('closed');
    await expect(c.publish(`things/${thing}/status`, 'x', 0)).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('reconnects after the broker drops it, and resubscribes before reporting connected', async () => {
    const thing = 'gw-chan-2';
    const dev = await tc.provision(thing);
    const c = open(dev, thing);
    const states: ChannelState[] = [];
    c.onStateChange((s) => states.push(s));
    await waitForState(c, 'connected');
    const r = receiver();
    await c.subscribe(`things/${thing}/commands/#`, r.handler, 1);
    // A second connection with the same client id: IoT Core closes the first (DUPLICATE_CLIENTID).
    const intruder = await connectDevice(tc.cloud, dev, thing);
    await waitForState(c, 'disconnected');
    await expect(c.publish(`things/${thing}/x`, 'x', 1)).rejects.toBeInstanceOf(ChannelNotConnectedError);
    // A subscription made while disconnected is made on the next connection.
    const late = receiver();
    await c.subscribe(`things/${thing}/late`, late.handler, 1);
    await waitForState(c, 'connected');
    intruder.end(true);
    await tc.cloud.broker.publish(`things/${thing}/commands/again`, 'again', 1);
    expect((await r.next()).body).toBe('again');
    await tc.cloud.broker.publish(`things/${thing}/late`, 'late', 1);
    expect((await late.next()).body).toBe('late');
    expect(states.slice(0, 3)).toEqual(['connected', 'disconnected', 'connected']);
    await c.close();
  });

  it('a forbidden subscription fails (IoT Core closes the connection) and the channel recovers', async () => {
    const thing = 'gw-chan-3';
    const dev = await tc.provision(thing);
    const c = open(dev, thing);
    await waitForState(c, 'connected');
    await expect(c.subscribe('things/someone-else/commands', () => {}, 1)).rejects.toBeInstanceOf(
      ChannelNotConnectedError,
    );
    await waitForState(c, 'connected');
    const r = receiver();
    await c.subscribe(`things/${thing}/ok`, r.handler, 1);
    await tc.cloud.broker.publish(`things/${thing}/ok`, 'fine', 1);
    expect((await r.next()).body).toBe('fine');
    await c.close();
  });
});

describe('mqttCredentialProvider over the broker', () => {
  it('gets credentials from a responder on the response topic', async () => {
    const thing = 'gw-chan-4';
    const dev = await tc.provision(thing);
    const topics = credentialsTopics(thing);
    const requests: string[] = [];
    const off = tc.cloud.broker.subscribe(topics.request, (_topic, payload, meta) => {
      const req = decodeCredentialsRequest(payload);
      if (!req.ok || meta.clientId !== thing) return;
      requests.push(req.value.requestId);
      void tc.cloud.broker.publish(
        topics.response,
        JSON.stringify({
          requestId: req.value.requestId,
          accessKeyId: 'ASIATESTRESPONDER',
          secretAccessKey: 'secret',
          sessionToken: 'token',
          expiration: new Date(Date.now() + 3600_000).toISOString(),
        }),
        1,
      );
    });
    const c = open(dev, thing);
    const provider = mqttCredentialProvider({
      channel: c,
      thingName: thing,
      logger: pino({ level: 'silent' }),
    });
    // Called before the channel is up: the request waits for the connection.
    const creds = await provider();
    expect(creds.accessKeyId).toBe('ASIATESTRESPONDER');
    expect(requests).toHaveLength(1);
    expect(await provider()).toBe(creds);
    expect(requests).toHaveLength(1);
    await provider.close();
    off();
    await c.close();
  });
});
