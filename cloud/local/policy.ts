/**
 * The AWS IoT Core policy engine of the local cloud: pure functions, no I/O.
 *
 * - `parsePolicy` validates a policy document (zod) and pre-compiles its patterns;
 * - `evaluate` decides one request (action + resource ARN + connection context) against the
 *   policies attached to a principal, with IAM's evaluation logic (explicit deny > allow >
 *   implicit deny);
 * - MQTT topic helpers: validation of topic names and filters (MQTT 3.1.1), MQTT filter matching,
 *   and IoT Core's topic quotas.
 *
 * The local IAM (`iam.ts`) evaluates role policies, session policies and the Action/Condition part
 * of role trust policies with the same engine, against an {@link IamRequestContext} (no MQTT
 * connection: only region, account, time and the request's condition keys).
 *
 * Documented behaviour this follows (AWS IoT Core Developer Guide unless noted):
 * - "AWS IoT Core policies": policies follow IAM conventions and IAM's evaluation logic; everything
 *   is implicitly denied, an explicit allow grants, an explicit deny in any policy wins.
 * - "Using wildcard characters in MQTT and AWS IoT Core policies" / "AWS IoT Core policy variables":
 *   in a policy `*` is any run of characters and `?` exactly one; MQTT `+` and `#` are literal.
 * - "Basic AWS IoT Core policy variables", "Thing policy variables", "X.509 Certificate AWS IoT Core
 *   policy variables": the variables and their values; a variable that cannot be resolved does not
 *   grant access ("this variable won't be resolved and will result in an access denied error"); a
 *   certificate attribute holding a wildcard character, longer than 1024 characters or indexed past
 *   its last value is not substituted.
 * - "IAM JSON policy elements: Condition operators": operators, `...IfExists`, `Null`, and the rule
 *   that a missing key makes a condition false, except for negated operators where it is true.
 * - "IAM policy elements: Variables and tags": `${*}`, `${?}`, `${$}` stand for the literal
 *   characters; variables are only substituted in documents whose Version is 2012-10-17.
 * - "AWS IoT Core message broker and protocol limits and quotas": topics are at most 256 bytes of
 *   UTF-8 and 7 forward slashes, not counting the `$aws/rules/rule-name/` prefix of Basic Ingest.
 */
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import type { IotPolicyDocument } from '../rules/policies.js';
import { LocalCloudError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** An IoT policy action; the broker checks the first seven, any other `service:Action` string can appear. */
export type IotAction =
  | 'iot:Connect'
  | 'iot:Publish'
  | 'iot:Subscribe'
  | 'iot:Receive'
  | 'iot:RetainPublish'
  | 'iot:GetRetainedMessage'
  | 'iot:ListRetainedMessages'
  // `string & {}` keeps editor completion for the literals above
  | (string & {});

/** Values of one X.509 name (subject, issuer, or an alternative name), keyed by the policy variable suffix. */
export type CertificateNameAttributes = Readonly<Record<string, string | readonly string[]>>;

/**
 * The certificate attributes that back the `iot:Certificate.*` variables. Keys are the suffixes the
 * docs use (`CommonName`, `Organization`, `OrganizationalUnit`, `Country`, `State`, `SerialNumber`,
 * `DistinguishedNameQualifier`, `Title`, `Surname`, `GivenName`, `Initials`, `Pseudonym`,
 * `GenerationQualifier`; for alternative names `RFC822Name`, `DNSName`, `DirectoryName`,
 * `UniformResourceIdentifier`, `IPAddress`), matched case-insensitively.
 */
export interface CertificateInfo {
  subject?: CertificateNameAttributes;
  issuer?: CertificateNameAttributes;
  subjectAlternativeName?: CertificateNameAttributes;
  issuerAlternativeName?: CertificateNameAttributes;
  /** The certificate's serial number (`iot:Certificate.SerialNumber`). */
  serialNumber?: string;
}

/** What the broker knows about the connection a request comes from. */
export interface PolicyContext {
  region: string;
  accountId: string;
  /** `iot:ClientId`. */
  clientId: string;
  /** `iot:CertificateId`. */
  certificateId?: string;
  /**
   * `iot:Connection.Thing.ThingName`: the thing resolved for this connection, per "Thing policy
   * variables": the name of a thing attached to the connection's certificate whose name equals the
   * client id; undefined otherwise. The thing-type and attribute variables resolve only when it is set.
   */
  thingName?: string;
  /** `iot:Connection.Thing.IsAttached`. */
  isAttached: boolean;
  /** `iot:Connection.Thing.Attributes[name]`. */
  thingAttributes?: Readonly<Record<string, string>>;
  /** `iot:Connection.Thing.ThingTypeName`. */
  thingTypeName?: string;
  /** `aws:SourceIp` (an IPv4-mapped IPv6 address is read as the IPv4 address). */
  sourceIp?: string;
  /** `iot:DomainName`. */
  domainName?: string;
  /** `iot:Certificate.*`. */
  certificate?: CertificateInfo;
  /** `iot:ConnectAttributes` (multi-valued, e.g. `PersistentConnect`, `LastWill`); only meaningful for iot:Connect. */
  connectAttributes?: readonly string[];
  /** `iot:LastWillTopic` is the ARN of this topic; only meaningful for iot:Connect. */
  lastWillTopic?: string;
  /** `aws:CurrentTime` and `aws:EpochTime`. */
  now?: Date;
  /** Any other condition key (matched case-insensitively), single- or multi-valued. */
  extraKeys?: Readonly<Record<string, string | readonly string[]>>;
}

/**
 * What an IAM policy (a role's identity-based policy or a session policy) is evaluated against: a
 * request that comes from signed credentials rather than an MQTT connection, so only region, account,
 * time, source address and the request's condition keys (`extraKeys`, e.g. `s3:prefix`) exist.
 */
export interface IamRequestContext {
  region: string;
  accountId: string;
  now?: Date;
  sourceIp?: string;
  extraKeys?: Readonly<Record<string, string | readonly string[]>>;
}

/** Either context: an IoT connection's (`PolicyContext`) or an IAM request's (`IamRequestContext`). */
export type EvaluationContext = IamRequestContext & Partial<PolicyContext>;

/** Errors of the policy engine. */
export class PolicyError extends LocalCloudError {}

/** A policy document is invalid; the message names the offending field, e.g. `Statement[1].Effect: ...`. */
export class PolicyDocumentError extends PolicyError {}

export type Decision = 'allow' | 'explicit-deny' | 'implicit-deny';

/** A decision and, unless implicit, the statement that made it. */
export interface DetailedDecision {
  decision: Decision;
  policyName?: string;
  /** Zero-based index of the statement in its policy's `Statement` array. */
  statementIndex?: number;
  sid?: string;
}

/** The document shape `parsePolicy` accepts: IAM-style, as AWS IoT Core takes it. */
export interface IotPolicyDocumentInput {
  Version?: string;
  Id?: string;
  Statement: IotPolicyStatementInput | IotPolicyStatementInput[];
}

export interface IotPolicyStatementInput {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, ConditionValueInput | ConditionValueInput[]>>;
}

type ConditionValueInput = string | number | boolean;

// ---------------------------------------------------------------------------------------------
// Compiled forms
// ---------------------------------------------------------------------------------------------

/** One unit of a compiled pattern: a literal character (code point) or a wildcard. */
type Unit = string | typeof STAR | typeof QMARK;
const STAR = 0;
const QMARK = 1;

type Part = { readonly lit: readonly Unit[] } | { readonly variable: string };

/** A pattern (resource, action or condition value) split into literal runs and policy variables. */
export interface CompiledPattern {
  readonly source: string;
  readonly parts: readonly Part[];
  readonly hasVariables: boolean;
}

type Family = 'string' | 'numeric' | 'date' | 'bool' | 'ip' | 'arn' | 'null' | 'binary';
type Comparison = 'eq' | 'eqi' | 'like' | 'lt' | 'le' | 'gt' | 'ge';

export interface CompiledCondition {
  /** The operator as written, e.g. `ForAllValues:StringLike` or `BoolIfExists`. */
  readonly operator: string;
  readonly key: string;
  readonly family: Family;
  readonly comparison: Comparison;
  readonly negated: boolean;
  readonly ifExists: boolean;
  readonly setOperator?: 'ForAllValues' | 'ForAnyValue';
  readonly values: readonly CompiledPattern[];
  /** Pre-built address list for IpAddress / NotIpAddress. */
  readonly ipList?: BlockList;
}

export interface CompiledStatement {
  readonly index: number;
  readonly sid?: string;
  readonly effect: 'Allow' | 'Deny';
  readonly notAction: boolean;
  readonly actions: readonly CompiledPattern[];
  readonly notResource: boolean;
  readonly resources: readonly CompiledPattern[];
  readonly conditions: readonly CompiledCondition[];
}

export interface ParsedPolicy {
  readonly name: string;
  readonly version: string | undefined;
  /** The validated document, with single values normalized to arrays. */
  readonly document: IotPolicyDocumentInput;
  readonly statements: readonly CompiledStatement[];
}

// ---------------------------------------------------------------------------------------------
// ARNs
// ---------------------------------------------------------------------------------------------

type ArnContext = Pick<PolicyContext, 'region' | 'accountId'>;

const arn = (ctx: ArnContext, kind: string, name: string) =>
  `arn:aws:iot:${ctx.region}:${ctx.accountId}:${kind}/${name}`;

/** `arn:aws:iot:REGION:ACCOUNT:topic/TOPIC`: the resource of iot:Publish, iot:Receive, iot:RetainPublish, iot:GetRetainedMessage. */
export function topicArn(ctx: ArnContext, topic: string): string {
  return arn(ctx, 'topic', topic);
}

/** `arn:aws:iot:REGION:ACCOUNT:topicfilter/FILTER`: the resource of iot:Subscribe. */
export function topicFilterArn(ctx: ArnContext, filter: string): string {
  return arn(ctx, 'topicfilter', filter);
}

/** `arn:aws:iot:REGION:ACCOUNT:client/CLIENTID`: the resource of iot:Connect. */
export function clientArn(ctx: ArnContext, clientId: string): string {
  return arn(ctx, 'client', clientId);
}

/** `arn:aws:iot:REGION:ACCOUNT:thing/THING[/SHADOW]`: the resource of the shadow actions. */
export function thingArn(ctx: ArnContext, thingName: string, shadowName?: string): string {
  return arn(ctx, 'thing', shadowName === undefined ? thingName : `${thingName}/${shadowName}`);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

const VARIABLE_VERSION = '2012-10-17';
const KNOWN_VERSIONS = [VARIABLE_VERSION, '2008-10-17'] as const;

const toArray = (value: unknown) => (typeof value === 'string' ? [value] : value);

const ACTION_RE = /^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+)$/;
const actionList = z.preprocess(
  toArray,
  z
    .array(
      z
        .string()
        .regex(ACTION_RE, 'must be "*" or "service:Action" (wildcards * and ? allowed in the action name)'),
    )
    .min(1, 'must name at least one action'),
);
const resourceList = z.preprocess(
  toArray,
  z
    .array(
      z
        .string()
        .min(1)
        .refine((r) => r === '*' || r.startsWith('arn:'), 'must be "*" or an ARN'),
    )
    .min(1, 'must name at least one resource'),
);
const conditionScalar = z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v));
const conditionValues = z.preprocess((v) => (Array.isArray(v) ? v : [v]), z.array(conditionScalar));
const conditionBlock = z.record(z.string(), z.record(z.string(), conditionValues));

const statementSchema = z.strictObject({
  Sid: z.string().optional(),
  Effect: z.enum(['Allow', 'Deny']),
  Action: actionList.optional(),
  NotAction: actionList.optional(),
  Resource: resourceList.optional(),
  NotResource: resourceList.optional(),
  Condition: conditionBlock.optional(),
});

const documentSchema = z.strictObject({
  Version: z.enum(KNOWN_VERSIONS).optional(),
  Id: z.string().optional(),
  Statement: z.preprocess(
    (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? [v] : v),
    z.array(statementSchema).min(1, 'must contain at least one statement'),
  ),
});

type ParsedDocument = z.output<typeof documentSchema>;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out === '' ? '(document)' : out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const base = issue.path.length ? `${formatPath(issue.path)}.` : '';
    return issue.keys.map((k) => `${base}${k}: is not a policy element`).join('; ');
  }
  return `${formatPath(issue.path)}: ${issue.message}`;
}

/**
 * Validates an IoT policy document (JSON text or an already-parsed object) and compiles it.
 * @throws PolicyDocumentError naming the offending field.
 */
export function parsePolicy(name: string, document: string | unknown): ParsedPolicy {
  let raw: unknown = document;
  if (typeof document === 'string') {
    try {
      raw = JSON.parse(document);
    } catch (err) {
      throw new PolicyDocumentError(`policy ${name}: (document): not valid JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const result = documentSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 3).map(describeIssue).join('; ');
    throw new PolicyDocumentError(`policy ${name}: ${issues}`);
  }
  const doc = result.data;
  const withVariables = doc.Version === VARIABLE_VERSION;
  const statements = doc.Statement.map((st, index) => compileStatement(name, st, index, withVariables));
  return { name, version: doc.Version, document: doc as IotPolicyDocumentInput, statements };
}

/** Convenience: parses one of the project's own typed documents (see cloud/rules/policies.ts). */
export function parsePolicyDocument(name: string, document: IotPolicyDocument): ParsedPolicy {
  return parsePolicy(name, document);
}

function compileStatement(
  policyName: string,
  st: ParsedDocument['Statement'][number],
  index: number,
  withVariables: boolean,
): CompiledStatement {
  const where = `policy ${policyName}: Statement[${index}]`;
  if ((st.Action === undefined) === (st.NotAction === undefined)) {
    throw new PolicyDocumentError(`${where}.Action: a statement needs exactly one of Action or NotAction`);
  }
  if ((st.Resource === undefined) === (st.NotResource === undefined)) {
    throw new PolicyDocumentError(
      `${where}.Resource: a statement needs exactly one of Resource or NotResource`,
    );
  }
  const actions = (st.Action ?? st.NotAction ?? []).map((a) =>
    compilePattern(a.toLowerCase(), { variables: false, wildcards: true }),
  );
  const resources = (st.Resource ?? st.NotResource ?? []).map((r) =>
    compilePattern(r, { variables: withVariables, wildcards: true }),
  );
  const conditions: CompiledCondition[] = [];
  for (const [operator, keys] of Object.entries(st.Condition ?? {})) {
    for (const [key, values] of Object.entries(keys)) {
      conditions.push(
        compileCondition(`${where}.Condition.${operator}.${key}`, operator, key, values, withVariables),
      );
    }
  }
  return {
    index,
    ...(st.Sid === undefined ? {} : { sid: st.Sid }),
    effect: st.Effect,
    notAction: st.Action === undefined,
    actions,
    notResource: st.Resource === undefined,
    resources,
    conditions,
  };
}

const OPERATORS: Readonly<Record<string, { family: Family; comparison: Comparison; negated: boolean }>> = {
  StringEquals: { family: 'string', comparison: 'eq', negated: false },
  StringNotEquals: { family: 'string', comparison: 'eq', negated: true },
  StringEqualsIgnoreCase: { family: 'string', comparison: 'eqi', negated: false },
  StringNotEqualsIgnoreCase: { family: 'string', comparison: 'eqi', negated: true },
  StringLike: { family: 'string', comparison: 'like', negated: false },
  StringNotLike: { family: 'string', comparison: 'like', negated: true },
  NumericEquals: { family: 'numeric', comparison: 'eq', negated: false },
  NumericNotEquals: { family: 'numeric', comparison: 'eq', negated: true },
  NumericLessThan: { family: 'numeric', comparison: 'lt', negated: false },
  NumericLessThanEquals: { family: 'numeric', comparison: 'le', negated: false },
  NumericGreaterThan: { family: 'numeric', comparison: 'gt', negated: false },
  NumericGreaterThanEquals: { family: 'numeric', comparison: 'ge', negated: false },
  DateEquals: { family: 'date', comparison: 'eq', negated: false },
  DateNotEquals: { family: 'date', comparison: 'eq', negated: true },
  DateLessThan: { family: 'date', comparison: 'lt', negated: false },
  DateLessThanEquals: { family: 'date', comparison: 'le', negated: false },
  DateGreaterThan: { family: 'date', comparison: 'gt', negated: false },
  DateGreaterThanEquals: { family: 'date', comparison: 'ge', negated: false },
  Bool: { family: 'bool', comparison: 'eq', negated: false },
  BinaryEquals: { family: 'binary', comparison: 'eq', negated: false },
  IpAddress: { family: 'ip', comparison: 'eq', negated: false },
  NotIpAddress: { family: 'ip', comparison: 'eq', negated: true },
  ArnEquals: { family: 'arn', comparison: 'like', negated: false },
  ArnLike: { family: 'arn', comparison: 'like', negated: false },
  ArnNotEquals: { family: 'arn', comparison: 'like', negated: true },
  ArnNotLike: { family: 'arn', comparison: 'like', negated: true },
  Null: { family: 'null', comparison: 'eq', negated: false },
};

function compileCondition(
  where: string,
  operator: string,
  key: string,
  values: readonly string[],
  withVariables: boolean,
): CompiledCondition {
  let rest = operator;
  let setOperator: 'ForAllValues' | 'ForAnyValue' | undefined;
  const setMatch = /^(ForAllValues|ForAnyValue):(.+)$/.exec(rest);
  if (setMatch) {
    setOperator = setMatch[1] as 'ForAllValues' | 'ForAnyValue';
    rest = setMatch[2]!;
  }
  let ifExists = false;
  if (rest.endsWith('IfExists') && rest !== 'IfExists') {
    ifExists = true;
    rest = rest.slice(0, -'IfExists'.length);
  }
  const op = OPERATORS[rest];
  if (op === undefined || (op.family === 'null' && (ifExists || setOperator !== undefined))) {
    throw new PolicyDocumentError(`${where}: unknown condition operator ${operator}`);
  }
  if (values.length === 0 && setOperator === undefined) {
    throw new PolicyDocumentError(`${where}: needs at least one value`);
  }
  const substitutes = withVariables && (op.family === 'string' || op.family === 'arn');
  const wildcards = op.comparison === 'like';
  const compiled = values.map((v) => compilePattern(v, { variables: substitutes, wildcards }));
  let ipList: BlockList | undefined;
  if (op.family === 'ip') ipList = compileIpList(where, values);
  if (op.family === 'numeric') {
    for (const v of values) {
      if (!Number.isFinite(Number(v)) || v.trim() === '')
        throw new PolicyDocumentError(`${where}: ${v} is not a number`);
    }
  }
  if (op.family === 'date') {
    for (const v of values) {
      if (parseDate(v) === undefined) throw new PolicyDocumentError(`${where}: ${v} is not a date`);
    }
  }
  if (op.family === 'bool' || op.family === 'null') {
    for (const v of values) {
      if (!/^(true|false)$/i.test(v)) throw new PolicyDocumentError(`${where}: ${v} is not true or false`);
    }
  }
  return {
    operator,
    key,
    family: op.family,
    comparison: op.comparison,
    negated: op.negated,
    ifExists,
    ...(setOperator === undefined ? {} : { setOperator }),
    values: compiled,
    ...(ipList === undefined ? {} : { ipList }),
  };
}

function compileIpList(where: string, values: readonly string[]): BlockList {
  const list = new BlockList();
  for (const value of values) {
    const [address = '', prefixText, ...extra] = value.split('/');
    const family = isIP(address);
    const maxPrefix = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
    if (
      family === 0 ||
      extra.length > 0 ||
      !Number.isInteger(prefix) ||
      prefix < 0 ||
      prefix > maxPrefix ||
      (prefixText !== undefined && !/^\d+$/.test(prefixText))
    ) {
      throw new PolicyDocumentError(`${where}: ${value} is not an IP address or CIDR block`);
    }
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/**
 * Splits a pattern into literal runs and `${variable}` references. With `wildcards`, `*` and `?` in
 * the literal text are wildcards; `${*}`, `${?}` and `${$}` always stand for the literal character.
 * With `variables` off (documents whose Version is not 2012-10-17), `${...}` is plain text.
 */
function compilePattern(source: string, opts: { variables: boolean; wildcards: boolean }): CompiledPattern {
  const parts: Part[] = [];
  let lit: Unit[] = [];
  let hasVariables = false;
  const chars = Array.from(source);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (opts.variables && c === '$' && chars[i + 1] === '{') {
      const close = chars.indexOf('}', i + 2);
      if (close !== -1) {
        const name = chars.slice(i + 2, close).join('');
        i = close;
        if (name === '*' || name === '?' || name === '$') {
          lit.push(name);
        } else {
          if (lit.length) parts.push({ lit });
          lit = [];
          parts.push({ variable: name });
          hasVariables = true;
        }
        continue;
      }
    }
    if (opts.wildcards && c === '*') lit.push(STAR);
    else if (opts.wildcards && c === '?') lit.push(QMARK);
    else lit.push(c);
  }
  if (lit.length || parts.length === 0) parts.push({ lit });
  return { source, parts, hasVariables };
}

// ---------------------------------------------------------------------------------------------
// Context keys and variables
// ---------------------------------------------------------------------------------------------

interface KeyValues {
  values: readonly string[];
  /** Values taken from the client certificate: not substituted when they hold a wildcard character. */
  fromCertificate: boolean;
}

const CERT_NAME_RE = /^iot:certificate\.(subject|issuer)\.(alternativename\.)?([a-z0-9]+)(?:\.(\d+|list))?$/i;
const THING_ATTRIBUTE_RE = /^iot:connection\.thing\.attributes\[(.+)\]$/i;
/** "X.509 Certificate AWS IoT Core policy variables": array fields keep five items, strings 1024 characters. */
const CERT_MAX_ITEMS = 5;
const CERT_MAX_CHARS = 1024;

const single = (value: string | undefined): KeyValues | undefined =>
  value === undefined ? undefined : { values: [value], fromCertificate: false };

function lookupKey(name: string, ctx: EvaluationContext): KeyValues | undefined {
  const key = name.toLowerCase();
  switch (key) {
    case 'iot:clientid':
      return single(ctx.clientId);
    case 'aws:sourceip':
      return single(ctx.sourceIp);
    case 'iot:domainname':
      return single(ctx.domainName);
    case 'iot:certificateid':
      return single(ctx.certificateId);
    case 'iot:connection.thing.thingname':
      return single(ctx.thingName);
    case 'iot:connection.thing.thingtypename':
      return single(ctx.thingName === undefined ? undefined : ctx.thingTypeName);
    case 'iot:connection.thing.isattached':
      return single(ctx.isAttached === undefined ? undefined : String(ctx.isAttached));
    case 'iot:connectattributes':
      return ctx.connectAttributes === undefined
        ? undefined
        : { values: ctx.connectAttributes, fromCertificate: false };
    case 'iot:lastwilltopic':
      return single(ctx.lastWillTopic === undefined ? undefined : topicArn(ctx, ctx.lastWillTopic));
    case 'aws:currenttime':
      return single(ctx.now?.toISOString());
    case 'aws:epochtime':
      return single(ctx.now === undefined ? undefined : String(Math.floor(ctx.now.getTime() / 1000)));
    case 'iot:certificate.serialnumber':
      return certValues(ctx.certificate?.serialNumber, undefined);
  }
  const attribute = THING_ATTRIBUTE_RE.exec(name);
  if (attribute) {
    if (ctx.thingName === undefined) return undefined;
    const attributes = ctx.thingAttributes ?? {};
    const attrName = attribute[1]!;
    return single(Object.hasOwn(attributes, attrName) ? attributes[attrName] : undefined);
  }
  const cert = CERT_NAME_RE.exec(name);
  if (cert) {
    const c = ctx.certificate;
    const which = cert[1]!.toLowerCase();
    const alt = cert[2] !== undefined;
    const names =
      which === 'subject'
        ? alt
          ? c?.subjectAlternativeName
          : c?.subject
        : alt
          ? c?.issuerAlternativeName
          : c?.issuer;
    return certValues(findCaseInsensitive(names, cert[3]!), cert[4]?.toLowerCase());
  }
  if (ctx.extraKeys) {
    const found = findCaseInsensitive(ctx.extraKeys, name);
    if (found !== undefined)
      return { values: typeof found === 'string' ? [found] : found, fromCertificate: false };
  }
  return undefined;
}

function findCaseInsensitive<T>(
  record: Readonly<Record<string, T>> | undefined,
  name: string,
): T | undefined {
  if (record === undefined) return undefined;
  if (Object.hasOwn(record, name)) return record[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(record)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Certificate values: first value by default, `.N` the N-th (zero-based), `.List` all of them. */
function certValues(
  raw: string | readonly string[] | undefined,
  suffix: string | undefined,
): KeyValues | undefined {
  if (raw === undefined) return undefined;
  const all = (typeof raw === 'string' ? [raw] : raw).slice(0, CERT_MAX_ITEMS);
  let picked: readonly (string | undefined)[];
  if (suffix === 'list') picked = all;
  else picked = [all[suffix === undefined ? 0 : Number(suffix)]];
  if (picked.length === 0 || picked.some((v) => v === undefined || v.length > CERT_MAX_CHARS))
    return undefined;
  return { values: picked as string[], fromCertificate: true };
}

/** The value a `${variable}` is replaced by, or undefined when it cannot be resolved. */
function substitution(name: string, ctx: EvaluationContext): string | undefined {
  const found = lookupKey(name, ctx);
  if (found === undefined || found.values.length !== 1) return undefined;
  const value = found.values[0]!;
  if (found.fromCertificate && /[*?]/.test(value)) return undefined;
  return value;
}

/**
 * Resolves a compiled pattern for one request. A substituted value is literal text: its `*` and
 * `?` never act as wildcards (a client id of `*` must not widen access). Undefined when a variable
 * cannot be resolved.
 */
function resolvePattern(pattern: CompiledPattern, ctx: EvaluationContext): readonly Unit[] | undefined {
  const first = pattern.parts[0];
  if (!pattern.hasVariables && pattern.parts.length === 1 && first !== undefined && 'lit' in first)
    return first.lit;
  const out: Unit[] = [];
  for (const part of pattern.parts) {
    if ('lit' in part) {
      for (const u of part.lit) out.push(u);
    } else {
      const value = substitution(part.variable, ctx);
      if (value === undefined) return undefined;
      for (const c of value) out.push(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

/** Wildcard match over code points: `*` any run (including `/` and `:`), `?` exactly one. */
function globMatch(pattern: readonly Unit[], text: readonly string[], from = 0, to = text.length): boolean {
  let p = 0;
  let t = from;
  let starP = -1;
  let starT = from;
  while (t < to) {
    const u = pattern[p];
    if (p < pattern.length && (u === QMARK || u === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && u === STAR) {
      starP = p++;
      starT = t;
    } else if (starP !== -1) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === STAR) p++;
  return p === pattern.length;
}

function unitsToText(units: readonly Unit[]): string {
  return units.map((u) => (u === STAR ? '*' : u === QMARK ? '?' : u)).join('');
}

/** Splits an ARN (as characters) into its six colon-separated components; undefined if it has fewer. */
function splitArnUnits<T extends Unit>(units: readonly T[]): T[][] | undefined {
  const out: T[][] = [[]];
  for (const u of units) {
    if (u === ':' && out.length < 6) out.push([]);
    else out[out.length - 1]!.push(u);
  }
  return out.length === 6 ? out : undefined;
}

function parseDate(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

function normalizeIp(ip: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const address = mapped ? mapped[1]! : ip;
  const family = isIP(address);
  if (family === 0) return undefined;
  return { address, family: family === 4 ? 'ipv4' : 'ipv6' };
}

/** Does one request value satisfy the (non-negated) comparison against one resolved policy value? */
function compareOne(cond: CompiledCondition, requestValue: string, policyValue: readonly Unit[]): boolean {
  switch (cond.family) {
    case 'string':
    case 'binary': {
      if (cond.comparison === 'like') return globMatch(policyValue, Array.from(requestValue));
      const text = unitsToText(policyValue);
      return cond.comparison === 'eqi'
        ? text.toLowerCase() === requestValue.toLowerCase()
        : text === requestValue;
    }
    case 'bool':
      return unitsToText(policyValue).toLowerCase() === requestValue.toLowerCase();
    case 'numeric':
    case 'date': {
      const parse =
        cond.family === 'numeric' ? (s: string) => (s.trim() === '' ? Number.NaN : Number(s)) : parseDate;
      const want = parse(unitsToText(policyValue));
      const got = parse(requestValue);
      if (want === undefined || got === undefined || Number.isNaN(want) || Number.isNaN(got)) return false;
      switch (cond.comparison) {
        case 'lt':
          return got < want;
        case 'le':
          return got <= want;
        case 'gt':
          return got > want;
        case 'ge':
          return got >= want;
        default:
          return got === want;
      }
    }
    case 'arn': {
      const want = splitArnUnits(policyValue);
      const got = splitArnUnits(Array.from(requestValue));
      if (want === undefined || got === undefined) return false;
      return want.every((segment, i) => globMatch(segment, got[i]!));
    }
    default:
      return false;
  }
}

function conditionHolds(cond: CompiledCondition, ctx: EvaluationContext): boolean {
  const found = lookupKey(cond.key, ctx);
  if (cond.family === 'null') {
    const absent = found === undefined;
    return cond.values.some(
      (v) => (unitsToText(resolvePattern(v, ctx) ?? []).toLowerCase() === 'true') === absent,
    );
  }
  const resolved: (readonly Unit[])[] = [];
  for (const v of cond.values) {
    const units = resolvePattern(v, ctx);
    // An unresolvable variable in a condition value: the condition cannot be evaluated and never
    // lets the statement apply ("IAM policy elements: Variables and tags").
    if (units === undefined) return false;
    resolved.push(units);
  }
  if (found === undefined) {
    if (cond.ifExists) return true;
    if (cond.setOperator === 'ForAllValues') return true;
    if (cond.setOperator === 'ForAnyValue') return false;
    return cond.negated;
  }
  const matchesAny = (requestValue: string): boolean => {
    if (cond.family === 'ip') {
      const ip = normalizeIp(requestValue);
      return ip !== undefined && cond.ipList!.check(ip.address, ip.family);
    }
    return resolved.some((units) => compareOne(cond, requestValue, units));
  };
  const satisfies = (requestValue: string) =>
    cond.negated ? !matchesAny(requestValue) : matchesAny(requestValue);
  const values = found.values;
  if (cond.setOperator === 'ForAllValues') return values.every(satisfies);
  if (cond.setOperator === 'ForAnyValue') return values.some(satisfies);
  // A plain operator on a multi-valued key: positive operators need one matching value, negated
  // operators need every value to miss.
  return cond.negated ? values.every(satisfies) : values.some(satisfies);
}

function actionApplies(st: CompiledStatement, action: readonly string[]): boolean {
  const hit = st.actions.some((p) => globMatch((p.parts[0] as { lit: readonly Unit[] }).lit, action));
  return st.notAction ? !hit : hit;
}

function resourceApplies(
  st: CompiledStatement,
  resource: readonly string[],
  ctx: EvaluationContext,
): boolean {
  if (!st.notResource) {
    // A resource whose variable cannot be resolved matches nothing ("Thing policy examples").
    return st.resources.some((p) => {
      const units = resolvePattern(p, ctx);
      return units !== undefined && globMatch(units, resource);
    });
  }
  for (const p of st.resources) {
    const units = resolvePattern(p, ctx);
    // NotResource with an unresolvable entry would otherwise widen the statement: it does not apply.
    if (units === undefined || globMatch(units, resource)) return false;
  }
  return true;
}

function statementApplies(
  st: CompiledStatement,
  action: readonly string[],
  resource: readonly string[],
  ctx: EvaluationContext,
): boolean {
  return (
    actionApplies(st, action) &&
    resourceApplies(st, resource, ctx) &&
    st.conditions.every((cond) => conditionHolds(cond, ctx))
  );
}

/**
 * Decides a request against every policy attached to the principal, as IAM does: an applicable Deny
 * statement in any policy wins, otherwise an applicable Allow grants, otherwise access is implicitly
 * denied. Actions match case-insensitively, resources case-sensitively.
 */
export function evaluateDetailed(
  policies: readonly ParsedPolicy[],
  action: IotAction,
  resourceArn: string,
  ctx: EvaluationContext,
): DetailedDecision {
  const actionChars = Array.from(action.toLowerCase());
  const resourceChars = Array.from(resourceArn);
  let allow: DetailedDecision | undefined;
  for (const policy of policies) {
    for (const st of policy.statements) {
      if (st.effect === 'Allow' && allow !== undefined) continue;
      if (!statementApplies(st, actionChars, resourceChars, ctx)) continue;
      const detail: DetailedDecision = {
        decision: st.effect === 'Deny' ? 'explicit-deny' : 'allow',
        policyName: policy.name,
        statementIndex: st.index,
        ...(st.sid === undefined ? {} : { sid: st.sid }),
      };
      if (st.effect === 'Deny') return detail;
      allow = detail;
    }
  }
  return allow ?? { decision: 'implicit-deny' };
}

/** `evaluateDetailed` without the explanation. */
export function evaluate(
  policies: readonly ParsedPolicy[],
  action: IotAction,
  resourceArn: string,
  ctx: EvaluationContext,
): Decision {
  return evaluateDetailed(policies, action, resourceArn, ctx).decision;
}

// ---------------------------------------------------------------------------------------------
// MQTT topics
// ---------------------------------------------------------------------------------------------

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** MQTT 3.1.1 §1.5.3: a UTF-8 string is at most 65535 bytes. */
const MQTT_MAX_STRING_BYTES = 65535;

/** MQTT 3.1.1 §4.7.3: non-empty, well-formed UTF-8 without U+0000, at most 65535 bytes. */
function isMqttTopicString(s: string): boolean {
  return (
    s.length > 0 &&
    !s.includes('\u0000') &&
    !LONE_SURROGATE.test(s) &&
    Buffer.byteLength(s, 'utf8') <= MQTT_MAX_STRING_BYTES
  );
}

/** A topic name a client may publish to (MQTT 3.1.1): no `+` or `#` anywhere. */
export function isValidTopicName(topic: string): boolean {
  return isMqttTopicString(topic) && !topic.includes('+') && !topic.includes('#');
}

/** A topic filter a client may subscribe to (MQTT 3.1.1 §4.7.1): `+` and `#` fill a whole level, `#` only last. */
export function isValidTopicFilter(filter: string): boolean {
  if (!isMqttTopicString(filter)) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === levels.length - 1;
    if (level.includes('+')) return level === '+';
    return true;
  });
}

/**
 * MQTT 3.1.1 §4.7 matching: `+` matches one level (possibly empty), `#` the parent level and any
 * number of child levels; filters starting with a wildcard do not match topics starting with `$`
 * (§4.7.2). Invalid names or filters match nothing.
 */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  if (!isValidTopicFilter(filter) || !isValidTopicName(topic)) return false;
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** "AWS IoT Core message broker and protocol limits and quotas": topic size. */
export const IOT_MAX_TOPIC_BYTES = 256;
/** "AWS IoT Core message broker and protocol limits and quotas": forward slashes in a topic or filter. */
export const IOT_MAX_TOPIC_SLASHES = 7;

export type TopicLimitCheck =
  | { ok: true }
  | { ok: false; code: 'TOPIC_TOO_LONG' | 'TOO_MANY_SLASHES'; message: string };

const BASIC_INGEST_PREFIX = /^\$aws\/rules\/[^/]*(\/|$)/i;

/**
 * IoT Core's quotas on a topic name or filter: at most 256 bytes of UTF-8 and at most 7 forward
 * slashes. The mandatory first three segments of a Basic Ingest topic (`$aws/rules/rule-name/`) are
 * not counted; other reserved `$aws/...` topics count in full.
 */
export function checkIotTopicLimits(topic: string): TopicLimitCheck {
  const prefix = BASIC_INGEST_PREFIX.exec(topic);
  const measured = prefix ? topic.slice(prefix[0].length) : topic;
  const bytes = Buffer.byteLength(measured, 'utf8');
  if (bytes > IOT_MAX_TOPIC_BYTES) {
    return {
      ok: false,
      code: 'TOPIC_TOO_LONG',
      message: `topic is ${bytes} bytes of UTF-8${prefix ? ' after the Basic Ingest prefix' : ''}; the limit is ${IOT_MAX_TOPIC_BYTES}`,
    };
  }
  let slashes = 0;
  for (const c of measured) if (c === '/') slashes++;
  if (slashes > IOT_MAX_TOPIC_SLASHES) {
    return {
      ok: false,
      code: 'TOO_MANY_SLASHES',
      message: `topic has ${slashes} forward slashes${prefix ? ' after the Basic Ingest prefix' : ''}; the limit is ${IOT_MAX_TOPIC_SLASHES}`,
    };
  }
  return { ok: true };
}
