/**
 * The local cloud's single HTTP endpoint. Every AWS request is routed by the service name in its SigV4
 * credential scope, after the signature has been verified against the caller's secret.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2Session } from 'node:http2';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { Duplex, Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { CredentialRecord, CredentialStore } from '../credentials.js';
import { LocalCloudError } from '../errors.js';
import {
  canonicalRequest,
  canonicalUriCandidates,
  deriveSigningKey,
  expectedSignature,
  hmacHex,
  MAX_PRESIGNED_EXPIRES,
  type ParsedAuthorization,
  type ParsedQueryAuthorization,
  parseAmzDate,
  parseAuthorization,
  parseQuery,
  parseQueryAuthorization,
  type SigV4Scope,
  sha256Hex,
  signaturesEqual,
  stringToSign,
  UNSIGNED_PAYLOAD,
} from './sigv4.js';

export type WireProtocol = 'restJson' | 'json' | 'query' | 'restXml';

export interface ServiceRequest {
  method: string;
  /** Path as received, still percent-encoded. */
  rawPath: string;
  query: Record<string, string | string[]>;
  headers: IncomingMessage['headers'];
  /** The buffered body; empty for routes with `streamingBody` (read `stream` instead). */
  body: Buffer;
  /** For routes with `streamingBody`: the request body, not read yet. */
  stream?: IncomingMessage;
  caller: CredentialRecord;
  region: string;
  requestId: string;
  /** How the request was signed, for routes that check the body against the signature themselves. */
  auth: RequestAuth;
}

export interface RequestAuth {
  /** `header`: Authorization header; `query`: presigned URL. */
  mode: 'header' | 'query';
  scope: SigV4Scope;
  /** The signing time as sent (ISO 8601 basic). */
  amzDate: string;
  /** The request's signature (the seed signature of a signed aws-chunked body). */
  signature: string;
  /** The SigV4 signing key of the scope, for chunk and trailer signatures. */
  signingKey: Buffer;
  /**
   * The payload hash the signature covers: a hex SHA-256, `UNSIGNED-PAYLOAD` or a `STREAMING-...` value.
   * For `streamingBody` routes the body has not been checked against it.
   */
  payloadHash: string;
}

export interface ServiceResponse {
  status: number;
  headers?: Record<string, string>;
  /** A stream is piped to the client (and destroyed if the client goes away). */
  body?: string | Buffer | Readable;
}

export interface ServiceRoute {
  /** The SigV4 signing name, e.g. `iotdata`, `s3`, `sts`. */
  signingName: string;
  protocol: WireProtocol;
  /** False for S3, whose paths are signed without double escaping. */
  uriEscapePath: boolean;
  /**
   * When true the body is not buffered: the route reads `stream` itself, and the signature is checked
   * against the payload hash the client declared (`x-amz-content-sha256`, which must be sent; for
   * presigned URLs `UNSIGNED-PAYLOAD`). The route must then verify the body against that hash.
   */
  streamingBody?: boolean;
  /**
   * Answers an error (including an {@link AuthError}) in the service's own terms; without it errors are
   * answered by {@link formatError} in the route's protocol.
   */
  errorResponse?(err: ServiceError, req: { method: string; requestId: string }): ServiceResponse;
  handle(req: ServiceRequest): Promise<ServiceResponse>;
}

/** An error answered in the service's wire format. */
export class ServiceError extends LocalCloudError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Why a request's authentication failed; routes with `errorResponse` answer each in their own codes. */
export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'missingDate'
  | 'missingContentSha256'
  | 'unknownAccessKey'
  | 'invalidToken'
  | 'expiredToken'
  | 'signatureMismatch'
  | 'requestTimeTooSkewed'
  | 'presignedExpired'
  | 'presignedNotYetValid';

/**
 * An authentication failure. `status`/`code`/`message` are the generic answer (as the JSON services give
 * it); `details` carries what a service such as S3 puts into its error document.
 */
export class AuthError extends ServiceError {
  constructor(
    readonly failure: AuthFailure,
    readonly mode: 'header' | 'query',
    status: number,
    code: string,
    message: string,
    readonly details: Record<string, string> = {},
  ) {
    super(status, code, message);
  }
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function formatError(protocol: WireProtocol, err: ServiceError, requestId: string): ServiceResponse {
  switch (protocol) {
    case 'restJson':
      return {
        status: err.status,
        headers: { 'content-type': 'application/json', 'x-amzn-errortype': err.code },
        body: JSON.stringify({ message: err.message, ...err.extra }),
      };
    case 'json':
      return {
        status: err.status,
        headers: { 'content-type': 'application/x-amz-json-1.1' },
        body: JSON.stringify({ __type: err.code, message: err.message, ...err.extra }),
      };
    case 'query':
      return {
        status: err.status,
        headers: { 'content-type': 'text/xml' },
        body: `<ErrorResponse><Error><Type>${err.status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      };
    case 'restXml':
      return {
        status: err.status,
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message><RequestId>${requestId}</RequestId></Error>`,
      };
  }
}

export interface HttpEndpointOptions {
  credentials: CredentialStore;
  logger: Logger;
  /** Extra unsigned routes (health), answered before signature checks. */
  health: () => Record<string, unknown>;
}

/** The client connection preface of HTTP/2 (RFC 9113, 3.4), a prefix of its first 24 bytes. */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');

/** A duplex over `socket` whose readable side starts with `first` (bytes already read from it). */
function relayedStream(socket: Socket, first: Buffer): Duplex {
  const relay = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  relay.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!relay.push(chunk)) socket.pause();
  });
  socket.on('end', () => relay.push(null));
  socket.on('error', (err) => relay.destroy(err));
  socket.on('close', () => relay.destroy());
  return relay;
}
export class HttpEndpoint {
  private readonly routes = new Map<string, ServiceRoute>();
  private server?: Server;
  private tcp?: TcpServer;
  private readonly h2Sessions = new Set<Http2Session>();

  constructor(private readonly opts: HttpEndpointOptions) {}

  register(route: ServiceRoute): void {
    this.routes.set(route.signingName, route);
  }

  /**
   * Listens on one TCP port for HTTP/1.1 and for HTTP/2 without TLS ("prior knowledge", as the SDK's
   * HTTP/2 handler speaks to an `http://` endpoint, e.g. `@aws-sdk/client-kinesis`): a connection that
   * opens with the HTTP/2 preface goes to the HTTP/2 server, any other to the HTTP/1.1 one.
   */
  async listen(port: number, host: string): Promise<number> {
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      this.dispatch(req, res).catch((err) => {
        this.opts.logger.error({ err }, 'HTTP dispatch failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    };
    const server = createServer(handle);
    const h2 = createHttp2Server((req, res) => {
      // HTTP/2 names the host in `:authority`; the signature covers it as `host`.
      const headers = req.headers as Record<string, string | string[] | undefined>;
      if (headers.host === undefined && typeof headers[':authority'] === 'string')
        headers.host = headers[':authority'];
      // The compatibility API has the request and response surface dispatch uses.
      handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    });
    h2.on('sessionError', (err) => this.opts.logger.debug({ err }, 'HTTP/2 session error'));
    h2.on('session', (session) => {
      this.h2Sessions.add(session);
      session.once('close', () => this.h2Sessions.delete(session));
    });
    const tcp = createTcpServer((socket: Socket) => {
      socket.setNoDelay(true);
      socket.once('data', (first: Buffer) => {
        socket.pause();
        if (first.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE)) {
          // The HTTP/2 server reads a net.Socket natively, past anything put back into it: it gets a
          // stream that starts with the bytes already read.
          h2.emit('connection', relayedStream(socket, first));
          return;
        }
        socket.unshift(first);
        server.emit('connection', socket);
        socket.resume();
      });
    });
    tcp.listen(port, host);
    await once(tcp, 'listening');
    this.server = server;
    this.tcp = tcp;
    const addr = tcp.address();
    if (addr === null || typeof addr === 'string')
      throw new LocalCloudError('HTTP endpoint has no TCP address');
    return addr.port;
  }

  async close(): Promise<void> {
    const tcp = this.tcp;
    if (!tcp) return;
    this.server?.closeAllConnections();
    for (const session of this.h2Sessions) session.destroy();
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  private send(res: ServerResponse, r: ServiceResponse, requestId: string): void {
    const headers: Record<string, string> = { 'x-amzn-requestid': requestId, ...(r.headers ?? {}) };
    res.writeHead(r.status, headers);
    const body = r.body;
    if (body instanceof Readable) {
      body.on('error', (err) => {
        this.opts.logger.error({ err }, 'response stream failed');
        res.destroy(err);
      });
      res.on('close', () => body.destroy());
      body.pipe(res);
      return;
    }
    res.end(body);
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES)
        throw new ServiceError(413, 'RequestEntityTooLargeException', 'request body too large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private answerError(
    res: ServerResponse,
    req: IncomingMessage,
    route: ServiceRoute | undefined,
    protocol: WireProtocol,
    err: ServiceError,
    requestId: string,
  ): void {
    // A body the route did not read is discarded, so the client gets the answer on a reusable connection.
    if (!req.readableEnded) req.resume();
    const response = route?.errorResponse
      ? route.errorResponse(err, { method: req.method ?? 'GET', requestId })
      : formatError(protocol, err, requestId);
    this.send(res, response, requestId);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    if (req.method === 'GET' && rawPath === '/_edgefleet/health') {
      return this.send(
        res,
        {
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(this.opts.health()),
        },
        requestId,
      );
    }
    // Until a service is known, errors are answered in the most common JSON form.
    let protocol: WireProtocol = 'restJson';
    let route: ServiceRoute | undefined;
    try {
      const query = parseQuery(rawQuery);
      const headerAuth = parseAuthorization(req.headers.authorization);
      const queryAuth = req.headers.authorization === undefined ? parseQueryAuthorization(query) : undefined;
      const scope: SigV4Scope | undefined = headerAuth ?? (queryAuth?.ok ? queryAuth.auth : queryAuth?.scope);
      if (!scope) {
        throw new ServiceError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      }
      route = this.routes.get(scope.service);
      if (!route) {
        throw new ServiceError(
          400,
          'UnknownServiceException',
          `service '${scope.service}' is not served by the local cloud`,
        );
      }
      protocol = route.protocol;
      if (queryAuth && !queryAuth.ok) {
        throw new AuthError('malformed', 'query', 400, 'InvalidQueryParameterException', queryAuth.message);
      }
      const body = route.streamingBody ? Buffer.alloc(0) : await this.readBody(req);
      const { caller, auth } = headerAuth
        ? await this.verify(req, headerAuth, rawPath, query, body, route)
        : this.verifyPresigned(
            req,
            (queryAuth as { auth: ParsedQueryAuthorization }).auth,
            rawPath,
            query,
            body,
            route,
          );
      const response = await route.handle({
        method: req.method ?? 'GET',
        rawPath,
        query,
        headers: req.headers,
        body,
        ...(route.streamingBody ? { stream: req } : {}),
        caller,
        region: scope.region,
        requestId,
        auth,
      });
      this.send(res, response, requestId);
    } catch (err) {
      if (err instanceof ServiceError) return this.answerError(res, req, route, protocol, err, requestId);
      if (err instanceof URIError) {
        const bad = new ServiceError(400, 'InvalidRequestException', 'malformed URI');
        return this.answerError(res, req, route, protocol, bad, requestId);
      }
      this.opts.logger.error({ err, url }, 'request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const internal = new ServiceError(500, 'InternalFailureException', 'internal error');
      return this.answerError(res, req, route, protocol, internal, requestId);
    }
  }

  /** The caller's record, if its key is known, its session token matches and it has not expired. */
  private caller(accessKeyId: string, token: string | undefined, mode: 'header' | 'query'): CredentialRecord {
    const record = this.opts.credentials.lookup(accessKeyId);
    if (!record) {
      throw new AuthError(
        'unknownAccessKey',
        mode,
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
        { AWSAccessKeyId: accessKeyId },
      );
    }
    if (record.sessionToken !== undefined && token !== record.sessionToken) {
      throw new AuthError(
        'invalidToken',
        mode,
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    }
    if (record.expiration !== undefined && Date.parse(record.expiration) <= Date.now()) {
      throw new AuthError(
        'expiredToken',
        mode,
        403,
        'ExpiredTokenException',
        'The security token included in the request is expired',
      );
    }
    return record;
  }

  private signatureMismatch(
    mode: 'header' | 'query',
    accessKeyId: string,
    provided: string,
    canonical?: string,
    toSign?: string,
  ): AuthError {
    return new AuthError(
      'signatureMismatch',
      mode,
      403,
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
      {
        AWSAccessKeyId: accessKeyId,
        SignatureProvided: provided,
        ...(toSign !== undefined ? { StringToSign: toSign } : {}),
        ...(canonical !== undefined ? { CanonicalRequest: canonical } : {}),
      },
    );
  }

  /**
   * Checks the signature against each canonical URI the request may have been signed with; returns the
   * canonical request and string to sign of the first candidate when none matches.
   */
  private matchSignature(
    req: IncomingMessage,
    auth: ParsedAuthorization,
    amzDate: string,
    rawPath: string,
    query: Record<string, string | string[]>,
    payloadHash: string,
    signingKey: Buffer,
    route: ServiceRoute,
  ): { ok: true } | { ok: false; canonical: string; toSign: string } {
    let first: { canonical: string; toSign: string } | undefined;
    for (const canonicalUri of canonicalUriCandidates(rawPath, route.uriEscapePath)) {
      const canonical = canonicalRequest({
        method: req.method ?? 'GET',
        canonicalUri,
        query,
        host: req.headers.host ?? '',
        headers: req.headers,
        signedHeaders: auth.signedHeaders,
        payloadHash,
      });
      const toSign = stringToSign(amzDate, auth, canonical);
      if (signaturesEqual(hmacHex(signingKey, toSign), auth.signature)) return { ok: true };
      first ??= { canonical, toSign };
    }
    return { ok: false, ...first! };
  }

  private async verify(
    req: IncomingMessage,
    auth: ParsedAuthorization,
    rawPath: string,
    query: Record<string, string | string[]>,
    body: Buffer,
    route: ServiceRoute,
  ): Promise<{ caller: CredentialRecord; auth: RequestAuth }> {
    const tokenHeader = req.headers['x-amz-security-token'];
    const record = this.caller(
      auth.accessKeyId,
      typeof tokenHeader === 'string' ? tokenHeader : undefined,
      'header',
    );
    // Over HTTP/2 the host is the `:authority` pseudo-header, which the SDK signs in its place.
    if (!auth.signedHeaders.includes('host') && !auth.signedHeaders.includes(':authority')) {
      throw new AuthError(
        'malformed',
        'header',
        403,
        'InvalidSignatureException',
        "'Host' must be a signed header",
      );
    }
    const amzDateHeader = req.headers['x-amz-date'];
    const amzDate = typeof amzDateHeader === 'string' ? amzDateHeader : undefined;
    const date = parseAmzDate(amzDate);
    if (!date || !amzDate?.startsWith(auth.date)) {
      throw new AuthError(
        date ? 'malformed' : 'missingDate',
        'header',
        403,
        'InvalidSignatureException',
        'missing or malformed X-Amz-Date, or it does not match the credential scope',
      );
    }
    if (Math.abs(date.getTime() - Date.now()) > MAX_CLOCK_SKEW_MS) {
      throw new AuthError(
        'requestTimeTooSkewed',
        'header',
        403,
        'InvalidSignatureException',
        'Signature expired: the request time is more than 15 minutes from the server time',
        { RequestTime: amzDate, ServerTime: new Date().toISOString(), MaxAllowedSkewMilliseconds: '900000' },
      );
    }
    const signingKey = deriveSigningKey(record.secretAccessKey, auth);
    if (route.streamingBody) {
      // The body is checked against this hash by the route, as it streams.
      const declared = req.headers['x-amz-content-sha256'];
      if (typeof declared !== 'string' || declared === '') {
        throw new AuthError(
          'missingContentSha256',
          'header',
          400,
          'InvalidRequestException',
          'Missing required header for this request: x-amz-content-sha256',
        );
      }
      const match = this.matchSignature(req, auth, amzDate, rawPath, query, declared, signingKey, route);
      if (!match.ok) {
        throw this.signatureMismatch(
          'header',
          auth.accessKeyId,
          auth.signature,
          match.canonical,
          match.toSign,
        );
      }
      return {
        caller: record,
        auth: {
          mode: 'header',
          scope: auth,
          amzDate,
          signature: auth.signature,
          signingKey,
          payloadHash: declared,
        },
      };
    }
    const expected = await expectedSignature(
      {
        method: req.method ?? 'GET',
        host: req.headers.host ?? '',
        rawPath,
        query,
        headers: req.headers,
        body,
      },
      auth,
      record,
      date,
      route.uriEscapePath,
    );
    if (!signaturesEqual(expected, auth.signature)) {
      throw this.signatureMismatch('header', auth.accessKeyId, auth.signature);
    }
    const declared = req.headers['x-amz-content-sha256'];
    return {
      caller: record,
      auth: {
        mode: 'header',
        scope: auth,
        amzDate,
        signature: auth.signature,
        signingKey,
        payloadHash: typeof declared === 'string' ? declared : sha256Hex(body),
      },
    };
  }

  /** Query-string authentication ("Authenticating Requests: Using Query Parameters"). */
  private verifyPresigned(
    req: IncomingMessage,
    auth: ParsedQueryAuthorization,
    rawPath: string,
    query: Record<string, string | string[]>,
    body: Buffer,
    route: ServiceRoute,
  ): { caller: CredentialRecord; auth: RequestAuth } {
    const expires = Number(auth.expires);
    if (!/^\d+$/.test(auth.expires) || expires < 1 || expires > MAX_PRESIGNED_EXPIRES) {
      throw new AuthError(
        'malformed',
        'query',
        400,
        'InvalidQueryParameterException',
        expires > MAX_PRESIGNED_EXPIRES
          ? `X-Amz-Expires must be less than a week (in seconds) that is ${MAX_PRESIGNED_EXPIRES}`
          : 'X-Amz-Expires must be a whole number of seconds from 1',
      );
    }
    const date = parseAmzDate(auth.amzDate);
    if (!date || !auth.amzDate.startsWith(auth.date)) {
      throw new AuthError(
        'malformed',
        'query',
        400,
        'InvalidQueryParameterException',
        'X-Amz-Date must be ISO 8601 basic (YYYYMMDDTHHMMSSZ) on the date of the credential scope',
      );
    }
    if (!auth.signedHeaders.includes('host')) {
      throw new AuthError(
        'malformed',
        'query',
        400,
        'InvalidQueryParameterException',
        "'host' must be a signed header",
      );
    }
    const record = this.caller(auth.accessKeyId, auth.securityToken, 'query');
    const now = Date.now();
    if (date.getTime() - now > MAX_CLOCK_SKEW_MS) {
      throw new AuthError(
        'presignedNotYetValid',
        'query',
        403,
        'AccessDeniedException',
        'Request is not valid yet',
        {
          'X-Amz-Date': auth.amzDate,
          ServerTime: new Date(now).toISOString(),
        },
      );
    }
    if (now > date.getTime() + expires * 1000) {
      throw new AuthError('presignedExpired', 'query', 403, 'AccessDeniedException', 'Request has expired', {
        'X-Amz-Expires': auth.expires,
        Expires: new Date(date.getTime() + expires * 1000).toISOString(),
        ServerTime: new Date(now).toISOString(),
      });
    }
    const signingKey = deriveSigningKey(record.secretAccessKey, auth);
    const declared = query['X-Amz-Content-Sha256'];
    const payloadHash =
      typeof declared === 'string' ? declared : route.streamingBody ? UNSIGNED_PAYLOAD : sha256Hex(body);
    const match = this.matchSignature(
      req,
      auth,
      auth.amzDate,
      rawPath,
      query,
      payloadHash,
      signingKey,
      route,
    );
    if (!match.ok) {
      throw this.signatureMismatch('query', auth.accessKeyId, auth.signature, match.canonical, match.toSign);
    }
    return {
      caller: record,
      auth: {
        mode: 'query',
        scope: auth,
        amzDate: auth.amzDate,
        signature: auth.signature,
        signingKey,
        payloadHash,
      },
    };
  }
}
