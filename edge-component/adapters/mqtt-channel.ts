/**
 * IotChannel over direct MQTT 3.1.1 with mutual TLS (mqtt.js), for standalone runs: the client id is the
 * thing name (the device policy only lets a thing connect as itself). Reconnects with jittered
 * exponential backoff after any loss, and makes every subscription again before reporting `connected`.
 *
 * mqtt.js's own reconnect uses a fixed period, so it is off (`reconnectPeriod: 0`) and this adapter
 * schedules `client.reconnect()` itself, keeping mqtt.js's message stores so that QoS 1 publishes in
 * flight are sent again on the new connection.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import pino, { type Logger } from 'pino';
import { type Backoff, backoffDelay } from '../backoff.js';
import type { IotConfig } from '../config.js';
import {
  ChannelClosedError,
  ChannelError,
  ChannelNotConnectedError,
  GatewayConfigError,
  SubscribeRefusedError,
} from '../errors.js';
import type { ChannelState, IotChannel, MessageHandler, Qos, Unsubscribe } from '../ports.js';
import { topicMatches } from '../topic-filter.js';

/** The ALPN protocol AWS IoT Core needs for MQTT with client certificates on port 443. */
const IOT_ALPN = 'x-amzn-mqtt-ca';

export interface MqttChannelOptions {
  host: string;
  port: number;
  /** PEM: device certificate, its private key, and the CA(s) of the server certificate. */
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
  /** The thing name. */
  clientId: string;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  reconnect?: Backoff;
  logger?: Logger;
  /** Random numbers in [0, 1) for the backoff jitter. */
  random?: () => number;
}

interface Subscription {
  qos: Qos;
  handlers: Set<MessageHandler>;
}

export class MqttChannel implements IotChannel {
  private readonly client: MqttClient;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private current: ChannelState = 'connecting';
  private readonly listeners = new Set<(s: ChannelState) => void>();
  private readonly subs = new Map<string, Subscription>();
  /** Filters subscribed at the broker on the current connection. */
  private readonly active = new Set<string>();
  /** Filters the broker refused on the current connection. */
  private readonly refused = new Set<string>();
  /** Incremented on every new connection; async work of an older one is ignored. */
  private generation = 0;
  private failures = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private last: Error | undefined;

  constructor(opts: MqttChannelOptions) {
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({
      component: 'mqtt',
      clientId: opts.clientId,
      host: opts.host,
      port: opts.port,
    });
    this.backoff = opts.reconnect ?? { initialDelayMs: 1000, maxDelayMs: 60_000 };
    this.random = opts.random ?? Math.random;
    const options: IClientOptions = {
      protocol: 'mqtts',
      host: opts.host,
      port: opts.port,
      clientId: opts.clientId,
      cert: opts.cert,
      key: opts.key,
      ca: opts.ca,
      rejectUnauthorized: true,
      ...(opts.port === 443 ? { ALPNProtocols: [IOT_ALPN] } : {}),
      protocolVersion: 4,
      clean: true,
      keepalive: opts.keepaliveSeconds ?? 60,
      connectTimeout: opts.connectTimeoutMs ?? 30_000,
      reconnectPeriod: 0,
      resubscribe: false,
    };
    this.client = mqtt.connect(options);
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) => {
      this.last = err;
      this.log.warn({ err: err.message, code: (err as { code?: unknown }).code }, 'MQTT connection error');
    });
    this.client.on('message', (topic, payload) => this.dispatch(topic, payload));
  }

  get state(): ChannelState {
    return this.current;
  }

  get connected(): boolean {
    return this.current === 'connected';
  }

  /** The last connection error mqtt.js reported (TLS handshake, CONNACK refusal, ...), if any. */
  get lastError(): Error | undefined {
    return this.last;
  }

  onStateChange(listener: (state: ChannelState) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private setState(s: ChannelState): void {
    if (this.current === s || this.current === 'closed') return;
    this.current = s;
    for (const l of [...this.listeners]) {
      try {
        l(s);
      } catch (err) {
        this.log.error({ err }, 'state listener failed');
      }
    }
  }

  private onConnect(): void {
    // Small MQTT packets (a PUBACK, then the next PUBLISH) must not wait for Nagle's algorithm: with
    // the broker's delayed ACK that adds about 40 ms to every request/response exchange.
    (this.client.stream as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
    const gen = ++this.generation;
    this.failures = 0;
    this.active.clear();
    this.refused.clear();
    this.log.info('MQTT connected');
    this.restoreSubscriptions(gen).then(
      () => {
        if (gen === this.generation && this.client.connected) this.setState('connected');
      },
      (err: unknown) =>
        this.log.warn({ err }, 'restoring subscriptions failed; waiting for the next connection'),
    );
  }

  /** Subscribes every registered filter that is neither active nor refused, until none is left. */
  private async restoreSubscriptions(gen: number): Promise<void> {
    for (;;) {
      if (gen !== this.generation) return;
      const missing = [...this.subs.keys()].filter((f) => !this.active.has(f) && !this.refused.has(f));
      if (missing.length === 0) return;
      await this.subscribeAtBroker(missing, gen);
    }
  }

  /** Sends one SUBSCRIBE; returns the filters the broker refused. */
  private async subscribeAtBroker(filters: string[], gen: number): Promise<string[]> {
    const request = Object.fromEntries(filters.map((f) => [f, { qos: this.subs.get(f)?.qos ?? 0 }]));
    const granted = await this.client.subscribeAsync(request);
    const refused: string[] = [];
    if (gen !== this.generation) return refused;
    for (const g of granted) {
      if (g.qos === 128) {
        refused.push(g.topic);
        this.refused.add(g.topic);
        this.log.error({ filter: g.topic }, 'the broker refused the subscription');
      } else {
        this.active.add(g.topic);
      }
    }
    // Filters the SUBACK did not mention (should not happen) count as refused, to avoid a loop.
    for (const f of filters) if (!this.active.has(f)) this.refused.add(f);
    return refused;
  }

  private onClose(): void {
    this.active.clear();
    this.generation++;
    if (this.closing) return;
    this.setState('disconnected');
    if (this.reconnectTimer) return;
    this.failures++;
    const delay = backoffDelay(this.failures, this.backoff, this.random);
    this.log.warn(
      { delayMs: delay, failures: this.failures, err: this.last?.message },
      'MQTT connection lost; reconnecting',
    );
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closing) return;
      this.client.reconnect({
        incomingStore: this.client.incomingStore,
        outgoingStore: this.client.outgoingStore,
      });
    }, delay);
  }

  private dispatch(topic: string, payload: Buffer): void {
    for (const [filter, sub] of this.subs) {
      if (!topicMatches(filter, topic)) continue;
      for (const h of [...sub.handlers]) {
        try {
          h(topic, payload);
        } catch (err) {
          this.log.error({ err, topic, filter }, 'message handler failed');
        }
      }
    }
  }

  async publish(topic: string, payload: string | Uint8Array, qos: Qos): Promise<void> {
    if (this.closing) throw new ChannelClosedError(`channel closed: cannot publish to ${topic}`);
    if (!this.connected) throw new ChannelNotConnectedError(`not connected: cannot publish to ${topic}`);
    try {
      await this.client.publishAsync(topic, Buffer.from(payload), { qos });
    } catch (err) {
      throw new ChannelError(`publish to ${topic} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async subscribe(filter: string, handler: MessageHandler, qos: Qos = 1): Promise<Unsubscribe> {
    if (this.closing) throw new ChannelClosedError(`channel closed: cannot subscribe to ${filter}`);
    let sub = this.subs.get(filter);
    if (!sub) {
      sub = { qos, handlers: new Set() };
      this.subs.set(filter, sub);
    } else if (qos > sub.qos) {
      sub.qos = qos;
    }
    sub.handlers.add(handler);
    const unsubscribe = () => this.removeHandler(filter, handler);
    if (this.connected && !this.active.has(filter)) {
      const gen = this.generation;
      let refused: string[];
      try {
        refused = await this.subscribeAtBroker([filter], gen);
      } catch (err) {
        // No SUBACK: the connection dropped (AWS IoT Core closes the connection of a client that
        // subscribes without permission). Not kept, so that a forbidden filter cannot make every
        // reconnection fail again; the caller decides whether to retry.
        await unsubscribe();
        throw new ChannelNotConnectedError(`connection lost while subscribing to ${filter}`, { cause: err });
      }
      if (refused.includes(filter)) {
        await unsubscribe();
        throw new SubscribeRefusedError(`the broker refused the subscription to ${filter}`);
      }
    }
    return unsubscribe;
  }

  private async removeHandler(filter: string, handler: MessageHandler): Promise<void> {
    const sub = this.subs.get(filter);
    if (!sub?.handlers.delete(handler) || sub.handlers.size > 0) return;
    this.subs.delete(filter);
    const wasActive = this.active.delete(filter);
    this.refused.delete(filter);
    if (wasActive && this.client.connected && !this.closing) {
      await this.client.unsubscribeAsync(filter).catch((err: unknown) => {
        this.log.debug({ err, filter }, 'unsubscribe failed');
      });
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.subs.clear();
    await this.client.endAsync(!this.client.connected).catch(() => {});
    this.current = 'closed';
    for (const l of [...this.listeners]) l('closed');
    this.listeners.clear();
  }
}

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GatewayConfigError(`${field}: cannot read ${path}${code ? ` (${code})` : ''}`, [], {
      cause: err,
    });
  }
}

/** An MqttChannel from the `iot` section of the gateway configuration (reads the PEM files). */
export function mqttChannelFromConfig(
  iot: IotConfig,
  thingName: string,
  deps: { logger?: Logger; random?: () => number } = {},
): MqttChannel {
  return new MqttChannel({
    host: iot.host,
    port: iot.port,
    cert: readPem(iot.certFile, 'iot.certFile'),
    key: readPem(iot.keyFile, 'iot.keyFile'),
    ca: readPem(iot.caFile, 'iot.caFile'),
    clientId: thingName,
    keepaliveSeconds: iot.keepaliveSeconds,
    connectTimeoutMs: iot.connectTimeoutMs,
    reconnect: iot.reconnect,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.random ? { random: deps.random } : {}),
  });
}
