/**
 * The IoT data-plane API (`@aws-sdk/client-iot-data-plane`, restJson1, signing name `iotdata`):
 * GetThingShadow, UpdateThingShadow, DeleteThingShadow, ListNamedShadowsForThing and Publish.
 *
 * Every request is authorized as IAM authorizes the data plane ("Actions, resources, and condition keys
 * for AWS IoT"): `iot:Publish` (and `iot:RetainPublish` for a retained message) on the topic ARN,
 * `iot:GetThingShadow` / `iot:UpdateThingShadow` / `iot:DeleteThingShadow` on the thing ARN (with the
 * shadow name for a named shadow), `iot:ListNamedShadowsForThing` on the thing ARN. A denied request
 * is answered 403 ForbiddenException, as the data plane does.
 */
import type { Authorizer } from '../authz.js';
import { thingArn, topicArn } from '../policy.js';
import type { ShadowErrorDoc } from '../shadow/engine.js';
import type { ShadowResult, ShadowService } from '../shadow/service.js';
import { ServiceError, type ServiceRequest, type ServiceResponse, type ServiceRoute } from './server.js';

/** The data plane's error type for each shadow error code. */
const ERROR_TYPES: Record<number, string> = {
  400: 'InvalidRequestException',
  401: 'UnauthorizedException',
  403: 'UnauthorizedException',
  404: 'ResourceNotFoundException',
  405: 'MethodNotAllowedException',
  409: 'ConflictException',
  413: 'RequestEntityTooLargeException',
  415: 'UnsupportedDocumentEncodingException',
  429: 'ThrottlingException',
  500: 'InternalFailureException',
  503: 'ServiceUnavailableException',
};

export interface IotDataDeps {
  shadows: ShadowService;
  publish: (topic: string, payload: Buffer, qos: 0 | 1, retain: boolean) => Promise<void>;
  validateTopic: (topic: string) => string | undefined;
  maxPayloadBytes: number;
  /** Decides each request for its caller; the account's root is always allowed. */
  authorizer: Authorizer;
  region: string;
  accountId: string;
}

function authorize(deps: IotDataDeps, req: ServiceRequest, action: string, resource: string): void {
  const decision = deps.authorizer.authorize(req.caller, { action, resource });
  if (!decision.allowed) {
    throw new ServiceError(
      403,
      'ForbiddenException',
      `User: ${req.caller.principalArn} is not authorized to perform: ${action} on resource: ${resource} (${decision.reason})`,
    );
  }
}

function shadowResponse(r: ShadowResult): ServiceResponse {
  if (r.ok) {
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(r.document) };
  }
  return shadowErrorResponse(r.error);
}

function shadowErrorResponse(e: ShadowErrorDoc): ServiceResponse {
  return {
    status: e.code,
    headers: {
      'content-type': 'application/json',
      'x-amzn-errortype': ERROR_TYPES[e.code] ?? 'InvalidRequestException',
    },
    body: JSON.stringify(e),
  };
}

function single(q: ServiceRequest['query'], key: string): string | undefined {
  const v = q[key];
  return Array.isArray(v) ? v[0] : v;
}

function label(raw: string): string {
  return decodeURIComponent(raw);
}

export function iotDataRoute(deps: IotDataDeps): ServiceRoute {
  return {
    signingName: 'iotdata',
    protocol: 'restJson',
    uriEscapePath: true,
    async handle(req) {
      const shadow = /^\/things\/([^/]+)\/shadow$/.exec(req.rawPath);
      if (shadow) {
        const thing = label(shadow[1]!);
        const name = single(req.query, 'name');
        const resource = thingArn(deps, thing, name);
        switch (req.method) {
          case 'GET':
            authorize(deps, req, 'iot:GetThingShadow', resource);
            return shadowResponse(deps.shadows.get(thing, name, new Uint8Array()));
          case 'POST':
            authorize(deps, req, 'iot:UpdateThingShadow', resource);
            return shadowResponse(deps.shadows.update(thing, name, req.body));
          case 'DELETE':
            authorize(deps, req, 'iot:DeleteThingShadow', resource);
            return shadowResponse(deps.shadows.delete(thing, name, new Uint8Array()));
          default:
            throw new ServiceError(
              405,
              'MethodNotAllowedException',
              `method ${req.method} is not allowed on a shadow`,
            );
        }
      }
      const list = /^\/api\/things\/shadow\/ListNamedShadowsForThing\/([^/]+)$/.exec(req.rawPath);
      if (list && req.method === 'GET') {
        const thing = label(list[1]!);
        authorize(deps, req, 'iot:ListNamedShadowsForThing', thingArn(deps, thing));
        return listNamed(deps, thing, req);
      }
      const topic = /^\/topics\/(.+)$/.exec(req.rawPath);
      if (topic && req.method === 'POST') {
        const name = label(topic[1]!);
        authorize(deps, req, 'iot:Publish', topicArn(deps, name));
        if (single(req.query, 'retain') === 'true')
          authorize(deps, req, 'iot:RetainPublish', topicArn(deps, name));
        return publish(deps, name, req);
      }
      throw new ServiceError(
        404,
        'ResourceNotFoundException',
        `no data-plane operation at ${req.method} ${req.rawPath}`,
      );
    },
  };
}

function listNamed(deps: IotDataDeps, thing: string, req: ServiceRequest): ServiceResponse {
  const pageSizeRaw = single(req.query, 'pageSize');
  const pageSize = pageSizeRaw === undefined ? 25 : Number(pageSizeRaw);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
    throw new ServiceError(400, 'InvalidRequestException', 'pageSize must be an integer from 1 to 100');
  }
  const all = deps.shadows.listNamed(thing);
  const token = single(req.query, 'nextToken');
  let start = 0;
  if (token !== undefined) {
    const decoded = Number(Buffer.from(token, 'base64url').toString());
    if (!Number.isInteger(decoded) || decoded < 0 || decoded > all.length) {
      throw new ServiceError(400, 'InvalidRequestException', 'nextToken is invalid');
    }
    start = decoded;
  }
  const results = all.slice(start, start + pageSize);
  const next =
    start + pageSize < all.length ? Buffer.from(String(start + pageSize)).toString('base64url') : undefined;
  return {
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      results,
      ...(next ? { nextToken: next } : {}),
      timestamp: Math.floor(Date.now() / 1000),
    }),
  };
}

async function publish(deps: IotDataDeps, topic: string, req: ServiceRequest): Promise<ServiceResponse> {
  const qosRaw = single(req.query, 'qos') ?? '0';
  if (qosRaw !== '0' && qosRaw !== '1') {
    throw new ServiceError(400, 'InvalidRequestException', 'qos must be 0 or 1');
  }
  const invalid = deps.validateTopic(topic);
  if (invalid) throw new ServiceError(400, 'InvalidRequestException', invalid);
  if (req.body.length > deps.maxPayloadBytes) {
    throw new ServiceError(
      413,
      'RequestEntityTooLargeException',
      'The payload exceeds the maximum size allowed',
    );
  }
  const retain = single(req.query, 'retain') === 'true';
  await deps.publish(topic, req.body, qosRaw === '1' ? 1 : 0, retain);
  return { status: 200 };
}
