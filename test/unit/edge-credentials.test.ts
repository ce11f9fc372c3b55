/**
 * The credential providers: the MQTT temporary-token provider against an in-memory IotChannel with a
 * tiny fake responder (the cloud's side), driven by a manual clock; and the Greengrass token exchange
 * service provider against a local HTTP server that answers like the TES.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { ManualClock } from '../../edge-component/adapters/manual-clock.js';
import { MemoryIotChannel } from '../../edge-component/adapters/memory-channel.js';
import { parseGatewayConfig } from '../../edge-component/config.js';
import {
  type CredentialsSettings,
  credentialProviderFromConfig,
  mqttCredentialProvider,
  tesCredentialProvider,
} from '../../edge-component/credentials.js';
import { CredentialsRequestError, CredentialsUnavailableError } from '../../edge-component/errors.js';
import { credentialsTopics } from '../../protocol/credentials.js';

const THING = 'gw-1';
const topics = credentialsTopics(THING);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type Reply = string | object | undefined;

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines, messages: () => lines.map((l) => String(l.msg)) };
}

/**
 * A provider wired to an in-memory channel; the responder answers each request with what `reply`
 * returns for it (nothing for undefined).
 */
function setup(opts: { settings?: Partial<CredentialsSettings>; connected?: boolean } = {}) {
  const clock = new ManualClock();
  const channel = new MemoryIotChannel({ connected: opts.connected ?? true });
  const log = memoryLogger();
  const requests: string[] = [];
  let issued = 0;
  const grant = (requestId: string, lifetimeSeconds = 3600) => {
    issued++;
    return {
      requestId,
      accessKeyId: `ASIATEST${issued}`,
      secretAccessKey: `secret-${issued}`,
      sessionToken: `token-${issued}`,
      expiration: new Date(clock.now() + lifetimeSeconds * 1000).toISOString(),
    };
  };
  const responder = {
    reply: (requestId: string, _n: number): Reply => grant(requestId),
  };
  channel.onPublish((m) => {
    if (m.topic !== topics.request) return;
    const { requestId } = JSON.parse(m.payload.toString()) as { requestId: string };
    requests.push(requestId);
    const r = responder.reply(requestId, requests.length);
    if (r !== undefined) void channel.deliver(topics.response, r);
  });
  const provider = mqttCredentialProvider({
    channel,
    thingName: THING,
    settings: { maxAttempts: 3, ...opts.settings },
    clock,
    logger: log.logger,
    random: () => 0.5,
  });
  return { clock, channel, log, requests, grant, responder, provider };
}

/** Lets queued callbacks run (one macrotask turn; not a timed wait). */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Settles `p`, moving the manual clock to the next pending sleep whenever the code under test waits on
 * one (request timeouts, backoff delays).
 */
async function settle<T>(clock: ManualClock, p: Promise<T>): Promise<PromiseSettledResult<T>> {
  let done = false;
  const result = p.then(
    (value): PromiseSettledResult<T> => {
      done = true;
      return { status: 'fulfilled', value };
    },
    (reason: unknown): PromiseSettledResult<T> => {
      done = true;
      return { status: 'rejected', reason };
    },
  );
  while (!done) {
    await Promise.race([clock.whenSleeping(), result]);
    await tick();
    if (done) break;
    const next = clock.pendingDelays()[0];
    if (next !== undefined) clock.advance(next);
  }
  return result;
}

async function value<T>(clock: ManualClock, p: Promise<T>): Promise<T> {
  const r = await settle(clock, p);
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}

async function failure(clock: ManualClock, p: Promise<unknown>): Promise<CredentialsUnavailableError> {
  const r = await settle(clock, p);
  if (r.status === 'fulfilled') throw new Error('expected the provider to fail');
  expect(r.reason).toBeInstanceOf(CredentialsUnavailableError);
  return r.reason as CredentialsUnavailableError;
}

describe('mqttCredentialProvider', () => {
  test('requests over MQTT at QoS 1 with a UUID, returns SDK credentials, and caches them', async () => {
    const { clock, channel, provider, requests } = setup();
    const creds = await value(clock, provider());
    expect(creds).toEqual({
      accessKeyId: 'ASIATEST1',
      secretAccessKey: 'secret-1',
      sessionToken: 'token-1',
      expiration: new Date(clock.now() + 3600_000),
    });
    expect(channel.published).toHaveLength(1);
    expect(channel.published[0]).toMatchObject({ topic: topics.request, qos: 1 });
    expect(requests[0]).toMatch(UUID);
    expect(channel.filters).toEqual([topics.response]);
    clock.advance(60_000);
    expect(await provider()).toBe(creds);
    expect(requests).toHaveLength(1);
    expect(provider.current()).toBe(creds);
    expect(provider.memoized).toBe(true);
  });

  test('refreshes ahead of expiry by the configured margin', async () => {
    const { clock, provider, requests } = setup({ settings: { refreshMarginSeconds: 300 } });
    const first = await value(clock, provider());
    clock.advance((3600 - 300) * 1000 - 1);
    expect(await provider()).toBe(first);
    clock.advance(1);
    const second = await value(clock, provider());
    expect(second.accessKeyId).toBe('ASIATEST2');
    expect(requests).toHaveLength(2);
  });

  test('concurrent callers share one request in flight', async () => {
    const { clock, channel, provider, requests, responder, grant } = setup();
    responder.reply = () => undefined;
    const calls = Array.from({ length: 10 }, () => provider());
    await clock.whenSleeping();
    await tick();
    expect(requests).toHaveLength(1);
    // The cloud answers now.
    await channel.deliver(topics.response, grant(requests[0]!));
    const all = await Promise.all(calls);
    expect(new Set(all).size).toBe(1);
    expect(requests).toHaveLength(1);
  });

  test('subscribes to the response topic once, however often it refreshes', async () => {
    const { clock, channel, provider } = setup({ settings: { refreshMarginSeconds: 0 } });
    for (let i = 0; i < 4; i++) {
      await value(clock, provider({ forceRefresh: true }));
    }
    expect(channel.subscribeCalls).toBe(1);
    expect(channel.published).toHaveLength(4);
  });

  test('times out and retries with jittered exponential backoff', async () => {
    const { clock, provider, requests, responder, grant } = setup({
      settings: { requestTimeoutMs: 10_000, backoff: { initialDelayMs: 500, maxDelayMs: 30_000 } },
    });
    responder.reply = (id, n) => (n < 3 ? undefined : grant(id));
    const start = clock.now();
    const creds = await value(clock, provider());
    expect(creds.accessKeyId).toBe('ASIATEST1');
    expect(requests).toHaveLength(3);
    expect(new Set(requests).size).toBe(3);
    // Two timeouts, then backoff delays of random(0.5) * 500 and random(0.5) * 1000.
    expect(clock.now() - start).toBe(2 * 10_000 + 250 + 500);
  });

  test('gives up after maxAttempts with a CredentialsUnavailableError that says why (timeout)', async () => {
    const { clock, provider, requests, responder } = setup({
      settings: { maxAttempts: 3, requestTimeoutMs: 2000 },
    });
    responder.reply = () => undefined;
    const err = await failure(clock, provider());
    expect(err.reason).toBe('timeout');
    expect(err.attempts).toBe(3);
    expect(err.message).toBe(
      `no credentials for thing ${THING} after 3 attempt(s) over MQTT (last: timeout): no response on ${topics.response} within 2000 ms`,
    );
    expect(err.cause).toBeInstanceOf(CredentialsRequestError);
    expect(requests).toHaveLength(3);
  });

  test('an error response from the cloud fails the attempt and is reported', async () => {
    const { clock, provider, responder } = setup({ settings: { maxAttempts: 2 } });
    responder.reply = (requestId) => ({ requestId, error: 'AccessDenied: thing gw-1 is not allowed' });
    const err = await failure(clock, provider());
    expect(err.reason).toBe('error-response');
    expect(err.message).toContain('the cloud refused the request: AccessDenied: thing gw-1 is not allowed');
  });

  test('an error response is retried like any failure', async () => {
    const { clock, provider, responder, grant, requests } = setup();
    responder.reply = (requestId, n) => (n === 1 ? { requestId, error: 'Throttling' } : grant(requestId));
    expect((await value(clock, provider())).accessKeyId).toBe('ASIATEST1');
    expect(requests).toHaveLength(2);
  });

  test('ignores malformed responses and responses to other requests, and logs them (without secrets)', async () => {
    const { clock, channel, provider, responder, grant, log } = setup();
    responder.reply = (requestId) => {
      void (async () => {
        await channel.deliver(topics.response, 'not json at all');
        await channel.deliver(topics.response, { requestId, accessKeyId: 'ASIAHALF' });
        await channel.deliver(topics.response, { ...grant(requestId), expiration: 'soon' });
        await channel.deliver(topics.response, grant(randomUUID()));
        await channel.deliver(topics.response, { requestId: randomUUID(), error: 'not for you' });
        await channel.deliver(topics.response, grant(requestId));
      })();
      return undefined;
    };
    const creds = await value(clock, provider());
    expect(creds.accessKeyId).toBe('ASIATEST3');
    const messages = log.messages();
    expect(messages.filter((m) => m === 'ignoring a malformed credentials response')).toHaveLength(3);
    expect(messages.filter((m) => m === 'ignoring a credentials response to another request')).toHaveLength(
      2,
    );
    const problems = log.lines.map((l) => l.problem).filter(Boolean);
    expect(problems).toEqual([
      'payload: is not JSON',
      expect.stringMatching(/^secretAccessKey: /),
      expect.stringMatching(/^expiration: /),
    ]);
    expect(JSON.stringify(log.lines)).not.toMatch(/secret-\d/);
  });

  test('accepts a late grant for an earlier attempt of the same refresh', async () => {
    const { clock, channel, provider, responder, grant, requests } = setup();
    responder.reply = (_id, n) => {
      // The cloud is slow: it answers the first request only after the second was sent.
      if (n === 2) void channel.deliver(topics.response, grant(requests[0]!));
      return undefined;
    };
    const creds = await value(clock, provider());
    expect(creds.accessKeyId).toBe('ASIATEST1');
    expect(requests).toHaveLength(2);
  });

  test('reports not-connected when the channel stays down', async () => {
    const { clock, provider, requests } = setup({
      connected: false,
      settings: { maxAttempts: 2, requestTimeoutMs: 1000 },
    });
    const err = await failure(clock, provider());
    expect(err.reason).toBe('not-connected');
    expect(err.message).toContain('the IoT channel did not connect within 1000 ms');
    expect(requests).toHaveLength(0);
  });

  test('waits for the connection within the request timeout', async () => {
    const { clock, channel, provider, requests } = setup({ connected: false });
    const p = provider();
    await clock.whenSleeping();
    clock.advance(500);
    channel.setConnected(true);
    const creds = await value(clock, p);
    expect(creds.accessKeyId).toBe('ASIATEST1');
    expect(requests).toHaveLength(1);
  });

  test('a connection lost while waiting fails the attempt at once, and the next attempt succeeds', async () => {
    const { clock, channel, provider, responder, grant, requests } = setup();
    // The connection drops right after the first request went out, and comes back at once.
    channel.onStateChange((state) => {
      if (state === 'disconnected') queueMicrotask(() => channel.setConnected(true));
    });
    responder.reply = (id, n) => {
      if (n === 1) {
        channel.setConnected(false);
        return undefined;
      }
      return grant(id);
    };
    const start = clock.now();
    const creds = await value(clock, provider());
    expect(creds.accessKeyId).toBe('ASIATEST1');
    expect(requests).toHaveLength(2);
    // No request timeout elapsed, only the backoff delay.
    expect(clock.now() - start).toBe(250);
  });

  test('forceRefresh fetches new credentials even while the cached ones are valid', async () => {
    const { clock, provider, requests } = setup();
    await value(clock, provider());
    const fresh = await value(clock, provider({ forceRefresh: true }));
    expect(fresh.accessKeyId).toBe('ASIATEST2');
    expect(requests).toHaveLength(2);
  });

  test('when an early refresh fails, still-valid credentials are served until they expire', async () => {
    const { clock, provider, responder, requests, log } = setup({
      settings: { maxAttempts: 1, requestTimeoutMs: 1000 },
    });
    const first = await value(clock, provider());
    clock.advance((3600 - 100) * 1000);
    responder.reply = () => undefined;
    expect(await value(clock, provider())).toBe(first);
    expect(log.messages()).toContain(
      'credentials refresh failed; using the current credentials until they expire',
    );
    const attempts = requests.length;
    // No new request right away (a pause before trying again) ...
    expect(await provider()).toBe(first);
    expect(requests).toHaveLength(attempts);
    // ... and none to serve once they expired.
    clock.advance(100_000);
    const err = await failure(clock, provider());
    expect(err.reason).toBe('timeout');
  });

  test('credentials that already expired are not accepted', async () => {
    const { clock, provider, responder, grant } = setup({ settings: { maxAttempts: 1 } });
    responder.reply = (id) => grant(id, -10);
    const err = await failure(clock, provider());
    expect(err.reason).toBe('error-response');
    expect(err.message).toMatch(/expired at .* \(is the gateway's clock right\?\)/);
  });

  test('close() ends a request in flight, unsubscribes, and refuses further calls', async () => {
    const { clock, channel, provider, responder } = setup();
    responder.reply = () => undefined;
    const pending = provider();
    await clock.whenSleeping();
    await provider.close();
    const err = await failure(clock, pending);
    expect(err.reason).toBe('closed');
    expect(channel.filters).toEqual([]);
    await expect(provider()).rejects.toMatchObject({ name: 'CredentialsUnavailableError', reason: 'closed' });
  });
});

describe('credentialProviderFromConfig', () => {
  const base = {
    thingName: THING,
    iot: { host: 'h', certFile: 'c', keyFile: 'k', caFile: 'a' },
    aws: { region: 'us-east-1' },
    storage: { bucket: 'edgefleet-data' },
  };

  test("'mqtt' needs the channel and requests over it", async () => {
    const config = parseGatewayConfig(base);
    expect(() => credentialProviderFromConfig(config, {})).toThrow(/needs an IoT channel/);
    const channel = new MemoryIotChannel();
    const provider = credentialProviderFromConfig(config, { channel });
    const p = provider();
    await new Promise<void>((resolve) => channel.onPublish(() => resolve()));
    expect(channel.published[0]?.topic).toBe(topics.request);
    await provider.close();
    await expect(p).rejects.toBeInstanceOf(CredentialsUnavailableError);
  });
});

describe('tesCredentialProvider (Greengrass token exchange service)', () => {
  const saved = {
    uri: process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI,
    token: process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN,
    relative: process.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
  };
  let server: Server;
  let hits: { url?: string; authorization?: string }[];
  let expiration: string;

  beforeAll(async () => {
    hits = [];
    server = createServer((req, res) => {
      hits.push({ url: req.url, authorization: req.headers.authorization });
      if (req.headers.authorization !== 'tes-token') {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          AccessKeyId: 'ASIATES',
          SecretAccessKey: 'tes-secret',
          Token: 'tes-session',
          Expiration: expiration,
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  afterEach(() => {
    for (const [k, v] of [
      ['AWS_CONTAINER_CREDENTIALS_FULL_URI', saved.uri],
      ['AWS_CONTAINER_AUTHORIZATION_TOKEN', saved.token],
      ['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', saved.relative],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  test('reads AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN, and caches', async () => {
    const { port } = server.address() as AddressInfo;
    delete process.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = `http://localhost:${port}/2016-11-01/credentialprovider/`;
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = 'tes-token';
    const clock = new ManualClock(Date.now());
    expiration = new Date(clock.now() + 3600_000).toISOString();
    hits = [];
    const provider = tesCredentialProvider({ clock, refreshMarginSeconds: 300 });
    const creds = await provider();
    expect(creds).toMatchObject({
      accessKeyId: 'ASIATES',
      secretAccessKey: 'tes-secret',
      sessionToken: 'tes-session',
    });
    expect(creds.expiration.toISOString()).toBe(expiration);
    expect(await provider()).toBe(creds);
    expect(hits).toEqual([{ url: '/2016-11-01/credentialprovider/', authorization: 'tes-token' }]);
    clock.advance(3400_000);
    await provider();
    expect(hits).toHaveLength(2);
  });

  test('says what is missing when the TES is not configured', async () => {
    delete process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
    delete process.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
    const provider = tesCredentialProvider({ maxRetries: 0 });
    const err = (await provider().catch((e: unknown) => e)) as CredentialsUnavailableError;
    expect(err).toBeInstanceOf(CredentialsUnavailableError);
    expect(err.reason).toBe('token-exchange-service');
    expect(err.message).toMatch(/AWS_CONTAINER_CREDENTIALS_FULL_URI is not set/);
  });
});
