/**
 * AWS credentials for the gateway's SDK clients, without long-lived keys on the device:
 *
 * - `mqttCredentialProvider`: the temporary-token pattern. Requests credentials over the IotChannel
 *   (protocol/credentials.ts), correlates responses by request id, caches them and refreshes them a
 *   configurable margin before they expire; one request in flight at a time, shared by concurrent
 *   callers; every request times out and is retried with jittered exponential backoff.
 * - `tesCredentialProvider`: the Greengrass token exchange service (the SDK's fromContainerMetadata,
 *   which reads AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN).
 *
 * Both are `AwsCredentialIdentityProvider`s: pass one as `credentials` to any SDK v3 client. They are
 * marked `memoized` (a documented flag of the SDK's SigV4 config), so the SDK does not wrap them in its
 * own memoization (which refreshes only within 5 minutes of expiry, by the system clock): the SDK calls
 * them for every request, and they answer from their cache, so each request (each part of a multipart
 * upload) is signed with credentials that are valid by this provider's margin and clock.
 */
import { randomUUID } from 'node:crypto';
import { fromContainerMetadata } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import pino, { type Logger } from 'pino';
import {
  CREDENTIALS_REQUEST_QOS,
  type CredentialsGrant,
  type CredentialsResponse,
  credentialsTopics,
  decodeCredentialsResponse,
  isCredentialsDenial,
  peekRequestId,
} from '../protocol/credentials.js';
import { type Backoff, backoffDelay } from './backoff.js';
import { isAbortError, systemClock } from './clock.js';
import type { CredentialsConfig, GatewayConfig } from './config.js';
import {
  ChannelClosedError,
  ChannelNotConnectedError,
  CredentialsRequestError,
  CredentialsUnavailableError,
  EdgeError,
} from './errors.js';
import type { Clock, IotChannel, Unsubscribe } from './ports.js';

/** Credentials with a session token and an expiry, as STS and the token exchange service issue them. */
export interface TemporaryCredentials extends AwsCredentialIdentity {
  sessionToken: string;
  expiration: Date;
}

/** A caching credential provider usable as the `credentials` of any AWS SDK v3 client. */
export interface RefreshingCredentialProvider extends AwsCredentialIdentityProvider {
  /** The cached credentials while valid by the refresh margin; fresh ones otherwise. */
  (options?: { forceRefresh?: boolean }): Promise<TemporaryCredentials>;
  /** Tells the SDK not to memoize this provider again: it caches on its own. */
  readonly memoized: true;
  /** The cached credentials, if any (possibly expired). */
  current(): TemporaryCredentials | undefined;
  /** Stops: aborts a request in flight and releases the response subscription. */
  close(): Promise<void>;
}

export interface CredentialsSettings {
  refreshMarginSeconds: number;
  requestTimeoutMs: number;
  maxAttempts: number;
  backoff: Backoff;
}

export const DEFAULT_CREDENTIALS_SETTINGS: CredentialsSettings = {
  refreshMarginSeconds: 300,
  requestTimeoutMs: 10_000,
  maxAttempts: 5,
  backoff: { initialDelayMs: 500, maxDelayMs: 30_000 },
};

type Fetch = (signal: AbortSignal) => Promise<TemporaryCredentials>;

/**
 * The cache behind both providers: answers from the cache while the credentials are valid for longer
 * than the margin, otherwise fetches (one fetch at a time, shared). When an early refresh fails while
 * the cached credentials are still valid, it serves those and tries again after a pause.
 */
function cachingProvider(
  fetch: Fetch,
  opts: { refreshMarginMs: number; clock: Clock; logger: Logger; onClose?: () => Promise<void> },
): RefreshingCredentialProvider {
  const { clock, logger, refreshMarginMs } = opts;
  const lifecycle = new AbortController();
  let cached: TemporaryCredentials | undefined;
  let inflight: Promise<TemporaryCredentials> | undefined;
  /** After a failed early refresh: serve the cache without refreshing until then. */
  let holdUntil = 0;
  let warnedShortLifetime = false;

  const refresh = (): Promise<TemporaryCredentials> => {
    const p = fetch(lifecycle.signal)
      .then((creds) => {
        cached = creds;
        holdUntil = 0;
        const lifetimeMs = creds.expiration.getTime() - clock.now();
        if (lifetimeMs <= refreshMarginMs && !warnedShortLifetime) {
          warnedShortLifetime = true;
          logger.warn(
            { lifetimeSeconds: Math.round(lifetimeMs / 1000), refreshMarginSeconds: refreshMarginMs / 1000 },
            'credentials live shorter than the refresh margin: every request will fetch new ones',
          );
        }
        logger.debug(
          { accessKeyId: creds.accessKeyId, expiration: creds.expiration.toISOString() },
          'new credentials',
        );
        return creds;
      })
      .finally(() => {
        if (inflight === p) inflight = undefined;
      });
    return p;
  };

  const provider = async (options?: { forceRefresh?: boolean }): Promise<TemporaryCredentials> => {
    if (lifecycle.signal.aborted) {
      throw new CredentialsUnavailableError('the credential provider is closed', 'closed', 0);
    }
    const force = options?.forceRefresh === true;
    const now = clock.now();
    const c = cached;
    if (!force && c) {
      const expiresAt = c.expiration.getTime();
      if (now < expiresAt - refreshMarginMs) return c;
      if (now < holdUntil && now < expiresAt) return c;
    }
    inflight ??= refresh();
    try {
      return await inflight;
    } catch (err) {
      const stillValid = c !== undefined && c === cached && clock.now() < c.expiration.getTime();
      if (!force && stillValid) {
        const remaining = c.expiration.getTime() - clock.now();
        holdUntil = clock.now() + Math.min(30_000, remaining / 2);
        logger.warn(
          { err, expiration: c.expiration.toISOString() },
          'credentials refresh failed; using the current credentials until they expire',
        );
        return c;
      }
      throw err;
    }
  };

  return Object.assign(provider, {
    memoized: true as const,
    current: () => cached,
    close: async () => {
      if (lifecycle.signal.aborted) return;
      lifecycle.abort(new CredentialsRequestError('the credential provider is closed', 'closed'));
      await opts.onClose?.();
    },
  });
}

export interface MqttCredentialProviderOptions {
  channel: IotChannel;
  thingName: string;
  settings?: Partial<CredentialsSettings>;
  clock?: Clock;
  logger?: Logger;
  /** Random numbers in [0, 1) for the backoff jitter. */
  random?: () => number;
  /** Request ids (UUIDs). */
  newRequestId?: () => string;
}

/** Where responses go while a fetch waits: every request id of the fetch maps to its sink. */
interface FetchState {
  ids: Set<string>;
  /** The attempt waiting now, if any. */
  current?: { requestId: string; resolve: (g: CredentialsGrant) => void; reject: (e: Error) => void };
  /** A grant for an earlier request of this fetch that arrived between attempts. */
  late?: CredentialsGrant;
}

function channelFailure(err: unknown, what: string): CredentialsRequestError {
  if (err instanceof CredentialsRequestError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ChannelClosedError) {
    return new CredentialsRequestError(`${what}: the IoT channel is closed`, 'closed', { cause: err });
  }
  if (err instanceof ChannelNotConnectedError) {
    return new CredentialsRequestError(`${what}: ${message}`, 'not-connected', { cause: err });
  }
  return new CredentialsRequestError(`${what}: ${message}`, 'channel-error', { cause: err });
}

/**
 * The temporary-token provider: requests credentials on `things/{thing}/credentials/request` and takes
 * them from `things/{thing}/credentials/response` (see the module comment).
 */
export function mqttCredentialProvider(opts: MqttCredentialProviderOptions): RefreshingCredentialProvider {
  const settings: CredentialsSettings = { ...DEFAULT_CREDENTIALS_SETTINGS, ...opts.settings };
  const { channel, thingName } = opts;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const newRequestId = opts.newRequestId ?? randomUUID;
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'credentials', thingName });
  const topics = credentialsTopics(thingName);
  const waiting = new Map<string, FetchState>();
  let subscription: Promise<Unsubscribe> | undefined;

  const onMessage = (topic: string, payload: Buffer) => {
    const decoded = decodeCredentialsResponse(payload);
    if (!decoded.ok) {
      logger.warn(
        { topic, requestId: peekRequestId(payload), problem: decoded.error },
        'ignoring a malformed credentials response',
      );
      return;
    }
    const response: CredentialsResponse = decoded.value;
    const state = waiting.get(response.requestId);
    if (!state) {
      logger.info(
        { topic, requestId: response.requestId },
        'ignoring a credentials response to another request',
      );
      return;
    }
    const current = state.current;
    if (isCredentialsDenial(response)) {
      if (current?.requestId === response.requestId) {
        current.reject(
          new CredentialsRequestError(`the cloud refused the request: ${response.error}`, 'error-response'),
        );
      } else {
        logger.info(
          { requestId: response.requestId, error: response.error },
          'ignoring a late refusal of an earlier request',
        );
      }
      return;
    }
    // A grant answers the fetch, whichever of its requests it belongs to (a slow response to an
    // attempt that timed out is as good as one to the current attempt).
    if (current) current.resolve(response);
    else state.late ??= response;
  };

  const ensureSubscribed = async (): Promise<void> => {
    subscription ??= channel.subscribe(topics.response, onMessage, 1).catch((err: unknown) => {
      subscription = undefined;
      throw channelFailure(err, `cannot subscribe to ${topics.response}`);
    });
    await subscription;
  };

  const toCredentials = (grant: CredentialsGrant): TemporaryCredentials => {
    const expiration = new Date(grant.expiration);
    if (expiration.getTime() <= clock.now()) {
      throw new CredentialsRequestError(
        `the cloud sent credentials that expired at ${grant.expiration} (is the gateway's clock right?)`,
        'error-response',
      );
    }
    return {
      accessKeyId: grant.accessKeyId,
      secretAccessKey: grant.secretAccessKey,
      sessionToken: grant.sessionToken,
      expiration,
    };
  };

  /** One request: subscribe (once), wait for the connection, publish, wait for the response. */
  const attempt = async (state: FetchState, signal: AbortSignal): Promise<TemporaryCredentials> => {
    const late = state.late;
    state.late = undefined;
    if (late) return toCredentials(late);
    const timeoutMs = settings.requestTimeoutMs;
    const local = new AbortController();
    let phase: 'subscribe' | 'connect' | 'response' = 'subscribe';
    let fail: (e: Error) => void = () => {};
    const failed = new Promise<never>((_, reject) => {
      fail = reject;
    });
    failed.catch(() => {});
    const onAbort = () => fail(channelFailure(signal.reason, 'request cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    clock.sleep(timeoutMs, local.signal).then(
      () => {
        if (phase === 'subscribe') {
          fail(
            new CredentialsRequestError(
              `subscribing to ${topics.response} took over ${timeoutMs} ms`,
              'channel-error',
            ),
          );
        } else if (phase === 'connect') {
          fail(
            new CredentialsRequestError(
              `the IoT channel did not connect within ${timeoutMs} ms`,
              'not-connected',
            ),
          );
        } else {
          fail(
            new CredentialsRequestError(
              `no response on ${topics.response} within ${timeoutMs} ms`,
              'timeout',
            ),
          );
        }
      },
      () => {},
    );
    const offState = channel.onStateChange((s) => {
      if (phase === 'response' && s !== 'connected') {
        fail(
          new CredentialsRequestError(
            'the IoT channel lost its connection while waiting for the response',
            'not-connected',
          ),
        );
      } else if (s === 'closed') {
        fail(new CredentialsRequestError('the IoT channel is closed', 'closed'));
      }
    });
    try {
      if (signal.aborted) onAbort();
      await Promise.race([ensureSubscribed(), failed]);
      if (!channel.connected) {
        if (channel.state === 'closed')
          throw new CredentialsRequestError('the IoT channel is closed', 'closed');
        phase = 'connect';
        await Promise.race([
          new Promise<void>((resolve) => {
            const off = channel.onStateChange((s) => {
              if (s === 'connected') {
                off();
                resolve();
              }
            });
            local.signal.addEventListener('abort', off, { once: true });
          }),
          failed,
        ]);
      }
      phase = 'response';
      const requestId = newRequestId();
      state.ids.add(requestId);
      waiting.set(requestId, state);
      const response = new Promise<CredentialsGrant>((resolve, reject) => {
        state.current = { requestId, resolve, reject };
      });
      logger.debug({ requestId }, 'requesting credentials');
      await Promise.race([
        channel
          .publish(topics.request, JSON.stringify({ requestId }), CREDENTIALS_REQUEST_QOS)
          .catch((err: unknown) => {
            throw channelFailure(err, `cannot publish to ${topics.request}`);
          }),
        failed,
      ]);
      return toCredentials(await Promise.race([response, failed]));
    } finally {
      state.current = undefined;
      offState();
      local.abort();
      signal.removeEventListener('abort', onAbort);
    }
  };

  const fetch: Fetch = async (signal) => {
    const state: FetchState = { ids: new Set() };
    let last: CredentialsRequestError | undefined;
    try {
      for (let n = 1; n <= settings.maxAttempts; n++) {
        if (n > 1) {
          const delay = backoffDelay(n - 1, settings.backoff, random);
          try {
            await clock.sleep(delay, signal);
          } catch (err) {
            if (!isAbortError(err) && !(err instanceof EdgeError)) throw err;
            last = channelFailure(signal.reason, 'request cancelled');
            break;
          }
        }
        try {
          return await attempt(state, signal);
        } catch (err) {
          last = channelFailure(err, 'credentials request failed');
          logger.warn(
            { attempt: n, of: settings.maxAttempts, reason: last.reason, problem: last.message },
            'credentials request failed',
          );
          if (last.reason === 'closed') break;
        }
      }
    } finally {
      for (const id of state.ids) waiting.delete(id);
    }
    const reason = last?.reason ?? 'timeout';
    const attempts = reason === 'closed' ? 0 : settings.maxAttempts;
    throw new CredentialsUnavailableError(
      reason === 'closed'
        ? `no credentials for thing ${thingName}: ${last?.message ?? 'closed'}`
        : `no credentials for thing ${thingName} after ${settings.maxAttempts} attempt(s) over MQTT (last: ${reason}): ${last?.message}`,
      reason,
      attempts,
      { cause: last },
    );
  };

  return cachingProvider(fetch, {
    refreshMarginMs: settings.refreshMarginSeconds * 1000,
    clock,
    logger,
    onClose: async () => {
      const s = subscription;
      subscription = undefined;
      if (s) await s.then((unsubscribe) => unsubscribe()).catch(() => {});
    },
  });
}

export interface TesCredentialProviderOptions {
  refreshMarginSeconds?: number;
  /** Timeout of one request to the token exchange service. */
  timeoutMs?: number;
  /** Extra attempts after the first. */
  maxRetries?: number;
  clock?: Clock;
  logger?: Logger;
}

/**
 * Credentials from the Greengrass token exchange service (aws.greengrass.TokenExchangeService), which
 * Greengrass announces to components through AWS_CONTAINER_CREDENTIALS_FULL_URI and
 * AWS_CONTAINER_AUTHORIZATION_TOKEN; fetched with the SDK's fromContainerMetadata.
 */
export function tesCredentialProvider(opts: TesCredentialProviderOptions = {}): RefreshingCredentialProvider {
  const clock = opts.clock ?? systemClock;
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({
    component: 'credentials',
    source: 'tes',
  });
  const inner = fromContainerMetadata({
    timeout: opts.timeoutMs ?? DEFAULT_CREDENTIALS_SETTINGS.requestTimeoutMs,
    maxRetries: opts.maxRetries ?? DEFAULT_CREDENTIALS_SETTINGS.maxAttempts - 1,
  });
  const fetch: Fetch = async () => {
    const uri = process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
    let creds: AwsCredentialIdentity;
    try {
      creds = await inner();
    } catch (err) {
      throw new CredentialsUnavailableError(
        `no credentials from the Greengrass token exchange service (AWS_CONTAINER_CREDENTIALS_FULL_URI ${uri ? `= ${uri}` : 'is not set'}): ${(err as Error).message}`,
        'token-exchange-service',
        1 + (opts.maxRetries ?? DEFAULT_CREDENTIALS_SETTINGS.maxAttempts - 1),
        { cause: err },
      );
    }
    if (creds.sessionToken === undefined || creds.expiration === undefined) {
      throw new CredentialsUnavailableError(
        'the token exchange service returned credentials without a session token or expiration',
        'token-exchange-service',
        1,
      );
    }
    return { ...creds, sessionToken: creds.sessionToken, expiration: creds.expiration };
  };
  return cachingProvider(fetch, {
    refreshMarginMs: (opts.refreshMarginSeconds ?? DEFAULT_CREDENTIALS_SETTINGS.refreshMarginSeconds) * 1000,
    clock,
    logger,
  });
}

/** The provider `config.credentials.source` asks for; `mqtt` needs the IoT channel. */
export function credentialProviderFromConfig(
  config: Pick<GatewayConfig, 'thingName'> & { credentials: CredentialsConfig },
  deps: { channel?: IotChannel; clock?: Clock; logger?: Logger; random?: () => number },
): RefreshingCredentialProvider {
  const c = config.credentials;
  if (c.source === 'tes') {
    return tesCredentialProvider({
      refreshMarginSeconds: c.refreshMarginSeconds,
      timeoutMs: c.requestTimeoutMs,
      maxRetries: c.maxAttempts - 1,
      ...(deps.clock ? { clock: deps.clock } : {}),
      ...(deps.logger ? { logger: deps.logger } : {}),
    });
  }
  if (!deps.channel) {
    throw new EdgeError("credentials.source 'mqtt' needs an IoT channel (configure iot)");
  }
  return mqttCredentialProvider({
    channel: deps.channel,
    thingName: config.thingName,
    settings: c,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.random ? { random: deps.random } : {}),
  });
}
