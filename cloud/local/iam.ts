/**
 * The local cloud's IAM: roles (trust policy, inline permission policies, maximum session duration)
 * persisted in `{dataDir}/iam.json`, role sessions, and the authorizer every HTTP service asks.
 *
 * Documented behaviour this follows (IAM User Guide unless noted):
 * - "Policy evaluation logic" / "How AWS enforcement code logic evaluates requests": everything is
 *   implicitly denied except for the account's root user; an explicit Deny in any applicable policy
 *   wins; within one account an allow in the identity-based or the resource-based policy suffices,
 *   except for role trust policies, which must themselves allow the principal.
 * - "Session policies": a session's permissions are the intersection of the role's identity-based
 *   policies and the session policy; a resource-based policy that names the role ARN is limited by the
 *   session policy, one that names the session ARN is not.
 * - "Role trust policies" / "AWS JSON policy elements: Principal": principals are AWS accounts (the
 *   account id or `arn:aws:iam::ACCOUNT:root`, which delegates to the account's identity policies),
 *   roles (every session of the role), assumed-role sessions, services, or `*`; wildcards cannot stand
 *   for part of a principal; a trust policy has no `Resource`.
 * - "AWS JSON policy elements: NotPrincipal": not allowed in role trust policies.
 * - STS API Reference, AssumeRole: root user credentials cannot call AssumeRole; role chaining limits a
 *   session to one hour.
 * - IAM API Reference, CreateRole: MaxSessionDuration is 3600 to 43200 seconds, 3600 by default.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AccessDecision, AccessRequest, Authorizer } from './authz.js';
import { type CredentialRecord, type CredentialStore, randomIdentifier } from './credentials.js';
import { InvalidRequestError, ResourceNotFoundError, StateCorruptError } from './errors.js';
import {
  type DetailedDecision,
  type EvaluationContext,
  evaluateDetailed,
  type IotPolicyDocumentInput,
  type ParsedPolicy,
  PolicyDocumentError,
  parsePolicy,
} from './policy.js';
import { readJsonFile, writeJsonFile } from './store.js';

/** IAM CreateRole: MaxSessionDuration bounds and default, seconds. */
export const MIN_MAX_SESSION_DURATION = 3600;
export const MAX_MAX_SESSION_DURATION = 43200;
/** STS AssumeRole: DurationSeconds bounds and default, seconds. */
export const MIN_SESSION_DURATION = 900;
export const DEFAULT_SESSION_DURATION = 3600;
/** STS AssumeRole: a session assumed with another role's session (role chaining) lasts at most an hour. */
export const ROLE_CHAINING_MAX_DURATION = 3600;

/** IAM names of roles and inline policies; STS RoleSessionName. */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
const ROLE_PATH = /^\/([\x21-\x7e]*\/)?$/;
export const ROLE_SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

/** A policy document as text or as an object (validated either way). */
export type PolicyDocumentInput = string | IotPolicyDocumentInput;

/** A role trust policy statement: a Principal and no Resource. */
export interface TrustPolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal: '*' | Partial<Record<'AWS' | 'Service' | 'Federated' | 'CanonicalUser', string | string[]>>;
  Action?: string | string[];
  NotAction?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface TrustPolicyDocument {
  Version?: '2012-10-17' | '2008-10-17';
  Statement: TrustPolicyStatement | TrustPolicyStatement[];
}

export interface RoleInput {
  roleName: string;
  /** The role trust policy (AssumeRolePolicyDocument). */
  trustPolicy: string | TrustPolicyDocument;
  /** Inline permission policies by name; when given, they replace the role's inline policies. */
  policies?: Record<string, PolicyDocumentInput>;
  /** Seconds, 3600 to 43200; 3600 by default. */
  maxSessionDuration?: number;
  /** `/` by default. */
  path?: string;
  description?: string;
}

export interface RoleRecord {
  roleName: string;
  /** Unique id, `AROA` and 17 characters. */
  roleId: string;
  arn: string;
  path: string;
  createDate: string;
  maxSessionDuration: number;
  /** JSON text. */
  assumeRolePolicyDocument: string;
  /** Inline permission policies: name to JSON text. */
  policies: Record<string, string>;
  description?: string;
}

/** The identity behind a set of credentials, as GetCallerIdentity reports it. */
export interface CallerIdentity {
  account: string;
  arn: string;
  userId: string;
}

/** Why the trust policy lets a caller in: it names the session (or everyone), the role, or the account. */
type TrustGrant = 'principal' | 'role' | 'account';
const GRANT_RANK: Record<TrustGrant, number> = { account: 1, role: 2, principal: 3 };

interface PrincipalSet {
  any: boolean;
  aws: string[];
  service: string[];
  federated: string[];
  canonicalUser: string[];
}

interface TrustStatement {
  index: number;
  effect: 'Allow' | 'Deny';
  principals: PrincipalSet;
  /** The statement's Action and Condition as a one-statement policy with `Resource: *`. */
  policy: ParsedPolicy;
}

interface LoadedRole {
  record: RoleRecord;
  trust: TrustStatement[];
  policies: ParsedPolicy[];
}

const RoleRecordSchema = z.object({
  roleName: z.string().regex(ROLE_NAME),
  roleId: z.string().min(1),
  arn: z.string().startsWith('arn:'),
  path: z.string().regex(ROLE_PATH),
  createDate: z.iso.datetime(),
  maxSessionDuration: z.number().int().min(MIN_MAX_SESSION_DURATION).max(MAX_MAX_SESSION_DURATION),
  assumeRolePolicyDocument: z.string(),
  policies: z.record(z.string(), z.string()),
  description: z.string().optional(),
});

const IamFileSchema = z.object({ roles: z.record(z.string(), RoleRecordSchema) });

// ---------------------------------------------------------------------------------------------
// Trust policies
// ---------------------------------------------------------------------------------------------

const toArray = (v: unknown) => (typeof v === 'string' ? [v] : v);
const principalValues = z.preprocess(toArray, z.array(z.string().min(1)).min(1));
const principalBlock = z.union([
  z.literal('*'),
  z
    .strictObject({
      AWS: principalValues.optional(),
      Service: principalValues.optional(),
      Federated: principalValues.optional(),
      CanonicalUser: principalValues.optional(),
    })
    .refine((o) => Object.keys(o).length > 0, 'must name at least one principal'),
]);

const AWS_PRINCIPAL =
  /^(\*|\d{12}|arn:aws:iam::\d{12}:(root|user\/[\x21-\x7e]+|role\/[\x21-\x7e]+)|arn:aws:sts::\d{12}:assumed-role\/[\w+=,.@-]+\/[\w+=,.@-]+)$/;
const SERVICE_PRINCIPAL = /^[a-z0-9][a-z0-9.-]*\.amazonaws\.com(\.cn)?$/;

function trustError(role: string, message: string): PolicyDocumentError {
  return new PolicyDocumentError(`trust policy of role ${role}: ${message}`);
}

/**
 * Validates a role trust policy and compiles it: each statement's principals, and its Action and
 * Condition through the shared policy engine.
 * @throws PolicyDocumentError naming the offending field.
 */
export function parseTrustPolicy(roleName: string, document: unknown): TrustStatement[] {
  let raw = document;
  if (typeof document === 'string') {
    try {
      raw = JSON.parse(document);
    } catch (err) {
      throw trustError(roleName, `(document): not valid JSON: ${(err as Error).message}`);
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw trustError(roleName, '(document): must be a JSON object');
  const doc = raw as Record<string, unknown>;
  const statements = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  const principals: PrincipalSet[] = [];
  const forEngine: unknown[] = [];
  statements.forEach((st, i) => {
    const where = `Statement[${i}]`;
    if (st === null || typeof st !== 'object' || Array.isArray(st))
      throw trustError(roleName, `${where}: must be an object`);
    const { Principal, NotPrincipal, Resource, NotResource, ...rest } = st as Record<string, unknown>;
    if (Resource !== undefined || NotResource !== undefined)
      throw trustError(roleName, `${where}: Has prohibited field Resource`);
    if (NotPrincipal !== undefined)
      throw trustError(roleName, `${where}.NotPrincipal: is not allowed in a role trust policy`);
    if (Principal === undefined) throw trustError(roleName, `${where}.Principal: is required`);
    const parsed = principalBlock.safeParse(Principal);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw trustError(roleName, `${where}.Principal: ${issue?.message ?? 'invalid'}`);
    }
    const set: PrincipalSet = { any: false, aws: [], service: [], federated: [], canonicalUser: [] };
    if (parsed.data === '*') set.any = true;
    else {
      for (const v of parsed.data.AWS ?? []) {
        if (!AWS_PRINCIPAL.test(v))
          throw trustError(roleName, `${where}.Principal.AWS: Invalid principal ${v}`);
        if (v === '*') set.any = true;
        else set.aws.push(v);
      }
      for (const v of parsed.data.Service ?? []) {
        if (!SERVICE_PRINCIPAL.test(v))
          throw trustError(roleName, `${where}.Principal.Service: Invalid principal ${v}`);
        set.service.push(v);
      }
      set.federated.push(...(parsed.data.Federated ?? []));
      set.canonicalUser.push(...(parsed.data.CanonicalUser ?? []));
    }
    principals.push(set);
    forEngine.push({ ...rest, Resource: '*' });
  });
  const compiled = parsePolicy(`trust policy of role ${roleName}`, { ...doc, Statement: forEngine });
  return compiled.statements.map((st, i) => ({
    index: st.index,
    effect: st.effect,
    principals: principals[i]!,
    policy: { ...compiled, statements: [st] },
  }));
}

// ---------------------------------------------------------------------------------------------
// Session policies
// ---------------------------------------------------------------------------------------------

/**
 * Validates an inline session policy (AssumeRole `Policy`): an identity-style policy, so no Principal.
 * @throws PolicyDocumentError naming the offending field.
 */
export function parseSessionPolicy(text: string): ParsedPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PolicyDocumentError(`session policy: (document): not valid JSON: ${(err as Error).message}`);
  }
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    const st = (raw as Record<string, unknown>).Statement;
    for (const s of Array.isArray(st) ? st : [st]) {
      if (s !== null && typeof s === 'object' && ('Principal' in s || 'NotPrincipal' in s))
        throw new PolicyDocumentError('session policy: Policy document should not specify a principal.');
    }
  }
  return parsePolicy('session policy', raw);
}

// ---------------------------------------------------------------------------------------------
// The IAM service
// ---------------------------------------------------------------------------------------------

export interface IamOptions {
  dataDir: string;
  region: string;
  accountId: string;
  credentials: CredentialStore;
  logger?: Logger;
}

/** The outcome of an AssumeRole authorization, with the reason when denied (for logs, not the caller). */
export type AssumeDecision = { allowed: true; role: RoleRecord } | { allowed: false; reason: string };

export class Iam implements Authorizer {
  private readonly file: string;
  private readonly roles = new Map<string, LoadedRole>();
  private readonly sessionPolicies = new Map<string, ParsedPolicy>();
  readonly accountId: string;
  readonly region: string;

  constructor(private readonly opts: IamOptions) {
    this.accountId = opts.accountId;
    this.region = opts.region;
    this.file = join(opts.dataDir, 'iam.json');
    const loaded = readJsonFile<unknown>(this.file);
    if (loaded !== undefined) {
      const parsed = IamFileSchema.safeParse(loaded);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new StateCorruptError(`${this.file}: ${issue?.path.join('.')}: ${issue?.message}`);
      }
      for (const record of Object.values(parsed.data.roles)) {
        try {
          this.roles.set(record.roleName, this.load(record));
        } catch (err) {
          throw new StateCorruptError(`role ${record.roleName} in ${this.file} is invalid`, { cause: err });
        }
      }
    }
  }

  // ---- roles ----

  roleArn(roleName: string, path = '/'): string {
    return `arn:aws:iam::${this.accountId}:role${path}${roleName}`;
  }

  /** The account root user's ARN. */
  get rootArn(): string {
    return `arn:aws:iam::${this.accountId}:root`;
  }

  /**
   * Creates a role, or updates an existing one to the given trust policy, maximum session duration and
   * (when given) inline policies; its id and creation date are kept.
   * @throws InvalidRequestError / PolicyDocumentError naming the offending field.
   */
  putRole(input: RoleInput): RoleRecord {
    const { roleName } = input;
    if (!ROLE_NAME.test(roleName))
      throw new InvalidRequestError(`roleName '${roleName}': must be 1-64 characters of [\\w+=,.@-]`);
    const path = input.path ?? '/';
    if (!ROLE_PATH.test(path) || path.length > 512)
      throw new InvalidRequestError(`path '${path}': must start and end with / (at most 512 characters)`);
    const max = input.maxSessionDuration ?? MIN_MAX_SESSION_DURATION;
    if (!Number.isInteger(max) || max < MIN_MAX_SESSION_DURATION || max > MAX_MAX_SESSION_DURATION) {
      throw new InvalidRequestError(
        `maxSessionDuration ${max}: must be an integer from ${MIN_MAX_SESSION_DURATION} to ${MAX_MAX_SESSION_DURATION}`,
      );
    }
    const existing = this.roles.get(roleName)?.record;
    const policies: Record<string, string> = {};
    for (const [name, doc] of Object.entries(input.policies ?? existing?.policies ?? {})) {
      if (!POLICY_NAME.test(name))
        throw new InvalidRequestError(`policy name '${name}': must be 1-128 characters of [\\w+=,.@-]`);
      policies[name] = typeof doc === 'string' ? doc : JSON.stringify(doc);
    }
    const record: RoleRecord = {
      roleName,
      roleId: existing?.roleId ?? randomIdentifier('AROA', 17),
      arn: this.roleArn(roleName, path),
      path,
      createDate: existing?.createDate ?? new Date().toISOString(),
      maxSessionDuration: max,
      assumeRolePolicyDocument:
        typeof input.trustPolicy === 'string' ? input.trustPolicy : JSON.stringify(input.trustPolicy),
      policies,
      ...(input.description === undefined ? {} : { description: input.description }),
    };
    this.roles.set(roleName, this.load(record));
    this.save();
    return record;
  }

  /** Adds or replaces one inline permission policy of a role. */
  putRolePolicy(roleName: string, policyName: string, document: PolicyDocumentInput): void {
    const role = this.requireRole(roleName).record;
    this.putRole({
      roleName,
      trustPolicy: role.assumeRolePolicyDocument,
      maxSessionDuration: role.maxSessionDuration,
      path: role.path,
      policies: { ...role.policies, [policyName]: document },
      ...(role.description === undefined ? {} : { description: role.description }),
    });
  }

  /** Removes one inline permission policy of a role. */
  deleteRolePolicy(roleName: string, policyName: string): void {
    const role = this.requireRole(roleName).record;
    if (!(policyName in role.policies))
      throw new ResourceNotFoundError(`role ${roleName} has no inline policy ${policyName}`);
    const { [policyName]: _removed, ...policies } = role.policies;
    this.roles.set(roleName, this.load({ ...role, policies }));
    this.save();
  }

  /** Deletes a role; its sessions stop being authorized (their role id no longer exists). */
  deleteRole(roleName: string): void {
    this.requireRole(roleName);
    this.roles.delete(roleName);
    this.save();
  }

  getRole(roleName: string): RoleRecord | undefined {
    return this.roles.get(roleName)?.record;
  }

  /** The role an ARN names, if it is a role of this account. */
  getRoleByArn(arn: string): RoleRecord | undefined {
    const name = /^arn:aws:iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(arn);
    if (!name || name[1] !== this.accountId) return undefined;
    const role = this.roles.get(name[2]!)?.record;
    return role?.arn === arn ? role : undefined;
  }

  listRoles(): RoleRecord[] {
    return [...this.roles.values()].map((r) => r.record);
  }

  // ---- sessions ----

  /** `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` (the role's path is not part of it). */
  sessionArn(roleName: string, sessionName: string): string {
    return `arn:aws:sts::${this.accountId}:assumed-role/${roleName}/${sessionName}`;
  }

  /**
   * Issues a session of a role without a calling principal, as an AWS service does for the role it
   * runs with (the local Lambda runtime gives each function a session of its execution role).
   * @throws ResourceNotFoundError if the role does not exist; InvalidRequestError for a bad session
   * name or a duration outside 900 seconds .. the role's MaxSessionDuration.
   */
  issueRoleSession(
    roleName: string,
    sessionName: string,
    durationSeconds = DEFAULT_SESSION_DURATION,
  ): CredentialRecord {
    const role = this.requireRole(roleName).record;
    if (!ROLE_SESSION_NAME.test(sessionName))
      throw new InvalidRequestError(`sessionName '${sessionName}': must be 2-64 characters of [\\w+=,.@-]`);
    if (
      !Number.isInteger(durationSeconds) ||
      durationSeconds < MIN_SESSION_DURATION ||
      durationSeconds > role.maxSessionDuration
    ) {
      throw new InvalidRequestError(
        `durationSeconds ${durationSeconds}: must be an integer from ${MIN_SESSION_DURATION} to the role's MaxSessionDuration (${role.maxSessionDuration})`,
      );
    }
    return this.issueSession(role, sessionName, durationSeconds, { issuedBy: 'local runtime' });
  }

  /** Stores and returns the credentials of a new session of `role`. */
  issueSession(
    role: RoleRecord,
    sessionName: string,
    durationSeconds: number,
    opts: { issuedBy: string; sessionPolicy?: string; minimumTokenSize?: number },
  ): CredentialRecord {
    const record = this.opts.credentials.issueSession({
      principalArn: this.sessionArn(role.roleName, sessionName),
      durationSeconds,
      ...(opts.minimumTokenSize === undefined ? {} : { minimumTokenSize: opts.minimumTokenSize }),
      session: {
        roleName: role.roleName,
        roleArn: role.arn,
        roleId: role.roleId,
        sessionName,
        issuedBy: opts.issuedBy,
        ...(opts.sessionPolicy === undefined ? {} : { sessionPolicy: opts.sessionPolicy }),
      },
    });
    this.opts.logger?.info(
      { role: role.roleName, sessionName, accessKeyId: record.accessKeyId, expiration: record.expiration },
      'role session issued',
    );
    return record;
  }

  isRoot(caller: CredentialRecord): boolean {
    return caller.principalArn === this.rootArn && caller.session === undefined;
  }

  /** GetCallerIdentity. */
  callerIdentity(caller: CredentialRecord): CallerIdentity {
    if (caller.session) {
      return {
        account: this.accountId,
        arn: caller.principalArn,
        userId: `${caller.session.roleId}:${caller.session.sessionName}`,
      };
    }
    return { account: this.accountId, arn: caller.principalArn, userId: this.accountId };
  }

  /**
   * Whether `caller` may call sts:AssumeRole on `roleArn`: the role must exist and its trust policy must
   * allow the caller; a grant to the account needs the caller's identity policies too, a grant to the
   * caller's role is still limited by its session policy, a grant to the session itself is not; an
   * explicit Deny in the trust policy, the caller's role policies or its session policy always wins.
   * Root is refused by the caller (the STS route), as AWS does before any policy is read.
   */
  authorizeAssumeRole(
    caller: CredentialRecord,
    roleArn: string,
    context: Record<string, string | string[]> = {},
  ): AssumeDecision {
    const target = this.getRoleByArn(roleArn);
    if (!target) return { allowed: false, reason: `no role ${roleArn} exists in account ${this.accountId}` };
    const loadedTarget = this.roles.get(target.roleName)!;
    const s = caller.session;
    if (!s) return { allowed: false, reason: `${caller.principalArn} is not a role session` };
    const callerRole = this.roles.get(s.roleName);
    if (!callerRole || callerRole.record.roleId !== s.roleId)
      return { allowed: false, reason: `the caller's role ${s.roleName} no longer exists` };
    const ctx = this.context(caller, context);
    const action = 'sts:AssumeRole';

    // Trust policy (a resource-based policy): an explicit Deny for this caller wins; otherwise the
    // strongest Allow decides what else is needed.
    let grant: TrustGrant | undefined;
    for (const st of loadedTarget.trust) {
      const match = principalMatch(st.principals, caller, this.accountId);
      if (match === undefined) continue;
      if (evaluateDetailed([st.policy], action, roleArn, ctx).decision === 'implicit-deny') continue;
      if (st.effect === 'Deny')
        return { allowed: false, reason: `explicit deny in the trust policy of role ${target.roleName}` };
      if (grant === undefined || GRANT_RANK[match] > GRANT_RANK[grant]) grant = match;
    }
    const identity = evaluateDetailed(callerRole.policies, action, roleArn, ctx);
    if (identity.decision === 'explicit-deny')
      return { allowed: false, reason: describeDeny(identity, `role ${s.roleName}`, action, roleArn) };
    const session = this.sessionPolicyOf(caller);
    const sessionDecision = session ? evaluateDetailed([session], action, roleArn, ctx) : undefined;
    if (sessionDecision?.decision === 'explicit-deny')
      return { allowed: false, reason: describeDeny(sessionDecision, 'the session policy', action, roleArn) };
    if (grant === undefined) {
      return {
        allowed: false,
        reason: `the trust policy of role ${target.roleName} does not allow ${caller.principalArn}`,
      };
    }
    if (grant === 'account' && identity.decision !== 'allow') {
      return {
        allowed: false,
        reason: `the trust policy of role ${target.roleName} trusts the account, and no statement in the policies of role ${s.roleName} allows ${action} on ${roleArn}`,
      };
    }
    if (grant !== 'principal' && sessionDecision !== undefined && sessionDecision.decision !== 'allow')
      return { allowed: false, reason: `no statement in the session policy allows ${action} on ${roleArn}` };
    return { allowed: true, role: target };
  }

  // ---- the authorizer ----

  /**
   * Decides a service request: root is allowed everything; a role session is allowed what its role's
   * policies allow and, when it has one, its session policy allows too; an explicit Deny in either wins.
   */
  authorize(caller: CredentialRecord, request: AccessRequest): AccessDecision {
    if (this.isRoot(caller)) return { allowed: true };
    const s = caller.session;
    if (!s)
      return { allowed: false, reason: `${caller.principalArn} has no IAM policies in the local cloud` };
    const role = this.roles.get(s.roleName);
    if (!role || role.record.roleId !== s.roleId)
      return { allowed: false, reason: `role ${s.roleName} of ${caller.principalArn} no longer exists` };
    const { action, resource } = request;
    const ctx = this.context(caller, request.context ?? {});
    const identity = evaluateDetailed(role.policies, action, resource, ctx);
    if (identity.decision === 'explicit-deny')
      return { allowed: false, reason: describeDeny(identity, `role ${s.roleName}`, action, resource) };
    const sessionPolicy = this.sessionPolicyOf(caller);
    const session = sessionPolicy ? evaluateDetailed([sessionPolicy], action, resource, ctx) : undefined;
    if (session?.decision === 'explicit-deny')
      return { allowed: false, reason: describeDeny(session, 'the session policy', action, resource) };
    if (identity.decision !== 'allow') {
      return {
        allowed: false,
        reason: `no statement in the policies of role ${s.roleName} allows ${action} on ${resource}`,
      };
    }
    if (session !== undefined && session.decision !== 'allow')
      return { allowed: false, reason: `no statement in the session policy allows ${action} on ${resource}` };
    return { allowed: true };
  }

  // ---- internals ----

  private requireRole(roleName: string): LoadedRole {
    const role = this.roles.get(roleName);
    if (!role) throw new ResourceNotFoundError(`The role with name ${roleName} cannot be found.`);
    return role;
  }

  private load(record: RoleRecord): LoadedRole {
    const trust = parseTrustPolicy(record.roleName, record.assumeRolePolicyDocument);
    const policies = Object.entries(record.policies).map(([name, doc]) =>
      parsePolicy(`${record.roleName}/${name}`, doc),
    );
    return { record, trust, policies };
  }

  private save(): void {
    const roles: Record<string, RoleRecord> = {};
    for (const [name, r] of this.roles) roles[name] = r.record;
    writeJsonFile(this.file, { roles });
  }

  private sessionPolicyOf(caller: CredentialRecord): ParsedPolicy | undefined {
    const text = caller.session?.sessionPolicy;
    if (text === undefined) return undefined;
    let parsed = this.sessionPolicies.get(caller.accessKeyId);
    if (!parsed) {
      parsed = parseSessionPolicy(text);
      if (this.sessionPolicies.size > 10_000) this.sessionPolicies.clear();
      this.sessionPolicies.set(caller.accessKeyId, parsed);
    }
    return parsed;
  }

  /** The request context: the caller's global condition keys plus the service's keys. */
  private context(caller: CredentialRecord, keys: Record<string, string | string[]>): EvaluationContext {
    const s = caller.session;
    const global: Record<string, string> = {
      'aws:PrincipalAccount': this.accountId,
      'aws:PrincipalArn': s ? s.roleArn : caller.principalArn,
      'aws:PrincipalType': s ? 'AssumedRole' : 'Account',
      'aws:userid': s ? `${s.roleId}:${s.sessionName}` : this.accountId,
      'aws:RequestedRegion': this.region,
      'aws:SecureTransport': 'false',
    };
    return {
      region: this.region,
      accountId: this.accountId,
      now: new Date(),
      extraKeys: { ...global, ...keys },
    };
  }
}

/** How a trust policy principal set matches a caller, if it does. */
function principalMatch(
  set: PrincipalSet,
  caller: CredentialRecord,
  accountId: string,
): TrustGrant | undefined {
  if (set.any) return 'principal';
  let best: TrustGrant | undefined;
  const better = (g: TrustGrant) => {
    if (best === undefined || GRANT_RANK[g] > GRANT_RANK[best]) best = g;
  };
  for (const v of set.aws) {
    if (v === caller.principalArn) better('principal');
    else if (caller.session && v === caller.session.roleArn) better('role');
    else if (v === accountId || v === `arn:aws:iam::${accountId}:root`) better('account');
  }
  return best;
}

function describeDeny(d: DetailedDecision, where: string, action: string, resource: string): string {
  const which = where.startsWith('role ')
    ? `the policy ${d.policyName?.split('/').slice(1).join('/') ?? ''} of ${where}`
    : where;
  const sid = d.sid === undefined ? '' : ` (Sid ${d.sid})`;
  return `explicit deny in ${which}, statement ${d.statementIndex ?? 0}${sid}, for ${action} on ${resource}`;
}
