/**
 * The local IoT Core message broker: aedes behind node:tls with mutual authentication, and IoT Core's
 * hooks: certificate status, IoT policies at CONNECT / PUBLISH / SUBSCRIBE / delivery, the documented
 * differences from plain MQTT (no QoS 2, 128 KB payloads, topic limits, reserved `$aws/` topics, a
 * second connection with the same client id closes the first), and lifecycle events.
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { Aedes, type AedesPublishPacket, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from 'pino';
import { parseShadowTopic, presenceTopic, RESERVED_PREFIX } from '../../protocol/topics.js';
import { LocalCloudError } from './errors.js';
import {
  checkIotTopicLimits,
  clientArn,
  evaluate,
  isValidTopicFilter,
  isValidTopicName,
  type PolicyContext,
  topicArn,
  topicFilterArn,
  topicMatchesFilter,
} from './policy.js';
import type { Registry } from './registry.js';

/** AWS IoT Core's message size limit for MQTT publishes (128 KB). */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
/** AWS IoT Core's client id length limit (bytes). */
export const MAX_CLIENT_ID_BYTES = 128;

export type DisconnectReason =
  | 'AUTH_ERROR'
  | 'CLIENT_INITIATED_DISCONNECT'
  | 'CLIENT_ERROR'
  | 'CONNECTION_LOST'
  | 'DUPLICATE_CLIENTID'
  | 'MQTT_KEEP_ALIVE_TIMEOUT'
  | 'SERVER_INITIATED_DISCONNECT';

interface Connection {
  client: Client;
  ctx: PolicyContext;
  certificateArn: string;
  sessionIdentifier: string;
  versionNumber: number;
  ipAddress: string;
  reason?: DisconnectReason;
  /** Policy decisions of this connection (its context is fixed), valid for one policy generation. */
  decisions: Map<string, boolean>;
  generation: number;
}

/** Most decisions a connection keeps; a connection touching more topics starts over. */
const MAX_CACHED_DECISIONS = 4096;

interface Refusal {
  why: string;
  reason: DisconnectReason;
}

export interface BrokerTls {
  certPem: string;
  keyPem: string;
  /** PEM certificates of the CAs whose device certificates may connect. */
  caPems: () => string[];
}

export interface IotBrokerOptions {
  registry: Registry;
  region: string;
  accountId: string;
  tls: BrokerTls;
  logger: Logger;
}

/** An internal subscriber (shadow service, rules engine) receives every matching message. */
export type InternalHandler = (topic: string, payload: Buffer, meta: PublisherMeta) => void;

/** Who published a message: absent for the service's own publishes. */
export interface PublisherMeta {
  qos: number;
  clientId?: string;
  /** The publisher's principal (certificate id). */
  principal?: string;
  sourceIp?: string;
}

export class BrokerError extends LocalCloudError {}

export class IotBroker {
  readonly aedes: Aedes;
  private server?: Server;
  private readonly connections = new Map<string, Connection>();
  /** Every authenticated connection, ready or not yet (CONNACK still in flight). */
  private readonly live = new Set<Connection>();
  private readonly byClient = new WeakMap<Client, Connection>();
  private readonly versions = new Map<string, number>();
  /** Bumped whenever policies or their attachments change, which invalidates cached decisions. */
  private policyGeneration = 0;
  private readonly log: Logger;
  private readonly internal: { filter: string; handler: InternalHandler }[] = [];

  private constructor(
    private readonly opts: IotBrokerOptions,
    aedes: Aedes,
  ) {
    this.aedes = aedes;
    this.log = opts.logger;
    aedes.authenticate = (client, _u, _p, done) => this.authenticate(client, done);
    aedes.authorizePublish = (client, packet, done) => this.authorizePublish(client, packet, done);
    aedes.authorizeSubscribe = (client, sub, done) => this.authorizeSubscribe(client, sub, done);
    aedes.authorizeForward = (client, packet) => this.authorizeForward(client, packet);
    aedes.on('publish', (packet, client) => this.dispatchInternal(packet, client));
    aedes.on('clientReady', (client) => this.onReady(client));
    aedes.on('clientDisconnect', (client) => this.onDisconnect(client));
    aedes.on('keepaliveTimeout', (client) => this.markReason(client, 'MQTT_KEEP_ALIVE_TIMEOUT'));
    aedes.on('clientError', (client, err) => {
      this.markReason(client, 'CLIENT_ERROR');
      this.log.debug({ clientId: client.id, err: err.message }, 'client error');
    });
    aedes.on('connectionError', (_client, err) => this.log.debug({ err: err.message }, 'connection error'));
    opts.registry.on('certificateStatusChanged', (rec) => {
      if (rec.status === 'ACTIVE') return;
      for (const conn of this.live) {
        if (conn.client.closed) {
          this.live.delete(conn);
        } else if (conn.certificateArn === rec.certificateArn) {
          conn.reason = 'AUTH_ERROR';
          conn.client.close();
        }
      }
    });
    opts.registry.on('caCertificatesChanged', () => this.refreshTlsContext());
    opts.registry.on('policyAttachmentsChanged', () => {
      this.policyGeneration += 1;
    });
  }

  static async create(opts: IotBrokerOptions): Promise<IotBroker> {
    const aedes = await Aedes.createBroker({ maxClientsIdLength: 1024 });
    return new IotBroker(opts, aedes);
  }

  private tlsOptions() {
    return {
      cert: this.opts.tls.certPem,
      key: this.opts.tls.keyPem,
      ca: this.opts.tls.caPems(),
      minVersion: 'TLSv1.2' as const,
      requestCert: true,
      rejectUnauthorized: true,
    };
  }

  /**
   * IoT Core does not support QoS 2: a QoS 2 subscription is granted (and answered in SUBACK) as QoS 1.
   * The SUBSCRIBE packet is adjusted as it leaves the parser, before aedes builds its SUBACK.
   */
  private grantAtMostQos1(client: Client): void {
    const parser = (client as unknown as { _parser?: NodeJS.EventEmitter })._parser;
    parser?.prependListener('packet', (packet: { cmd: string; subscriptions?: { qos: number }[] }) => {
      if (packet.cmd !== 'subscribe') return;
      for (const s of packet.subscriptions ?? []) if (s.qos > 1) s.qos = 1;
    });
  }

  private refreshTlsContext(): void {
    this.server?.setSecureContext(this.tlsOptions());
  }

  /** Listens for MQTT over TLS; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    const server = createServer(this.tlsOptions(), (socket) => {
      // Small MQTT packets (acks, shadow responses) must not wait for Nagle's algorithm.
      socket.setNoDelay(true);
      this.grantAtMostQos1(this.aedes.handle(socket));
    });
    server.on('tlsClientError', (err, socket) => {
      this.log.info({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake refused');
    });
    server.listen(port, host);
    await once(server, 'listening');
    this.server = server;
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new BrokerError('broker has no TCP address');
    return addr.port;
  }

  async close(): Promise<void> {
    for (const conn of this.connections.values()) conn.reason = 'SERVER_INITIATED_DISCONNECT';
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Publishes as the service itself (no policy check on publish; delivery still checks iot:Receive). */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1 = 0, retain = false): Promise<void> {
    const packet: PublishPacket = {
      cmd: 'publish',
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos,
      retain,
      dup: false,
    };
    return new Promise((resolve, reject) =>
      this.aedes.publish(packet, (err) => (err ? reject(err) : resolve())),
    );
  }

  /**
   * Subscribes an internal handler (shadow service, rules engine) to a topic filter. It sees every
   * message published to a matching topic, by devices or by the service, with the publisher's client id.
   */
  subscribe(filter: string, handler: InternalHandler): () => void {
    const entry = { filter, handler };
    this.internal.push(entry);
    return () => {
      const i = this.internal.indexOf(entry);
      if (i >= 0) this.internal.splice(i, 1);
    };
  }

  private publisherMeta(qos: number, client: Client | null): PublisherMeta {
    if (!client) return { qos };
    const conn = this.byClient.get(client);
    return {
      qos,
      clientId: client.id,
      ...(conn?.ctx.certificateId ? { principal: conn.ctx.certificateId } : {}),
      ...(conn?.ipAddress ? { sourceIp: conn.ipAddress } : {}),
    };
  }

  private dispatchInternal(packet: AedesPublishPacket, client: Client | null): void {
    if (this.internal.length === 0 || packet.topic.startsWith('$SYS/')) return;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    // A copy: a handler may unsubscribe (itself or another) while the message is dispatched.
    for (const { filter, handler } of [...this.internal]) {
      if (!topicMatchesFilter(filter, packet.topic)) continue;
      try {
        handler(packet.topic, payload, this.publisherMeta(packet.qos, client));
      } catch (err) {
        this.log.error({ err, topic: packet.topic }, 'internal subscriber failed');
      }
    }
  }

  // ---- hooks ----

  private markReason(client: Client, reason: DisconnectReason): void {
    const conn = this.byClient.get(client);
    if (conn && conn.reason === undefined) conn.reason = reason;
  }

  private refuse(client: Client, refusal: Refusal): Error {
    this.markReason(client, refusal.reason);
    this.log.info({ clientId: client.id, why: refusal.why }, 'refused');
    return new BrokerError(refusal.why);
  }

  private authenticate(
    client: Client,
    done: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void,
  ): void {
    const result = this.checkConnect(client);
    if ('why' in result) {
      this.log.info({ clientId: client.id, why: result.why }, 'connect refused');
      done(Object.assign(new BrokerError(result.why), { returnCode: result.returnCode }), false);
      return;
    }
    const previous = this.connections.get(client.id);
    if (previous && previous.client !== client) previous.reason = 'DUPLICATE_CLIENTID';
    this.byClient.set(client, result);
    this.live.add(result);
    done(null, true);
  }

  /** The CONNECT checks: registered ACTIVE certificate, client id limits, iot:Connect. */
  private checkConnect(client: Client): Connection | { why: string; returnCode: number } {
    const socket = client.conn as TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    if (!peer?.raw) return { why: 'no client certificate', returnCode: 5 };
    const certificateId = createHash('sha256').update(peer.raw).digest('hex');
    const record = this.opts.registry.findCertificate(certificateId);
    if (!record) return { why: `certificate ${certificateId} is not registered`, returnCode: 5 };
    if (record.status !== 'ACTIVE')
      return { why: `certificate ${certificateId} is ${record.status}`, returnCode: 5 };
    const clientId = client.id;
    if (Buffer.byteLength(clientId) > MAX_CLIENT_ID_BYTES) {
      return { why: `client id longer than ${MAX_CLIENT_ID_BYTES} bytes`, returnCode: 2 };
    }
    const thing = this.opts.registry.findThing(clientId);
    const attached = thing !== undefined && this.opts.registry.isAttached(clientId, record.certificateArn);
    const ctx: PolicyContext = {
      region: this.opts.region,
      accountId: this.opts.accountId,
      clientId,
      certificateId,
      isAttached: attached,
      ...(attached ? { thingName: thing.thingName, thingAttributes: thing.attributes } : {}),
      ...(socket.remoteAddress ? { sourceIp: socket.remoteAddress } : {}),
    };
    const policies = this.opts.registry.effectivePolicies(record.certificateArn);
    const decision = evaluate(policies, 'iot:Connect', clientArn(ctx, clientId), ctx);
    if (decision !== 'allow')
      return { why: `iot:Connect on client/${clientId} is ${decision}`, returnCode: 5 };
    const versionNumber = this.versions.get(clientId) ?? 0;
    this.versions.set(clientId, versionNumber + 1);
    return {
      client,
      ctx,
      certificateArn: record.certificateArn,
      sessionIdentifier: randomUUID(),
      versionNumber,
      ipAddress: socket.remoteAddress ?? '',
      decisions: new Map(),
      generation: this.policyGeneration,
    };
  }

  /**
   * Evaluates the connection's policies for an action on a resource. Decisions are cached per
   * connection, since the policy context is fixed for its lifetime, until policies change.
   */
  private allowed(conn: Connection, action: string, kind: 'topic' | 'topicfilter', name: string): boolean {
    if (conn.generation !== this.policyGeneration) {
      conn.decisions.clear();
      conn.generation = this.policyGeneration;
    }
    const key = `${action} ${name}`;
    const cached = conn.decisions.get(key);
    if (cached !== undefined) return cached;
    const policies = this.opts.registry.effectivePolicies(conn.certificateArn);
    const resource = kind === 'topic' ? topicArn(conn.ctx, name) : topicFilterArn(conn.ctx, name);
    const ok = evaluate(policies, action, resource, conn.ctx) === 'allow';
    if (conn.decisions.size >= MAX_CACHED_DECISIONS) conn.decisions.clear();
    conn.decisions.set(key, ok);
    return ok;
  }

  private authorizePublish(
    client: Client | null,
    packet: PublishPacket,
    done: (err?: Error | null) => void,
  ): void {
    if (client === null) {
      done(null); // the service's own publishes
      return;
    }
    const refusal = this.checkPublish(client, packet);
    done(refusal ? this.refuse(client, refusal) : null);
  }

  /** IoT Core's PUBLISH rules; a refusal closes the connection. */
  private checkPublish(client: Client, packet: PublishPacket): Refusal | undefined {
    const conn = this.byClient.get(client);
    if (!conn) return { why: 'not authenticated', reason: 'AUTH_ERROR' };
    const topic = packet.topic;
    if (packet.qos === 2) return { why: 'QoS 2 is not supported', reason: 'CLIENT_ERROR' };
    const size = Buffer.isBuffer(packet.payload) ? packet.payload.length : Buffer.byteLength(packet.payload);
    if (size > MAX_PAYLOAD_BYTES) {
      return { why: `payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES}`, reason: 'CLIENT_ERROR' };
    }
    if (!isValidTopicName(topic)) return { why: `invalid topic '${topic}'`, reason: 'CLIENT_ERROR' };
    const limit = checkIotTopicLimits(topic);
    if (!limit.ok) return { why: limit.message, reason: 'CLIENT_ERROR' };
    if (topic.startsWith(RESERVED_PREFIX) && !isPublishableReservedTopic(topic)) {
      return { why: `publishing to reserved topic '${topic}' is not allowed`, reason: 'CLIENT_ERROR' };
    }
    if (!this.allowed(conn, 'iot:Publish', 'topic', topic)) {
      return { why: `iot:Publish on ${topic} denied`, reason: 'AUTH_ERROR' };
    }
    if (packet.retain && !this.allowed(conn, 'iot:RetainPublish', 'topic', topic)) {
      return { why: `iot:RetainPublish on ${topic} denied`, reason: 'AUTH_ERROR' };
    }
    return undefined;
  }

  private authorizeSubscribe(
    client: Client,
    sub: Subscription,
    done: (err: Error | null, sub?: Subscription | null) => void,
  ): void {
    const refusal = this.checkSubscribe(client, sub.topic);
    // IoT Core closes an MQTT 3.1.1 connection that subscribes without permission.
    if (refusal) done(this.refuse(client, refusal));
    else done(null, sub);
  }

  private checkSubscribe(client: Client, filter: string): Refusal | undefined {
    const conn = this.byClient.get(client);
    if (!conn) return { why: 'not authenticated', reason: 'AUTH_ERROR' };
    if (!isValidTopicFilter(filter))
      return { why: `invalid topic filter '${filter}'`, reason: 'CLIENT_ERROR' };
    const limit = checkIotTopicLimits(filter);
    if (!limit.ok) return { why: limit.message, reason: 'CLIENT_ERROR' };
    if (!this.allowed(conn, 'iot:Subscribe', 'topicfilter', filter)) {
      return { why: `iot:Subscribe on ${filter} denied`, reason: 'AUTH_ERROR' };
    }
    return undefined;
  }

  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const conn = this.byClient.get(client);
    if (!conn) return null;
    return this.allowed(conn, 'iot:Receive', 'topic', packet.topic) ? packet : null;
  }

  private onReady(client: Client): void {
    const conn = this.byClient.get(client);
    if (!conn) return;
    this.connections.set(client.id, conn);
    this.lifecycle('connected', conn);
  }

  private onDisconnect(client: Client): void {
    const conn = this.byClient.get(client);
    if (!conn) return;
    this.live.delete(conn);
    if (this.connections.get(client.id) === conn) this.connections.delete(client.id);
    const clean = (client as unknown as { _disconnected?: boolean })._disconnected === true;
    const reason = conn.reason ?? (clean ? 'CLIENT_INITIATED_DISCONNECT' : 'CONNECTION_LOST');
    this.lifecycle('disconnected', conn, reason);
  }

  private lifecycle(event: 'connected' | 'disconnected', conn: Connection, reason?: DisconnectReason): void {
    const clientId = conn.client.id;
    // Client ids that contain # or + get no lifecycle events.
    if (clientId.includes('#') || clientId.includes('+')) return;
    const body: Record<string, unknown> = {
      clientId,
      timestamp: Date.now(),
      eventType: event,
      sessionIdentifier: conn.sessionIdentifier,
      principalIdentifier: conn.ctx.certificateId,
      ipAddress: conn.ipAddress,
      versionNumber: conn.versionNumber,
    };
    if (event === 'disconnected') {
      body.clientInitiatedDisconnect = reason === 'CLIENT_INITIATED_DISCONNECT';
      body.disconnectReason = reason;
    }
    this.publish(presenceTopic(event, clientId), JSON.stringify(body), 1).catch((err) =>
      this.log.warn({ err }, 'lifecycle event not published'),
    );
  }
}

/**
 * Reserved topics a device may publish to: the shadow request topics (get, update, delete; not the
 * response topics, which only the service publishes) and Basic Ingest (`$aws/rules/...`).
 */
export function isPublishableReservedTopic(topic: string): boolean {
  const shadow = parseShadowTopic(topic);
  if (shadow) return shadow.suffix === '';
  return topic.startsWith('$aws/rules/');
}
