/**
 * The local IoT Core message broker: aedes behind node:tls with mutual authentication, and IoT Core's
 * hooks: certificate status, IoT policies at CONNECT / PUBLISH / SUBSCRIBE / delivery, the documented
 * differences from plain MQTT (no QoS 2, 128 KB payloads, topic limits, reserved `$aws/` topics, a
 * second connection with the same client id closes the first), lifecycle events, and just-in-time
 * registration of device certificates signed by a registered CA.
 */
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { Aedes, type AedesPublishPacket, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from 'pino';
import { parseShadowTopic, presenceTopic, RESERVED_PREFIX } from '../../protocol/topics.js';
import { JitrEventSchema, jitrEventTopic } from '../rules/jitr.js';
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
import type { CaCertificateRecord, CertificateRecord, Registry } from './registry.js';

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
  /** Parsed registered CA certificates by id (a CA id always names the same certificate). */
  private readonly caCertificates = new Map<string, X509Certificate>();

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
    const ca: string[] = [];
    for (const pem of this.opts.tls.caPems()) {
      try {
        ca.push(trustAnchorPem(pem));
      } catch (err) {
        this.log.warn(
          { err },
          'a registered CA certificate cannot be read; it is left out of the trust store',
        );
      }
    }
    return {
      cert: this.opts.tls.certPem,
      key: this.opts.tls.keyPem,
      ca,
      minVersion: 'TLSv1.2' as const,
      requestCert: true,
      // An untrusted client certificate is refused in the connection handler, as node:tls itself would
      // (the socket is destroyed right after the handshake), but with its reason in the log.
      rejectUnauthorized: false,
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
      if (!socket.authorized) {
        this.log.info(
          { why: untrustedWhy(socket), remote: socket.remoteAddress },
          'TLS handshake refused: client certificate not trusted',
        );
        socket.destroy();
        return;
      }
      // The client certificate chains to an ACTIVE registered CA and is valid now; one that is not
      // registered yet may be registered just in time, which closes the connection.
      if (this.registerJustInTime(socket)) return;
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
    if (!record) return { why: this.unregisteredWhy(certificateId, socket), returnCode: 5 };
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

  // ---- just-in-time registration ----

  /**
   * Just-in-time registration, on the TLS connection before any MQTT packet: a client certificate that
   * is not registered and was signed by a registered CA that is ACTIVE with auto-registration ENABLE
   * is registered as PENDING_ACTIVATION with that CA's id, the registration event is published on
   * `$aws/events/certificates/registered/{caCertificateId}`, and the connection is closed (the client
   * gets no CONNACK). Each later attempt while the certificate is still PENDING_ACTIVATION publishes
   * the event again and is closed the same way. Returns whether it closed the connection; otherwise
   * the connection goes on to MQTT, where CONNECT refuses what is not registered and ACTIVE.
   */
  private registerJustInTime(socket: TLSSocket): boolean {
    const leaf = socket.getPeerX509Certificate();
    if (!leaf) return false;
    const registry = this.opts.registry;
    const certificateId = createHash('sha256').update(leaf.raw).digest('hex');
    const existing = registry.findCertificate(certificateId);
    if (existing && existing.status !== 'PENDING_ACTIVATION') return false;
    const ca = existing
      ? existing.caCertificateId === undefined
        ? undefined
        : registry.findCaCertificate(existing.caCertificateId)
      : this.issuingCa(leaf);
    if (ca?.status !== 'ACTIVE' || ca.autoRegistrationStatus !== 'ENABLE') return false;
    const remote = socket.remoteAddress;
    socket.on('error', (err) => this.log.debug({ err: err.message, remote }, 'connection error'));
    let record = existing;
    if (!record) {
      try {
        record = registry.registerCertificate(leaf.toString(), 'PENDING_ACTIVATION', ca.certificateId);
      } catch (err) {
        this.log.error({ err, certificateId, remote }, 'just-in-time registration failed; connection closed');
        socket.destroy();
        return true;
      }
    }
    this.publishRegistrationEvent(record, ca.certificateId);
    this.log.info(
      { certificateId, caCertificateId: ca.certificateId, remote },
      existing
        ? 'certificate still PENDING_ACTIVATION: registration event published again, connection closed'
        : 'certificate registered just in time as PENDING_ACTIVATION: registration event published, connection closed',
    );
    // A clean TLS close (close_notify, then FIN); the socket is released once that is written.
    socket.end(() => socket.destroy());
    return true;
  }

  /** The registration event of "Just-in-time registration" (cloud/rules/jitr.ts), as the service. */
  private publishRegistrationEvent(record: CertificateRecord, caCertificateId: string): void {
    const event = JitrEventSchema.safeParse({
      certificateId: record.certificateId,
      caCertificateId,
      timestamp: Date.now(),
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: this.opts.accountId,
      // AWS IoT sends the registration time as a string of epoch milliseconds.
      certificateRegistrationTimestamp: String(Date.parse(record.creationDate)),
    });
    if (!event.success) {
      this.log.error(
        { certificateId: record.certificateId, issues: event.error.issues },
        'registration event not published: invalid',
      );
      return;
    }
    this.publish(jitrEventTopic(caCertificateId), JSON.stringify(event.data), 1).catch((err) =>
      this.log.warn({ err, certificateId: record.certificateId }, 'registration event not published'),
    );
  }

  private caCertificate(record: CaCertificateRecord): X509Certificate | undefined {
    let cert = this.caCertificates.get(record.certificateId);
    if (!cert) {
      try {
        cert = new X509Certificate(record.certificatePem);
      } catch {
        return undefined;
      }
      this.caCertificates.set(record.certificateId, cert);
    }
    return cert;
  }

  /**
   * The registered CA certificate that signed `leaf`: its subject is the leaf's issuer and its public
   * key verifies the leaf's signature. Several registered CAs may share a subject (and even a key);
   * an ACTIVE one with auto-registration ENABLE is preferred, then an ACTIVE one.
   */
  private issuingCa(leaf: X509Certificate): CaCertificateRecord | undefined {
    const rank = (c: CaCertificateRecord) =>
      (c.status === 'ACTIVE' ? 2 : 0) + (c.autoRegistrationStatus === 'ENABLE' ? 1 : 0);
    let best: CaCertificateRecord | undefined;
    for (const record of this.opts.registry.listCaCertificates()) {
      const ca = this.caCertificate(record);
      if (!ca || !leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) continue;
      if (!best || rank(record) > rank(best)) best = record;
    }
    return best;
  }

  /** Why CONNECT refuses a certificate that is not registered (and was not registered just in time). */
  private unregisteredWhy(certificateId: string, socket: TLSSocket): string {
    const leaf = socket.getPeerX509Certificate();
    const ca = leaf ? this.issuingCa(leaf) : undefined;
    const base = `certificate ${certificateId} is not registered`;
    if (!ca) {
      const issuer = leaf?.issuer.replace(/\n/g, ', ') ?? 'unknown';
      return `${base}, and its issuer (${issuer}) is not a registered CA certificate`;
    }
    if (ca.status !== 'ACTIVE') return `${base}, and its CA certificate ${ca.certificateId} is ${ca.status}`;
    if (ca.autoRegistrationStatus !== 'ENABLE') {
      return `${base}, and its CA certificate ${ca.certificateId} has auto-registration ${ca.autoRegistrationStatus}`;
    }
    return base;
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

/** Why the TLS handshake did not authenticate the client certificate (OpenSSL's verify error). */
function untrustedWhy(socket: TLSSocket): string {
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return 'no client certificate';
  // node:tls sets the verify error's code (typed as an Error).
  const code = String(socket.authorizationError ?? 'unknown');
  const subject = leaf.subject.replace(/\n/g, ', ');
  const issuer = leaf.issuer.replace(/\n/g, ', ');
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return `${code}: the certificate of ${subject} (or a CA certificate in its chain) has expired`;
    case 'CERT_NOT_YET_VALID':
      return `${code}: the certificate of ${subject} (or a CA certificate in its chain) is not valid yet`;
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return `${code}: the certificate of ${subject} does not chain to an ACTIVE registered CA certificate (issuer ${issuer})`;
    default:
      return `${code}: the certificate of ${subject} (issuer ${issuer}) does not verify`;
  }
}

/** DER of an OpenSSL X509_CERT_AUX: SEQUENCE { trust SEQUENCE { id-kp-clientAuth (1.3.6.1.5.5.7.3.2) } }. */
const CLIENT_AUTH_TRUST = Buffer.from('300c300a06082b06010505070302', 'hex');

/**
 * A registered CA certificate as a trust anchor of the TLS server. AWS IoT authenticates a client
 * certificate against the registered CA that signed it, a root or an intermediate whose root is not
 * registered. OpenSSL ends a chain only at a self-signed certificate, unless the store's certificate
 * carries an explicit trust setting: so each registered CA goes into the store as a
 * `TRUSTED CERTIFICATE`, its DER followed by the trust setting "client authentication".
 */
export function trustAnchorPem(pem: string): string {
  const der = new X509Certificate(pem).raw;
  const body = Buffer.concat([der, CLIENT_AUTH_TRUST])
    .toString('base64')
    .replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN TRUSTED CERTIFICATE-----\n${body}-----END TRUSTED CERTIFICATE-----\n`;
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
