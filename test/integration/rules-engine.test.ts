// biome-ignore-all lint/suspicious/noTemplateCurlyInString: AWS IoT substitution templates (`${expression}`) are plain strings here
/**
 * The local rules engine against a running local cloud: the project's heartbeat rule, and test rules
 * (run by a second engine on the same broker) for every action type, the error action, lifecycle
 * events and Basic Ingest. Firehose and S3 requests go to a recording HTTP server that answers like the
 * services do (Firehose JSON protocol; S3 PutObject with an ETag).
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import {
  createHandlerRegistry,
  type HandlerRegistry,
  type LambdaContext,
} from '../../cloud/functions/index.js';
import type {
  AwsClientConfig,
  RulesEngine as Engine,
  ErrorActionMessage,
} from '../../cloud/local/rules-engine.js';
import { RulesEngine } from '../../cloud/local/rules-engine.js';
import { shadowSqlServices } from '../../cloud/local/shadow/service.js';
import { parseRuleDefinitions, type RuleDefinitionInput } from '../../cloud/rules/index.js';
import type { SqlServices } from '../../cloud/rules/sql/context.js';
import {
  brokerTap,
  connectDevice,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An HTTP server that records every request and answers as Firehose (JSON protocol) or S3 would. */
async function startRecorder() {
  const requests: Recorded[] = [];
  const waiters: { pred: (r: Recorded) => boolean; resolve: (r: Recorded) => void }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Recorded = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(r);
      for (const w of [...waiters]) {
        if (w.pred(r)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
      const target = req.headers['x-amz-target'];
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(body));
      };
      if (typeof target === 'string' && r.body.includes('"missing-stream"')) {
        json(400, { __type: 'ResourceNotFoundException', message: 'Firehose missing-stream not found.' });
      } else if (target === 'Firehose_20150804.PutRecordBatch' && r.body.includes('"partial-stream"')) {
        json(200, {
          FailedPutCount: 1,
          Encrypted: false,
          RequestResponses: [
            { RecordId: randomUUID() },
            { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' },
          ],
        });
      } else if (req.method === 'PUT' && r.url.startsWith('/missing-bucket/')) {
        res.writeHead(404, { 'content-type': 'application/xml', 'x-amz-request-id': 'REQ123' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>missing-bucket</BucketName><RequestId>REQ123</RequestId></Error>',
        );
      } else if (target === 'Firehose_20150804.PutRecord') {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ RecordId: randomUUID(), Encrypted: false }));
      } else if (target === 'Firehose_20150804.PutRecordBatch') {
        const n = (JSON.parse(r.body.toString()) as { Records: unknown[] }).Records.length;
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(
          JSON.stringify({
            FailedPutCount: 0,
            Encrypted: false,
            RequestResponses: Array.from({ length: n }, () => ({ RecordId: randomUUID() })),
          }),
        );
      } else if (req.method === 'PUT') {
        res.writeHead(200, { etag: '"0123456789abcdef0123456789abcdef"' });
        res.end();
      } else {
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'InvalidArgumentException', message: 'unexpected request' }));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    port,
    requests,
    next(pred: (r: Recorded) => boolean, timeoutMs = 5000): Promise<Recorded> {
      const already = requests.find(pred);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (r: Recorded) => {
            clearTimeout(timer);
            resolve(r);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching request within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A promise resolved from outside, rejected after `timeoutMs`. */
function deferred<T>(timeoutMs = 5000) {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Error(`nothing within ${timeoutMs} ms`)), timeoutMs);
  return {
    promise: promise.finally(() => clearTimeout(timer)),
    resolve,
  };
}

let tc: TestCloud;
let dev: TestDevice;
let device: MqttClient;
let recorder: Awaited<ReturnType<typeof startRecorder>>;
const engines: Engine[] = [];

beforeAll(async () => {
  tc = await startTestCloud();
  dev = await tc.provision('gw-1');
  device = await connectDevice(tc.cloud, dev, 'gw-1');
  recorder = await startRecorder();
});

afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop();
});

afterAll(async () => {
  device?.end(true);
  await recorder?.close();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

function awsConfig(port: number): AwsClientConfig {
  const sdk = tc.cloud.sdkConfig();
  return { ...sdk, endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 };
}

/** Starts a second rules engine on the test cloud's broker with test rules. */
function startEngine(
  rules: RuleDefinitionInput[],
  opts: { handlers?: HandlerRegistry; aws?: AwsClientConfig; services?: SqlServices } = {},
): Engine {
  const engine = RulesEngine.start({
    broker: tc.cloud.broker,
    rules: parseRuleDefinitions(rules),
    handlers: opts.handlers ?? createHandlerRegistry(),
    aws: opts.aws ?? awsConfig(recorder.port),
    region: tc.cloud.options.region,
    accountId: tc.cloud.options.accountId,
    logger: pino({ level: 'silent' }),
    ...(opts.services ? { services: opts.services } : {}),
  });
  engines.push(engine);
  return engine;
}

describe('the project rules in the local cloud', () => {
  test('edgefleet_heartbeats republishes heartbeats to fleet/heartbeats with thing and receivedAt', async () => {
    const tap = brokerTap(tc.cloud, 'fleet/heartbeats');
    try {
      const before = Date.now();
      await device.publishAsync('dt/gw-1/heartbeat', JSON.stringify({ seq: 41, ts: before }), { qos: 1 });
      const m = await tap.next((x) => x.body.seq === 41);
      expect(m.body).toEqual({ thing: 'gw-1', receivedAt: expect.any(Number), seq: 41, ts: before });
      expect(m.body.receivedAt as number).toBeGreaterThanOrEqual(before);
      await tc.cloud.rules.idle();
      const stats = tc.cloud.rules.stats().rules.edgefleet_heartbeats;
      expect(stats).toMatchObject({ matched: expect.any(Number), actionsFailed: 0, evaluationErrors: 0 });
      expect(stats!.matched).toBeGreaterThanOrEqual(1);
      expect(stats!.actionsSucceeded).toBeGreaterThanOrEqual(1);
    } finally {
      tap.off();
    }
  });

  test('a heartbeat on another thing level is not matched', async () => {
    const tap = brokerTap(tc.cloud, 'fleet/heartbeats');
    try {
      const before = tc.cloud.rules.stats().rules.edgefleet_heartbeats!.matched;
      await device.publishAsync('dt/gw-1/status', JSON.stringify({ seq: 42 }), { qos: 1 });
      await tc.cloud.rules.idle();
      expect(tc.cloud.rules.stats().rules.edgefleet_heartbeats!.matched).toBe(before);
      expect(tap.seen.some((m) => m.body.seq === 42)).toBe(false);
    } finally {
      tap.off();
    }
  });
});

describe('rule SQL in the local cloud', () => {
  test('principal() and clientid() identify the publisher; get_thing_shadow() reads the local shadow', async () => {
    tc.cloud.shadows.update(
      'gw-1',
      'config',
      Buffer.from(JSON.stringify({ state: { desired: { rate: 5 } } })),
    );
    startEngine(
      [
        {
          name: 'test_principal_shadow',
          sql: "SELECT clientid() AS c, principal() AS p, get_thing_shadow(topic(2), 'config', 'arn:aws:iam::123456789012:role/r').state.desired.rate AS rate FROM 'things/+/who'",
          actions: [{ type: 'republish', topic: 'fleet/who', qos: 0 }],
        },
      ],
      { services: shadowSqlServices(tc.cloud.shadows) },
    );
    const tap = brokerTap(tc.cloud, 'fleet/who');
    try {
      await device.publishAsync('things/gw-1/who', '{}', { qos: 1 });
      const m = await tap.next(() => true);
      expect(m.body).toEqual({ c: 'gw-1', p: expect.stringMatching(/^[0-9a-f]{64}$/), rate: 5 });
    } finally {
      tap.off();
    }
  });
});

describe('republish', () => {
  test('renders the topic template against the original message', async () => {
    const engine = startEngine([
      {
        name: 'test_republish',
        sql: "SELECT temp FROM 'things/+/telemetry' WHERE temp > 20",
        actions: [{ type: 'republish', topic: 'fleet/${topic(2)}/${unit}', qos: 1 }],
      },
    ]);
    const tap = brokerTap(tc.cloud, 'fleet/gw-1/#');
    try {
      await device.publishAsync('things/gw-1/telemetry', JSON.stringify({ temp: 10, unit: 'C' }), { qos: 1 });
      await device.publishAsync('things/gw-1/telemetry', JSON.stringify({ temp: 25, unit: 'C' }), { qos: 1 });
      const m = await tap.next(() => true);
      expect(m).toEqual({ topic: 'fleet/gw-1/C', body: { temp: 25 } });
      await engine.idle();
      expect(engine.stats().rules.test_republish).toMatchObject({
        messages: 2,
        matched: 1,
        actionsSucceeded: 1,
      });
    } finally {
      tap.off();
    }
  });

  test('$$ republishes to a reserved topic (a shadow update the shadow service accepts)', async () => {
    startEngine([
      {
        name: 'test_shadow',
        sql: "SELECT state FROM 'things/+/report'",
        actions: [{ type: 'republish', topic: '$$aws/things/${topic(2)}/shadow/update' }],
      },
    ]);
    const tap = brokerTap(tc.cloud, '$aws/things/gw-1/shadow/update/accepted');
    try {
      await device.publishAsync(
        'things/gw-1/report',
        JSON.stringify({ state: { reported: { fw: '1.2.3' } } }),
        {
          qos: 1,
        },
      );
      const m = await tap.next(() => true);
      expect(m.body).toMatchObject({ state: { reported: { fw: '1.2.3' } } });
    } finally {
      tap.off();
    }
  });

  test('passes a non-JSON payload through as raw bytes', async () => {
    startEngine([
      {
        name: 'test_binary',
        sql: "SELECT * FROM 'things/+/blob'",
        actions: [{ type: 'republish', topic: 'fleet/blob' }],
      },
    ]);
    const got = deferred<Buffer>();
    const off = tc.cloud.broker.subscribe('fleet/blob', (_t, payload) => got.resolve(payload));
    try {
      const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x01]);
      await device.publishAsync('things/gw-1/blob', bytes, { qos: 1 });
      expect((await got.promise).equals(bytes)).toBe(true);
    } finally {
      off();
    }
  });
});

describe('lambda', () => {
  test('calls the registered handler in-process with the SELECT output as its event', async () => {
    const handlers = createHandlerRegistry();
    const called = deferred<{ event: unknown; context: LambdaContext }>();
    handlers.registerHandler('test_echo', async (event, context) => {
      called.resolve({ event, context });
      return { ok: true };
    });
    const engine = startEngine(
      [
        {
          name: 'test_lambda',
          sql: "SELECT *, topic(2) AS thing FROM 'things/+/lambda'",
          actions: [{ type: 'lambda', functionName: 'test_echo' }],
        },
      ],
      { handlers },
    );
    await device.publishAsync('things/gw-1/lambda', JSON.stringify({ n: 1, big: 12345678901 }), { qos: 1 });
    const { event, context } = await called.promise;
    expect(event).toEqual({ n: 1, big: 12345678901, thing: 'gw-1' });
    expect(context.functionName).toBe('test_echo');
    expect(context.invokedFunctionArn).toBe(
      `arn:aws:lambda:${tc.cloud.options.region}:${tc.cloud.options.accountId}:function:test_echo`,
    );
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(context.getRemainingTimeInMillis()).toBeGreaterThan(0);
    await engine.idle();
    expect(engine.stats().rules.test_lambda).toMatchObject({
      actionsSucceeded: 1,
      lambdaInvocations: 1,
      lambdaErrors: 0,
    });
  });

  test('a handler that throws is a function error (asynchronous invocation), not a failed action', async () => {
    const handlers = createHandlerRegistry();
    handlers.registerHandler('test_throws', async () => {
      throw new Error('boom');
    });
    const engine = startEngine(
      [
        {
          name: 'test_lambda_throws',
          sql: "SELECT * FROM 'things/+/throws'",
          actions: [{ type: 'lambda', functionName: 'test_throws' }],
          errorAction: { type: 'republish', topic: 'fleet/errors/throws' },
        },
      ],
      { handlers },
    );
    await device.publishAsync('things/gw-1/throws', '{}', { qos: 1 });
    await engine.idle();
    expect(engine.stats().rules.test_lambda_throws).toMatchObject({
      matched: 1,
      actionsSucceeded: 1,
      actionsFailed: 0,
      lambdaErrors: 1,
      errorActionsSucceeded: 0,
    });
  });
});

describe('firehose', () => {
  test('PutRecord with the JSON output and the separator, signed for firehose', async () => {
    const engine = startEngine([
      {
        name: 'test_firehose',
        sql: "SELECT *, topic(2) AS thing FROM 'dt/+/telemetry'",
        actions: [{ type: 'firehose', deliveryStreamName: 'telemetry', separator: '\n' }],
      },
    ]);
    await device.publishAsync('dt/gw-1/telemetry', JSON.stringify({ t: 21.5 }), { qos: 1 });
    const r = await recorder.next(
      (x) => x.headers['x-amz-target'] === 'Firehose_20150804.PutRecord' && x.body.includes('"telemetry"'),
    );
    expect(r.method).toBe('POST');
    expect(r.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(r.headers.authorization).toMatch(
      new RegExp(
        `Credential=${tc.cloud.credentials.root.accessKeyId}/\\d{8}/${tc.cloud.options.region}/firehose/aws4_request`,
      ),
    );
    const body = JSON.parse(r.body.toString()) as { DeliveryStreamName: string; Record: { Data: string } };
    expect(body.DeliveryStreamName).toBe('telemetry');
    expect(Buffer.from(body.Record.Data, 'base64').toString()).toBe('{"t":21.5,"thing":"gw-1"}\n');
    await engine.idle();
    expect(engine.stats().rules.test_firehose).toMatchObject({ actionsSucceeded: 1, actionsFailed: 0 });
  });

  test('batchMode with an Array output: PutRecordBatch, one record per element', async () => {
    startEngine([
      {
        name: 'test_firehose_batch',
        sql: "SELECT VALUE readings FROM 'dt/+/batch'",
        actions: [{ type: 'firehose', deliveryStreamName: 'batches', separator: ',', batchMode: true }],
      },
    ]);
    await device.publishAsync('dt/gw-1/batch', JSON.stringify({ readings: [{ v: 1 }, { v: 2 }, 3] }), {
      qos: 1,
    });
    const r = await recorder.next((x) => x.headers['x-amz-target'] === 'Firehose_20150804.PutRecordBatch');
    const body = JSON.parse(r.body.toString()) as { DeliveryStreamName: string; Records: { Data: string }[] };
    expect(body.DeliveryStreamName).toBe('batches');
    expect(body.Records.map((x) => Buffer.from(x.Data, 'base64').toString())).toEqual([
      '{"v":1},',
      '{"v":2},',
      '3,',
    ]);
  });
});

describe('s3', () => {
  test('PutObject of the JSON output under the rendered key, with the canned ACL', async () => {
    const engine = startEngine([
      {
        name: 'test_s3',
        sql: "SELECT * FROM 'dt/+/snapshot'",
        actions: [
          {
            type: 's3',
            bucketName: 'lake',
            key: 'raw/${topic(2)}/${seq}.json',
            cannedAcl: 'bucket-owner-full-control',
          },
        ],
      },
    ]);
    await device.publishAsync('dt/gw-1/snapshot', JSON.stringify({ seq: 7, ok: true }), { qos: 1 });
    const r = await recorder.next((x) => x.method === 'PUT' && x.url.startsWith('/lake/'));
    expect(r.url.split('?')[0]).toBe('/lake/raw/gw-1/7.json');
    expect(r.headers['x-amz-acl']).toBe('bucket-owner-full-control');
    expect(r.headers.authorization).toMatch(/\/s3\/aws4_request/);
    expect(r.body.toString()).toBe('{"seq":7,"ok":true}');
    await engine.idle();
    expect(engine.stats().rules.test_s3).toMatchObject({ actionsSucceeded: 1, actionsFailed: 0 });
  });
});

describe('error action', () => {
  test('runs once with every failure, in the documented message shape, when endpoints are down', async () => {
    const port = await deadPort();
    const engine = startEngine(
      [
        {
          name: 'test_errors',
          sql: "SELECT * FROM 'dt/+/fails'",
          actions: [
            { type: 'republish', topic: 'fleet/ok' },
            { type: 'firehose', deliveryStreamName: 'down-stream' },
            { type: 's3', bucketName: 'down-bucket', key: 'k/${topic(2)}' },
          ],
          errorAction: { type: 'republish', topic: 'fleet/errors/${topic(2)}' },
        },
      ],
      { aws: awsConfig(port) },
    );
    const tap = brokerTap(tc.cloud, 'fleet/errors/gw-1');
    try {
      const payload = JSON.stringify({ boom: 1 });
      await device.publishAsync('dt/gw-1/fails', payload, { qos: 1 });
      const m = await tap.next(() => true, 15000);
      const doc = m.body as unknown as ErrorActionMessage;
      expect(Object.keys(doc).sort()).toEqual(
        ['base64OriginalPayload', 'clientId', 'cloudwatchTraceId', 'failures', 'ruleName', 'topic'].sort(),
      );
      expect(doc.ruleName).toBe('test_errors');
      expect(doc.topic).toBe('dt/gw-1/fails');
      expect(doc.clientId).toBe('gw-1');
      expect(doc.cloudwatchTraceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(Buffer.from(doc.base64OriginalPayload, 'base64').toString()).toBe(payload);
      expect(doc.failures).toHaveLength(2);
      const byAction = Object.fromEntries(doc.failures.map((f) => [f.failedAction, f]));
      expect(byAction.FirehoseAction).toMatchObject({
        failedResource: 'down-stream',
        errorMessage: expect.any(String),
      });
      expect(byAction.S3Action).toMatchObject({ failedResource: 'down-bucket' });
      expect(byAction.S3Action!.errorMessage).toMatch(
        /^Failed to put S3 object\. .*Bucket: down-bucket, Key: "k\/gw-1"$/,
      );
      for (const f of doc.failures)
        expect(Object.keys(f).sort()).toEqual(['errorMessage', 'failedAction', 'failedResource']);
      await engine.idle();
      expect(engine.stats().rules.test_errors).toMatchObject({
        matched: 1,
        actionsSucceeded: 1,
        actionsFailed: 2,
        errorActionsSucceeded: 1,
        errorActionsFailed: 0,
      });
    } finally {
      tap.off();
    }
  });

  test('service errors are reported with their status and error code', async () => {
    startEngine([
      {
        name: 'test_service_errors',
        sql: "SELECT VALUE items FROM 'dt/+/service-errors'",
        actions: [
          { type: 'firehose', deliveryStreamName: 'missing-stream' },
          { type: 'firehose', deliveryStreamName: 'partial-stream', batchMode: true },
          { type: 's3', bucketName: 'missing-bucket', key: 'k' },
        ],
        errorAction: { type: 'republish', topic: 'fleet/errors/service' },
      },
    ]);
    const tap = brokerTap(tc.cloud, 'fleet/errors/service');
    try {
      await device.publishAsync('dt/gw-1/service-errors', JSON.stringify({ items: [1, 2] }), { qos: 1 });
      const m = await tap.next(() => true);
      const failures = (m.body as unknown as ErrorActionMessage).failures;
      const byResource = Object.fromEntries(failures.map((f) => [f.failedResource, f]));
      expect(Object.keys(byResource).sort()).toEqual(['missing-bucket', 'missing-stream', 'partial-stream']);
      expect(byResource['missing-stream']!.errorMessage).toMatch(
        /Firehose missing-stream not found\. \(Service: Firehose; Status Code: 400; Error Code: ResourceNotFoundException; Request ID: /,
      );
      expect(byResource['partial-stream']!.errorMessage).toMatch(
        /1 of 2 records were not put \(ServiceUnavailableException: Slow down\.\)/,
      );
      expect(byResource['missing-bucket']!.errorMessage).toMatch(
        /^Failed to put S3 object\. The error received was The specified bucket does not exist \(Service: Amazon S3; Status Code: 404; Error Code: NoSuchBucket; Request ID: REQ123\)\. Message arrived on: dt\/gw-1\/service-errors, Action: s3, Bucket: missing-bucket, Key: "k"$/,
      );
    } finally {
      tap.off();
    }
  });

  test('a missing Lambda handler fails the action; the error action may itself be a lambda action', async () => {
    const handlers = createHandlerRegistry();
    const got = deferred<unknown>();
    handlers.registerHandler('test_on_error', async (event) => {
      got.resolve(event);
      return undefined;
    });
    startEngine(
      [
        {
          name: 'test_missing_fn',
          sql: "SELECT * FROM 'things/+/missing'",
          actions: [{ type: 'lambda', functionName: 'not_registered' }],
          errorAction: { type: 'lambda', functionName: 'test_on_error' },
        },
      ],
      { handlers },
    );
    await device.publishAsync('things/gw-1/missing', '{"a":1}', { qos: 1 });
    const doc = (await got.promise) as ErrorActionMessage;
    expect(doc).toMatchObject({
      ruleName: 'test_missing_fn',
      topic: 'things/gw-1/missing',
      clientId: 'gw-1',
      failures: [
        {
          failedAction: 'LambdaAction',
          failedResource: `arn:aws:lambda:${tc.cloud.options.region}:${tc.cloud.options.accountId}:function:not_registered`,
          errorMessage: expect.stringMatching(/Function not found/),
        },
      ],
    });
  });

  test('republishing to a reserved job topic fails the action', async () => {
    const engine = startEngine([
      {
        name: 'test_job_topic',
        sql: "SELECT * FROM 'things/+/job'",
        actions: [{ type: 'republish', topic: '$$aws/things/${topic(2)}/jobs/get' }],
        errorAction: { type: 'republish', topic: 'fleet/errors/jobs' },
      },
    ]);
    const tap = brokerTap(tc.cloud, 'fleet/errors/jobs');
    try {
      await device.publishAsync('things/gw-1/job', '{}', { qos: 1 });
      const m = await tap.next(() => true);
      expect(m.body.failures).toEqual([
        {
          failedAction: 'RepublishAction',
          failedResource: '$aws/things/gw-1/jobs/get',
          errorMessage: expect.stringMatching(/reserved job topics/),
        },
      ]);
      await engine.idle();
      expect(engine.stats().rules.test_job_topic).toMatchObject({
        actionsFailed: 1,
        errorActionsSucceeded: 1,
      });
    } finally {
      tap.off();
    }
  });
});

describe('lifecycle events, Basic Ingest and rule state', () => {
  test('a rule on $aws/events/presence/connected/+ sees a device connect', async () => {
    startEngine([
      {
        name: 'test_presence',
        sql: "SELECT clientId, eventType FROM '$aws/events/presence/connected/+'",
        actions: [{ type: 'republish', topic: 'fleet/presence/${clientId}' }],
      },
    ]);
    const dev2 = await tc.provision('gw-2');
    const tap = brokerTap(tc.cloud, 'fleet/presence/#');
    const client = await connectDevice(tc.cloud, dev2, 'gw-2');
    try {
      const m = await tap.next((x) => x.topic === 'fleet/presence/gw-2');
      expect(m.body).toEqual({ clientId: 'gw-2', eventType: 'connected' });
    } finally {
      client.end(true);
      tap.off();
    }
  });

  test('Basic Ingest: $aws/rules/{rule}/... reaches the rule without its prefix', async () => {
    startEngine([
      {
        name: 'test_ingest',
        sql: "SELECT topic() AS t, v FROM 'ingest/+'",
        actions: [{ type: 'republish', topic: 'fleet/ingested' }],
      },
    ]);
    const tap = brokerTap(tc.cloud, 'fleet/ingested');
    try {
      await tc.cloud.broker.publish('$aws/rules/test_ingest/ingest/gw-1', JSON.stringify({ v: 5 }), 1);
      const m = await tap.next(() => true);
      expect(m.body).toEqual({ t: 'ingest/gw-1', v: 5 });
    } finally {
      tap.off();
    }
  });

  test('a disabled rule does not run; a stopped engine does not either', async () => {
    const disabled = startEngine([
      {
        name: 'test_disabled',
        sql: "SELECT * FROM 'things/+/disabled'",
        ruleDisabled: true,
        actions: [{ type: 'republish', topic: 'fleet/disabled' }],
      },
    ]);
    const stopped = startEngine([
      {
        name: 'test_stopped',
        sql: "SELECT * FROM 'things/+/disabled'",
        actions: [{ type: 'republish', topic: 'fleet/disabled' }],
      },
    ]);
    await stopped.stop();
    // A rule that runs on the same message proves the message went through the broker.
    const witness = startEngine([
      {
        name: 'test_witness',
        sql: "SELECT * FROM 'things/+/disabled'",
        actions: [{ type: 'republish', topic: 'fleet/witness' }],
      },
    ]);
    const tap = brokerTap(tc.cloud, 'fleet/+');
    try {
      await device.publishAsync('things/gw-1/disabled', '{"x":1}', { qos: 1 });
      await tap.next((m) => m.topic === 'fleet/witness');
      await Promise.all([disabled.idle(), stopped.idle(), witness.idle()]);
      expect(disabled.stats().rules.test_disabled!.messages).toBe(0);
      expect(stopped.stats().rules.test_stopped!.messages).toBe(0);
      expect(tap.seen.filter((m) => m.topic === 'fleet/disabled')).toEqual([]);
    } finally {
      tap.off();
    }
  });
});

describe('engine construction', () => {
  test('a rule whose SQL does not parse is refused, naming the rule', () => {
    expect(() =>
      startEngine([
        { name: 'test_bad_sql', sql: 'SELECT FROM', actions: [{ type: 'republish', topic: 'x' }] },
      ]),
    ).toThrow(/rule 'test_bad_sql': sql: /);
  });

  test('a template that does not parse is refused, naming the rule and field', () => {
    expect(() =>
      startEngine([
        {
          name: 'test_bad_tpl',
          sql: "SELECT * FROM 'a/b'",
          actions: [{ type: 'republish', topic: 'x/${topic(' }],
        },
      ]),
    ).toThrow(/rule 'test_bad_tpl': actions\.0\.topic: /);
  });
});
