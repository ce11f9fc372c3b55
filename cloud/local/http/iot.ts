/**
 * The IoT control-plane API (`@aws-sdk/client-iot`, restJson1, signing name `iot`), the subset the
 * project needs: things, certificates (issued by the local root CA from a CSR or with a server-made key,
 * or registered), CA certificates, policies and their attachments, thing principals and DescribeEndpoint.
 *
 * Paths, query parameters, headers and member names are those of the SDK's operation schemas; errors
 * carry the SDK's error type in `x-amzn-errortype`. Documented deviations from AWS:
 * - DescribeEndpoint answers the local cloud's host for every endpoint type; the MQTT port is not part
 *   of an endpoint address, so clients still need the port (8883 or whatever `local up` printed).
 * - There are no thing types or billing groups: naming one is ResourceNotFoundException, and a thing may
 *   have at most 3 attributes (the AWS limit for things without a thing type).
 * - Thing groups are static groups only (no dynamic groups, no UpdateThingGroup, no tags stored);
 *   DeleteThingGroup of a group that does not exist succeeds, as on AWS. `recursive` of
 *   ListThingsInThingGroup includes the things of every descendant group; ListThingGroups without
 *   `parentGroup` lists every group, or only root groups with `recursive=false`.
 * - Tags are validated and accepted but not stored; provisioning templates (registrationConfig) and
 *   the SNI_ONLY CA mode are refused with InvalidRequestException.
 * - AttachThingPrincipal checks EXCLUSIVE_THING against the principal's current things, but the
 *   attachment type is not recorded.
 *
 * Every request is authorized as IAM authorizes the control plane ("Actions, resources, and condition
 * keys for AWS IoT"): the action is `iot:{Operation}`; the resource is the thing, certificate (`cert`),
 * CA certificate (`cacert`) or policy ARN the operation names (AttachPolicy and DetachPolicy: the target;
 * AttachThingPrincipal, DetachThingPrincipal and ListPrincipalThings: the principal, with the
 * `iot:thingArn` condition key where AWS sets it), or `*` for operations without a resource type. The
 * account's root is always allowed; a denied request is answered 403 AccessDeniedException.
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { InvalidPemError } from '../../../certs-tooling/errors.js';
import {
  certificateId as computeCertificateId,
  createDeviceIdentity,
  issueFromCsr,
} from '../../../certs-tooling/x509.js';
import type { AccessRequest, Authorizer } from '../authz.js';
import { InvalidRequestError, ResourceConflictError, ResourceNotFoundError } from '../errors.js';
import type { LocalPki } from '../pki.js';
import { PolicyDocumentError } from '../policy.js';
import type {
  CaCertificateRecord,
  CertificateRecord,
  CertificateStatus,
  PolicyRecord,
  Registry,
  ThingGroupRecord,
  ThingRecord,
} from '../registry.js';
import { ServiceError, type ServiceRequest, type ServiceResponse, type ServiceRoute } from './server.js';

export interface IotControlDeps {
  registry: Registry;
  pki: LocalPki;
  region: string;
  accountId: string;
  /** The host name answered by DescribeEndpoint. */
  endpointHost: string;
  /** Decides each request for its caller; the account's root is always allowed. */
  authorizer: Authorizer;
}

// ---- errors ----

const invalid = (message: string) => new ServiceError(400, 'InvalidRequestException', message);
const notFound = (message: string) => new ServiceError(404, 'ResourceNotFoundException', message);
const alreadyExists = (message: string, resourceId: string, resourceArn: string) =>
  new ServiceError(409, 'ResourceAlreadyExistsException', message, { resourceId, resourceArn });
const deleteConflict = (message: string) => new ServiceError(409, 'DeleteConflictException', message);
const certificateState = (message: string) => new ServiceError(406, 'CertificateStateException', message);
const certificateValidation = (message: string) =>
  new ServiceError(400, 'CertificateValidationException', message);
const malformedPolicy = (message: string) => new ServiceError(400, 'MalformedPolicyException', message);
const versionConflict = (message: string) => new ServiceError(409, 'VersionConflictException', message);

/** Registry and tooling errors in the IoT API's terms. */
function toServiceError(err: unknown): unknown {
  if (err instanceof ServiceError) return err;
  if (err instanceof ResourceNotFoundError) return notFound(err.message);
  if (err instanceof ResourceConflictError)
    return new ServiceError(409, 'ResourceAlreadyExistsException', err.message);
  if (err instanceof PolicyDocumentError) return malformedPolicy(err.message);
  if (err instanceof InvalidRequestError) return invalid(err.message);
  if (err instanceof InvalidPemError) return certificateValidation(err.message);
  return err;
}

// ---- input validation ----

const THING_NAME = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^[a-zA-Z0-9:_-]+$/, 'must match [a-zA-Z0-9:_-]+');
const POLICY_NAME = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^[\w+=,.@-]+$/, 'must match [\\w+=,.@-]+');
const CERTIFICATE_ID = z
  .string()
  .regex(/^(0x)?[a-fA-F0-9]{64}$/, 'must be the 64 hex digits of a certificate id')
  .transform((v) => v.replace(/^0x/, '').toLowerCase());
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/;
const MAX_ATTRIBUTES = 3;
const ATTRIBUTES = z.record(z.string(), z.string()).superRefine((attrs, ctx) => {
  for (const [k, v] of Object.entries(attrs)) {
    if (!ATTRIBUTE_NAME.test(k)) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: 'attribute name must match [a-zA-Z0-9_.,@/:#-]{1,128}',
      });
    } else if (!ATTRIBUTE_VALUE.test(v)) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: 'attribute value must match [a-zA-Z0-9_.,@/:#=[\\]-]{0,800}',
      });
    }
  }
});
const ATTRIBUTE_PAYLOAD = z.object({ attributes: ATTRIBUTES.optional(), merge: z.boolean().optional() });
const PEM = z.string().min(1, 'must not be empty').max(65536, 'must be at most 65536 characters');
const TAGS = z
  .array(z.object({ Key: z.string().min(1).max(128), Value: z.string().max(256).optional() }))
  .max(50)
  .optional();

const qBool = z.enum(['true', 'false'], 'must be true or false').transform((v) => v === 'true');
const qInt = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?\d+$/, 'must be an integer')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const qVersion = z
  .string()
  .regex(/^-?\d+$/, 'must be an integer')
  .transform(Number);

const CERT_STATUS = z.enum([
  'ACTIVE',
  'INACTIVE',
  'REVOKED',
  'PENDING_TRANSFER',
  'REGISTER_INACTIVE',
  'PENDING_ACTIVATION',
]);
const ENDPOINT_TYPES = ['iot:Data', 'iot:Data-ATS', 'iot:CredentialProvider', 'iot:Jobs'] as const;

function describePath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/** Validates an operation's input; a bad field is InvalidRequestException naming the field. */
function parseInput<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (!issue) throw invalid('the request is not valid');
  const field = describePath(issue.path) || '(request)';
  const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
  throw invalid(`${field}: ${message}`);
}

function jsonBody(req: ServiceRequest): Record<string, unknown> {
  if (req.body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(req.body.toString('utf8'));
  } catch {
    throw invalid('the request body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalid('the request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function header(req: ServiceRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function readCertificate(pem: string, field: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw certificateValidation(`${field}: is not an X.509 certificate in PEM`);
  }
}

function commonName(cert: X509Certificate): string | undefined {
  return cert.subject
    .split('\n')
    .find((line) => line.startsWith('CN='))
    ?.slice(3);
}

// ---- responses ----

function json(body: unknown): ServiceResponse {
  return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

const empty = (): ServiceResponse => ({ status: 200 });

/** restJson1 timestamps are epoch seconds. */
const epoch = (iso: string | Date) => (typeof iso === 'string' ? Date.parse(iso) : iso.getTime()) / 1000;

// ---- pagination ----

interface Page<T> {
  items: T[];
  next?: string;
}

/**
 * One page of `items` (already in answer order, strictly ordered by `key`), after the item whose key the
 * token names. Tokens carry a key rather than an offset, so pages stay consistent while items come and go.
 */
function paginate<T>(
  items: T[],
  key: (t: T) => string,
  token: string | undefined,
  size: number,
  descending: boolean,
  field: string,
): Page<T> {
  let start = 0;
  if (token !== undefined) {
    let after: unknown;
    try {
      after = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { k?: unknown }).k;
    } catch {
      after = undefined;
    }
    if (typeof after !== 'string') throw invalid(`${field}: is not a token this API returned`);
    const idx = items.findIndex((t) => (descending ? key(t) < after : key(t) > after));
    start = idx < 0 ? items.length : idx;
  }
  const page = items.slice(start, start + size);
  const last = page[page.length - 1];
  const more = start + size < items.length && last !== undefined;
  return {
    items: page,
    ...(more ? { next: Buffer.from(JSON.stringify({ k: key(last) })).toString('base64url') } : {}),
  };
}

const byName =
  <T>(name: (t: T) => string) =>
  (a: T, b: T) =>
    name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0;

// ---- routing ----

type Handler = (req: ServiceRequest, labels: string[]) => Promise<ServiceResponse> | ServiceResponse;

interface Operation {
  name: string;
  method: string;
  path: RegExp;
  handler: Handler;
  /** The resource (and condition keys) IAM authorizes `iot:{name}` on; `*` when absent. */
  resource?: (req: ServiceRequest, labels: string[]) => Omit<AccessRequest, 'action'>;
}

function label(raw: string): string {
  return decodeURIComponent(raw);
}

function authorize(
  deps: IotControlDeps,
  req: ServiceRequest,
  action: string,
  request: Omit<AccessRequest, 'action'>,
): void {
  const decision = deps.authorizer.authorize(req.caller, { action, ...request });
  if (!decision.allowed) {
    throw new ServiceError(
      403,
      'AccessDeniedException',
      `User: ${req.caller.principalArn} is not authorized to perform: ${action} on resource: ${request.resource} (${decision.reason})`,
    );
  }
}

export function iotControlRoute(deps: IotControlDeps): ServiceRoute {
  const ops = operations(deps);
  return {
    signingName: 'iot',
    protocol: 'restJson',
    uriEscapePath: true,
    async handle(req) {
      for (const op of ops) {
        if (op.method !== req.method) continue;
        const m = op.path.exec(req.rawPath);
        if (!m) continue;
        try {
          const labels = m.slice(1).map((s) => label(s ?? ''));
          authorize(deps, req, `iot:${op.name}`, op.resource?.(req, labels) ?? { resource: '*' });
          return await op.handler(req, labels);
        } catch (err) {
          throw toServiceError(err);
        }
      }
      throw new ServiceError(
        501,
        'NotImplementedException',
        `the local cloud does not implement the IoT operation at ${req.method} ${req.rawPath}`,
      );
    },
  };
}

function operations(deps: IotControlDeps): Operation[] {
  const { registry } = deps;
  const modeCache = new Map<string, 'DEFAULT' | 'SNI_ONLY'>();

  // ---- helpers over the registry ----

  const thingOut = (t: ThingRecord) => ({
    thingName: t.thingName,
    thingArn: t.thingArn,
    ...(t.thingTypeName !== undefined ? { thingTypeName: t.thingTypeName } : {}),
    attributes: t.attributes,
    version: t.version,
  });

  const noThingTypes = (thingTypeName: string | undefined, billingGroupName?: string) => {
    if (thingTypeName !== undefined) throw notFound(`thing type ${thingTypeName} does not exist`);
    if (billingGroupName !== undefined) throw notFound(`billing group ${billingGroupName} does not exist`);
  };

  const checkAttributeCount = (attrs: Record<string, string>) => {
    if (Object.keys(attrs).length > MAX_ATTRIBUTES) {
      throw invalid(
        `attributePayload.attributes: a thing without a thing type can have at most ${MAX_ATTRIBUTES} attributes`,
      );
    }
  };

  const sameAttributes = (a: Record<string, string>, b: Record<string, string>) => {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
  };

  const certById = (id: string): CertificateRecord => registry.describeCertificate(id);

  /** A principal given as a certificate ARN of this account and region, which must exist. */
  const certByArn = (arn: string, field: string): CertificateRecord => {
    const m = /^arn:aws:iot:([^:]+):(\d{12}):cert\/([0-9a-fA-F]{64})$/.exec(arn);
    if (!m) throw invalid(`${field}: '${arn}' is not a certificate ARN`);
    const record = registry.findCertificate(m[3]!.toLowerCase());
    if (!record || record.certificateArn !== arn) throw notFound(`principal ${arn} does not exist`);
    return record;
  };

  /** The body of AttachPolicy and DetachPolicy: an existing policy and a certificate target. */
  const policyTarget = (req: ServiceRequest, policyName: string | undefined) => {
    const input = parseInput(
      z.object({ policyName: POLICY_NAME, target: z.string().min(1, 'must not be empty') }),
      { ...jsonBody(req), policyName },
    );
    return { input, p: registry.getPolicy(input.policyName), c: certByArn(input.target, 'target') };
  };

  const localRootCa = new X509Certificate(deps.pki.rootCa.certPem);

  /** Whether `ca` issued `cert`: names and key identifiers match and the signature verifies. */
  const signedBy = (cert: X509Certificate, ca: X509Certificate): boolean => {
    try {
      return cert.checkIssued(ca) && cert.verify(ca.publicKey);
    } catch {
      return false;
    }
  };

  /** DEFAULT for certificates that chain to a registered CA or the local root CA, else SNI_ONLY. */
  const certificateMode = async (c: CertificateRecord): Promise<'DEFAULT' | 'SNI_ONLY'> => {
    if (c.caCertificateId !== undefined) return 'DEFAULT';
    const cached = modeCache.get(c.certificateId);
    if (cached) return cached;
    const mode = signedBy(new X509Certificate(c.certificatePem), localRootCa) ? 'DEFAULT' : 'SNI_ONLY';
    modeCache.set(c.certificateId, mode);
    return mode;
  };

  const validity = (pem: string) => {
    const cert = new X509Certificate(pem);
    return { notBefore: epoch(new Date(cert.validFrom)), notAfter: epoch(new Date(cert.validTo)) };
  };

  const generationId = (...parts: string[]) =>
    createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 32);

  const certStatusFromFlags = (
    status: CertificateStatus | undefined,
    setAsActive: boolean | undefined,
  ): CertificateStatus => {
    const s = status ?? (setAsActive ? 'ACTIVE' : 'INACTIVE');
    if (s === 'PENDING_TRANSFER' || s === 'PENDING_ACTIVATION') {
      throw invalid(`status: ${s} is used internally by IoT and cannot be set`);
    }
    return s;
  };

  const certificateAlreadyExists = (pem: string) => {
    const id = computeCertificateId(pem);
    const existing = registry.findCertificate(id);
    if (existing) {
      throw alreadyExists(
        `The certificate is already provisioned or registered`,
        id,
        existing.certificateArn,
      );
    }
  };

  const registrationCode = () =>
    createHash('sha256')
      .update(`edgefleet registration code\0${deps.accountId}\0${deps.region}`)
      .digest('hex');

  const pageSize = qInt(1, 250).optional();

  // ---- the resources IAM authorizes each operation on ----

  const arnOf = (kind: string, id: string) => `arn:aws:iot:${deps.region}:${deps.accountId}:${kind}/${id}`;
  const normalizedId = (id: string | undefined) => (id ?? '').replace(/^0x/, '').toLowerCase();
  const onThing = (_req: ServiceRequest, [thingName]: string[]) => ({
    resource: arnOf('thing', thingName ?? ''),
  });
  const onCert = (_req: ServiceRequest, [id]: string[]) => ({ resource: arnOf('cert', normalizedId(id)) });
  const onCaCert = (_req: ServiceRequest, [id]: string[]) => ({
    resource: arnOf('cacert', normalizedId(id)),
  });
  const onPolicy = (_req: ServiceRequest, [policyName]: string[]) => ({
    resource: arnOf('policy', policyName ?? ''),
  });
  /** AttachPolicy / DetachPolicy: the target in the body (validated by the operation). */
  const onTarget = (req: ServiceRequest) => {
    let target: unknown;
    try {
      target = (JSON.parse(req.body.toString('utf8')) as { target?: unknown }).target;
    } catch {
      target = undefined;
    }
    return { resource: typeof target === 'string' && target !== '' ? target : '*' };
  };
  const onThingGroup = (_req: ServiceRequest, [thingGroupName]: string[]) => ({
    resource: arnOf('thinggroup', thingGroupName ?? ''),
  });
  /** AddThingToThingGroup / RemoveThingFromThingGroup: the group in the body (the thing is checked too). */
  const onBodyThingGroup = (req: ServiceRequest) => {
    let body: { thingGroupName?: unknown; thingGroupArn?: unknown } = {};
    try {
      body = JSON.parse(req.body.toString('utf8')) as typeof body;
    } catch {
      body = {};
    }
    if (typeof body.thingGroupArn === 'string' && body.thingGroupArn !== '')
      return { resource: body.thingGroupArn };
    if (typeof body.thingGroupName === 'string' && body.thingGroupName !== '') {
      return { resource: arnOf('thinggroup', body.thingGroupName) };
    }
    return { resource: '*' };
  };

  const groupOut = (g: ThingGroupRecord) => ({ groupName: g.thingGroupName, groupArn: g.thingGroupArn });

  /** The group and thing of AddThingToThingGroup / RemoveThingFromThingGroup, by name or ARN. */
  const groupMembership = (req: ServiceRequest, action: string) => {
    const input = parseInput(
      z.object({
        thingGroupName: THING_NAME.optional(),
        thingGroupArn: z.string().min(1).optional(),
        thingName: THING_NAME.optional(),
        thingArn: z.string().min(1).optional(),
        overrideDynamicGroups: z.boolean().optional(),
      }),
      jsonBody(req),
    );
    const groupName = input.thingGroupName ?? nameFromArn(input.thingGroupArn, 'thinggroup', 'thingGroupArn');
    const thingName = input.thingName ?? nameFromArn(input.thingArn, 'thing', 'thingArn');
    if (groupName === undefined) throw invalid('thingGroupName: is required (or thingGroupArn)');
    if (thingName === undefined) throw invalid('thingName: is required (or thingArn)');
    const g = registry.findThingGroup(groupName);
    if (!g) throw notFound(`Thing group ${groupName} cannot be found.`);
    // IAM authorizes these operations on the thing as well as on the group.
    authorize(deps, req, action, { resource: arnOf('thing', thingName) });
    const t = registry.findThing(thingName);
    if (!t) throw notFound(`Thing ${thingName} cannot be found.`);
    return { g, t };
  };

  function nameFromArn(arn: string | undefined, kind: string, field: string): string | undefined {
    if (arn === undefined) return undefined;
    const prefix = `arn:aws:iot:${deps.region}:${deps.accountId}:${kind}/`;
    if (!arn.startsWith(prefix) || arn.length === prefix.length) {
      throw invalid(`${field}: '${arn}' is not a ${kind} ARN of this account and region`);
    }
    return arn.slice(prefix.length);
  }

  /** The group's descendants, depth first. */
  const descendants = (name: string): ThingGroupRecord[] =>
    registry.childThingGroups(name).flatMap((c) => [c, ...descendants(c.thingGroupName)]);

  /** The principal header, and for operations on a thing the `iot:thingArn` condition key. */
  const onPrincipal = (req: ServiceRequest, [thingName]: string[]) => ({
    resource: header(req, 'x-amzn-principal') || '*',
    ...(thingName !== undefined ? { context: { 'iot:thingArn': arnOf('thing', thingName) } } : {}),
  });

  return [
    // ---- things ----
    {
      name: 'CreateThing',
      method: 'POST',
      path: /^\/things\/([^/]+)$/,
      resource: onThing,
      handler(req, [thingName]) {
        const input = parseInput(
          z.object({
            thingName: THING_NAME,
            thingTypeName: z.string().optional(),
            attributePayload: ATTRIBUTE_PAYLOAD.optional(),
            billingGroupName: z.string().optional(),
          }),
          { ...jsonBody(req), thingName },
        );
        noThingTypes(input.thingTypeName, input.billingGroupName);
        const attributes = input.attributePayload?.attributes ?? {};
        checkAttributeCount(attributes);
        const existing = registry.findThing(input.thingName);
        if (existing) {
          // CreateThing succeeds again with the same configuration, and is refused with another one.
          if (!sameAttributes(existing.attributes, attributes)) {
            throw alreadyExists(
              `Thing ${input.thingName} already exists in account with different attributes`,
              existing.thingId,
              existing.thingArn,
            );
          }
          return json({
            thingName: existing.thingName,
            thingArn: existing.thingArn,
            thingId: existing.thingId,
          });
        }
        const t = registry.createThing(input.thingName, attributes);
        return json({ thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId });
      },
    },
    {
      name: 'DescribeThing',
      method: 'GET',
      path: /^\/things\/([^/]+)$/,
      resource: onThing,
      handler(_req, [thingName]) {
        const input = parseInput(z.object({ thingName: THING_NAME }), { thingName });
        const t = registry.findThing(input.thingName);
        if (!t) throw notFound(`Thing ${input.thingName} cannot be found.`);
        return json({ defaultClientId: t.thingName, thingId: t.thingId, ...thingOut(t) });
      },
    },
    {
      name: 'UpdateThing',
      method: 'PATCH',
      path: /^\/things\/([^/]+)$/,
      resource: onThing,
      handler(req, [thingName]) {
        const input = parseInput(
          z.object({
            thingName: THING_NAME,
            thingTypeName: z.string().optional(),
            attributePayload: ATTRIBUTE_PAYLOAD.optional(),
            expectedVersion: z.number().int().optional(),
            removeThingType: z.boolean().optional(),
          }),
          { ...jsonBody(req), thingName },
        );
        if (input.thingTypeName !== undefined && input.removeThingType === true) {
          throw invalid('thingTypeName: cannot be given together with removeThingType');
        }
        const t = registry.findThing(input.thingName);
        if (!t) throw notFound(`Thing ${input.thingName} cannot be found.`);
        noThingTypes(input.thingTypeName);
        if (input.expectedVersion !== undefined && input.expectedVersion !== t.version) {
          throw versionConflict(
            `The version for thing ${t.thingName} does not match the expected version (expected ${input.expectedVersion}, current ${t.version}).`,
          );
        }
        let attributes: Record<string, string> | undefined;
        const payload = input.attributePayload;
        if (payload?.attributes !== undefined) {
          // An empty value removes the attribute; merge keeps the attributes the request does not name.
          const next: Record<string, string> = payload.merge ? { ...t.attributes } : {};
          for (const [k, v] of Object.entries(payload.attributes)) {
            if (v === '') delete next[k];
            else next[k] = v;
          }
          checkAttributeCount(next);
          attributes = next;
        }
        registry.updateThing(t.thingName, attributes !== undefined ? { attributes } : {});
        return json({});
      },
    },
    {
      name: 'DeleteThing',
      method: 'DELETE',
      path: /^\/things\/([^/]+)$/,
      resource: onThing,
      handler(req, [thingName]) {
        const input = parseInput(z.object({ thingName: THING_NAME, expectedVersion: qVersion.optional() }), {
          thingName,
          expectedVersion: req.query.expectedVersion,
        });
        const t = registry.findThing(input.thingName);
        // Deleting a thing that does not exist succeeds.
        if (!t) return json({});
        if (input.expectedVersion !== undefined && input.expectedVersion !== t.version) {
          throw versionConflict(
            `The version for thing ${t.thingName} does not match the expected version (expected ${input.expectedVersion}, current ${t.version}).`,
          );
        }
        if (registry.listThingPrincipals(t.thingName).length > 0) {
          throw invalid(`Cannot delete. Thing ${t.thingName} is still attached to one or more principals`);
        }
        registry.deleteThing(t.thingName);
        return json({});
      },
    },
    {
      name: 'ListThings',
      method: 'GET',
      path: /^\/things$/,
      handler(req) {
        const q = parseInput(
          z.object({
            nextToken: z.string().optional(),
            maxResults: qInt(1, 250).optional(),
            attributeName: z.string().optional(),
            attributeValue: z.string().optional(),
            thingTypeName: z.string().optional(),
            usePrefixAttributeValue: qBool.optional(),
          }),
          req.query,
        );
        if (q.attributeValue !== undefined && q.attributeName === undefined) {
          throw invalid('attributeName: is required when attributeValue is given');
        }
        const things = registry
          .listThings()
          .filter((t) => {
            if (q.thingTypeName !== undefined && t.thingTypeName !== q.thingTypeName) return false;
            if (q.attributeName === undefined) return true;
            const v = t.attributes[q.attributeName];
            if (v === undefined) return false;
            if (q.attributeValue === undefined) return true;
            return q.usePrefixAttributeValue ? v.startsWith(q.attributeValue) : v === q.attributeValue;
          })
          .sort(byName((t) => t.thingName));
        const page = paginate(
          things,
          (t) => t.thingName,
          q.nextToken,
          q.maxResults ?? 50,
          false,
          'nextToken',
        );
        return json({ things: page.items.map(thingOut), ...(page.next ? { nextToken: page.next } : {}) });
      },
    },

    // ---- thing groups ----
    {
      name: 'CreateThingGroup',
      method: 'POST',
      path: /^\/thing-groups\/([^/]+)$/,
      resource: onThingGroup,
      handler(req, [thingGroupName]) {
        const input = parseInput(
          z.object({
            thingGroupName: THING_NAME,
            parentGroupName: THING_NAME.optional(),
            thingGroupProperties: z
              .object({
                thingGroupDescription: z
                  .string()
                  .max(2028, 'must be at most 2028 characters')
                  .regex(/^[^\p{C}]*$/u, 'must be printable characters')
                  .optional(),
                attributePayload: ATTRIBUTE_PAYLOAD.optional(),
              })
              .optional(),
            tags: TAGS,
          }),
          { ...jsonBody(req), thingGroupName },
        );
        if (input.parentGroupName !== undefined && !registry.findThingGroup(input.parentGroupName)) {
          throw notFound(`Thing group ${input.parentGroupName} cannot be found.`);
        }
        const props = {
          description: input.thingGroupProperties?.thingGroupDescription,
          attributes: input.thingGroupProperties?.attributePayload?.attributes ?? {},
          parentGroupName: input.parentGroupName,
        };
        const existing = registry.findThingGroup(input.thingGroupName);
        try {
          const g = registry.createThingGroup(input.thingGroupName, props);
          return json({
            thingGroupName: g.thingGroupName,
            thingGroupArn: g.thingGroupArn,
            thingGroupId: g.thingGroupId,
          });
        } catch (err) {
          if (existing && err instanceof ResourceConflictError) {
            throw alreadyExists(
              `Thing Group ${existing.thingGroupName} already exists with different tags or properties`,
              existing.thingGroupId,
              existing.thingGroupArn,
            );
          }
          throw err;
        }
      },
    },
    {
      name: 'DescribeThingGroup',
      method: 'GET',
      path: /^\/thing-groups\/([^/]+)$/,
      resource: onThingGroup,
      handler(_req, [thingGroupName]) {
        const input = parseInput(z.object({ thingGroupName: THING_NAME }), { thingGroupName });
        const g = registry.findThingGroup(input.thingGroupName);
        if (!g) throw notFound(`Thing group ${input.thingGroupName} cannot be found.`);
        return json({
          thingGroupName: g.thingGroupName,
          thingGroupId: g.thingGroupId,
          thingGroupArn: g.thingGroupArn,
          version: g.version,
          thingGroupProperties: {
            ...(g.description !== undefined ? { thingGroupDescription: g.description } : {}),
            attributePayload: { attributes: g.attributes },
          },
          thingGroupMetadata: {
            ...(g.parentGroupName !== undefined ? { parentGroupName: g.parentGroupName } : {}),
            rootToParentThingGroups: registry.thingGroupAncestors(g.thingGroupName).map(groupOut),
            creationDate: epoch(g.creationDate),
          },
        });
      },
    },
    {
      name: 'DeleteThingGroup',
      method: 'DELETE',
      path: /^\/thing-groups\/([^/]+)$/,
      resource: onThingGroup,
      handler(req, [thingGroupName]) {
        const input = parseInput(
          z.object({ thingGroupName: THING_NAME, expectedVersion: qVersion.optional() }),
          { thingGroupName, expectedVersion: req.query.expectedVersion },
        );
        const g = registry.findThingGroup(input.thingGroupName);
        // Deleting a group that does not exist succeeds.
        if (!g) return json({});
        if (input.expectedVersion !== undefined && input.expectedVersion !== g.version) {
          throw versionConflict(
            `The version for thing group ${g.thingGroupName} does not match the expected version (expected ${input.expectedVersion}, current ${g.version}).`,
          );
        }
        if (registry.childThingGroups(g.thingGroupName).length > 0) {
          throw invalid(`Cannot delete thing group : ${g.thingGroupName} when it still has child groups`);
        }
        registry.deleteThingGroup(g.thingGroupName);
        return json({});
      },
    },
    {
      name: 'ListThingGroups',
      method: 'GET',
      path: /^\/thing-groups$/,
      handler(req) {
        const q = parseInput(
          z.object({
            nextToken: z.string().optional(),
            maxResults: qInt(1, 250).optional(),
            parentGroup: THING_NAME.optional(),
            namePrefixFilter: z.string().max(128).optional(),
            recursive: qBool.optional(),
          }),
          req.query,
        );
        let groups: ThingGroupRecord[];
        if (q.parentGroup !== undefined) {
          if (!registry.findThingGroup(q.parentGroup)) {
            throw notFound(`Thing group ${q.parentGroup} cannot be found.`);
          }
          groups =
            q.recursive === false ? registry.childThingGroups(q.parentGroup) : descendants(q.parentGroup);
        } else {
          groups = registry
            .listThingGroups()
            .filter((g) => q.recursive !== false || g.parentGroupName === undefined);
        }
        const sorted = groups
          .filter((g) => q.namePrefixFilter === undefined || g.thingGroupName.startsWith(q.namePrefixFilter))
          .sort(byName((g) => g.thingGroupName));
        const page = paginate(
          sorted,
          (g) => g.thingGroupName,
          q.nextToken,
          q.maxResults ?? 50,
          false,
          'nextToken',
        );
        return json({
          thingGroups: page.items.map(groupOut),
          ...(page.next ? { nextToken: page.next } : {}),
        });
      },
    },
    {
      name: 'AddThingToThingGroup',
      method: 'PUT',
      path: /^\/thing-groups\/addThingToThingGroup$/,
      resource: onBodyThingGroup,
      handler(req) {
        const { g, t } = groupMembership(req, 'iot:AddThingToThingGroup');
        registry.addThingToThingGroup(g.thingGroupName, t.thingName);
        return json({});
      },
    },
    {
      name: 'RemoveThingFromThingGroup',
      method: 'PUT',
      path: /^\/thing-groups\/removeThingFromThingGroup$/,
      resource: onBodyThingGroup,
      handler(req) {
        const { g, t } = groupMembership(req, 'iot:RemoveThingFromThingGroup');
        registry.removeThingFromThingGroup(g.thingGroupName, t.thingName);
        return json({});
      },
    },
    {
      name: 'ListThingsInThingGroup',
      method: 'GET',
      path: /^\/thing-groups\/([^/]+)\/things$/,
      resource: onThingGroup,
      handler(req, [thingGroupName]) {
        const q = parseInput(
          z.object({
            thingGroupName: THING_NAME,
            recursive: qBool.optional(),
            nextToken: z.string().optional(),
            maxResults: qInt(1, 250).optional(),
          }),
          { ...req.query, thingGroupName },
        );
        const g = registry.findThingGroup(q.thingGroupName);
        if (!g) throw notFound(`Thing group ${q.thingGroupName} cannot be found.`);
        const groups = [g, ...(q.recursive === true ? descendants(g.thingGroupName) : [])];
        const names = [
          ...new Set(groups.flatMap((x) => registry.listThingsInThingGroup(x.thingGroupName))),
        ].sort();
        const page = paginate(names, (n) => n, q.nextToken, q.maxResults ?? 25, false, 'nextToken');
        return json({ things: page.items, ...(page.next ? { nextToken: page.next } : {}) });
      },
    },

    // ---- certificates ----
    {
      name: 'CreateCertificateFromCsr',
      method: 'POST',
      path: /^\/certificates$/,
      async handler(req) {
        const input = parseInput(
          z.object({
            certificateSigningRequest: z
              .string()
              .min(1, 'must not be empty')
              .max(4096, 'must be at most 4096 characters'),
            setAsActive: qBool.optional(),
          }),
          { ...jsonBody(req), setAsActive: req.query.setAsActive },
        );
        let certPem: string;
        try {
          certPem = await issueFromCsr(deps.pki.rootCa, input.certificateSigningRequest);
        } catch (err) {
          if (err instanceof InvalidPemError) throw invalid(`certificateSigningRequest: ${err.message}`);
          throw err;
        }
        const c = registry.registerCertificate(certPem, input.setAsActive ? 'ACTIVE' : 'INACTIVE');
        return json({
          certificateArn: c.certificateArn,
          certificateId: c.certificateId,
          certificatePem: c.certificatePem,
        });
      },
    },
    {
      name: 'CreateKeysAndCertificate',
      method: 'POST',
      path: /^\/keys-and-certificate$/,
      async handler(req) {
        const input = parseInput(z.object({ setAsActive: qBool.optional() }), {
          setAsActive: req.query.setAsActive,
        });
        const id = await createDeviceIdentity(deps.pki.rootCa, 'AWS IoT Certificate');
        const c = registry.registerCertificate(id.certPem, input.setAsActive ? 'ACTIVE' : 'INACTIVE');
        const publicKey = createPublicKey(id.keyPem).export({ type: 'spki', format: 'pem' }).toString();
        return json({
          certificateArn: c.certificateArn,
          certificateId: c.certificateId,
          certificatePem: c.certificatePem,
          keyPair: { PublicKey: publicKey, PrivateKey: id.keyPem },
        });
      },
    },
    {
      name: 'RegisterCertificate',
      method: 'POST',
      path: /^\/certificate\/register$/,
      async handler(req) {
        const input = parseInput(
          z.object({
            certificatePem: PEM,
            caCertificatePem: PEM.optional(),
            setAsActive: qBool.optional(),
            status: CERT_STATUS.optional(),
          }),
          { ...jsonBody(req), setAsActive: req.query.setAsActive },
        );
        const status = certStatusFromFlags(input.status, input.setAsActive);
        const cert = readCertificate(input.certificatePem, 'certificatePem');
        certificateAlreadyExists(input.certificatePem);
        let ca: CaCertificateRecord | undefined;
        if (input.caCertificatePem !== undefined) {
          const caCert = readCertificate(input.caCertificatePem, 'caCertificatePem');
          ca = registry.findCaCertificate(computeCertificateId(new Uint8Array(caCert.raw)));
          if (!ca) throw certificateValidation('caCertificatePem: the CA certificate is not registered');
          if (!signedBy(cert, caCert)) {
            throw certificateValidation(
              'certificatePem: the certificate is not signed by the given CA certificate',
            );
          }
        } else {
          const signers: CaCertificateRecord[] = [];
          for (const candidate of registry.listCaCertificates()) {
            if (signedBy(cert, new X509Certificate(candidate.certificatePem))) signers.push(candidate);
          }
          if (signers.length > 1) {
            throw new ServiceError(
              409,
              'CertificateConflictException',
              'More than one registered CA certificate has the subject and key that signed this certificate; pass caCertificatePem',
            );
          }
          ca = signers[0];
          if (!ca) {
            throw certificateValidation(
              'certificatePem: the certificate is not signed by a registered CA certificate (use RegisterCertificateWithoutCA for that)',
            );
          }
        }
        if (ca.status !== 'ACTIVE') {
          throw certificateState(
            `The CA certificate ${ca.certificateId} that signed the certificate is not ACTIVE`,
          );
        }
        const c = registry.registerCertificate(input.certificatePem, status, ca.certificateId);
        return json({ certificateArn: c.certificateArn, certificateId: c.certificateId });
      },
    },
    {
      name: 'RegisterCertificateWithoutCA',
      method: 'POST',
      path: /^\/certificate\/register-no-ca$/,
      handler(req) {
        const input = parseInput(
          z.object({ certificatePem: PEM, status: CERT_STATUS.optional() }),
          jsonBody(req),
        );
        const status = certStatusFromFlags(input.status, false);
        readCertificate(input.certificatePem, 'certificatePem');
        certificateAlreadyExists(input.certificatePem);
        const c = registry.registerCertificate(input.certificatePem, status);
        return json({ certificateArn: c.certificateArn, certificateId: c.certificateId });
      },
    },
    {
      name: 'DescribeCertificate',
      method: 'GET',
      path: /^\/certificates\/([^/]+)$/,
      resource: onCert,
      async handler(_req, [certificateId]) {
        const input = parseInput(z.object({ certificateId: CERTIFICATE_ID }), { certificateId });
        const c = certById(input.certificateId);
        return json({
          certificateDescription: {
            certificateArn: c.certificateArn,
            certificateId: c.certificateId,
            ...(c.caCertificateId !== undefined ? { caCertificateId: c.caCertificateId } : {}),
            status: c.status,
            certificatePem: c.certificatePem,
            ownedBy: deps.accountId,
            creationDate: epoch(c.creationDate),
            lastModifiedDate: epoch(c.lastModifiedDate),
            customerVersion: 1,
            transferData: {},
            generationId: generationId(c.certificateId, c.status, c.lastModifiedDate),
            validity: validity(c.certificatePem),
            certificateMode: await certificateMode(c),
          },
        });
      },
    },
    {
      name: 'UpdateCertificate',
      method: 'PUT',
      path: /^\/certificates\/([^/]+)$/,
      resource: onCert,
      handler(req, [certificateId]) {
        const input = parseInput(z.object({ certificateId: CERTIFICATE_ID, newStatus: CERT_STATUS }), {
          certificateId,
          newStatus: req.query.newStatus,
        });
        if (input.newStatus === 'PENDING_TRANSFER' || input.newStatus === 'PENDING_ACTIVATION') {
          throw invalid(`newStatus: ${input.newStatus} is used internally by IoT and cannot be set`);
        }
        const c = certById(input.certificateId);
        if (c.status === 'REVOKED' && input.newStatus !== 'REVOKED') {
          throw certificateState(
            `Certificate ${c.certificateId} is REVOKED; a revoked certificate cannot change status.`,
          );
        }
        if (c.status === 'PENDING_TRANSFER') {
          throw certificateState(
            `Certificate ${c.certificateId} is being transferred and cannot change status.`,
          );
        }
        registry.updateCertificateStatus(c.certificateId, input.newStatus);
        return empty();
      },
    },
    {
      name: 'DeleteCertificate',
      method: 'DELETE',
      path: /^\/certificates\/([^/]+)$/,
      resource: onCert,
      handler(req, [certificateId]) {
        const input = parseInput(z.object({ certificateId: CERTIFICATE_ID, forceDelete: qBool.optional() }), {
          certificateId,
          forceDelete: req.query.forceDelete,
        });
        const c = certById(input.certificateId);
        if (c.status === 'ACTIVE') {
          throw certificateState(
            `Certificate must be deactivated (not ACTIVE) before deletion. Id: ${c.certificateId}`,
          );
        }
        if (registry.principalThings(c.certificateArn).length > 0) {
          throw deleteConflict(`Things must be detached before deletion (arn: ${c.certificateArn})`);
        }
        const policies = registry.listAttachedPolicies(c.certificateArn);
        if (policies.length > 0) {
          // forceDelete removes the policy attachments; a thing attachment still blocks it.
          if (!input.forceDelete) {
            throw deleteConflict(
              `Certificate policies must be detached before deletion (arn: ${c.certificateArn})`,
            );
          }
          for (const p of policies) registry.detachPolicy(p.policyName, c.certificateArn);
        }
        registry.deleteCertificate(c.certificateId);
        modeCache.delete(c.certificateId);
        return empty();
      },
    },
    {
      name: 'ListCertificates',
      method: 'GET',
      path: /^\/certificates$/,
      async handler(req) {
        const q = parseInput(
          z.object({ pageSize, marker: z.string().optional(), isAscendingOrder: qBool.optional() }),
          req.query,
        );
        return listCertificates(registry.listCertificates(), q);
      },
    },
    {
      name: 'ListCertificatesByCA',
      method: 'GET',
      path: /^\/certificates-by-ca\/([^/]+)$/,
      async handler(req, [caCertificateId]) {
        const q = parseInput(
          z.object({
            caCertificateId: CERTIFICATE_ID,
            pageSize,
            marker: z.string().optional(),
            isAscendingOrder: qBool.optional(),
          }),
          { ...req.query, caCertificateId },
        );
        registry.describeCaCertificate(q.caCertificateId);
        return listCertificates(
          registry.listCertificates().filter((c) => c.caCertificateId === q.caCertificateId),
          q,
        );
      },
    },

    // ---- CA certificates ----
    {
      name: 'GetRegistrationCode',
      method: 'GET',
      path: /^\/registrationcode$/,
      handler() {
        return json({ registrationCode: registrationCode() });
      },
    },
    {
      name: 'RegisterCACertificate',
      method: 'POST',
      path: /^\/cacertificate$/,
      async handler(req) {
        const input = parseInput(
          z.object({
            caCertificate: PEM,
            verificationCertificate: PEM.optional(),
            setAsActive: qBool.optional(),
            allowAutoRegistration: qBool.optional(),
            registrationConfig: z.unknown().optional(),
            tags: TAGS,
            certificateMode: z.enum(['DEFAULT', 'SNI_ONLY']).optional(),
          }),
          {
            ...jsonBody(req),
            setAsActive: req.query.setAsActive,
            allowAutoRegistration: req.query.allowAutoRegistration,
          },
        );
        if (input.registrationConfig !== undefined) {
          throw invalid('registrationConfig: provisioning templates are not supported by the local cloud');
        }
        if (input.certificateMode === 'SNI_ONLY') {
          throw invalid('certificateMode: SNI_ONLY is not supported by the local cloud; use DEFAULT');
        }
        const ca = readCertificate(input.caCertificate, 'caCertificate');
        if (!ca.ca)
          throw certificateValidation(
            'caCertificate: is not a CA certificate (basicConstraints CA:TRUE missing)',
          );
        if (ca.issuer === ca.subject && !signedBy(ca, ca)) {
          throw certificateValidation('caCertificate: its self-signature does not verify');
        }
        if (input.verificationCertificate === undefined) {
          throw invalid('verificationCertificate: is required when certificateMode is DEFAULT');
        }
        const verification = readCertificate(input.verificationCertificate, 'verificationCertificate');
        if (!signedBy(verification, ca)) {
          throw certificateValidation('verificationCertificate: is not signed by the CA certificate');
        }
        const cn = commonName(verification);
        if (cn !== registrationCode()) {
          throw new ServiceError(
            400,
            'RegistrationCodeValidationException',
            'The common name of the verification certificate is not the registration code of this account (GetRegistrationCode)',
          );
        }
        const id = computeCertificateId(new Uint8Array(ca.raw));
        const existing = registry.findCaCertificate(id);
        if (existing)
          throw alreadyExists('The CA certificate is already registered', id, existing.certificateArn);
        const record = registry.registerCaCertificate(input.caCertificate, {
          autoRegistration: input.allowAutoRegistration === true,
          status: input.setAsActive ? 'ACTIVE' : 'INACTIVE',
        });
        return json({ certificateArn: record.certificateArn, certificateId: record.certificateId });
      },
    },
    {
      name: 'DescribeCACertificate',
      method: 'GET',
      path: /^\/cacertificate\/([^/]+)$/,
      resource: onCaCert,
      handler(_req, [certificateId]) {
        const input = parseInput(z.object({ certificateId: CERTIFICATE_ID }), { certificateId });
        const c = registry.describeCaCertificate(input.certificateId);
        return json({
          certificateDescription: {
            certificateArn: c.certificateArn,
            certificateId: c.certificateId,
            status: c.status,
            certificatePem: c.certificatePem,
            ownedBy: deps.accountId,
            creationDate: epoch(c.creationDate),
            autoRegistrationStatus: c.autoRegistrationStatus,
            lastModifiedDate: epoch(c.creationDate),
            customerVersion: 1,
            generationId: generationId(c.certificateId, c.status, c.autoRegistrationStatus),
            validity: validity(c.certificatePem),
            certificateMode: 'DEFAULT',
          },
        });
      },
    },
    {
      name: 'UpdateCACertificate',
      method: 'PUT',
      path: /^\/cacertificate\/([^/]+)$/,
      resource: onCaCert,
      handler(req, [certificateId]) {
        const input = parseInput(
          z.object({
            certificateId: CERTIFICATE_ID,
            newStatus: z.enum(['ACTIVE', 'INACTIVE']).optional(),
            newAutoRegistrationStatus: z.enum(['ENABLE', 'DISABLE']).optional(),
            registrationConfig: z.unknown().optional(),
            removeAutoRegistration: z.boolean().optional(),
          }),
          {
            ...jsonBody(req),
            certificateId,
            newStatus: req.query.newStatus,
            newAutoRegistrationStatus: req.query.newAutoRegistrationStatus,
          },
        );
        if (input.registrationConfig !== undefined) {
          throw invalid('registrationConfig: provisioning templates are not supported by the local cloud');
        }
        registry.updateCaCertificate(input.certificateId, {
          ...(input.newStatus !== undefined ? { status: input.newStatus } : {}),
          ...(input.newAutoRegistrationStatus !== undefined
            ? { autoRegistrationStatus: input.newAutoRegistrationStatus }
            : {}),
        });
        return empty();
      },
    },
    {
      name: 'DeleteCACertificate',
      method: 'DELETE',
      path: /^\/cacertificate\/([^/]+)$/,
      resource: onCaCert,
      handler(_req, [certificateId]) {
        const input = parseInput(z.object({ certificateId: CERTIFICATE_ID }), { certificateId });
        const c = registry.describeCaCertificate(input.certificateId);
        if (c.status === 'ACTIVE') {
          throw certificateState(
            `CA certificate must be deactivated (not ACTIVE) before deletion. Id: ${c.certificateId}`,
          );
        }
        registry.deleteCaCertificate(c.certificateId);
        return json({});
      },
    },
    {
      name: 'ListCACertificates',
      method: 'GET',
      path: /^\/cacertificates$/,
      handler(req) {
        const q = parseInput(
          z.object({
            pageSize,
            marker: z.string().optional(),
            isAscendingOrder: qBool.optional(),
            templateName: z.string().optional(),
          }),
          req.query,
        );
        // No provisioning templates exist, so a template filter matches nothing.
        const all = q.templateName !== undefined ? [] : registry.listCaCertificates();
        const ascending = q.isAscendingOrder === true;
        const key = (c: CaCertificateRecord) => `${c.creationDate}\0${c.certificateId}`;
        const sorted = [...all].sort(byName(key));
        if (!ascending) sorted.reverse();
        const page = paginate(sorted, key, q.marker, q.pageSize ?? 25, !ascending, 'marker');
        return json({
          certificates: page.items.map((c) => ({
            certificateArn: c.certificateArn,
            certificateId: c.certificateId,
            status: c.status,
            creationDate: epoch(c.creationDate),
          })),
          ...(page.next ? { nextMarker: page.next } : {}),
        });
      },
    },

    // ---- policies ----
    {
      name: 'CreatePolicy',
      method: 'POST',
      path: /^\/policies\/([^/]+)$/,
      resource: onPolicy,
      handler(req, [policyName]) {
        const input = parseInput(
          z.object({
            policyName: POLICY_NAME,
            policyDocument: z.string().min(1, 'must not be empty'),
            tags: TAGS,
          }),
          { ...jsonBody(req), policyName },
        );
        if (input.policyDocument.replace(/\s/g, '').length > 2048) {
          throw malformedPolicy('policyDocument: exceeds 2048 characters (excluding whitespace)');
        }
        const existing = registry.listPolicies().find((p) => p.policyName === input.policyName);
        if (existing) {
          throw alreadyExists(
            `Policy ${input.policyName} already exists`,
            existing.policyName,
            existing.policyArn,
          );
        }
        const p = registry.createPolicy(input.policyName, input.policyDocument);
        return json({
          policyName: p.policyName,
          policyArn: p.policyArn,
          policyDocument: p.policyDocument,
          policyVersionId: p.defaultVersionId,
        });
      },
    },
    {
      name: 'GetPolicy',
      method: 'GET',
      path: /^\/policies\/([^/]+)$/,
      resource: onPolicy,
      handler(_req, [policyName]) {
        const input = parseInput(z.object({ policyName: POLICY_NAME }), { policyName });
        const p = registry.getPolicy(input.policyName);
        return json({
          policyName: p.policyName,
          policyArn: p.policyArn,
          policyDocument: p.policyDocument,
          defaultVersionId: p.defaultVersionId,
          creationDate: epoch(p.creationDate),
          lastModifiedDate: epoch(p.creationDate),
          generationId: generationId(p.policyName, p.defaultVersionId, p.policyDocument),
        });
      },
    },
    {
      name: 'DeletePolicy',
      method: 'DELETE',
      path: /^\/policies\/([^/]+)$/,
      resource: onPolicy,
      handler(_req, [policyName]) {
        const input = parseInput(z.object({ policyName: POLICY_NAME }), { policyName });
        const p = registry.getPolicy(input.policyName);
        if (registry.policyTargets(p.policyName).length > 0) {
          throw deleteConflict(
            `The policy cannot be deleted as the policy is attached to one or more principals (name=${p.policyName})`,
          );
        }
        registry.deletePolicy(p.policyName);
        return empty();
      },
    },
    {
      name: 'ListPolicies',
      method: 'GET',
      path: /^\/policies$/,
      handler(req) {
        const q = parseInput(
          z.object({ marker: z.string().optional(), pageSize, isAscendingOrder: qBool.optional() }),
          req.query,
        );
        return listPolicies(registry.listPolicies(), q);
      },
    },
    {
      name: 'AttachPolicy',
      method: 'PUT',
      path: /^\/target-policies\/([^/]+)$/,
      resource: onTarget,
      handler(req, [policyName]) {
        const { input, p, c } = policyTarget(req, policyName);
        const attached = registry.listAttachedPolicies(c.certificateArn);
        if (!attached.some((a) => a.policyName === p.policyName) && attached.length >= 10) {
          throw new ServiceError(
            410,
            'LimitExceededException',
            `target ${input.target} already has 10 policies attached`,
          );
        }
        registry.attachPolicy(p.policyName, c.certificateArn);
        return empty();
      },
    },
    {
      name: 'DetachPolicy',
      method: 'POST',
      path: /^\/target-policies\/([^/]+)$/,
      resource: onTarget,
      handler(req, [policyName]) {
        const { p, c } = policyTarget(req, policyName);
        registry.detachPolicy(p.policyName, c.certificateArn);
        return empty();
      },
    },
    {
      name: 'ListAttachedPolicies',
      method: 'POST',
      path: /^\/attached-policies\/([^/]+)$/,
      handler(req, [target]) {
        const q = parseInput(
          z.object({
            target: z.string().min(1, 'must not be empty'),
            recursive: qBool.optional(),
            marker: z.string().optional(),
            pageSize,
          }),
          { ...req.query, target },
        );
        const c = certByArn(q.target, 'target');
        // Certificates are not in thing groups, so `recursive` adds nothing.
        return listPolicies(registry.listAttachedPolicies(c.certificateArn), {
          ...q,
          isAscendingOrder: true,
        });
      },
    },
    {
      name: 'ListTargetsForPolicy',
      method: 'POST',
      path: /^\/policy-targets\/([^/]+)$/,
      resource: onPolicy,
      handler(req, [policyName]) {
        const q = parseInput(z.object({ policyName: POLICY_NAME, marker: z.string().optional(), pageSize }), {
          ...req.query,
          policyName,
        });
        const p = registry.getPolicy(q.policyName);
        const targets = registry.policyTargets(p.policyName).sort();
        const page = paginate(targets, (t) => t, q.marker, q.pageSize ?? 25, false, 'marker');
        return json({ targets: page.items, ...(page.next ? { nextMarker: page.next } : {}) });
      },
    },

    // ---- thing principals ----
    {
      name: 'AttachThingPrincipal',
      method: 'PUT',
      path: /^\/things\/([^/]+)\/principals$/,
      resource: onPrincipal,
      handler(req, [thingName]) {
        const input = parseInput(
          z.object({
            thingName: THING_NAME,
            principal: z.string().min(1, 'must not be empty'),
            thingPrincipalType: z.enum(['EXCLUSIVE_THING', 'NON_EXCLUSIVE_THING']).optional(),
          }),
          {
            thingName,
            principal: header(req, 'x-amzn-principal'),
            thingPrincipalType: req.query.thingPrincipalType,
          },
        );
        const t = registry.findThing(input.thingName);
        if (!t) throw notFound(`Thing ${input.thingName} cannot be found.`);
        const c = certByArn(input.principal, 'principal');
        if (input.thingPrincipalType === 'EXCLUSIVE_THING') {
          const others = registry.principalThings(c.certificateArn).filter((n) => n !== t.thingName);
          if (others.length > 0) {
            throw invalid(
              `principal: is already attached to other things (${others.join(', ')}); cannot attach exclusively`,
            );
          }
        }
        registry.attachThingPrincipal(t.thingName, c.certificateArn);
        return json({});
      },
    },
    {
      name: 'DetachThingPrincipal',
      method: 'DELETE',
      path: /^\/things\/([^/]+)\/principals$/,
      resource: onPrincipal,
      handler(req, [thingName]) {
        const input = parseInput(
          z.object({ thingName: THING_NAME, principal: z.string().min(1, 'must not be empty') }),
          {
            thingName,
            principal: header(req, 'x-amzn-principal'),
          },
        );
        const t = registry.findThing(input.thingName);
        if (!t) throw notFound(`Thing ${input.thingName} cannot be found.`);
        const c = certByArn(input.principal, 'principal');
        registry.detachThingPrincipal(t.thingName, c.certificateArn);
        return json({});
      },
    },
    {
      name: 'ListThingPrincipals',
      method: 'GET',
      path: /^\/things\/([^/]+)\/principals$/,
      resource: onThing,
      handler(req, [thingName]) {
        const q = parseInput(
          z.object({
            thingName: THING_NAME,
            nextToken: z.string().optional(),
            maxResults: qInt(1, 250).optional(),
          }),
          { ...req.query, thingName },
        );
        const t = registry.findThing(q.thingName);
        if (!t) throw notFound(`Thing ${q.thingName} cannot be found.`);
        const principals = registry.listThingPrincipals(t.thingName).sort();
        const page = paginate(principals, (p) => p, q.nextToken, q.maxResults ?? 25, false, 'nextToken');
        return json({ principals: page.items, ...(page.next ? { nextToken: page.next } : {}) });
      },
    },
    {
      name: 'ListPrincipalThings',
      method: 'GET',
      path: /^\/principals\/things$/,
      resource: onPrincipal,
      handler(req) {
        const q = parseInput(
          z.object({
            principal: z.string().min(1, 'must not be empty'),
            nextToken: z.string().optional(),
            maxResults: qInt(1, 250).optional(),
          }),
          { ...req.query, principal: header(req, 'x-amzn-principal') },
        );
        const c = certByArn(q.principal, 'principal');
        const things = registry.principalThings(c.certificateArn).sort();
        const page = paginate(things, (t) => t, q.nextToken, q.maxResults ?? 25, false, 'nextToken');
        return json({ things: page.items, ...(page.next ? { nextToken: page.next } : {}) });
      },
    },

    // ---- endpoint ----
    {
      name: 'DescribeEndpoint',
      method: 'GET',
      path: /^\/endpoint$/,
      handler(req) {
        const q = parseInput(z.object({ endpointType: z.string().optional() }), req.query);
        const type = q.endpointType ?? 'iot:Data';
        if (!(ENDPOINT_TYPES as readonly string[]).includes(type)) {
          throw invalid(`endpointType: Endpoint type ${type} not recognized.`);
        }
        return json({ endpointAddress: deps.endpointHost });
      },
    },
  ];

  async function listCertificates(
    all: CertificateRecord[],
    q: { pageSize?: number | undefined; marker?: string | undefined; isAscendingOrder?: boolean | undefined },
  ): Promise<ServiceResponse> {
    // Ordered by creation date, newest first unless ascendingOrder is true.
    const ascending = q.isAscendingOrder === true;
    const key = (c: CertificateRecord) => `${c.creationDate}\0${c.certificateId}`;
    const sorted = [...all].sort(byName(key));
    if (!ascending) sorted.reverse();
    const page = paginate(sorted, key, q.marker, q.pageSize ?? 25, !ascending, 'marker');
    const certificates = [];
    for (const c of page.items) {
      certificates.push({
        certificateArn: c.certificateArn,
        certificateId: c.certificateId,
        status: c.status,
        certificateMode: await certificateMode(c),
        creationDate: epoch(c.creationDate),
      });
    }
    return json({ certificates, ...(page.next ? { nextMarker: page.next } : {}) });
  }

  function listPolicies(
    all: PolicyRecord[],
    q: { pageSize?: number | undefined; marker?: string | undefined; isAscendingOrder?: boolean | undefined },
  ): ServiceResponse {
    // Ordered by creation, newest first unless ascendingOrder is true.
    const ascending = q.isAscendingOrder === true;
    const key = (p: PolicyRecord) => `${p.creationDate}\0${p.policyName}`;
    const sorted = [...all].sort(byName(key));
    if (!ascending) sorted.reverse();
    const page = paginate(sorted, key, q.marker, q.pageSize ?? 25, !ascending, 'marker');
    return json({
      policies: page.items.map((p) => ({ policyName: p.policyName, policyArn: p.policyArn })),
      ...(page.next ? { nextMarker: page.next } : {}),
    });
  }
}
