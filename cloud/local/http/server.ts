/**
 * The local cloud's single HTTP endpoint. Every AWS request is routed by the service name in its SigV4
 * credential scope, after the signature has been verified against the caller's secret.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CredentialRecord, CredentialStore } from '../credentials.js';
import { LocalCloudError } from '../errors.js';
import { expectedSignature, parseAmzDate, parseAuthorization, parseQuery, signaturesEqual } from './sigv4.js';

export type WireProtocol = 'restJson' | 'json' | 'query' | 'restXml';

export interface ServiceRequest {
  method: string;
  /** Path as received, still percent-encoded. */
  rawPath: string;
  query: Record<string, string | string[]>;
  headers: IncomingMessage['headers'];
  body: Buffer;
  caller: CredentialRecord;
  region: string;
  requestId: string;
}

export interface ServiceResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface ServiceRoute {
  /** The SigV4 signing name, e.g. `iotdata`, `s3`, `sts`. */
  signingName: string;
  protocol: WireProtocol;
  /** False for S3, whose paths are signed without double escaping. */
  uriEscapePath: boolean;
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

export class HttpEndpoint {
  private readonly routes = new Map<string, ServiceRoute>();
  private server?: Server;

  constructor(private readonly opts: HttpEndpointOptions) {}

  register(route: ServiceRoute): void {
    this.routes.set(route.signingName, route);
  }

  async listen(port: number, host: string): Promise<number> {
    const server = createServer((req, res) => {
      this.dispatch(req, res).catch((err) => {
        this.opts.logger.error({ err }, 'HTTP dispatch failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    server.listen(port, host);
    await once(server, 'listening');
    this.server = server;
    const addr = server.address();
    if (addr === null || typeof addr === 'string')
      throw new LocalCloudError('HTTP endpoint has no TCP address');
    return addr.port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private send(res: ServerResponse, r: ServiceResponse, requestId: string): void {
    const headers: Record<string, string> = { 'x-amzn-requestid': requestId, ...(r.headers ?? {}) };
    res.writeHead(r.status, headers);
    res.end(r.body);
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
    const auth = parseAuthorization(req.headers.authorization);
    // Until a service is known, errors are answered in the most common JSON form.
    let protocol: WireProtocol = 'restJson';
    try {
      if (!auth) {
        throw new ServiceError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      }
      const route = this.routes.get(auth.service);
      if (!route) {
        throw new ServiceError(
          400,
          'UnknownServiceException',
          `service '${auth.service}' is not served by the local cloud`,
        );
      }
      protocol = route.protocol;
      const body = await this.readBody(req);
      const caller = await this.verify(req, auth, rawPath, rawQuery, body, route);
      const response = await route.handle({
        method: req.method ?? 'GET',
        rawPath,
        query: parseQuery(rawQuery),
        headers: req.headers,
        body,
        caller,
        region: auth.region,
        requestId,
      });
      this.send(res, response, requestId);
    } catch (err) {
      if (err instanceof ServiceError)
        return this.send(res, formatError(protocol, err, requestId), requestId);
      if (err instanceof URIError) {
        return this.send(
          res,
          formatError(protocol, new ServiceError(400, 'InvalidRequestException', 'malformed URI'), requestId),
          requestId,
        );
      }
      this.opts.logger.error({ err, url }, 'request failed');
      return this.send(
        res,
        formatError(protocol, new ServiceError(500, 'InternalFailureException', 'internal error'), requestId),
        requestId,
      );
    }
  }

  private async verify(
    req: IncomingMessage,
    auth: NonNullable<ReturnType<typeof parseAuthorization>>,
    rawPath: string,
    rawQuery: string,
    body: Buffer,
    route: ServiceRoute,
  ): Promise<CredentialRecord> {
    const record = this.opts.credentials.lookup(auth.accessKeyId);
    if (!record) {
      throw new ServiceError(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    }
    if (record.sessionToken !== undefined && req.headers['x-amz-security-token'] !== record.sessionToken) {
      throw new ServiceError(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    }
    if (record.expiration !== undefined && Date.parse(record.expiration) <= Date.now()) {
      throw new ServiceError(
        403,
        'ExpiredTokenException',
        'The security token included in the request is expired',
      );
    }
    if (!auth.signedHeaders.includes('host')) {
      throw new ServiceError(403, 'InvalidSignatureException', "'Host' must be a signed header");
    }
    const amzDateHeader = req.headers['x-amz-date'];
    const amzDate = typeof amzDateHeader === 'string' ? amzDateHeader : undefined;
    const date = parseAmzDate(amzDate);
    if (!date || !amzDate?.startsWith(auth.date)) {
      throw new ServiceError(
        403,
        'InvalidSignatureException',
        'missing or malformed X-Amz-Date, or it does not match the credential scope',
      );
    }
    if (Math.abs(date.getTime() - Date.now()) > MAX_CLOCK_SKEW_MS) {
      throw new ServiceError(
        403,
        'InvalidSignatureException',
        'Signature expired: the request time is more than 15 minutes from the server time',
      );
    }
    const expected = await expectedSignature(
      {
        method: req.method ?? 'GET',
        host: req.headers.host ?? '',
        rawPath,
        query: parseQuery(rawQuery),
        headers: req.headers,
        body,
      },
      auth,
      record,
      date,
      route.uriEscapePath,
    );
    if (!signaturesEqual(expected, auth.signature)) {
      throw new ServiceError(
        403,
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
      );
    }
    return record;
  }
}
