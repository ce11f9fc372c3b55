/**
 * The Greengrass adapters: the component's ports over the Greengrass IPC client of aws-iot-device-sdk-v2
 * (eventstream RPC on the nucleus's Unix socket, authenticated by SVCUID).
 *
 * - {@link GreengrassIpc} holds one IPC connection. The client can connect only once, so after a
 *   disconnection it makes a new one, with jittered exponential backoff, and re-opens every registered
 *   stream (subscriptions) before it reports `connected` again.
 * - {@link GreengrassIotChannel}: the `IotChannel` port over PublishToIoTCore / SubscribeToIoTCore (the
 *   nucleus's MQTT connection, authorized by the recipe's `aws.greengrass.ipc.mqttproxy` policies).
 * - {@link GreengrassLocalPubSub}: local publish/subscribe (SubscribeToTopic), where sensor components
 *   publish readings; JSON messages arrive parsed, binary ones as bytes.
 * - {@link GreengrassShadowClient}: the shadow manager's UpdateThingShadow.
 * - {@link greengrassSecrets}: SecretManager's GetSecretValue as a `SecretSource`.
 * - {@link GreengrassConfigSource}: the component configuration (GetConfiguration), validation of
 *   deployments (SubscribeToValidateConfigurationUpdates + SendConfigurationValidityReport) and change
 *   notifications (SubscribeToConfigurationUpdate).
 *
 * "Connected" means connected to the nucleus: whether the nucleus itself reaches AWS IoT Core is not
 * visible over IPC, so calls that need the cloud fail (and are retried by their callers) while it is
 * offline.
 */
import { eventstream_rpc, greengrasscoreipc } from 'aws-iot-device-sdk-v2';
import pino, { type Logger } from 'pino';
import { type Backoff, backoffDelay } from '../backoff.js';
import { systemClock } from '../clock.js';
import {
  ChannelClosedError,
  ChannelError,
  ChannelNotConnectedError,
  EdgeError,
  SubscribeRefusedError,
} from '../errors.js';
import type {
  ChannelState,
  Clock,
  IotChannel,
  LocalMessage,
  LocalPubSub,
  MessageHandler,
  Qos,
  ShadowClient,
  Unsubscribe,
} from '../ports.js';
import type { SecretSource } from '../pseudonymize/keyring.js';

type Client = greengrasscoreipc.Client;
const model = greengrasscoreipc.model;

/** A Greengrass IPC call failed: the message carries the nucleus's own (e.g. an UnauthorizedError's). */
export class GreengrassIpcError extends EdgeError {}

/** The env a component gets from its nucleus; absent when the process does not run under Greengrass. */
export function greengrassEnv(
  env: NodeJS.ProcessEnv = process.env,
): { socketPath: string; svcuid: string; thingName: string | undefined } | undefined {
  const socketPath = env.AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT;
  const svcuid = env.SVCUID;
  if (!socketPath || !svcuid) return undefined;
  return { socketPath, svcuid, thingName: env.AWS_IOT_THING_NAME || undefined };
}

/**
 * A client for the nucleus named by `env` (not process.env, which the SDK's default configuration reads),
 * authenticating with its SVCUID on connect.
 */
export function ipcClientFor(env: { socketPath: string; svcuid: string }): Client {
  const config = greengrasscoreipc.createDefaultClientConfig();
  config.hostName = env.socketPath;
  config.connectTransform = async (options) => {
    const message = options.message;
    message.payload = JSON.stringify({ authToken: env.svcuid });
    return message;
  };
  return greengrasscoreipc.createClient(config);
}

/** The nucleus's message for a failed call (its modeled error), else the client's description. */
export function ipcErrorMessage(err: unknown): string {
  if (err instanceof eventstream_rpc.RpcError) {
    const service = err.serviceError as { message?: unknown } | undefined;
    if (service && typeof service.message === 'string' && service.message) return service.message;
    return err.description;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The bytes of an eventstream payload. */
function toBuffer(p: unknown): Buffer {
  if (p === undefined || p === null) return Buffer.alloc(0);
  if (typeof p === 'string') return Buffer.from(p, 'utf8');
  if (p instanceof ArrayBuffer) return Buffer.from(new Uint8Array(p));
  if (ArrayBuffer.isView(p)) return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  return Buffer.from(JSON.stringify(p), 'utf8');
}

/** A streaming operation of the client, for messages of type M. */
// biome-ignore lint/suspicious/noExplicitAny: the request and response types of each operation differ
type StreamOp<M> = eventstream_rpc.StreamingOperation<any, any, void, M>;

interface Registration {
  /** Opens and activates the stream on `client`; returns the function that closes it. */
  open: (client: Client) => Promise<() => Promise<void>>;
  what: string;
  close: (() => Promise<void>) | undefined;
  closed: boolean;
}

export interface GreengrassIpcOptions {
  logger?: Logger;
  clock?: Clock;
  /** Between reconnection attempts to the nucleus. Default 100 ms doubling to 10 s. */
  reconnect?: Backoff;
  /** Makes a client; default: {@link ipcClientFor} the nucleus that `env` names. */
  createClient?: () => Client;
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Time allowed for one connection attempt. Default 10 s. */
  connectTimeoutMs?: number;
}

export class GreengrassIpc {
  private current: Client | undefined;
  private stateValue: ChannelState = 'connecting';
  private readonly listeners = new Set<(s: ChannelState) => void>();
  private readonly registrations = new Set<Registration>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly makeClient: () => Client;
  private readonly connectTimeoutMs: number;
  private readonly closing = new AbortController();
  private reconnecting: Promise<void> | undefined;

  private constructor(opts: GreengrassIpcOptions) {
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'greengrass-ipc' });
    this.clock = opts.clock ?? systemClock;
    this.backoff = opts.reconnect ?? { initialDelayMs: 100, maxDelayMs: 10_000 };
    const gg = greengrassEnv(opts.env);
    this.makeClient =
      opts.createClient ??
      (() => {
        if (!gg) throw new GreengrassIpcError('not running under Greengrass');
        return ipcClientFor(gg);
      });
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  }

  /**
   * Connects to the nucleus. Rejects with GreengrassIpcError when the process does not run under
   * Greengrass (no socket/SVCUID in the env) or the nucleus refuses the connection.
   */
  static async connect(opts: GreengrassIpcOptions = {}): Promise<GreengrassIpc> {
    if (!opts.createClient && !greengrassEnv(opts.env)) {
      throw new GreengrassIpcError(
        'not running under Greengrass: AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID are not set',
      );
    }
    const ipc = new GreengrassIpc(opts);
    try {
      await ipc.connectOnce();
    } catch (err) {
      throw new GreengrassIpcError(`cannot connect to the Greengrass nucleus: ${ipcErrorMessage(err)}`, {
        cause: err,
      });
    }
    ipc.setState('connected');
    return ipc;
  }

  get state(): ChannelState {
    return this.stateValue;
  }

  get connected(): boolean {
    return this.stateValue === 'connected';
  }

  onStateChange(listener: (state: ChannelState) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private setState(s: ChannelState): void {
    if (s === this.stateValue || this.stateValue === 'closed') return;
    this.stateValue = s;
    for (const l of [...this.listeners]) l(s);
  }

  /** The connected client; throws ChannelNotConnectedError / ChannelClosedError otherwise. */
  client(): Client {
    if (this.stateValue === 'closed') throw new ChannelClosedError('the Greengrass IPC connection is closed');
    if (!this.current || this.stateValue !== 'connected') {
      throw new ChannelNotConnectedError('not connected to the Greengrass nucleus');
    }
    return this.current;
  }

  private async connectOnce(): Promise<void> {
    const client = this.makeClient();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new GreengrassIpcError(`no answer from the nucleus in ${this.connectTimeoutMs} ms`)),
            this.connectTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      await client.close().catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
    }
    client.on('disconnection', () => this.onDisconnection(client));
    this.current = client;
    for (const r of this.registrations) await this.openStream(r, client);
  }

  private onDisconnection(client: Client): void {
    if (client !== this.current || this.closing.signal.aborted) return;
    this.log.warn('disconnected from the Greengrass nucleus; reconnecting');
    this.current = undefined;
    for (const r of this.registrations) r.close = undefined;
    this.setState('disconnected');
    this.reconnecting ??= this.reconnectLoop().finally(() => {
      this.reconnecting = undefined;
    });
  }

  private async reconnectLoop(): Promise<void> {
    for (let attempt = 1; !this.closing.signal.aborted; attempt++) {
      try {
        await this.clock.sleep(backoffDelay(attempt, this.backoff), this.closing.signal);
      } catch {
        return;
      }
      try {
        await this.connectOnce();
        if (this.closing.signal.aborted) return;
        this.log.info({ attempt }, 'reconnected to the Greengrass nucleus');
        this.setState('connected');
        return;
      } catch (err) {
        this.log.warn(
          { attempt, err: ipcErrorMessage(err) },
          'reconnection to the Greengrass nucleus failed',
        );
      }
    }
  }

  private async openStream(r: Registration, client: Client): Promise<void> {
    if (r.closed) return;
    r.close = await r.open(client);
  }

  /**
   * Opens a streaming operation now (when connected) and again after every reconnection. Rejects when
   * the nucleus refuses it now (GreengrassIpcError with its message). The returned function closes it.
   */
  async stream<M>(
    what: string,
    open: (client: Client) => StreamOp<M>,
    onMessage: (message: M) => void,
  ): Promise<() => Promise<void>> {
    if (this.stateValue === 'closed') throw new ChannelClosedError('the Greengrass IPC connection is closed');
    const r: Registration = {
      open: async (client) => {
        const op = open(client);
        op.on('message', onMessage);
        op.on('streamError', (err) =>
          this.log.warn({ stream: what, err: ipcErrorMessage(err) }, 'IPC stream error'),
        );
        await op.activate();
        return () => op.close();
      },
      what,
      close: undefined,
      closed: false,
    };
    if (this.current && this.stateValue === 'connected') {
      try {
        await this.openStream(r, this.current);
      } catch (err) {
        throw new GreengrassIpcError(`${what}: ${ipcErrorMessage(err)}`, { cause: err });
      }
    }
    this.registrations.add(r);
    return async () => {
      r.closed = true;
      this.registrations.delete(r);
      const close = r.close;
      r.close = undefined;
      await close?.().catch(() => {});
    };
  }

  /** Runs one request-response call; errors become GreengrassIpcError naming `what`. */
  async call<T>(what: string, fn: (client: Client) => Promise<T>): Promise<T> {
    const client = this.client();
    try {
      return await fn(client);
    } catch (err) {
      throw new GreengrassIpcError(`${what}: ${ipcErrorMessage(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    this.closing.abort();
    this.setState('closed');
    await this.reconnecting;
    for (const r of this.registrations) {
      r.closed = true;
      await r.close?.().catch(() => {});
    }
    this.registrations.clear();
    const c = this.current;
    this.current = undefined;
    await c?.close().catch(() => {});
  }
}

/** IotChannel over the nucleus's connection to AWS IoT Core. */
export class GreengrassIotChannel implements IotChannel {
  private readonly handlers = new Map<
    string,
    { handlers: Set<MessageHandler>; close: () => Promise<void> }
  >();

  constructor(private readonly ipc: GreengrassIpc) {}

  get state(): ChannelState {
    return this.ipc.state;
  }

  get connected(): boolean {
    return this.ipc.connected;
  }

  onStateChange(listener: (state: ChannelState) => void): () => void {
    return this.ipc.onStateChange(listener);
  }

  async publish(topic: string, payload: string | Uint8Array, qos: Qos): Promise<void> {
    const client = this.ipc.client();
    try {
      await client.publishToIoTCore({
        topicName: topic,
        qos: qos === 1 ? model.QOS.AT_LEAST_ONCE : model.QOS.AT_MOST_ONCE,
        payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload,
      });
    } catch (err) {
      if (this.ipc.state === 'closed')
        throw new ChannelClosedError('the Greengrass IPC connection is closed');
      throw new ChannelError(`PublishToIoTCore ${topic}: ${ipcErrorMessage(err)}`, { cause: err });
    }
  }

  async subscribe(filter: string, handler: MessageHandler, qos: Qos = 1): Promise<Unsubscribe> {
    let entry = this.handlers.get(filter);
    if (!entry) {
      const handlers = new Set<MessageHandler>();
      let close: () => Promise<void>;
      try {
        close = await this.ipc.stream<greengrasscoreipc.model.IoTCoreMessage>(
          `SubscribeToIoTCore ${filter}`,
          (c) =>
            c.subscribeToIoTCore({
              topicName: filter,
              qos: qos === 1 ? model.QOS.AT_LEAST_ONCE : model.QOS.AT_MOST_ONCE,
            }),
          (m) => {
            const msg = m.message;
            if (!msg) return;
            const payload = toBuffer(msg.payload);
            for (const h of [...handlers]) h(msg.topicName, payload);
          },
        );
      } catch (err) {
        if (err instanceof ChannelError) throw err;
        throw new SubscribeRefusedError((err as Error).message, { cause: err });
      }
      entry = { handlers, close };
      this.handlers.set(filter, entry);
    }
    const e = entry;
    e.handlers.add(handler);
    return async () => {
      e.handlers.delete(handler);
      if (e.handlers.size === 0 && this.handlers.get(filter) === e) {
        this.handlers.delete(filter);
        await e.close();
      }
    };
  }

  /** Closes the subscriptions; the IPC connection itself belongs to its owner. */
  async close(): Promise<void> {
    const all = [...this.handlers.values()];
    this.handlers.clear();
    await Promise.allSettled(all.map((e) => e.close()));
  }
}

/** Local publish/subscribe; messages the gateway itself publishes are not delivered back to it. */
export class GreengrassLocalPubSub implements LocalPubSub {
  constructor(private readonly ipc: GreengrassIpc) {}

  async subscribe(
    filter: string,
    handler: (topic: string, message: LocalMessage) => void,
  ): Promise<Unsubscribe> {
    return this.ipc.stream<greengrasscoreipc.model.SubscriptionResponseMessage>(
      `SubscribeToTopic ${filter}`,
      (c) =>
        c.subscribeToTopic({ topic: filter, receiveMode: model.ReceiveMode.RECEIVE_MESSAGES_FROM_OTHERS }),
      (m) => {
        if (m.jsonMessage) {
          handler(m.jsonMessage.context?.topic ?? filter, { json: m.jsonMessage.message });
        } else if (m.binaryMessage) {
          handler(m.binaryMessage.context?.topic ?? filter, { bytes: toBuffer(m.binaryMessage.message) });
        }
      },
    );
  }
}

/** The thing's shadows through the Greengrass shadow manager (aws.greengrass.ShadowManager). */
export class GreengrassShadowClient implements ShadowClient {
  constructor(
    private readonly ipc: GreengrassIpc,
    private readonly thingName: string,
  ) {}

  async update(shadowName: string, document: Record<string, unknown>): Promise<void> {
    await this.ipc.call(`UpdateThingShadow ${this.thingName}/${shadowName || '(classic)'}`, (c) =>
      c.updateThingShadow({
        thingName: this.thingName,
        ...(shadowName ? { shadowName } : {}),
        payload: Buffer.from(JSON.stringify(document), 'utf8'),
      }),
    );
  }

  /** The shadow document, or undefined when there is none. */
  async get(shadowName: string): Promise<Record<string, unknown> | undefined> {
    try {
      const r = await this.ipc.client().getThingShadow({
        thingName: this.thingName,
        ...(shadowName ? { shadowName } : {}),
      });
      return JSON.parse(toBuffer(r.payload).toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof eventstream_rpc.RpcError && /not found/i.test(ipcErrorMessage(err)))
        return undefined;
      if (err instanceof ChannelError) throw err;
      throw new GreengrassIpcError(
        `GetThingShadow ${this.thingName}/${shadowName}: ${ipcErrorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
  }
}

/** SecretManager's GetSecretValue (the secret's current version) as a SecretSource. */
export function greengrassSecrets(ipc: GreengrassIpc): (secretId: string) => SecretSource {
  return (secretId) => ({
    name: secretId,
    async read() {
      const r = await ipc.call(`GetSecretValue ${secretId}`, (c) => c.getSecretValue({ secretId }));
      if (r.secretValue.secretString !== undefined) return r.secretValue.secretString;
      if (r.secretValue.secretBinary !== undefined)
        return toBuffer(r.secretValue.secretBinary).toString('utf8');
      throw new GreengrassIpcError(`GetSecretValue ${secretId}: the secret has no value`);
    },
  });
}

/** What a deployment's configuration check answers. */
export type ValidityReport = { status: 'ACCEPTED' } | { status: 'REJECTED'; message: string };

/** The component's own configuration, read and watched over IPC. */
export class GreengrassConfigSource {
  constructor(private readonly ipc: GreengrassIpc) {}

  /** The whole configuration of the component. */
  async get(): Promise<unknown> {
    const r = await this.ipc.call('GetConfiguration', (c) => c.getConfiguration({ keyPath: [] }));
    return r.value;
  }

  /**
   * Answers every deployment's configuration check: `check` gets the proposed configuration and says
   * ACCEPTED or REJECTED (with the reason, which the deployment reports).
   */
  onValidate(check: (configuration: unknown) => ValidityReport): Promise<() => Promise<void>> {
    return this.ipc.stream<greengrasscoreipc.model.ValidateConfigurationUpdateEvents>(
      'SubscribeToValidateConfigurationUpdates',
      (c) => c.subscribeToValidateConfigurationUpdates({}),
      (m) => {
        const ev = m.validateConfigurationUpdateEvent;
        if (!ev) return;
        const report = check(ev.configuration);
        void this.ipc
          .call('SendConfigurationValidityReport', (c) =>
            c.sendConfigurationValidityReport({
              configurationValidityReport: {
                deploymentId: ev.deploymentId,
                status:
                  report.status === 'ACCEPTED'
                    ? model.ConfigurationValidityStatus.ACCEPTED
                    : model.ConfigurationValidityStatus.REJECTED,
                ...(report.status === 'REJECTED' ? { message: report.message } : {}),
              },
            }),
          )
          .catch(() => {});
      },
    );
  }

  /** Calls `changed` with the key path of every change to the component's configuration. */
  onUpdate(changed: (keyPath: string[]) => void): Promise<() => Promise<void>> {
    return this.ipc.stream<greengrasscoreipc.model.ConfigurationUpdateEvents>(
      'SubscribeToConfigurationUpdate',
      (c) => c.subscribeToConfigurationUpdate({ keyPath: [] }),
      (m) => {
        if (m.configurationUpdateEvent) changed(m.configurationUpdateEvent.keyPath ?? []);
      },
    );
  }
}
