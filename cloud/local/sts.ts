/**
 * AWS STS (`@aws-sdk/client-sts`, awsQuery protocol, signing name `sts`): AssumeRole and
 * GetCallerIdentity, answered in STS's XML.
 *
 * Documented behaviour this follows (STS API Reference unless noted):
 * - AssumeRole parameters: RoleArn (20-2048), RoleSessionName (2-64 of [\w+=,.@-]), DurationSeconds
 *   (900-43200, 3600 by default, at most the role's MaxSessionDuration, at most an hour when the caller
 *   is itself a role session: role chaining), Policy (an inline session policy, at most 2048 characters
 *   of tab, LF, CR and U+0020-U+00FF), Tags (at most 50; keys 1-128, values 0-256 characters),
 *   TransitiveTagKeys, ExternalId (2-1224), MinimumSessionTokenSize (at most 4096).
 * - Errors: ValidationError for a parameter outside its constraints, MalformedPolicyDocument,
 *   PackedPolicyTooLarge (the session policy and tags, compressed, exceed the packed limit; the response's
 *   PackedPolicySize gives the percentage used), RegionDisabledException, AccessDenied.
 * - "You cannot call AssumeRole by using AWS account root user credentials": AccessDenied.
 * - GetCallerIdentity needs no permission; it answers UserId, Account and Arn of the caller.
 *
 * AWS does not document how it packs session policies and tags; here the packed form is the
 * DEFLATE-compressed policy (whitespace removed) and tags, against a budget of
 * {@link PACKED_POLICY_BUDGET_BYTES} bytes.
 */
import { deflateRawSync } from 'node:zlib';
import type { Logger } from 'pino';
import type { CredentialRecord } from './credentials.js';
import { type QueryParams, queryErrorResponse, readQueryAction } from './http/query.js';
import { ServiceError, type ServiceRequest, type ServiceResponse, type ServiceRoute } from './http/server.js';
import {
  DEFAULT_SESSION_DURATION,
  type Iam,
  MAX_MAX_SESSION_DURATION,
  MIN_SESSION_DURATION,
  parseSessionPolicy,
  ROLE_CHAINING_MAX_DURATION,
} from './iam.js';
import { PolicyDocumentError } from './policy.js';

export const STS_VERSION = '2011-06-15';
const XMLNS = `https://sts.amazonaws.com/doc/${STS_VERSION}/`;

/** The packed-size budget of session policies and tags (see the module comment), bytes. */
export const PACKED_POLICY_BUDGET_BYTES = 1024;
/** AssumeRole Policy: plaintext limit, characters. */
export const MAX_SESSION_POLICY_CHARS = 2048;
const MAX_TAGS = 50;
const MAX_TOKEN_SIZE = 4096;

/** STS operations the local cloud does not implement (answered with a clear error, not "unknown"). */
const NOT_IMPLEMENTED = new Set([
  'AssumeRoleWithSAML',
  'AssumeRoleWithWebIdentity',
  'AssumeRoot',
  'DecodeAuthorizationMessage',
  'GetAccessKeyInfo',
  'GetDelegatedAccessToken',
  'GetFederationToken',
  'GetSessionToken',
  'GetWebIdentityToken',
]);

export interface StsDeps {
  iam: Iam;
  /** The region STS is active in (the local cloud's); requests scoped to another are refused. */
  region: string;
  logger?: Logger;
}

type Params = QueryParams;

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function xmlResponse(operation: string, result: string, requestId: string): ServiceResponse {
  return {
    status: 200,
    headers: { 'content-type': 'text/xml' },
    body: `<${operation}Response xmlns="${XMLNS}"><${operation}Result>${result}</${operation}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${operation}Response>`,
  };
}

const validationError = (message: string) => new ServiceError(400, 'ValidationError', message);

/** `Name.member.N` (or `Name.member.N.Field`) entries of a query-protocol list, in order. */
function listParam(params: Params, name: string, field?: string): string[] {
  const out: string[] = [];
  for (let i = 1; ; i++) {
    const v = params.get(`${name}.member.${i}${field ? `.${field}` : ''}`);
    if (v === undefined) return out;
    out.push(v);
  }
}

/** Collects constraint violations and answers them the way AWS's request validation does. */
class Violations {
  private readonly list: string[] = [];
  add(value: string | undefined, at: string, constraint: string): void {
    const shown = value === undefined ? 'null' : `'${value}'`;
    this.list.push(`Value ${shown} at '${at}' failed to satisfy constraint: Member must ${constraint}`);
  }
  length(value: string | undefined, at: string, min: number, max: number): void {
    if (value === undefined) return;
    if (value.length < min) this.add(value, at, `have length greater than or equal to ${min}`);
    else if (value.length > max) this.add(value, at, `have length less than or equal to ${max}`);
  }
  pattern(value: string | undefined, at: string, re: RegExp, shown: string): void {
    if (value !== undefined && !re.test(value))
      this.add(value, at, `satisfy regular expression pattern: ${shown}`);
  }
  throwIfAny(): void {
    const n = this.list.length;
    if (n === 0) return;
    throw validationError(`${n} validation error${n > 1 ? 's' : ''} detected: ${this.list.join('; ')}`);
  }
}

const SESSION_POLICY_CHARS = /^[\t\n\r\u0020-\u00ff]+$/;
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
const EXTERNAL_ID = /^[\w+=,.@:/-]*$/;
const ROLE_ARN_SHAPE = /^arn:[\w-]+:[\w-]+:[\w-]*:\d{0,12}:.+$/;

/** The packed size of a session policy and tags, as a percentage of the budget. */
export function packedPolicyPercent(
  policy: string | undefined,
  tags: readonly { key: string; value: string }[],
): number {
  const minified = policy === undefined ? '' : JSON.stringify(JSON.parse(policy));
  const text = minified + tags.map((t) => `${t.key}=${t.value}`).join('\u0000');
  if (text === '') return 0;
  const packed = deflateRawSync(Buffer.from(text, 'utf8')).length;
  return Math.ceil((packed * 100) / PACKED_POLICY_BUDGET_BYTES);
}

function integerParam(v: Violations, params: Params, name: string, at: string): number | undefined {
  const raw = params.get(name);
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw)) {
    v.add(raw, at, 'be an integer');
    return undefined;
  }
  return Number(raw);
}

export function stsRoute(deps: StsDeps): ServiceRoute {
  const { iam } = deps;
  const log = deps.logger;

  const accessDenied = (caller: CredentialRecord, roleArn: string) =>
    new ServiceError(
      403,
      'AccessDenied',
      `User: ${caller.principalArn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
    );

  function assumeRole(req: ServiceRequest, params: Params): ServiceResponse {
    const caller = req.caller;
    const v = new Violations();
    const roleArn = params.get('RoleArn');
    const sessionName = params.get('RoleSessionName');
    const policy = params.get('Policy');
    const externalId = params.get('ExternalId');
    if (roleArn === undefined) v.add(undefined, 'roleArn', 'not be null');
    v.length(roleArn, 'roleArn', 20, 2048);
    if (sessionName === undefined) v.add(undefined, 'roleSessionName', 'not be null');
    v.length(sessionName, 'roleSessionName', 2, 64);
    v.pattern(sessionName, 'roleSessionName', /^[\w+=,.@-]*$/, '[\\w+=,.@-]*');
    v.length(policy, 'policy', 1, MAX_SESSION_POLICY_CHARS);
    v.pattern(policy, 'policy', SESSION_POLICY_CHARS, '[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+');
    const duration = integerParam(v, params, 'DurationSeconds', 'durationSeconds');
    if (duration !== undefined && duration < MIN_SESSION_DURATION)
      v.add(
        String(duration),
        'durationSeconds',
        `have value greater than or equal to ${MIN_SESSION_DURATION}`,
      );
    if (duration !== undefined && duration > MAX_MAX_SESSION_DURATION)
      v.add(
        String(duration),
        'durationSeconds',
        `have value less than or equal to ${MAX_MAX_SESSION_DURATION}`,
      );
    v.length(externalId, 'externalId', 2, 1224);
    v.pattern(externalId, 'externalId', EXTERNAL_ID, '[\\w+=,.@:\\/-]*');
    const tagKeys = listParam(params, 'Tags', 'Key');
    const tagValues = listParam(params, 'Tags', 'Value');
    if (tagKeys.length > MAX_TAGS)
      v.add(`[${tagKeys.join(', ')}]`, 'tags', `have length less than or equal to ${MAX_TAGS}`);
    const tags = tagKeys.map((key, i) => ({ key, value: tagValues[i] ?? '' }));
    tags.forEach((t, i) => {
      v.length(t.key, `tags.${i + 1}.member.key`, 1, 128);
      v.pattern(t.key, `tags.${i + 1}.member.key`, TAG_KEY, '[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+');
      v.length(t.value, `tags.${i + 1}.member.value`, 0, 256);
      v.pattern(t.value, `tags.${i + 1}.member.value`, TAG_VALUE, '[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*');
    });
    const transitive = listParam(params, 'TransitiveTagKeys');
    if (transitive.length > MAX_TAGS)
      v.add(
        `[${transitive.join(', ')}]`,
        'transitiveTagKeys',
        `have length less than or equal to ${MAX_TAGS}`,
      );
    const minimumTokenSize = integerParam(v, params, 'MinimumSessionTokenSize', 'minimumSessionTokenSize');
    if (minimumTokenSize !== undefined && minimumTokenSize < 0)
      v.add(String(minimumTokenSize), 'minimumSessionTokenSize', 'have value greater than or equal to 0');
    if (minimumTokenSize !== undefined && minimumTokenSize > MAX_TOKEN_SIZE)
      v.add(
        String(minimumTokenSize),
        'minimumSessionTokenSize',
        `have value less than or equal to ${MAX_TOKEN_SIZE}`,
      );
    v.throwIfAny();
    // After the constraint checks, RoleArn and RoleSessionName are present.
    const arn = roleArn!;
    const name = sessionName!;

    if (!ROLE_ARN_SHAPE.test(arn)) throw validationError('Request ARN is invalid');
    const lowerKeys = new Set<string>();
    for (const t of tags) {
      const k = t.key.toLowerCase();
      if (lowerKeys.has(k))
        throw validationError(`Duplicate tag keys found. Please note that Tag keys are case insensitive.`);
      lowerKeys.add(k);
    }
    for (const k of transitive) {
      if (!lowerKeys.has(k.toLowerCase()))
        throw validationError(
          `The specified transitive tag key ${k} must be included in the requested tags.`,
        );
    }
    unsupported(
      params,
      'PolicyArns.member.1.arn',
      'PolicyArns',
      'the local cloud has no managed IAM policies; pass the session policy inline in Policy',
    );
    unsupported(params, 'SerialNumber', 'SerialNumber', 'the local cloud has no MFA devices');
    unsupported(params, 'TokenCode', 'TokenCode', 'the local cloud has no MFA devices');
    unsupported(params, 'SourceIdentity', 'SourceIdentity', 'source identities are not emulated');
    unsupported(
      params,
      'ProvidedContexts.member.1.ProviderArn',
      'ProvidedContexts',
      'trusted context providers are not emulated',
    );

    if (policy !== undefined) {
      try {
        parseSessionPolicy(policy);
      } catch (err) {
        if (err instanceof PolicyDocumentError)
          throw new ServiceError(400, 'MalformedPolicyDocument', err.message);
        throw err;
      }
    }
    const packed = policy !== undefined || tags.length > 0 ? packedPolicyPercent(policy, tags) : undefined;
    if (packed !== undefined && packed > 100) {
      throw new ServiceError(
        400,
        'PackedPolicyTooLarge',
        policy !== undefined
          ? `Packed policy consumes ${packed}% of allotted space, please use smaller policy.`
          : `Packed size of session tags consumes ${packed}% of allotted space.`,
      );
    }

    if (iam.isRoot(caller)) {
      throw new ServiceError(403, 'AccessDenied', 'Roles may not be assumed by root accounts.');
    }
    const context: Record<string, string> = { 'sts:RoleSessionName': name };
    if (externalId !== undefined) context['sts:ExternalId'] = externalId;
    const decision = iam.authorizeAssumeRole(caller, arn, context);
    if (!decision.allowed) {
      log?.info({ caller: caller.principalArn, roleArn: arn, reason: decision.reason }, 'AssumeRole denied');
      throw accessDenied(caller, arn);
    }
    const role = decision.role;
    const seconds = duration ?? DEFAULT_SESSION_DURATION;
    if (seconds > role.maxSessionDuration)
      throw validationError(
        'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.',
      );
    if (caller.session && seconds > ROLE_CHAINING_MAX_DURATION) {
      throw validationError(
        'The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.',
      );
    }

    const record = iam.issueSession(role, name, seconds, {
      issuedBy: caller.principalArn,
      ...(policy === undefined ? {} : { sessionPolicy: policy }),
      ...(minimumTokenSize ? { minimumTokenSize } : {}),
    });
    const result =
      `<Credentials><AccessKeyId>${record.accessKeyId}</AccessKeyId>` +
      `<SecretAccessKey>${xmlEscape(record.secretAccessKey)}</SecretAccessKey>` +
      `<SessionToken>${xmlEscape(record.sessionToken ?? '')}</SessionToken>` +
      `<Expiration>${record.expiration}</Expiration></Credentials>` +
      `<AssumedRoleUser><AssumedRoleId>${xmlEscape(`${role.roleId}:${name}`)}</AssumedRoleId>` +
      `<Arn>${xmlEscape(record.principalArn)}</Arn></AssumedRoleUser>` +
      (packed === undefined ? '' : `<PackedPolicySize>${packed}</PackedPolicySize>`);
    return xmlResponse('AssumeRole', result, req.requestId);
  }

  function getCallerIdentity(req: ServiceRequest): ServiceResponse {
    const id = iam.callerIdentity(req.caller);
    return xmlResponse(
      'GetCallerIdentity',
      `<Arn>${xmlEscape(id.arn)}</Arn><UserId>${xmlEscape(id.userId)}</UserId><Account>${id.account}</Account>`,
      req.requestId,
    );
  }

  return {
    signingName: 'sts',
    protocol: 'query',
    uriEscapePath: true,
    errorResponse: queryErrorResponse,
    async handle(req) {
      const { params, action } = readQueryAction(req, 'STS', STS_VERSION);
      if (req.region !== deps.region) {
        throw new ServiceError(
          403,
          'RegionDisabledException',
          `STS is not activated in this region for account:${iam.accountId}. Your account administrator can activate STS in this region using the IAM Console.`,
        );
      }
      switch (action) {
        case 'AssumeRole':
          return assumeRole(req, params);
        case 'GetCallerIdentity':
          return getCallerIdentity(req);
        default:
          if (NOT_IMPLEMENTED.has(action)) {
            throw new ServiceError(
              400,
              'InvalidAction',
              `${action} is not implemented by the local cloud's STS (it implements AssumeRole and GetCallerIdentity)`,
            );
          }
          throw new ServiceError(
            400,
            'InvalidAction',
            `Could not find operation ${action} for version ${STS_VERSION}`,
          );
      }
    },
  };
}

function unsupported(params: Params, key: string, name: string, why: string): void {
  if (params.has(key)) throw validationError(`${name} is not supported by the local cloud: ${why}.`);
}
