/**
 * The local Greengrass nucleus emulation against the UNCHANGED `greengrasscoreipc` client of
 * aws-iot-device-sdk-v2 (aws-crt eventstream RPC over a Unix socket).
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import { eventstream_rpc, greengrasscoreipc } from 'aws-iot-device-sdk-v2';
import { LocalNucleus, type NucleusComponent } from '../../cloud/local/greengrass/nucleus.js';
import { brokerTap, removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

type IpcClient = greengrasscoreipc.Client;

const GATEWAY = 'com.edgefleet.Gateway';
const PEER = 'com.edgefleet.Peer';
const NOBODY = 'com.edgefleet.NoPolicies';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:edgefleet/pseudonym-key-AbCdEf';

function components(): NucleusComponent[] {
  return [
    {
      name: GATEWAY,
      configuration: { spool: { maxBytes: 1000, dir: '/var/spool' }, masking: { fields: ['badge'] } },
      accessControl: {
        'aws.greengrass.ipc.pubsub': {
          'gw:pubsub:1': {
            operations: ['aws.greengrass#PublishToTopic', 'aws.greengrass#SubscribeToTopic'],
            // `+` is literal in pub/sub policies: it authorizes subscribing to the filter itself.
            resources: ['local/sensors/*', 'local/+/status', 'local/gw/status'],
          },
        },
        'aws.greengrass.ipc.mqttproxy': {
          'gw:mqtt:1': {
            operations: ['aws.greengrass#PublishToIoTCore', 'aws.greengrass#SubscribeToIoTCore'],
            resources: ['dt/{iot:thingName}/#', 'things/{iot:thingName}/+'],
          },
        },
        'aws.greengrass.ShadowManager': {
          'gw:shadow:1': {
            operations: ['*'],
            resources: ['$aws/things/{iot:thingName}/shadow/name/*', '$aws/things/{iot:thingName}'],
          },
        },
        'aws.greengrass.SecretManager': {
          'gw:secret:1': { operations: ['aws.greengrass#GetSecretValue'], resources: [SECRET_ARN] },
        },
      },
    },
    {
      name: PEER,
      accessControl: {
        'aws.greengrass.ipc.pubsub': {
          'peer:pubsub:1': { operations: ['*'], resources: ['*'] },
        },
      },
    },
    { name: NOBODY },
  ];
}

async function connectAs(
  nucleus: LocalNucleus,
  component: string,
  overrideToken?: string,
): Promise<IpcClient> {
  const env = nucleus.componentEnv(component);
  if (overrideToken !== undefined) env.SVCUID = overrideToken;
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(env)) saved[k] = process.env[k];
  Object.assign(process.env, env);
  let client: IpcClient;
  try {
    client = greengrasscoreipc.createClient();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  await client.connect();
  return client;
}

/** A raw eventstream socket: writes frames (optionally byte by byte) and reads decoded frames. */
async function rawSocket(path: string) {
  const codec = new EventStreamCodec(toUtf8, fromUtf8);
  const sock = net.connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  const frames: { headers: MessageHeaders; body: Uint8Array }[] = [];
  const waiters: (() => void)[] = [];
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      frames.push(codec.decode(buf.subarray(0, len)));
      buf = buf.subarray(len);
    }
    for (const w of waiters.splice(0)) w();
  });
  const frame = (type: number, flags: number, streamId: number, extra: MessageHeaders = {}, body = '') =>
    codec.encode({
      headers: {
        ':message-type': { type: 'integer', value: type },
        ':message-flags': { type: 'integer', value: flags },
        ':stream-id': { type: 'integer', value: streamId },
        ...extra,
      },
      body: fromUtf8(body),
    });
  return {
    sock,
    frame,
    async writeBytewise(data: Uint8Array) {
      for (const b of data) {
        await new Promise<void>((resolve) => sock.write(Uint8Array.of(b), () => resolve()));
      }
    },
    next(timeoutMs = 5000): Promise<{ headers: MessageHeaders; body: Uint8Array }> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no frame in time')), timeoutMs);
        const take = () => {
          const f = frames.shift();
          if (!f) {
            waiters.push(take);
            return;
          }
          clearTimeout(timer);
          resolve(f);
        };
        take();
      });
    },
    closed(timeoutMs = 5000): Promise<void> {
      if (sock.destroyed) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('socket still open')), timeoutMs);
        sock.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

const intValue = (h: MessageHeaders, name: string) => {
  const v = h[name];
  return v?.type === 'integer' ? v.value : undefined;
};

/** Collects a streaming operation's events; `next` waits for one matching. */
function collect<T>(op: { on(event: 'message', l: (m: T) => void): unknown }) {
  const seen: T[] = [];
  const waiters: { pred: (m: T) => boolean; resolve: (m: T) => void }[] = [];
  op.on('message', (m: T) => {
    seen.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  return {
    seen,
    next(pred: (m: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
      const found = seen.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise<T>((resolve, reject) => {
        const w = {
          pred,
          resolve: (m: T) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching stream event within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

async function rpcError(p: Promise<unknown>): Promise<eventstream_rpc.RpcError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(eventstream_rpc.RpcError);
    return err as eventstream_rpc.RpcError;
  }
  throw new Error('expected the call to fail');
}

describe('local Greengrass nucleus IPC (no cloud)', () => {
  let dir: string;
  let nucleus: LocalNucleus;
  const clients: IpcClient[] = [];
  const open = async (c: string) => {
    const client = await connectAs(nucleus, c);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/ggipc-');
    nucleus = await LocalNucleus.start({
      socketPath: join(dir, 'ipc.sock'),
      thingName: 'gg-local-core',
      components: components(),
      secrets: {
        [SECRET_ARN]: { secretString: '{"key":"s3cr3t"}', versionId: 'v-1' },
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:other-XyZ123': { secretString: 'nope' },
      },
    });
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    await nucleus.stop();
    removeDir(dir);
  });

  it('refuses a connection with a wrong SVCUID token', async () => {
    const err = await rpcError(connectAs(nucleus, GATEWAY, 'not-a-valid-token'));
    expect(err.type).toBe(eventstream_rpc.RpcErrorType.HandshakeError);
  });

  it('wire level: frames split across chunks, ping, unknown operation, protocol error before Connect', async () => {
    const path = join(dir, 'ipc.sock');
    const raw = await rawSocket(path);
    const connect = raw.frame(
      4,
      0,
      0,
      { ':version': { type: 'string', value: '0.1.0' } },
      JSON.stringify({ authToken: nucleus.token(GATEWAY) }),
    );
    await raw.writeBytewise(connect);
    const ack = await raw.next();
    expect(intValue(ack.headers, ':message-type')).toBe(5);
    expect(intValue(ack.headers, ':message-flags')).toBe(1);

    raw.sock.write(raw.frame(2, 0, 0, {}, 'hello'));
    const pong = await raw.next();
    expect(intValue(pong.headers, ':message-type')).toBe(3);
    expect(toUtf8(pong.body)).toBe('hello');

    raw.sock.write(
      raw.frame(0, 0, 1, { operation: { type: 'string', value: 'aws.greengrass#NoSuchOp' } }, '{}'),
    );
    const unsupported = await raw.next();
    expect(intValue(unsupported.headers, ':message-type')).toBe(1);
    expect(intValue(unsupported.headers, ':message-flags')).toBe(2);
    expect(intValue(unsupported.headers, ':stream-id')).toBe(1);
    expect(JSON.parse(toUtf8(unsupported.body))).toEqual({
      error: 'Unsupported Operation',
      message: 'aws.greengrass#NoSuchOp is an unsupported operation.',
    });

    const get = raw.frame(
      0,
      0,
      2,
      { operation: { type: 'string', value: 'aws.greengrass#GetConfiguration' } },
      JSON.stringify({ keyPath: ['masking'] }),
    );
    // Two frames in one write, the second cut in half.
    const ping = raw.frame(2, 0, 0, {}, 'x');
    raw.sock.write(Buffer.concat([get, ping.subarray(0, 5)]));
    const resp = await raw.next();
    expect(resp.headers['service-model-type']).toEqual({
      type: 'string',
      value: 'aws.greengrass#GetConfigurationResponse',
    });
    expect(resp.headers[':content-type']).toEqual({ type: 'string', value: 'application/json' });
    expect(intValue(resp.headers, ':message-flags')).toBe(2);
    expect(JSON.parse(toUtf8(resp.body)).componentName).toBe(GATEWAY);
    raw.sock.write(ping.subarray(5));
    expect(intValue((await raw.next()).headers, ':message-type')).toBe(3);
    raw.sock.end();
    await raw.closed();

    const early = await rawSocket(path);
    early.sock.write(early.frame(2, 0, 0));
    const perr = await early.next();
    expect(intValue(perr.headers, ':message-type')).toBe(6);
    await early.closed();
  });

  it('reads configuration, reports missing keys, and updates its own configuration', async () => {
    const gw = await open(GATEWAY);
    const all = await gw.getConfiguration({ keyPath: [] });
    expect(all.componentName).toBe(GATEWAY);
    expect(all.value).toEqual({
      spool: { maxBytes: 1000, dir: '/var/spool' },
      masking: { fields: ['badge'] },
    });
    const leaf = await gw.getConfiguration({ keyPath: ['spool', 'maxBytes'] });
    expect(leaf.value).toEqual({ maxBytes: 1000 });
    const missing = await rpcError(gw.getConfiguration({ keyPath: ['nope'] }));
    expect(missing.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    expect((missing.serviceError as { message?: string }).message).toBe('Key not found');

    const sub = gw.subscribeToConfigurationUpdate({ keyPath: ['spool'] });
    const events = collect<greengrasscoreipc.model.ConfigurationUpdateEvents>(sub);
    await sub.activate();
    await gw.updateConfiguration({
      keyPath: ['spool'],
      valueToMerge: { maxBytes: 2000 },
      timestamp: new Date(),
    });
    const ev = await events.next();
    expect(ev.configurationUpdateEvent).toEqual({ componentName: GATEWAY, keyPath: ['spool', 'maxBytes'] });
    expect(nucleus.getConfiguration(GATEWAY).spool).toEqual({ maxBytes: 2000, dir: '/var/spool' });

    const stale = await rpcError(
      gw.updateConfiguration({
        keyPath: ['spool'],
        valueToMerge: { maxBytes: 1 },
        timestamp: new Date(1000),
      }),
    );
    expect(stale.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    await sub.close();
  });

  it('deploy: ACCEPTED after validation, with update events; REJECTED leaves the config unchanged', async () => {
    const gw = await open(GATEWAY);
    const validate = gw.subscribeToValidateConfigurationUpdates({});
    const validations = collect<greengrasscoreipc.model.ValidateConfigurationUpdateEvents>(validate);
    await validate.activate();
    const updates = gw.subscribeToConfigurationUpdate({ keyPath: [] });
    const changed = collect<greengrasscoreipc.model.ConfigurationUpdateEvents>(updates);
    await updates.activate();

    const base = nucleus.getConfiguration(GATEWAY);
    const good = { ...base, masking: { fields: ['badge', 'employeeId'] } };
    const accepted = nucleus.deploy(GATEWAY, good);
    const v1 = await validations.next();
    expect(v1.validateConfigurationUpdateEvent?.configuration).toEqual(good);
    await gw.sendConfigurationValidityReport({
      configurationValidityReport: {
        status: greengrasscoreipc.model.ConfigurationValidityStatus.ACCEPTED,
        deploymentId: v1.validateConfigurationUpdateEvent?.deploymentId ?? '',
      },
    });
    await expect(accepted).resolves.toEqual({ status: 'ACCEPTED' });
    const ev = await changed.next((e) => e.configurationUpdateEvent?.keyPath?.[0] === 'masking');
    expect(ev.configurationUpdateEvent?.keyPath).toEqual(['masking', 'fields']);
    expect(nucleus.getConfiguration(GATEWAY)).toEqual(good);

    const bad = { ...good, spool: { maxBytes: -5 } };
    const rejected = nucleus.deploy(GATEWAY, bad);
    const v2 = await validations.next((e) => e !== v1);
    await gw.sendConfigurationValidityReport({
      configurationValidityReport: {
        status: greengrasscoreipc.model.ConfigurationValidityStatus.REJECTED,
        deploymentId: v2.validateConfigurationUpdateEvent?.deploymentId ?? '',
        message: 'spool.maxBytes must be positive',
      },
    });
    await expect(rejected).resolves.toEqual({
      status: 'REJECTED',
      message: 'spool.maxBytes must be positive',
    });
    expect(nucleus.getConfiguration(GATEWAY)).toEqual(good);

    const late = await rpcError(
      gw.sendConfigurationValidityReport({
        configurationValidityReport: {
          status: greengrasscoreipc.model.ConfigurationValidityStatus.ACCEPTED,
          deploymentId: 'no-such-deployment',
        },
      }),
    );
    expect(late.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    await validate.close();
    await updates.close();
  });

  it('local pub/sub: json and binary between components, wildcards, receive mode, unauthorized topic', async () => {
    const gw = await open(GATEWAY);
    const peer = await open(PEER);
    const sub = peer.subscribeToTopic({ topic: 'local/sensors/#' });
    const got = collect<greengrasscoreipc.model.SubscriptionResponseMessage>(sub);
    await sub.activate();
    const status = gw.subscribeToTopic({
      topic: 'local/+/status',
      receiveMode: greengrasscoreipc.model.ReceiveMode.RECEIVE_MESSAGES_FROM_OTHERS,
    });
    const statusGot = collect<greengrasscoreipc.model.SubscriptionResponseMessage>(status);
    await status.activate();

    await gw.publishToTopic({
      topic: 'local/sensors/temp',
      publishMessage: { jsonMessage: { message: { celsius: 21.5 } } },
    });
    const j = await got.next();
    expect(j.jsonMessage?.message).toEqual({ celsius: 21.5 });
    expect(j.jsonMessage?.context?.topic).toBe('local/sensors/temp');

    await gw.publishToTopic({
      topic: 'local/sensors/raw',
      publishMessage: { binaryMessage: { message: new Uint8Array([0, 1, 2, 255]) } },
    });
    const b = await got.next((m) => m.binaryMessage !== undefined);
    expect(Buffer.from(b.binaryMessage?.message as ArrayBuffer)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(b.binaryMessage?.context?.topic).toBe('local/sensors/raw');

    // RECEIVE_MESSAGES_FROM_OTHERS: the gateway's own publish is not echoed, the peer's is.
    await gw.publishToTopic({
      topic: 'local/gw/status',
      publishMessage: { jsonMessage: { message: { n: 1 } } },
    });
    await peer.publishToTopic({
      topic: 'local/peer/status',
      publishMessage: { jsonMessage: { message: { n: 2 } } },
    });
    const s = await statusGot.next();
    expect(s.jsonMessage?.context?.topic).toBe('local/peer/status');
    expect(statusGot.seen).toHaveLength(1);

    nucleus.publishLocal('local/sensors/injected', { json: { from: 'test' } });
    const inj = await got.next((m) => m.jsonMessage?.context?.topic === 'local/sensors/injected');
    expect(inj.jsonMessage?.message).toEqual({ from: 'test' });

    const denied = await rpcError(
      gw.publishToTopic({ topic: 'private/topic', publishMessage: { jsonMessage: { message: {} } } }),
    );
    expect(denied.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    expect((denied.serviceError as { message?: string }).message).toBe(
      `Principal ${GATEWAY} is not authorized to perform aws.greengrass.ipc.pubsub:aws.greengrass#PublishToTopic on resource private/topic`,
    );
    const deniedSub = await rpcError(gw.subscribeToTopic({ topic: 'private/#' }).activate());
    expect((deniedSub.serviceError as { message?: string }).message).toContain('SubscribeToTopic');
    await sub.close();
    await status.close();
  });

  it('secrets by ARN and by name; unknown and unauthorized secrets', async () => {
    const gw = await open(GATEWAY);
    const byArn = await gw.getSecretValue({ secretId: SECRET_ARN });
    expect(byArn).toEqual({
      secretId: SECRET_ARN,
      versionId: 'v-1',
      versionStage: ['AWSCURRENT'],
      secretValue: { secretString: '{"key":"s3cr3t"}' },
    });
    const byName = await gw.getSecretValue({ secretId: 'edgefleet/pseudonym-key' });
    expect(byName.secretId).toBe(SECRET_ARN);
    const unknown = await rpcError(gw.getSecretValue({ secretId: 'missing' }));
    expect(unknown.serviceError).toMatchObject({ message: expect.stringContaining('missing') });
    const denied = await rpcError(gw.getSecretValue({ secretId: 'other' }));
    expect((denied.serviceError as { message?: string }).message).toContain('not authorized');
  });

  it('IoT Core and shadows without a cloud connection fail with ServiceError; unsupported ops fail cleanly', async () => {
    const gw = await open(GATEWAY);
    const pub = await rpcError(
      gw.publishToIoTCore({
        topicName: 'dt/gg-local-core/x',
        qos: greengrasscoreipc.model.QOS.AT_LEAST_ONCE,
        payload: '{}',
      }),
    );
    expect(pub.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    const shadow = await rpcError(gw.getThingShadow({ thingName: 'gg-local-core', shadowName: 'fw' }));
    expect(shadow.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    const unsupported = await rpcError(gw.listComponents({}));
    expect(unsupported.type).toBe(eventstream_rpc.RpcErrorType.InternalError);
    // The connection is still usable afterwards.
    await expect(gw.getConfiguration({ keyPath: ['spool'] })).resolves.toMatchObject({
      componentName: GATEWAY,
    });
  });

  it('a component without policies is refused everywhere', async () => {
    const c = await open(NOBODY);
    const err = await rpcError(
      c.publishToTopic({ topic: 'local/sensors/temp', publishMessage: { jsonMessage: { message: {} } } }),
    );
    expect(err.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
  });
});

describe('local Greengrass nucleus IPC with the local cloud', () => {
  const THING = 'gg-core-ipc-1';
  let cloud: TestCloud;
  let dir: string;
  let nucleus: LocalNucleus;
  let gw: IpcClient;

  beforeAll(async () => {
    cloud = await startTestCloud();
    const dev = await cloud.provision(THING);
    dir = mkdtempSync('/tmp/ggipc-');
    nucleus = await LocalNucleus.start({
      socketPath: join(dir, 'ipc.sock'),
      thingName: THING,
      components: components(),
      iot: {
        host: cloud.cloud.endpoints.host,
        port: cloud.cloud.endpoints.mqttPort,
        cert: dev.cert,
        key: dev.key,
        ca: dev.ca,
      },
    });
    gw = await connectAs(nucleus, GATEWAY);
  });

  afterAll(async () => {
    await gw?.close();
    await nucleus?.stop();
    await cloud?.stop();
    removeDir(cloud.dataDir);
    removeDir(dir);
  });

  it('publishes to IoT Core at QoS 1 (PUBACK) and receives subscribed messages', async () => {
    const tap = brokerTap(cloud.cloud, `dt/${THING}/#`);
    await gw.publishToIoTCore({
      topicName: `dt/${THING}/telemetry`,
      qos: greengrasscoreipc.model.QOS.AT_LEAST_ONCE,
      payload: JSON.stringify({ t: 1 }),
    });
    const seen = await tap.next((m) => m.topic === `dt/${THING}/telemetry`);
    expect(seen.body).toEqual({ t: 1 });
    tap.off();
    expect(nucleus.iotConnected).toBe(true);

    const sub = gw.subscribeToIoTCore({
      topicName: `things/${THING}/+`,
      qos: greengrasscoreipc.model.QOS.AT_LEAST_ONCE,
    });
    const got = collect<greengrasscoreipc.model.IoTCoreMessage>(sub);
    await sub.activate();
    await cloud.cloud.broker.publish(`things/${THING}/commands`, JSON.stringify({ cmd: 'flush' }), 1);
    const m = await got.next();
    expect(m.message?.topicName).toBe(`things/${THING}/commands`);
    expect(JSON.parse(Buffer.from(m.message?.payload as ArrayBuffer).toString())).toEqual({ cmd: 'flush' });
    await sub.close();

    const denied = await rpcError(
      gw.publishToIoTCore({ topicName: 'dt/other-thing/x', qos: greengrasscoreipc.model.QOS.AT_MOST_ONCE }),
    );
    expect((denied.serviceError as { message?: string }).message).toContain(
      'aws.greengrass#PublishToIoTCore',
    );
  });

  it('syncs named shadows with the cloud and maps rejections to IPC errors', async () => {
    const missing = await rpcError(gw.getThingShadow({ thingName: THING, shadowName: 'firmware' }));
    expect(missing.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);
    expect(missing.serviceError).toMatchObject({ resourceType: 'Shadow' });

    const upd = await gw.updateThingShadow({
      thingName: THING,
      shadowName: 'firmware',
      payload: JSON.stringify({ state: { reported: { version: '1.0.0' } } }),
    });
    const updDoc = JSON.parse(Buffer.from(upd.payload as ArrayBuffer).toString()) as Record<string, unknown>;
    expect(updDoc.state).toEqual({ reported: { version: '1.0.0' } });
    expect(updDoc.version).toBe(1);

    const got = await gw.getThingShadow({ thingName: THING, shadowName: 'firmware' });
    const doc = JSON.parse(Buffer.from(got.payload as ArrayBuffer).toString()) as {
      state: unknown;
      version: number;
    };
    expect(doc.state).toEqual({ reported: { version: '1.0.0' } });

    const conflict = await rpcError(
      gw.updateThingShadow({
        thingName: THING,
        shadowName: 'firmware',
        payload: JSON.stringify({ state: { reported: { version: '2.0.0' } }, version: 99 }),
      }),
    );
    expect(conflict.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);

    const invalid = await rpcError(
      gw.updateThingShadow({
        thingName: THING,
        shadowName: 'firmware',
        payload: JSON.stringify({ nostate: 1 }),
      }),
    );
    expect(invalid.type).toBe(eventstream_rpc.RpcErrorType.ServiceError);

    const list = await gw.listNamedShadowsForThing({ thingName: THING });
    expect(list.results).toEqual(['firmware']);

    const classic = await rpcError(gw.getThingShadow({ thingName: THING }));
    expect((classic.serviceError as { message?: string }).message).toContain('not authorized');

    await gw.deleteThingShadow({ thingName: THING, shadowName: 'firmware' });
    const gone = await rpcError(gw.getThingShadow({ thingName: THING, shadowName: 'firmware' }));
    expect(gone.serviceError).toMatchObject({ resourceType: 'Shadow' });
  });
});
