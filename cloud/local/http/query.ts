/**
 * What the query-protocol services (STS, SNS) share: their form parameters, and the names they give the
 * authentication failures the endpoint detects before a route runs (the JSON services' names are the
 * endpoint's defaults).
 */
import {
  AuthError,
  type AuthFailure,
  formatError,
  ServiceError,
  type ServiceRequest,
  type ServiceResponse,
} from './server.js';

export type QueryParams = Map<string, string>;

const AUTH_CODES: Partial<Record<AuthFailure, { status: number; code: string }>> = {
  unknownAccessKey: { status: 403, code: 'InvalidClientTokenId' },
  invalidToken: { status: 403, code: 'InvalidClientTokenId' },
  expiredToken: { status: 403, code: 'ExpiredToken' },
  signatureMismatch: { status: 403, code: 'SignatureDoesNotMatch' },
  requestTimeTooSkewed: { status: 403, code: 'SignatureDoesNotMatch' },
  malformed: { status: 400, code: 'IncompleteSignature' },
  missingDate: { status: 400, code: 'IncompleteSignature' },
};

/** An error as a query-protocol (XML) answer, authentication failures under the names these services use. */
export function queryErrorResponse(err: ServiceError, req: { requestId: string }): ServiceResponse {
  const mapped = err instanceof AuthError ? AUTH_CODES[err.failure] : undefined;
  const answered = mapped ? new ServiceError(mapped.status, mapped.code, err.message) : err;
  return formatError('query', answered, req.requestId);
}

/** Form parameters from the body (POST) merged over the query string (GET). */
export function readQueryParams(req: ServiceRequest): QueryParams {
  const params: QueryParams = new Map();
  for (const [k, v] of Object.entries(req.query)) params.set(k, Array.isArray(v) ? (v[0] ?? '') : v);
  const type = String(req.headers['content-type'] ?? '');
  if (req.body.length > 0 && (type === '' || type.startsWith('application/x-www-form-urlencoded'))) {
    for (const [k, v] of new URLSearchParams(req.body.toString('utf8'))) params.set(k, v);
  }
  return params;
}

/**
 * The form parameters of a query-protocol request with its `Action`, after the checks every such service
 * makes: GET or POST only, an Action, and the service's API `Version`.
 */
export function readQueryAction(
  req: ServiceRequest,
  service: string,
  version: string,
): { params: QueryParams; action: string } {
  if (req.method !== 'POST' && req.method !== 'GET') {
    throw new ServiceError(405, 'InvalidAction', `${service} does not answer ${req.method} requests`);
  }
  const params = readQueryParams(req);
  const action = params.get('Action');
  if (action === undefined) throw new ServiceError(400, 'MissingAction', 'Missing Action');
  const given = params.get('Version');
  if (given !== version) {
    throw new ServiceError(
      400,
      'InvalidAction',
      `Could not find operation ${action} for version ${given ?? 'NO_VERSION_SPECIFIED'}`,
    );
  }
  return { params, action };
}
