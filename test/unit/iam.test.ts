/**
 * The local IAM: roles, role sessions and the authorizer, as the IAM User Guide documents them:
 * - "Session policies": "The permissions for a session are the intersection of the identity-based
 *   policies for the IAM entity (user or role) used to create the session and the session policies";
 *   a resource-based policy naming the role ARN is limited by the session policy, one naming the session
 *   ARN is not.
 * - "Policy evaluation logic": an explicit deny in any policy overrides any allow; IAM role trust
 *   policies "must explicitly allow access for principals".
 * - "AWS JSON policy elements: Principal": an account principal delegates to the account's identity
 *   policies; "AWS JSON policy elements: NotPrincipal": not usable in a role trust policy.
 * - "Condition keys for Amazon S3": `s3:prefix` limits ListBucket to key prefixes.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  type CredentialRecord,
  CredentialStore,
  EXPIRED_SESSION_RETENTION_MS,
} from '../../cloud/local/credentials.js';
import { InvalidRequestError, ResourceNotFoundError } from '../../cloud/local/errors.js';
import { Iam, parseSessionPolicy, parseTrustPolicy } from '../../cloud/local/iam.js';
import { PolicyDocumentError } from '../../cloud/local/policy.js';
import { MAX_SESSION_POLICY_CHARS, packedPolicyPercent } from '../../cloud/local/sts.js';
import { uploadRolePolicy, uploadSessionPolicy } from '../../cloud/rules/resources.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const ACCOUNT = '000000000000';
const REGION = 'us-east-1';
const BUCKET = 'edgefleet-data';
const B = `arn:aws:s3:::${BUCKET}`;

let dir: string;
let credentials: CredentialStore;
let iam: Iam;

function newIam(): Iam {
  credentials = new CredentialStore(dir, ACCOUNT);
  return new Iam({ dataDir: dir, region: REGION, accountId: ACCOUNT, credentials });
}

const trustLambda = {
  Version: '2012-10-17' as const,
  Statement: [
    { Effect: 'Allow' as const, Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
  ],
};

function uploadRole() {
  return iam.putRole({
    roleName: 'upload',
    trustPolicy: trustLambda,
    policies: { uploads: uploadRolePolicy(BUCKET) },
  });
}

function session(roleName: string, sessionName: string, sessionPolicy?: unknown): CredentialRecord {
  const role = iam.getRole(roleName)!;
  return iam.issueSession(role, sessionName, 3600, {
    issuedBy: 'test',
    ...(sessionPolicy === undefined ? {} : { sessionPolicy: JSON.stringify(sessionPolicy) }),
  });
}

beforeEach(() => {
  dir = tempDir('edgefleet-iam-');
  iam = newIam();
});
afterEach(() => removeDir(dir));

describe('the authorizer', () => {
  it('allows the account root everything', () => {
    expect(iam.authorize(credentials.root, { action: 's3:DeleteBucket', resource: B })).toEqual({
      allowed: true,
    });
  });

  it('allows a session what its role allows and denies the rest', () => {
    uploadRole();
    const s = session('upload', 'no-session-policy');
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-2/x` })).toEqual({
      allowed: true,
    });
    const denied = iam.authorize(s, { action: 's3:PutObject', resource: `${B}/logs/x` });
    expect(denied).toEqual({
      allowed: false,
      reason: `no statement in the policies of role upload allows s3:PutObject on ${B}/logs/x`,
    });
    expect(iam.authorize(s, { action: 's3:DeleteObject', resource: `${B}/raw/gw-2/x` }).allowed).toBe(false);
  });

  it('intersects the role policies with the session policy', () => {
    uploadRole();
    const s = session('upload', 'gw-1', uploadSessionPolicy(BUCKET, 'gw-1'));
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/x` })).toEqual({
      allowed: true,
    });
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-2/x` })).toEqual({
      allowed: false,
      reason: `no statement in the session policy allows s3:PutObject on ${B}/raw/gw-2/x`,
    });
    // Actions match case-insensitively.
    expect(iam.authorize(s, { action: 's3:putobject', resource: `${B}/frames/gw-1/f.jpg` }).allowed).toBe(
      true,
    );
  });

  it('lets a session put records only into the log stream that both the role and the session policy name', () => {
    const logs = `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/edgefleet-gateway-logs`;
    const other = `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/edgefleet-telemetry-hr`;
    iam.putRole({
      roleName: 'upload',
      trustPolicy: trustLambda,
      policies: { uploads: uploadRolePolicy(BUCKET, 'aws', logs) },
    });
    const s = session('upload', 'gw-1', uploadSessionPolicy(BUCKET, 'gw-1', 'aws', logs));
    expect(iam.authorize(s, { action: 'kinesis:PutRecords', resource: logs })).toEqual({ allowed: true });
    expect(iam.authorize(s, { action: 'kinesis:PutRecord', resource: logs })).toEqual({ allowed: true });
    expect(iam.authorize(s, { action: 'kinesis:PutRecords', resource: other }).allowed).toBe(false);
    for (const action of ['kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:DescribeStreamSummary'])
      expect(iam.authorize(s, { action, resource: logs }).allowed).toBe(false);
    // The S3 prefixes are as before.
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/x` }).allowed).toBe(true);
    // A session policy without the stream: denied, although the role allows it.
    const plain = session('upload', 'gw-2', uploadSessionPolicy(BUCKET, 'gw-2'));
    expect(iam.authorize(plain, { action: 'kinesis:PutRecords', resource: logs })).toEqual({
      allowed: false,
      reason: `no statement in the session policy allows kinesis:PutRecords on ${logs}`,
    });
    // A role without the stream: denied, although the session policy names it.
    iam.putRolePolicy('upload', 'uploads', uploadRolePolicy(BUCKET));
    const narrow = session('upload', 'gw-1', uploadSessionPolicy(BUCKET, 'gw-1', 'aws', logs));
    expect(iam.authorize(narrow, { action: 'kinesis:PutRecords', resource: logs }).allowed).toBe(false);
  });

  it('keeps the session policy of the longest thing name, log stream included, within AssumeRole limits', () => {
    const thing = 'g'.repeat(128);
    const logs = `arn:aws-us-gov:kinesis:us-gov-west-1:${ACCOUNT}:stream/edgefleet-gateway-logs`;
    const policy = JSON.stringify(uploadSessionPolicy('b'.repeat(63), thing, 'aws-us-gov', logs));
    expect(policy.length).toBeLessThanOrEqual(MAX_SESSION_POLICY_CHARS);
    expect(packedPolicyPercent(policy, [])).toBeLessThanOrEqual(100);
  });

  it('cannot widen the role with a session policy', () => {
    uploadRole();
    const s = session('upload', 'greedy', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
    });
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-2/x` }).allowed).toBe(true);
    expect(iam.authorize(s, { action: 's3:DeleteObject', resource: `${B}/raw/gw-2/x` })).toEqual({
      allowed: false,
      reason: `no statement in the policies of role upload allows s3:DeleteObject on ${B}/raw/gw-2/x`,
    });
  });

  it('lets ListBucket through only for the prefixes s3:prefix conditions allow', () => {
    uploadRole();
    const s = session('upload', 'gw-1', uploadSessionPolicy(BUCKET, 'gw-1'));
    const list = (prefix?: string) =>
      iam.authorize(s, {
        action: 's3:ListBucket',
        resource: B,
        ...(prefix === undefined ? {} : { context: { 's3:prefix': prefix } }),
      });
    expect(list('raw/gw-1/')).toEqual({ allowed: true });
    expect(list('raw/gw-1/2026/')).toEqual({ allowed: true });
    expect(list('raw/gw-2/')).toEqual({
      allowed: false,
      reason: `no statement in the session policy allows s3:ListBucket on ${B}`,
    });
    expect(list('logs/').allowed).toBe(false);
    // StringLike on a key the request does not carry is false: listing the whole bucket is denied.
    expect(list().allowed).toBe(false);
  });

  it('denies on an explicit Deny in the role policies, whatever allows', () => {
    uploadRole();
    iam.putRolePolicy('upload', 'no-secrets', {
      Version: '2012-10-17',
      Statement: [{ Sid: 'NoSecrets', Effect: 'Deny', Action: 's3:*', Resource: `${B}/raw/*/secret/*` }],
    });
    const s = session('upload', 'gw-1', uploadSessionPolicy(BUCKET, 'gw-1'));
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/secret/k` })).toEqual({
      allowed: false,
      reason: `explicit deny in the policy no-secrets of role upload, statement 0 (Sid NoSecrets), for s3:PutObject on ${B}/raw/gw-1/secret/k`,
    });
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/k` }).allowed).toBe(true);
  });

  it('denies on an explicit Deny in the session policy', () => {
    uploadRole();
    const s = session('upload', 'gw-1', {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 's3:*', Resource: `${B}/raw/gw-1/*` },
        { Effect: 'Deny', Action: 's3:PutObject', Resource: `${B}/raw/gw-1/ro/*` },
      ],
    });
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/ro/a` })).toEqual({
      allowed: false,
      reason: `explicit deny in the session policy, statement 1, for s3:PutObject on ${B}/raw/gw-1/ro/a`,
    });
    expect(iam.authorize(s, { action: 's3:GetObject', resource: `${B}/raw/gw-1/ro/a` }).allowed).toBe(true);
  });

  it('matches ? as exactly one character and * across segments', () => {
    iam.putRole({
      roleName: 'wild',
      trustPolicy: trustLambda,
      policies: {
        p: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 's3:Get*', Resource: `${B}/raw/gw-?/*` }],
        },
      },
    });
    const s = session('wild', 's1');
    expect(iam.authorize(s, { action: 's3:GetObject', resource: `${B}/raw/gw-1/a/b/c` }).allowed).toBe(true);
    expect(iam.authorize(s, { action: 's3:GetObject', resource: `${B}/raw/gw-10/a` }).allowed).toBe(false);
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/a` }).allowed).toBe(false);
  });

  it('stops authorizing the sessions of a deleted role, even if a role of that name comes back', () => {
    uploadRole();
    const s = session('upload', 'gw-1');
    iam.deleteRole('upload');
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/x` })).toEqual({
      allowed: false,
      reason: `role upload of ${s.principalArn} no longer exists`,
    });
    uploadRole();
    expect(iam.authorize(s, { action: 's3:PutObject', resource: `${B}/raw/gw-1/x` }).allowed).toBe(false);
  });
});

describe('AssumeRole authorization (trust policy and the caller permissions)', () => {
  /** A caller role whose own policy allows sts:AssumeRole on the given resources. */
  function callerRole(name: string, assumable: string[]): CredentialRecord {
    iam.putRole({
      roleName: name,
      trustPolicy: trustLambda,
      policies:
        assumable.length === 0
          ? {}
          : {
              assume: {
                Version: '2012-10-17',
                Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: assumable }],
              },
            },
    });
    return session(name, `${name}-session`);
  }

  function target(name: string, principal: unknown, extra: object[] = []) {
    return iam.putRole({
      roleName: name,
      trustPolicy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: principal, Action: 'sts:AssumeRole' }, ...extra],
      }),
    });
  }

  it('needs the caller permissions when the trust policy trusts the account', () => {
    const t = target('by-account', { AWS: `arn:aws:iam::${ACCOUNT}:root` });
    const allowedCaller = callerRole('can-assume', ['*']);
    const plainCaller = callerRole('cannot-assume', []);
    expect(iam.authorizeAssumeRole(allowedCaller, t.arn)).toMatchObject({ allowed: true });
    expect(iam.authorizeAssumeRole(plainCaller, t.arn)).toEqual({
      allowed: false,
      reason: `the trust policy of role by-account trusts the account, and no statement in the policies of role cannot-assume allows sts:AssumeRole on ${t.arn}`,
    });
    // The bare account id means the same.
    const t2 = target('by-account-id', { AWS: ACCOUNT });
    expect(iam.authorizeAssumeRole(allowedCaller, t2.arn).allowed).toBe(true);
    expect(iam.authorizeAssumeRole(plainCaller, t2.arn).allowed).toBe(false);
  });

  it('needs no caller permission when the trust policy names the caller role, but the session policy limits it', () => {
    const caller = callerRole('named', []);
    const t = target('names-role', { AWS: iam.getRole('named')!.arn });
    expect(iam.authorizeAssumeRole(caller, t.arn).allowed).toBe(true);
    const narrowed = session('named', 'narrowed', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }],
    });
    expect(iam.authorizeAssumeRole(narrowed, t.arn)).toEqual({
      allowed: false,
      reason: `no statement in the session policy allows sts:AssumeRole on ${t.arn}`,
    });
  });

  it('is not limited by the session policy when the trust policy names the session itself', () => {
    callerRole('sessioned', []);
    const narrowed = session('sessioned', 'exact', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }],
    });
    const t = target('names-session', { AWS: narrowed.principalArn });
    expect(iam.authorizeAssumeRole(narrowed, t.arn).allowed).toBe(true);
    const other = session('sessioned', 'other');
    expect(iam.authorizeAssumeRole(other, t.arn).allowed).toBe(false);
  });

  it('refuses a caller the trust policy does not name, whatever its own permissions', () => {
    const caller = callerRole('outsider', ['*']);
    const t = target('lambda-only', { Service: 'lambda.amazonaws.com' });
    expect(iam.authorizeAssumeRole(caller, t.arn)).toEqual({
      allowed: false,
      reason: `the trust policy of role lambda-only does not allow ${caller.principalArn}`,
    });
  });

  it('lets an explicit Deny win: in the trust policy and in the caller policies', () => {
    const caller = callerRole('denied', ['*']);
    const t = target('deny-in-trust', { AWS: ACCOUNT }, [
      { Effect: 'Deny', Principal: { AWS: iam.getRole('denied')!.arn }, Action: 'sts:AssumeRole' },
    ]);
    expect(iam.authorizeAssumeRole(caller, t.arn)).toEqual({
      allowed: false,
      reason: 'explicit deny in the trust policy of role deny-in-trust',
    });
    const t2 = target('trusts-everyone', '*');
    iam.putRolePolicy('denied', 'deny', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Deny', Action: 'sts:AssumeRole', Resource: t2.arn }],
    });
    expect(iam.authorizeAssumeRole(caller, t2.arn).allowed).toBe(false);
  });

  it('evaluates trust policy conditions on the request context', () => {
    const caller = callerRole('ext', ['*']);
    const t = iam.putRole({
      roleName: 'needs-external-id',
      trustPolicy: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: ACCOUNT },
            Action: 'sts:AssumeRole',
            Condition: { StringEquals: { 'sts:ExternalId': 'secret-123' } },
          },
        ],
      },
    });
    expect(iam.authorizeAssumeRole(caller, t.arn).allowed).toBe(false);
    expect(iam.authorizeAssumeRole(caller, t.arn, { 'sts:ExternalId': 'wrong' }).allowed).toBe(false);
    expect(iam.authorizeAssumeRole(caller, t.arn, { 'sts:ExternalId': 'secret-123' }).allowed).toBe(true);
  });

  it('refuses unknown roles and roles of other accounts', () => {
    const caller = callerRole('anyone', ['*']);
    expect(iam.authorizeAssumeRole(caller, `arn:aws:iam::${ACCOUNT}:role/nope`).allowed).toBe(false);
    expect(iam.authorizeAssumeRole(caller, 'arn:aws:iam::123456789012:role/anyone').allowed).toBe(false);
  });
});

describe('trust and session policy documents', () => {
  it('rejects what AWS rejects in a trust policy', () => {
    const bad = (doc: unknown) => () => parseTrustPolicy('r', doc);
    expect(
      bad({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: '*', Action: 'sts:AssumeRole', Resource: '*' }],
      }),
    ).toThrow('Statement[0]: Has prohibited field Resource');
    expect(
      bad({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Deny', NotPrincipal: { AWS: ACCOUNT }, Action: 'sts:AssumeRole' }],
      }),
    ).toThrow('NotPrincipal: is not allowed in a role trust policy');
    expect(
      bad({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::*:root' }, Action: 'sts:AssumeRole' }],
      }),
    ).toThrow('Invalid principal');
    expect(
      bad({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole' }] }),
    ).toThrow('Statement[0].Principal: is required');
    expect(
      bad({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: '*', Acton: 'sts:AssumeRole' }],
      }),
    ).toThrow(PolicyDocumentError);
    expect(bad('{')).toThrow('not valid JSON');
  });

  it('rejects a principal in a session policy and names bad fields', () => {
    expect(() =>
      parseSessionPolicy(
        JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: '*' }],
        }),
      ),
    ).toThrow('Policy document should not specify a principal.');
    expect(() =>
      parseSessionPolicy(
        JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Maybe', Action: 's3:*', Resource: '*' }],
        }),
      ),
    ).toThrow('Statement[0].Effect');
    expect(() => parseSessionPolicy('not json')).toThrow('not valid JSON');
  });

  it('validates role names, durations and inline policies', () => {
    expect(() => iam.putRole({ roleName: 'bad name', trustPolicy: trustLambda })).toThrow(
      InvalidRequestError,
    );
    expect(() => iam.putRole({ roleName: 'r', trustPolicy: trustLambda, maxSessionDuration: 3599 })).toThrow(
      'maxSessionDuration 3599',
    );
    expect(() => iam.putRole({ roleName: 'r', trustPolicy: trustLambda, maxSessionDuration: 43201 })).toThrow(
      InvalidRequestError,
    );
    expect(() =>
      iam.putRole({ roleName: 'r', trustPolicy: trustLambda, policies: { p: '{"Statement":[]}' } }),
    ).toThrow(PolicyDocumentError);
    expect(iam.getRole('r')).toBeUndefined();
  });
});

describe('role sessions without a caller (issueRoleSession)', () => {
  it('issues temporary credentials of the role', () => {
    const role = uploadRole();
    const before = Date.now();
    const s = iam.issueRoleSession('upload', 'runtime-1');
    expect(s.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(s.sessionToken?.length).toBeGreaterThan(100);
    expect(s.principalArn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/upload/runtime-1`);
    expect(s.session).toMatchObject({
      roleName: 'upload',
      roleArn: role.arn,
      roleId: role.roleId,
      sessionName: 'runtime-1',
    });
    const expires = Date.parse(s.expiration!);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3600_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(credentials.lookup(s.accessKeyId)).toEqual(s);
    expect(iam.callerIdentity(s)).toEqual({
      account: ACCOUNT,
      arn: s.principalArn,
      userId: `${role.roleId}:runtime-1`,
    });
    expect(iam.issueRoleSession('upload', 'long', 3600).expiration).toBeDefined();
  });

  it('refuses unknown roles, bad session names and durations', () => {
    uploadRole();
    expect(() => iam.issueRoleSession('nope', 'x1')).toThrow(ResourceNotFoundError);
    expect(() => iam.issueRoleSession('upload', 'x')).toThrow('sessionName');
    expect(() => iam.issueRoleSession('upload', 'has space')).toThrow(InvalidRequestError);
    expect(() => iam.issueRoleSession('upload', 'ok', 899)).toThrow('durationSeconds 899');
    expect(() => iam.issueRoleSession('upload', 'ok', 3601)).toThrow("the role's MaxSessionDuration (3600)");
  });
});

describe('persistence', () => {
  it('keeps roles and unexpired sessions across restarts, in files only the owner can read', () => {
    const role = uploadRole();
    const s = session('upload', 'gw-1', uploadSessionPolicy(BUCKET, 'gw-1'));
    iam = newIam();
    expect(iam.getRole('upload')).toEqual(role);
    const reloaded = credentials.lookup(s.accessKeyId);
    expect(reloaded).toEqual(s);
    expect(iam.authorize(reloaded!, { action: 's3:PutObject', resource: `${B}/raw/gw-1/x` }).allowed).toBe(
      true,
    );
    expect(iam.authorize(reloaded!, { action: 's3:PutObject', resource: `${B}/raw/gw-2/x` }).allowed).toBe(
      false,
    );
    expect(statSync(join(dir, 'sessions.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'credentials.json')).mode & 0o777).toBe(0o600);
  });

  it('keeps a recently expired session (to answer ExpiredToken) and prunes older ones', () => {
    uploadRole();
    const recent = session('upload', 'recent');
    const old = session('upload', 'old');
    const now = Date.now();
    credentials.add({
      ...recent,
      expiration: new Date(now - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });
    credentials.add({
      ...old,
      expiration: new Date(now - EXPIRED_SESSION_RETENTION_MS - 60_000)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z'),
    });
    iam = newIam();
    expect(credentials.lookup(recent.accessKeyId)).toBeDefined();
    expect(credentials.lookup(old.accessKeyId)).toBeUndefined();
    expect(credentials.sessions().map((r) => r.session?.sessionName)).toEqual(['recent']);
  });

  it('keeps the root key and the role id of a role that is updated', () => {
    const root = credentials.root;
    const role = uploadRole();
    iam = newIam();
    expect(credentials.root).toEqual(root);
    const updated = iam.putRole({ roleName: 'upload', trustPolicy: trustLambda, maxSessionDuration: 7200 });
    expect(updated.roleId).toBe(role.roleId);
    expect(updated.createDate).toBe(role.createDate);
    expect(updated.maxSessionDuration).toBe(7200);
    expect(Object.keys(updated.policies)).toEqual(['uploads']);
  });
});
