/**
 * The local cloud's STS through the unchanged @aws-sdk/client-sts, and role sessions used on another
 * service (the IoT data plane). Behaviour as the STS API Reference documents it:
 * - AssumeRole "DurationSeconds": "The value specified can range from 900 seconds (15 minutes) up to the
 *   maximum session duration set for the role"; "if you assume a role using role chaining and provide a
 *   DurationSeconds parameter value greater than one hour, the operation fails"; default 3600.
 * - "RoleSessionName": "upper- and lower-case alphanumeric characters with no spaces", underscores and
 *   `+=,.@-`, 2 to 64 characters.
 * - "You cannot call AssumeRole by using AWS account root user credentials; access is denied."
 * - Errors: ValidationError, MalformedPolicyDocument, PackedPolicyTooLarge, RegionDisabledException,
 *   AccessDenied; GetCallerIdentity needs no permission.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  PublishCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import {
  AssumeRoleCommand,
  type AssumeRoleCommandInput,
  type Credentials,
  GetCallerIdentityCommand,
  MalformedPolicyDocumentException,
  PackedPolicyTooLargeException,
  RegionDisabledException,
  STSClient,
} from '@aws-sdk/client-sts';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { CredentialRecord } from '../../cloud/local/credentials.js';
import { UPLOAD_ROLE_NAME, uploadSessionPolicy, VENDING_ROLE_NAME } from '../../cloud/rules/resources.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const ACCOUNT = '000000000000';
const UPLOAD_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/${UPLOAD_ROLE_NAME}`;
const VENDING_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/${VENDING_ROLE_NAME}`;

let dataDir: string;
let t: TestCloud;
let vending: CredentialRecord;

/** SDK credentials from a stored session or from an AssumeRole answer. */
function credentialsOf(r: CredentialRecord | Credentials) {
  if ('AccessKeyId' in r) {
    return {
      accessKeyId: r.AccessKeyId!,
      secretAccessKey: r.SecretAccessKey!,
      sessionToken: r.SessionToken!,
    };
  }
  return { accessKeyId: r.accessKeyId, secretAccessKey: r.secretAccessKey, sessionToken: r.sessionToken! };
}

function sts(creds?: CredentialRecord | Credentials, region = 'us-east-1'): STSClient {
  const base = t.cloud.sdkConfig();
  return new STSClient({
    ...base,
    region,
    maxAttempts: 1,
    ...(creds ? { credentials: credentialsOf(creds) } : {}),
  });
}

function iotData(creds?: CredentialRecord | Credentials): IoTDataPlaneClient {
  return new IoTDataPlaneClient({
    ...t.cloud.sdkConfig(),
    maxAttempts: 1,
    ...(creds ? { credentials: credentialsOf(creds) } : {}),
  });
}

const assume = (input: Partial<AssumeRoleCommandInput> = {}, client = sts(vending)) =>
  client.send(new AssumeRoleCommand({ RoleArn: UPLOAD_ROLE_ARN, RoleSessionName: 'gw-1', ...input }));

async function failure(p: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the request to fail');
}

beforeAll(async () => {
  dataDir = tempDir('edgefleet-sts-');
  t = await startTestCloud(dataDir);
  vending = t.cloud.iam.issueRoleSession(VENDING_ROLE_NAME, 'vending-test');
});

afterAll(async () => {
  await t.stop();
  removeDir(dataDir);
});

describe('AssumeRole', () => {
  it('issues a session of the upload role to the vending role, narrowed by the session policy', async () => {
    const before = Date.now();
    const policy = JSON.stringify(uploadSessionPolicy('edgefleet-data', 'gw-1'));
    const out = await assume({ Policy: policy, DurationSeconds: 900 });
    const c = out.Credentials!;
    expect(c.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(c.SecretAccessKey?.length).toBeGreaterThanOrEqual(40);
    expect(c.SessionToken?.length).toBeGreaterThan(100);
    expect(c.Expiration).toBeInstanceOf(Date);
    expect(c.Expiration!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 900_000);
    expect(c.Expiration!.getTime()).toBeLessThanOrEqual(Date.now() + 900_000);
    const role = t.cloud.iam.getRole(UPLOAD_ROLE_NAME)!;
    expect(out.AssumedRoleUser).toEqual({
      AssumedRoleId: `${role.roleId}:gw-1`,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${UPLOAD_ROLE_NAME}/gw-1`,
    });
    expect(role.roleId).toMatch(/^AROA[A-Z2-7]{17}$/);
    expect(out.PackedPolicySize).toBeGreaterThan(0);
    expect(out.PackedPolicySize).toBeLessThanOrEqual(100);

    // The session is stored with its policy and source role, so the authorizer intersects them.
    const record = t.cloud.credentials.lookup(c.AccessKeyId!)!;
    expect(record.session).toMatchObject({
      roleName: UPLOAD_ROLE_NAME,
      roleArn: UPLOAD_ROLE_ARN,
      sessionName: 'gw-1',
      sessionPolicy: policy,
      issuedBy: vending.principalArn,
    });
    const put = (key: string) =>
      t.cloud.iam.authorize(record, {
        action: 's3:PutObject',
        resource: `arn:aws:s3:::edgefleet-data/${key}`,
      });
    expect(put('raw/gw-1/batch.ndjson.gz')).toEqual({ allowed: true });
    expect(put('raw/gw-2/x')).toEqual({
      allowed: false,
      reason:
        'no statement in the session policy allows s3:PutObject on arn:aws:s3:::edgefleet-data/raw/gw-2/x',
    });

    const me = await sts(c).send(new GetCallerIdentityCommand({}));
    expect(me).toMatchObject({
      Account: ACCOUNT,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${UPLOAD_ROLE_NAME}/gw-1`,
      UserId: `${role.roleId}:gw-1`,
    });
  });

  it('lasts 3600 seconds by default and answers no PackedPolicySize without a policy or tags', async () => {
    const out = await assume({ RoleSessionName: 'default-duration' });
    const ms = out.Credentials!.Expiration!.getTime() - Date.now();
    expect(ms).toBeGreaterThan(3590_000);
    expect(ms).toBeLessThanOrEqual(3600_000);
    expect(out.PackedPolicySize).toBeUndefined();
  });

  it('refuses DurationSeconds outside 900..43200 with the request validation message', async () => {
    const low = await failure(assume({ DurationSeconds: 899 }));
    expect(low.name).toBe('ValidationError');
    expect(low.message).toBe(
      "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
    );
    expect(low.$metadata?.httpStatusCode).toBe(400);
    const high = await failure(assume({ DurationSeconds: 43201 }));
    expect(high.name).toBe('ValidationError');
    expect(high.message).toBe(
      "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200",
    );
  });

  it("refuses DurationSeconds above the role's MaxSessionDuration, and above an hour for role chaining", async () => {
    const over = await failure(assume({ DurationSeconds: 3601 }));
    expect(over.name).toBe('ValidationError');
    expect(over.message).toBe(
      'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.',
    );

    const long = t.cloud.iam.putRole({
      roleName: 'long-sessions',
      maxSessionDuration: 43200,
      trustPolicy: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: VENDING_ROLE_ARN }, Action: 'sts:AssumeRole' }],
      },
    });
    const chained = await failure(assume({ RoleArn: long.arn, DurationSeconds: 7200 }));
    expect(chained.name).toBe('ValidationError');
    expect(chained.message).toBe(
      'The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.',
    );
    const ok = await assume({ RoleArn: long.arn, DurationSeconds: 3600 });
    expect(ok.AssumedRoleUser?.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/long-sessions/gw-1`);
  });

  it('refuses a bad RoleSessionName and reports every violated constraint', async () => {
    const bad = await failure(assume({ RoleSessionName: 'gw 1/x' }));
    expect(bad.name).toBe('ValidationError');
    expect(bad.message).toBe(
      "1 validation error detected: Value 'gw 1/x' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
    );
    const two = await failure(assume({ RoleSessionName: 'g', DurationSeconds: 100 }));
    expect(two.message).toBe(
      "2 validation errors detected: Value 'g' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2; Value '100' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
    );
    const long = await failure(assume({ RoleSessionName: 'x'.repeat(65) }));
    expect(long.message).toContain('Member must have length less than or equal to 64');
  });

  it('refuses a malformed session policy', async () => {
    const notJson = await failure(assume({ Policy: '{"Version":"2012-10-17",' }));
    expect(notJson).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(notJson.message).toContain('not valid JSON');
    const badEffect = await failure(
      assume({
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Permit', Action: 's3:*', Resource: '*' }],
        }),
      }),
    );
    expect(badEffect).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(badEffect.message).toContain('Statement[0].Effect');
    const principal = await failure(
      assume({
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: '*' }],
        }),
      }),
    );
    expect(principal).toBeInstanceOf(MalformedPolicyDocumentException);
    expect(principal.message).toContain('Policy document should not specify a principal.');
  });

  it('refuses a session policy over 2048 characters, and one whose packed form is too large', async () => {
    const statement = (i: number) => ({
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: `arn:aws:s3:::b/${i}`,
    });
    const long = JSON.stringify({
      Version: '2012-10-17',
      Statement: Array.from({ length: 60 }, (_, i) => statement(i)),
    });
    expect(long.length).toBeGreaterThan(2048);
    const tooLong = await failure(assume({ Policy: long }));
    expect(tooLong.name).toBe('ValidationError');
    expect(tooLong.message).toContain(
      "at 'policy' failed to satisfy constraint: Member must have length less than or equal to 2048",
    );

    // Under 2048 characters, but random resource names do not compress.
    const resources = Array.from(
      { length: 17 },
      () => `arn:aws:s3:::${randomBytes(70).toString('base64url')}`,
    );
    const incompressible = JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: resources }],
    });
    expect(incompressible.length).toBeLessThanOrEqual(2048);
    const packed = await failure(assume({ Policy: incompressible }));
    expect(packed).toBeInstanceOf(PackedPolicyTooLargeException);
    expect(packed.message).toMatch(
      /^Packed policy consumes \d+% of allotted space, please use smaller policy\.$/,
    );
  });

  it('answers PolicyArns, which the local cloud cannot resolve, with a clear error', async () => {
    const err = await failure(assume({ PolicyArns: [{ arn: 'arn:aws:iam::aws:policy/ReadOnlyAccess' }] }));
    expect(err.name).toBe('ValidationError');
    expect(err.message).toContain('PolicyArns is not supported by the local cloud');
  });

  it('accepts session tags and counts them in PackedPolicySize', async () => {
    const out = await assume({
      RoleSessionName: 'tagged',
      Tags: [
        { Key: 'Project', Value: 'Pegasus' },
        { Key: 'Cost-Center', Value: '98765' },
      ],
      TransitiveTagKeys: ['Project'],
    });
    expect(out.PackedPolicySize).toBeGreaterThan(0);
    const dup = await failure(
      assume({
        Tags: [
          { Key: 'a', Value: '1' },
          { Key: 'A', Value: '2' },
        ],
      }),
    );
    expect(dup.name).toBe('ValidationError');
  });

  it('answers AccessDenied for an unknown role, as for any role the caller may not assume', async () => {
    const arn = `arn:aws:iam::${ACCOUNT}:role/no-such-role`;
    const err = await failure(assume({ RoleArn: arn }));
    expect(err.name).toBe('AccessDenied');
    expect(err.message).toBe(
      `User: ${vending.principalArn} is not authorized to perform: sts:AssumeRole on resource: ${arn}`,
    );
    expect(err.$metadata?.httpStatusCode).toBe(403);
    const malformed = await failure(assume({ RoleArn: 'not-an-arn-at-all-really' }));
    expect(malformed.name).toBe('ValidationError');
    expect(malformed.message).toBe('Request ARN is invalid');
  });

  it('refuses the account root', async () => {
    const err = await failure(assume({}, sts()));
    expect(err.name).toBe('AccessDenied');
    expect(err.message).toBe('Roles may not be assumed by root accounts.');
  });

  it('refuses a caller the trust policy does not name, even when its own policy allows sts:AssumeRole', async () => {
    // The upload role trusts only the vending role.
    t.cloud.iam.putRole({
      roleName: 'broad-caller',
      trustPolicy: {
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
        ],
      },
      policies: {
        all: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }],
        },
      },
    });
    const broad = t.cloud.iam.issueRoleSession('broad-caller', 'broad');
    const err = await failure(assume({}, sts(broad)));
    expect(err.name).toBe('AccessDenied');
    expect(err.message).toBe(
      `User: ${broad.principalArn} is not authorized to perform: sts:AssumeRole on resource: ${UPLOAD_ROLE_ARN}`,
    );
    // A session of the upload role is not trusted by it either.
    const upload = await assume({ RoleSessionName: 'chain' });
    const again = await failure(assume({}, sts(upload.Credentials!)));
    expect(again.name).toBe('AccessDenied');
  });

  it('is active only in the local cloud region', async () => {
    const err = await failure(sts(vending, 'eu-west-1').send(new GetCallerIdentityCommand({})));
    expect(err).toBeInstanceOf(RegionDisabledException);
  });
});

describe('GetCallerIdentity', () => {
  it('names the root user and role sessions', async () => {
    expect(await sts().send(new GetCallerIdentityCommand({}))).toMatchObject({
      Account: ACCOUNT,
      Arn: `arn:aws:iam::${ACCOUNT}:root`,
      UserId: ACCOUNT,
    });
    const role = t.cloud.iam.getRole(VENDING_ROLE_NAME)!;
    expect(await sts(vending).send(new GetCallerIdentityCommand({}))).toMatchObject({
      Account: ACCOUNT,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${VENDING_ROLE_NAME}/vending-test`,
      UserId: `${role.roleId}:vending-test`,
    });
  });

  it('refuses a session token that does not belong to the key', async () => {
    const err = await failure(
      new STSClient({
        ...t.cloud.sdkConfig(),
        maxAttempts: 1,
        credentials: { ...credentialsOf(vending), sessionToken: 'forged' },
      }).send(new GetCallerIdentityCommand({})),
    );
    expect(err.name).toBe('InvalidClientTokenId');
    expect(err.message).toBe('The security token included in the request is invalid.');
  });
});

describe('role sessions on the IoT data plane', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('lets the vending role publish only to the credentials response topics, and root everything', async () => {
    await iotData(vending).send(
      new PublishCommand({ topic: 'things/gw-1/credentials/response', payload: Buffer.from('{}') }),
    );
    const denied = await failure(
      iotData(vending).send(
        new PublishCommand({ topic: 'things/gw-1/commands', payload: Buffer.from('{}') }),
      ),
    );
    expect(denied.name).toBe('ForbiddenException');
    expect(denied.$metadata?.httpStatusCode).toBe(403);
    expect(denied.message).toContain(
      `is not authorized to perform: iot:Publish on resource: arn:aws:iot:us-east-1:${ACCOUNT}:topic/things/gw-1/commands`,
    );
    const shadow = await failure(iotData(vending).send(new GetThingShadowCommand({ thingName: 'gw-1' })));
    expect(shadow.name).toBe('ForbiddenException');
    expect(shadow.message).toContain(
      `iot:GetThingShadow on resource: arn:aws:iot:us-east-1:${ACCOUNT}:thing/gw-1`,
    );
    await iotData().send(
      new UpdateThingShadowCommand({
        thingName: 'gw-1',
        payload: Buffer.from('{"state":{"desired":{"x":1}}}'),
      }),
    );
  });

  it('answers ExpiredTokenException once the session has expired', async () => {
    const out = await assume({ RoleSessionName: 'expiring', DurationSeconds: 900 });
    t.cloud.iam.putRolePolicy(UPLOAD_ROLE_NAME, 'publish-test', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: '*' }],
    });
    try {
      const client = iotData(out.Credentials!);
      await client.send(new PublishCommand({ topic: 'dt/gw-1/x', payload: Buffer.from('{}') }));
      // Move the clock (of the server and the client alike) past the expiration; timers stay real.
      jest.useFakeTimers({
        now: out.Credentials!.Expiration!.getTime() + 1000,
        doNotFake: [
          'hrtime',
          'nextTick',
          'performance',
          'queueMicrotask',
          'requestAnimationFrame',
          'cancelAnimationFrame',
          'requestIdleCallback',
          'cancelIdleCallback',
          'setImmediate',
          'clearImmediate',
          'setInterval',
          'clearInterval',
          'setTimeout',
          'clearTimeout',
        ],
      });
      const err = await failure(
        client.send(new PublishCommand({ topic: 'dt/gw-1/x', payload: Buffer.from('{}') })),
      );
      expect(err.name).toBe('ExpiredTokenException');
      expect(err.message).toBe('The security token included in the request is expired');
      const viaSts = await failure(sts(out.Credentials!).send(new GetCallerIdentityCommand({})));
      expect(viaSts.name).toBe('ExpiredToken');
    } finally {
      jest.useRealTimers();
      t.cloud.iam.deleteRolePolicy(UPLOAD_ROLE_NAME, 'publish-test');
    }
  });
});

describe('restarts', () => {
  it('keep unexpired sessions valid and the roles in place', async () => {
    const out = await assume({
      RoleSessionName: 'survivor',
      Policy: JSON.stringify(uploadSessionPolicy('edgefleet-data', 'gw-9')),
    });
    const roleId = t.cloud.iam.getRole(UPLOAD_ROLE_NAME)!.roleId;
    await t.stop();
    t = await startTestCloud(dataDir);
    expect(t.cloud.iam.getRole(UPLOAD_ROLE_NAME)?.roleId).toBe(roleId);
    expect(statSync(join(dataDir, 'sessions.json')).mode & 0o777).toBe(0o600);
    const me = await sts(out.Credentials!).send(new GetCallerIdentityCommand({}));
    expect(me.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/${UPLOAD_ROLE_NAME}/survivor`);
    // The vending role's session from before the restart still works too.
    const again = await assume({ RoleSessionName: 'after-restart' });
    expect(again.Credentials?.AccessKeyId).toMatch(/^ASIA/);
    const record = t.cloud.credentials.lookup(out.Credentials!.AccessKeyId!)!;
    expect(
      t.cloud.iam.authorize(record, {
        action: 's3:PutObject',
        resource: 'arn:aws:s3:::edgefleet-data/raw/gw-9/a',
      }),
    ).toEqual({ allowed: true });
  });
});
