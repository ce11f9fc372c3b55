/**
 * A local emulation of the AWS IoT Greengrass v2 nucleus's IPC service, for running and testing
 * components with the unchanged `greengrasscoreipc` client outside a real core device.
 *
 * Served operations (semantics from the Greengrass IPC documentation and the nucleus sources):
 * configuration (Get/Update/SubscribeToConfigurationUpdate/SubscribeToValidateConfigurationUpdates/
 * SendConfigurationValidityReport), local pub/sub, IoT Core MQTT (through the core device's own
 * mTLS connection), shadows (synced with the cloud in real time through the shadow MQTT topics),
 * GetSecretValue, UpdateState and SubscribeToComponentUpdates; every other operation gets the
 * nucleus's "Unsupported Operation" error.
 *
 * PublishToIoTCore while the cloud connection is down follows the nucleus's in-memory spooler
 * defaults (`keepQos0WhenOffline: false`): a QoS 0 message is dropped and the call fails with
 * ServiceError; a QoS 1 message is kept (mqtt.js offline queue) and sent after reconnecting; the
 * call waits for its PUBACK up to the MQTT operation timeout (30 s, the nucleus's
 * `mqtt.operationTimeoutMs` default) and then fails with ServiceError, the message staying queued.
 * Without `iot` options every IoT Core and shadow operation fails with ServiceError.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import pino, { type Logger } from 'pino';
import {
  conflictError,
  failedUpdateConditionCheckError,
  invalidArgumentsError,
  resourceNotFoundError,
  serviceError,
  unauthorizedError,
} from './errors.js';
import { type IpcOperation, IpcServer, type IpcStreamContext } from './ipc-server.js';

export interface NucleusComponent {
  name: string;
  configuration?: Record<string, unknown>;
  accessControl?: Record<
    string,
    Record<string, { policyDescription?: string; operations: string[]; resources: string[] }>
  >;
}
export interface NucleusIotOptions {
  host: string;
  port: number;
  cert: string;
  key: string;
  ca: string;
}
export interface LocalNucleusOptions {
  socketPath: string;
  thingName: string;
  components: NucleusComponent[];
  iot?: NucleusIotOptions;
  secrets?: Record<string, { secretString?: string; secretBinary?: Uint8Array; versionId?: string }>;
  logger?: Logger;
}

const GG = 'aws.greengrass#';
const PUBSUB = 'aws.greengrass.ipc.pubsub';
const MQTTPROXY = 'aws.greengrass.ipc.mqttproxy';
const SHADOW = 'aws.greengrass.ShadowManager';
const SECRETS = 'aws.greengrass.SecretManager';
const MQTT_OPERATION_TIMEOUT_MS = 30_000;
const KEY_NOT_FOUND = 'Key not found';

type Json = Record<string, unknown>;

interface ComponentState {
  def: NucleusComponent;
  token: string;
  config: Json;
  /** Last modification time (ms) of each leaf, keyed by JSON-encoded key path. */
  modtimes: Map<string, number>;
}

interface ConfigSub {
  component: string; // whose configuration is watched
  keyPath: string[];
  ctx: IpcStreamContext;
}

interface TopicSub {
  component: string | undefined;
  filter: string;
  fromOthersOnly: boolean;
  ctx: IpcStreamContext;
}

interface PendingValidation {
  deploymentId: string;
  resolve(report: { status: 'ACCEPTED' | 'REJECTED'; message?: string }): void;
}

const isPlainObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(req: Json, field: string, required: true): string;
function str(req: Json, field: string, required?: false): string | undefined;
function str(req: Json, field: string, required = false): string | undefined {
  const v = req[field];
  if (v === undefined || v === null) {
    if (required) throw invalidArgumentsError(`${field} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw invalidArgumentsError(`${field} must be a string`);
  if (required && v === '') throw invalidArgumentsError(`${field} is required`);
  return v;
}

function keyPathOf(req: Json, field = 'keyPath'): string[] {
  const v = req[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw invalidArgumentsError(`${field} must be a list of strings`);
  }
  return v as string[];
}

/** MQTT topic filter match (`+` one level, `#` the rest, including the parent level). */
export function mqttTopicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/#]/g, '\\$&');
}

/**
 * Matches an authorization policy resource against a requested resource: `*` matches any
 * characters; with `mqttStyle` (IoT Core MQTT policies) `+` also matches one topic level and a
 * trailing `#` the remaining levels, as the nucleus's MQTT-style resource lookup does.
 */
export function resourceMatches(pattern: string, resource: string, mqttStyle: boolean): boolean {
  if (pattern === '*' || pattern === resource) return true;
  let re = '';
  const parts = pattern.split('/');
  parts.forEach((part, i) => {
    const sep = i === 0 ? '' : '/';
    if (mqttStyle && part === '#' && i === parts.length - 1) {
      re += i === 0 ? '.*' : '(?:/.*)?';
      return;
    }
    if (mqttStyle && part === '+') {
      re += `${escapeRe(sep)}[^/]*`;
      return;
    }
    re += escapeRe(sep) + part.split('*').map(escapeRe).join('.*');
  });
  return new RegExp(`^${re}$`).test(resource);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Key paths (relative to the configuration root) that differ between two configurations. */
function changedPaths(before: unknown, after: unknown, prefix: string[] = []): string[][] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const out: string[][] = [];
    for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
      out.push(...changedPaths(before[k], after[k], [...prefix, k]));
    }
    return out;
  }
  if (deepEqual(before, after)) return [];
  if (isPlainObject(after) && before === undefined) {
    const leaves = changedPaths({}, after, prefix);
    return leaves.length > 0 ? leaves : [prefix];
  }
  return [prefix];
}

function leafPaths(value: unknown, prefix: string[] = []): string[][] {
  if (isPlainObject(value)) {
    const out: string[][] = [];
    for (const [k, v] of Object.entries(value)) out.push(...leafPaths(v, [...prefix, k]));
    return out.length > 0 ? out : [prefix];
  }
  return [prefix];
}

function deepMerge(target: Json, source: Json): Json {
  const out: Json = { ...target };
  for (const [k, v] of Object.entries(source)) {
    const cur = out[k];
    out[k] = isPlainObject(v) && isPlainObject(cur) ? deepMerge(cur, v) : structuredClone(v);
  }
  return out;
}

function isPrefix(prefix: string[], path: string[]): boolean {
  return prefix.length <= path.length && prefix.every((p, i) => path[i] === p);
}

export class LocalNucleus {
  private readonly components = new Map<string, ComponentState>();
  private readonly byToken = new Map<string, string>();
  private readonly log: Logger;
  private server: IpcServer | undefined;
  private mqttClient: MqttClient | undefined;
  private readonly configSubs = new Set<ConfigSub>();
  private readonly validateSubs = new Set<{ component: string; ctx: IpcStreamContext }>();
  private readonly pendingValidation = new Map<string, PendingValidation>();
  private readonly topicSubs = new Set<TopicSub>();
  private readonly iotSubs = new Set<{ filter: string; ctx: IpcStreamContext }>();
  private readonly mqttRefs = new Map<string, number>();
  private readonly shadowWaiters = new Map<string, (accepted: boolean, payload: Buffer) => void>();
  private readonly namedShadows = new Map<string, Set<string>>();
  private readonly secretVersions = new Map<string, string>();

  private constructor(private readonly opts: LocalNucleusOptions) {
    this.log = opts.logger ?? pino({ level: 'silent' });
    for (const c of opts.components) {
      const token = randomBytes(16).toString('hex');
      const config = structuredClone(c.configuration ?? {});
      const modtimes = new Map<string, number>();
      for (const p of leafPaths(config)) modtimes.set(JSON.stringify(p), 0);
      this.components.set(c.name, { def: c, token, config, modtimes });
      this.byToken.set(token, c.name);
    }
    for (const [arn, s] of Object.entries(opts.secrets ?? {})) {
      this.secretVersions.set(arn, s.versionId ?? randomUUID());
    }
  }

  static async start(opts: LocalNucleusOptions): Promise<LocalNucleus> {
    const n = new LocalNucleus(opts);
    n.server = await IpcServer.start({
      socketPath: opts.socketPath,
      authenticate: (token) => n.byToken.get(token),
      operations: n.operations(),
      logger: n.log,
    });
    if (opts.iot) n.connectIot(opts.iot);
    return n;
  }

  token(componentName: string): string {
    return this.component(componentName).token;
  }

  componentEnv(componentName: string): Record<string, string> {
    return {
      SVCUID: this.token(componentName),
      AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: this.opts.socketPath,
      AWS_IOT_THING_NAME: this.opts.thingName,
    };
  }

  getConfiguration(componentName: string): Record<string, unknown> {
    return structuredClone(this.component(componentName).config);
  }

  get iotConnected(): boolean {
    return this.mqttClient?.connected ?? false;
  }

  async deploy(
    componentName: string,
    configuration: Record<string, unknown>,
    opts: { timeoutMs?: number } = {},
  ): Promise<{ status: 'ACCEPTED' | 'REJECTED'; message?: string }> {
    const comp = this.component(componentName);
    const subs = [...this.validateSubs].filter((s) => s.component === componentName && !s.ctx.closed);
    if (subs.length > 0) {
      const deploymentId = randomUUID();
      const report = await new Promise<{ status: 'ACCEPTED' | 'REJECTED'; message?: string } | undefined>(
        (resolve) => {
          const timer = setTimeout(() => {
            this.pendingValidation.delete(componentName);
            resolve(undefined);
          }, opts.timeoutMs ?? 30_000);
          this.pendingValidation.set(componentName, {
            deploymentId,
            resolve: (r) => {
              clearTimeout(timer);
              this.pendingValidation.delete(componentName);
              resolve(r);
            },
          });
          for (const s of subs) {
            s.ctx.sendEvent(`${GG}ValidateConfigurationUpdateEvents`, {
              validateConfigurationUpdateEvent: { configuration, deploymentId },
            });
          }
        },
      );
      // A component that does not answer within the timeout does not block the deployment (AWS docs).
      if (report?.status === 'REJECTED') {
        return { status: 'REJECTED', ...(report.message !== undefined ? { message: report.message } : {}) };
      }
    }
    const before = comp.config;
    comp.config = structuredClone(configuration);
    const now = Date.now();
    const changed = changedPaths(before, comp.config);
    for (const p of changed) comp.modtimes.set(JSON.stringify(p), now);
    this.notifyConfigChanged(componentName, changed);
    return { status: 'ACCEPTED' };
  }

  publishLocal(topic: string, message: { json?: unknown; binary?: Uint8Array }): void {
    const publishMessage =
      message.binary !== undefined
        ? { binaryMessage: { message: Buffer.from(message.binary).toString('base64') } }
        : { jsonMessage: { message: message.json } };
    this.deliverLocal(undefined, topic, publishMessage);
  }

  async stop(): Promise<void> {
    for (const w of this.pendingValidation.values())
      w.resolve({ status: 'REJECTED', message: 'nucleus stopped' });
    await this.server?.stop();
    this.server = undefined;
    const client = this.mqttClient;
    this.mqttClient = undefined;
    if (client) await client.endAsync(true).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------

  private component(name: string): ComponentState {
    const c = this.components.get(name);
    if (!c) throw new Error(`unknown component ${name}`);
    return c;
  }

  private authorize(principal: string, service: string, operation: string, resource: string): void {
    const comp = this.components.get(principal);
    const policies = comp?.def.accessControl?.[service] ?? {};
    const mqttStyle = service === MQTTPROXY;
    for (const policy of Object.values(policies)) {
      if (!policy.operations.includes(operation) && !policy.operations.includes('*')) continue;
      for (const r of policy.resources) {
        const pattern = r.replaceAll('{iot:thingName}', this.opts.thingName);
        if (resourceMatches(pattern, resource, mqttStyle)) return;
      }
    }
    throw unauthorizedError(
      `Principal ${principal} is not authorized to perform ${service}:${operation} on resource ${resource}`,
    );
  }

  private operations(): Map<string, IpcOperation> {
    const ops = new Map<string, IpcOperation>();
    const rr = (name: string, handle: IpcOperation['handle']) =>
      ops.set(GG + name, { streaming: false, handle });
    const st = (name: string, handle: IpcOperation['handle']) =>
      ops.set(GG + name, { streaming: true, handle });

    rr('GetConfiguration', async (ctx, req) => this.getConfigurationOp(ctx, req));
    rr('UpdateConfiguration', async (ctx, req) => this.updateConfigurationOp(ctx, req));
    st('SubscribeToConfigurationUpdate', async (ctx, req) => this.subscribeConfigOp(ctx, req));
    st('SubscribeToValidateConfigurationUpdates', async (ctx) => {
      const sub = { component: ctx.principal, ctx };
      this.validateSubs.add(sub);
      ctx.onClose(() => this.validateSubs.delete(sub));
      return {};
    });
    rr('SendConfigurationValidityReport', async (ctx, req) => this.validityReportOp(ctx, req));
    rr('PublishToTopic', async (ctx, req) => this.publishToTopicOp(ctx, req));
    st('SubscribeToTopic', async (ctx, req) => this.subscribeToTopicOp(ctx, req));
    rr('PublishToIoTCore', async (ctx, req) => this.publishToIoTCoreOp(ctx, req));
    st('SubscribeToIoTCore', async (ctx, req) => this.subscribeToIoTCoreOp(ctx, req));
    rr('GetThingShadow', async (ctx, req) => this.shadowOp(ctx, req, 'get'));
    rr('UpdateThingShadow', async (ctx, req) => this.shadowOp(ctx, req, 'update'));
    rr('DeleteThingShadow', async (ctx, req) => this.shadowOp(ctx, req, 'delete'));
    rr('ListNamedShadowsForThing', async (ctx, req) => this.listNamedShadowsOp(ctx, req));
    rr('GetSecretValue', async (ctx, req) => this.getSecretValueOp(ctx, req));
    rr('UpdateState', async (_ctx, req) => {
      const state = str(req, 'state', true);
      if (state !== 'RUNNING' && state !== 'ERRORED') throw resourceNotFoundError(`Invalid state ${state}`);
      return {};
    });
    st('SubscribeToComponentUpdates', async () => ({}));
    return ops;
  }

  // --- configuration ---------------------------------------------------------------------------

  /** The component (default: the caller) and the configuration node at the request's key path. */
  private configNode(ctx: IpcStreamContext, req: Json): { name: string; path: string[]; node: unknown } {
    const name = str(req, 'componentName') ?? ctx.principal;
    const comp = this.components.get(name);
    if (!comp) throw resourceNotFoundError(KEY_NOT_FOUND, 'Configuration', name);
    const path = keyPathOf(req);
    let node: unknown = comp.config;
    for (const k of path) {
      if (!isPlainObject(node) || !(k in node))
        throw resourceNotFoundError(KEY_NOT_FOUND, 'Configuration', path.join('.'));
      node = node[k];
    }
    return { name, path, node };
  }

  private getConfigurationOp(ctx: IpcStreamContext, req: Json): Json {
    const { name, path, node } = this.configNode(ctx, req);
    // A leaf comes back as {lastKey: value}, as the nucleus does.
    const last = path[path.length - 1];
    const value = isPlainObject(node) || last === undefined ? node : { [last]: node };
    return { componentName: name, value: structuredClone(value) };
  }

  private updateConfigurationOp(ctx: IpcStreamContext, req: Json): Json {
    const name = str(req, 'componentName');
    if (name !== undefined && name !== ctx.principal) {
      throw invalidArgumentsError('Cross component updates are not allowed');
    }
    const comp = this.components.get(ctx.principal);
    if (!comp) throw invalidArgumentsError('Service config not found');
    const path = keyPathOf(req);
    const valueToMerge = req.valueToMerge;
    if (!isPlainObject(valueToMerge)) throw invalidArgumentsError('valueToMerge must be an object');
    const ts = req.timestamp;
    if (typeof ts !== 'number' || !Number.isFinite(ts)) throw invalidArgumentsError('timestamp is required');
    const tsMs = Math.round(ts * 1000);
    const targets = leafPaths(valueToMerge, path);
    for (const p of targets) {
      for (const [k, t] of comp.modtimes) {
        const existing = JSON.parse(k) as string[];
        if ((isPrefix(existing, p) || isPrefix(p, existing)) && t > tsMs) {
          throw failedUpdateConditionCheckError(
            "Proposed timestamp is older than the config's latest modified timestamp",
          );
        }
      }
    }
    const before = comp.config;
    let after: Json;
    if (path.length === 0) {
      after = deepMerge(before, valueToMerge);
    } else {
      after = structuredClone(before);
      let node: Json = after;
      for (const k of path.slice(0, -1)) {
        const next = node[k];
        node[k] = isPlainObject(next) ? next : {};
        node = node[k] as Json;
      }
      const last = path[path.length - 1] as string;
      const cur = node[last];
      node[last] = deepMerge(isPlainObject(cur) ? cur : {}, valueToMerge);
    }
    comp.config = after;
    const changed = changedPaths(before, after);
    for (const p of changed) comp.modtimes.set(JSON.stringify(p), tsMs);
    this.notifyConfigChanged(ctx.principal, changed);
    return {};
  }

  private subscribeConfigOp(ctx: IpcStreamContext, req: Json): Json {
    // The key path must exist, as on the nucleus.
    const { name, path } = this.configNode(ctx, req);
    const sub: ConfigSub = { component: name, keyPath: path, ctx };
    this.configSubs.add(sub);
    ctx.onClose(() => this.configSubs.delete(sub));
    return {};
  }

  private notifyConfigChanged(component: string, changed: string[][]): void {
    for (const sub of this.configSubs) {
      if (sub.component !== component) continue;
      for (const p of changed) {
        if (!isPrefix(sub.keyPath, p)) continue;
        sub.ctx.sendEvent(`${GG}ConfigurationUpdateEvents`, {
          configurationUpdateEvent: { componentName: component, keyPath: p },
        });
      }
    }
  }

  private validityReportOp(ctx: IpcStreamContext, req: Json): Json {
    const report = req.configurationValidityReport;
    if (!isPlainObject(report)) throw invalidArgumentsError('configurationValidityReport is required');
    const status = report.status;
    if (status !== 'ACCEPTED' && status !== 'REJECTED') {
      throw invalidArgumentsError('configurationValidityReport.status must be ACCEPTED or REJECTED');
    }
    const pending = this.pendingValidation.get(ctx.principal);
    const deploymentId = report.deploymentId;
    if (!pending || (typeof deploymentId === 'string' && deploymentId !== pending.deploymentId)) {
      throw invalidArgumentsError('Validation request either timed out or was never made');
    }
    pending.resolve({
      status,
      ...(typeof report.message === 'string' ? { message: report.message } : {}),
    });
    return {};
  }

  // --- local pub/sub ---------------------------------------------------------------------------

  private publishToTopicOp(ctx: IpcStreamContext, req: Json): Json {
    const topic = str(req, 'topic');
    if (!topic) throw serviceError('topic is required');
    this.authorize(ctx.principal, PUBSUB, `${GG}PublishToTopic`, topic);
    const pm = req.publishMessage;
    if (!isPlainObject(pm)) throw serviceError('publishMessage is required');
    const json = pm.jsonMessage;
    const bin = pm.binaryMessage;
    if ((json === undefined) === (bin === undefined)) {
      throw serviceError('publishMessage must have exactly one of jsonMessage or binaryMessage');
    }
    if (bin !== undefined) {
      if (!isPlainObject(bin) || (bin.message !== undefined && typeof bin.message !== 'string')) {
        throw serviceError('binaryMessage.message must be a blob');
      }
      this.deliverLocal(ctx.principal, topic, { binaryMessage: { message: bin.message ?? '' } });
    } else {
      if (!isPlainObject(json)) throw serviceError('jsonMessage must be an object');
      this.deliverLocal(ctx.principal, topic, { jsonMessage: { message: json.message } });
    }
    return {};
  }

  private deliverLocal(
    publisher: string | undefined,
    topic: string,
    msg: { jsonMessage: { message: unknown } } | { binaryMessage: { message: string } },
  ): void {
    for (const sub of this.topicSubs) {
      if (sub.fromOthersOnly && publisher !== undefined && sub.component === publisher) continue;
      if (!mqttTopicMatches(sub.filter, topic)) continue;
      const event =
        'jsonMessage' in msg
          ? { jsonMessage: { message: msg.jsonMessage.message, context: { topic } } }
          : { binaryMessage: { message: msg.binaryMessage.message, context: { topic } } };
      sub.ctx.sendEvent(`${GG}SubscriptionResponseMessage`, event);
    }
  }

  private subscribeToTopicOp(ctx: IpcStreamContext, req: Json): Json {
    const topic = str(req, 'topic');
    if (!topic) throw invalidArgumentsError('topic is required');
    const mode = str(req, 'receiveMode') ?? 'RECEIVE_ALL_MESSAGES';
    if (mode !== 'RECEIVE_ALL_MESSAGES' && mode !== 'RECEIVE_MESSAGES_FROM_OTHERS') {
      throw invalidArgumentsError(`receiveMode ${mode} is not valid`);
    }
    this.authorize(ctx.principal, PUBSUB, `${GG}SubscribeToTopic`, topic);
    const sub: TopicSub = {
      component: ctx.principal,
      filter: topic,
      fromOthersOnly: mode === 'RECEIVE_MESSAGES_FROM_OTHERS',
      ctx,
    };
    this.topicSubs.add(sub);
    ctx.onClose(() => this.topicSubs.delete(sub));
    return {};
  }

  // --- IoT Core ----------------------------------------------------------------------------------

  private connectIot(iot: NucleusIotOptions): void {
    const client = mqtt.connect({
      host: iot.host,
      port: iot.port,
      protocol: 'mqtts',
      protocolVersion: 4,
      clientId: this.opts.thingName,
      cert: iot.cert,
      key: iot.key,
      ca: iot.ca,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    client.on('connect', () =>
      this.log.info({ thing: this.opts.thingName }, 'nucleus connected to IoT Core'),
    );
    client.on('close', () => this.log.debug('nucleus IoT connection closed'));
    client.on('error', (err) => this.log.warn({ err }, 'nucleus IoT connection error'));
    client.on('message', (topic, payload) => this.onIotMessage(topic, payload));
    this.mqttClient = client;
  }

  private requireIot(what: string): MqttClient {
    const c = this.mqttClient;
    if (!c) throw serviceError(`${what} failed: no IoT Core connection is configured for this core device`);
    return c;
  }

  private onIotMessage(topic: string, payload: Buffer): void {
    const m =
      /^\$aws\/things\/[^/]+\/shadow(?:\/name\/[^/]+)?\/(?:get|update|delete)\/(accepted|rejected)$/.exec(
        topic,
      );
    if (m) {
      try {
        const body = JSON.parse(payload.toString()) as Json;
        const token = typeof body.clientToken === 'string' ? body.clientToken : undefined;
        const waiter = token ? this.shadowWaiters.get(token) : undefined;
        if (waiter && token) {
          this.shadowWaiters.delete(token);
          waiter(m[1] === 'accepted', payload);
        }
      } catch {
        // not a shadow response we can read
      }
    }
    for (const sub of this.iotSubs) {
      if (!mqttTopicMatches(sub.filter, topic)) continue;
      sub.ctx.sendEvent(`${GG}IoTCoreMessage`, {
        message: { topicName: topic, payload: payload.toString('base64') },
      });
    }
  }

  private async mqttSubscribe(client: MqttClient, filter: string, qos: 0 | 1): Promise<void> {
    const refs = this.mqttRefs.get(filter) ?? 0;
    this.mqttRefs.set(filter, refs + 1);
    if (refs > 0) return;
    if (!client.connected) {
      // Recorded; mqtt.js sends it once connected and re-subscribes after every reconnect.
      client.subscribe(filter, { qos });
      return;
    }
    try {
      const granted = await withTimeout(client.subscribeAsync(filter, { qos }), MQTT_OPERATION_TIMEOUT_MS);
      if (granted.some((g) => g.qos === 128)) throw new Error('subscription refused by IoT Core');
    } catch (err) {
      this.mqttRefs.set(filter, (this.mqttRefs.get(filter) ?? 1) - 1);
      if (this.mqttRefs.get(filter) === 0) this.mqttRefs.delete(filter);
      throw serviceError(`Subscribe to topic ${filter} failed with error ${(err as Error).message}`, err);
    }
  }

  private mqttUnsubscribe(client: MqttClient, filter: string): void {
    const refs = (this.mqttRefs.get(filter) ?? 0) - 1;
    if (refs > 0) {
      this.mqttRefs.set(filter, refs);
      return;
    }
    this.mqttRefs.delete(filter);
    if (this.mqttClient === client) client.unsubscribe(filter);
  }

  private async publishToIoTCoreOp(ctx: IpcStreamContext, req: Json): Promise<Json> {
    const topic = str(req, 'topicName', true);
    this.authorize(ctx.principal, MQTTPROXY, `${GG}PublishToIoTCore`, topic);
    const qosText = str(req, 'qos') ?? '1';
    if (qosText !== '0' && qosText !== '1') throw serviceError(`qos ${qosText} is not supported`);
    const payloadB64 = req.payload;
    if (payloadB64 !== undefined && typeof payloadB64 !== 'string')
      throw serviceError('payload must be a blob');
    const payload = Buffer.from(payloadB64 ?? '', 'base64');
    const client = this.requireIot(`Publish to topic ${topic}`);
    const qos = qosText === '1' ? 1 : 0;
    if (!client.connected && qos === 0) {
      throw serviceError(
        `Publish to topic ${topic} failed with error Device is offline. Dropping QoS 0 message.`,
      );
    }
    try {
      await withTimeout(
        client.publishAsync(topic, payload, { qos, retain: req.retain === true }),
        MQTT_OPERATION_TIMEOUT_MS,
      );
    } catch (err) {
      throw serviceError(`Publish to topic ${topic} failed with error ${(err as Error).message}`, err);
    }
    return {};
  }

  private async subscribeToIoTCoreOp(ctx: IpcStreamContext, req: Json): Promise<Json> {
    const filter = str(req, 'topicName', true);
    this.authorize(ctx.principal, MQTTPROXY, `${GG}SubscribeToIoTCore`, filter);
    const client = this.requireIot(`Subscribe to topic ${filter}`);
    const qos = (str(req, 'qos') ?? '1') === '0' ? 0 : 1;
    await this.mqttSubscribe(client, filter, qos);
    const sub = { filter, ctx };
    this.iotSubs.add(sub);
    ctx.onClose(() => {
      this.iotSubs.delete(sub);
      this.mqttUnsubscribe(client, filter);
    });
    return {};
  }

  // --- shadows -----------------------------------------------------------------------------------

  private async shadowOp(ctx: IpcStreamContext, req: Json, op: 'get' | 'update' | 'delete'): Promise<Json> {
    const opName = { get: 'GetThingShadow', update: 'UpdateThingShadow', delete: 'DeleteThingShadow' }[op];
    const thing = str(req, 'thingName', true);
    const shadowName = str(req, 'shadowName') || undefined;
    if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(thing)) throw invalidArgumentsError('thingName is invalid');
    if (shadowName !== undefined && !/^[a-zA-Z0-9:_-]{1,64}$/.test(shadowName)) {
      throw invalidArgumentsError('shadowName is invalid');
    }
    const base = `$aws/things/${thing}/shadow${shadowName ? `/name/${shadowName}` : ''}`;
    this.authorize(ctx.principal, SHADOW, GG + opName, base);
    let body: Json = {};
    let callerToken: string | undefined;
    if (op === 'update') {
      const p = req.payload;
      if (typeof p !== 'string' || p === '') throw invalidArgumentsError('payload is required');
      try {
        const parsed = JSON.parse(Buffer.from(p, 'base64').toString('utf8')) as unknown;
        if (!isPlainObject(parsed)) throw new Error('not an object');
        body = parsed;
      } catch {
        throw invalidArgumentsError('Invalid JSON');
      }
      if (typeof body.clientToken === 'string') callerToken = body.clientToken;
    }
    const client = this.requireIot(opName);
    if (!client.connected)
      throw serviceError(`${opName} failed: the core device is not connected to IoT Core`);
    await this.mqttSubscribe(client, `${base}/${op}/accepted`, 1);
    try {
      await this.mqttSubscribe(client, `${base}/${op}/rejected`, 1);
    } catch (err) {
      this.mqttUnsubscribe(client, `${base}/${op}/accepted`);
      throw err;
    }
    // Keep these subscriptions for later requests (refcount never drops to zero).
    const clientToken = callerToken ?? randomUUID();
    const result = await new Promise<{ accepted: boolean; payload: Buffer }>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.shadowWaiters.delete(clientToken);
        reject(serviceError(`${opName} timed out waiting for IoT Core`));
      }, MQTT_OPERATION_TIMEOUT_MS);
      this.shadowWaiters.set(clientToken, (accepted, payload) => {
        clearTimeout(timer);
        resolve({ accepted, payload });
      });
      client.publish(`${base}/${op}`, JSON.stringify({ ...body, clientToken }), { qos: 1 }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.shadowWaiters.delete(clientToken);
        reject(serviceError(`${opName} failed with error ${err.message}`, err));
      });
    });
    if (!result.accepted) {
      let code = 500;
      let message = 'Shadow request rejected';
      try {
        const r = JSON.parse(result.payload.toString()) as Json;
        if (typeof r.code === 'number') code = r.code;
        if (typeof r.message === 'string') message = r.message;
      } catch {
        // keep defaults
      }
      if (code === 404) throw resourceNotFoundError(message, 'Shadow', shadowName ?? thing);
      if (code === 400 || code === 413) throw invalidArgumentsError(message);
      if (code === 409) throw conflictError(message);
      if (code === 401 || code === 403) throw unauthorizedError(message);
      throw serviceError(message);
    }
    if (shadowName) {
      const set = this.namedShadows.get(thing) ?? new Set<string>();
      if (op === 'delete') set.delete(shadowName);
      else set.add(shadowName);
      this.namedShadows.set(thing, set);
    }
    if (op === 'delete') return { payload: '' };
    let doc = result.payload;
    if (callerToken === undefined) {
      try {
        const parsed = JSON.parse(doc.toString()) as Json;
        delete parsed.clientToken;
        doc = Buffer.from(JSON.stringify(parsed));
      } catch {
        // pass through as is
      }
    }
    return { payload: doc.toString('base64') };
  }

  private listNamedShadowsOp(ctx: IpcStreamContext, req: Json): Json {
    const thing = str(req, 'thingName', true);
    this.authorize(ctx.principal, SHADOW, `${GG}ListNamedShadowsForThing`, `$aws/things/${thing}`);
    this.requireIot('ListNamedShadowsForThing');
    const pageSize = req.pageSize ?? 25;
    if (typeof pageSize !== 'number' || !Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
      throw invalidArgumentsError('pageSize must be an integer between 1 and 100');
    }
    const nextToken = str(req, 'nextToken');
    let start = 0;
    if (nextToken !== undefined) {
      start = Number.parseInt(Buffer.from(nextToken, 'base64').toString('utf8'), 10);
      if (!Number.isInteger(start) || start < 0) throw invalidArgumentsError('nextToken is invalid');
    }
    const names = [...(this.namedShadows.get(thing) ?? [])].sort();
    const page = names.slice(start, start + pageSize);
    const next = start + pageSize < names.length ? String(start + pageSize) : undefined;
    return {
      results: page,
      timestamp: Math.floor(Date.now() / 1000),
      ...(next !== undefined ? { nextToken: Buffer.from(next).toString('base64') } : {}),
    };
  }

  // --- secrets -----------------------------------------------------------------------------------

  private getSecretValueOp(ctx: IpcStreamContext, req: Json): Json {
    const secretId = str(req, 'secretId', true);
    const secrets = this.opts.secrets ?? {};
    let arn: string | undefined = secretId in secrets ? secretId : undefined;
    if (!arn) {
      arn = Object.keys(secrets).find((k) => {
        const last = k.split(':').pop() ?? k;
        return last === secretId || last.replace(/-[A-Za-z0-9]{6}$/, '') === secretId;
      });
    }
    const secret = arn ? secrets[arn] : undefined;
    if (!arn || !secret) throw resourceNotFoundError(`Secret not found ${secretId}`, 'Secret', secretId);
    this.authorize(ctx.principal, SECRETS, `${GG}GetSecretValue`, arn);
    const versionId = this.secretVersions.get(arn) ?? '';
    const reqVersion = str(req, 'versionId');
    const reqStage = str(req, 'versionStage');
    if (reqVersion !== undefined && reqVersion !== versionId) {
      throw resourceNotFoundError(
        `Version ${reqVersion} not found for secret ${secretId}`,
        'Secret',
        secretId,
      );
    }
    if (reqStage !== undefined && reqStage !== 'AWSCURRENT') {
      throw resourceNotFoundError(
        `Version stage ${reqStage} not found for secret ${secretId}`,
        'Secret',
        secretId,
      );
    }
    const secretValue =
      secret.secretBinary !== undefined
        ? { secretBinary: Buffer.from(secret.secretBinary).toString('base64') }
        : { secretString: secret.secretString ?? '' };
    return { secretId: arn, versionId, versionStage: ['AWSCURRENT'], secretValue };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
