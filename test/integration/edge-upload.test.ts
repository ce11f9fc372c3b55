/**
 * Gateway uploads end to end against the local cloud: the gateway connects over mutual TLS, requests
 * temporary credentials over MQTT (answered here by a responder that issues sessions of the upload role
 * through the local IAM), and uploads to the local S3 endpoint with the SDK's default client settings.
 *
 * Runs only when the local cloud serves S3 and has IAM (`cloud.iam.issueRoleSession`); until both are
 * there the suite is skipped, and its title says which is missing.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { LOCAL_DATA_BUCKET, UPLOAD_ROLE_NAME } from '../../cloud/rules/resources.js';
import { type MqttChannel, mqttChannelFromConfig } from '../../edge-component/adapters/mqtt-channel.js';
import { systemClock } from '../../edge-component/clock.js';
import { type GatewayConfig, loadGatewayConfig } from '../../edge-component/config.js';
import {
  mqttCredentialProvider,
  type RefreshingCredentialProvider,
} from '../../edge-component/credentials.js';
import { DuplicateKeyError, InvalidObjectKeyError } from '../../edge-component/errors.js';
import type { Clock } from '../../edge-component/ports.js';
import { S3Uploader, type UploadProgress } from '../../edge-component/uploader.js';
import {
  CREDENTIALS_REQUEST_FILTER,
  credentialsTopics,
  decodeCredentialsRequest,
  parseCredentialsTopic,
} from '../../protocol/credentials.js';
import { localGatewayConfig, removeDir, startTestCloud, type TestDevice } from '../helpers/cloud.js';

const MiB = 1024 * 1024;
const THING = 'gw-upload-1';

/** What the test needs of the local IAM (cloud/local/iam.ts). */
interface IamSessions {
  issueRoleSession(
    roleName: string,
    sessionName: string,
    durationSeconds?: number,
  ): { accessKeyId: string; secretAccessKey: string; sessionToken?: string; expiration?: string };
}

const tc = await startTestCloud();
const root = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });

async function s3Served(): Promise<boolean> {
  try {
    await root.send(new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, MaxKeys: 1 }));
    return true;
  } catch {
    return false;
  }
}

const iam = (tc.cloud as unknown as { iam?: Partial<IamSessions> }).iam;
const missing = [
  ...((await s3Served()) ? [] : ['the S3 endpoint']),
  ...(typeof iam?.issueRoleSession === 'function' ? [] : ['cloud.iam.issueRoleSession']),
];
const suite = missing.length === 0 ? describe : describe.skip;
const title =
  missing.length === 0
    ? 'gateway uploads to the local S3 with credentials requested over MQTT'
    : `gateway uploads to the local S3 (skipped: the local cloud has no ${missing.join(' and no ')} yet)`;

afterAll(async () => {
  root.destroy();
  await tc.stop();
  removeDir(tc.dataDir);
});

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >>> 16;
  }
  return b;
}

async function getObject(key: string): Promise<Buffer> {
  const out = await root.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** A gateway configuration for the local cloud (device files as `local provision` writes them). */
function gatewayConfig(thingName: string) {
  return localGatewayConfig(tc.cloud, thingName, {
    iot: { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
    credentials: { refreshMarginSeconds: 60, requestTimeoutMs: 5000, maxAttempts: 3 },
    upload: { partSizeBytes: 5 * MiB, singlePutMaxBytes: 5 * MiB, queueSize: 2 },
  });
}

function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(process.cwd(), 'bin', 'edgefleet.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

suite(title, () => {
  let dev: TestDevice;
  let config: GatewayConfig;
  let channel: MqttChannel;
  /** The gateway's clock: real time plus an offset the tests move forward. */
  let offset = 0;
  const clock: Clock = { now: () => Date.now() + offset, sleep: systemClock.sleep };
  let provider: RefreshingCredentialProvider;
  let uploader: S3Uploader;
  /** Request ids the responder answered, and the access key ids it issued. */
  const answered: string[] = [];
  const issued: string[] = [];
  /** Access key id of every S3 request the gateway made, in order. */
  const signedWith: string[] = [];
  let stopResponder = () => {};

  beforeAll(async () => {
    dev = await tc.provision(THING);
    const file = join(dev.outDir, 'gw.json');
    writeFileSync(file, JSON.stringify(gatewayConfig(THING)));
    config = loadGatewayConfig(file);

    // The cloud side of the temporary-token pattern, as the vending function does it: a session of the
    // upload role for the thing that asked (the vending rule may answer as well; the first answer wins).
    const sessions = iam as IamSessions;
    stopResponder = tc.cloud.broker.subscribe(CREDENTIALS_REQUEST_FILTER, (topic, payload, meta) => {
      const thing = parseCredentialsTopic(topic)?.thingName;
      const request = decodeCredentialsRequest(payload);
      if (!request.ok || thing === undefined || meta.clientId !== thing) return;
      const session = sessions.issueRoleSession(UPLOAD_ROLE_NAME, `${thing}-${answered.length + 1}`, 900);
      answered.push(request.value.requestId);
      issued.push(session.accessKeyId);
      void tc.cloud.broker.publish(
        credentialsTopics(thing).response,
        JSON.stringify({
          requestId: request.value.requestId,
          accessKeyId: session.accessKeyId,
          secretAccessKey: session.secretAccessKey,
          sessionToken: session.sessionToken,
          expiration: session.expiration,
        }),
        1,
      );
    });

    const logger = pino({ level: 'silent' });
    channel = mqttChannelFromConfig(config.iot!, THING, { logger });
    provider = mqttCredentialProvider({
      channel,
      thingName: THING,
      settings: config.credentials,
      clock,
      logger,
    });
    uploader = S3Uploader.fromConfig(config, provider, { clock, logger });
    uploader.client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        const auth = request.headers?.authorization ?? request.headers?.Authorization ?? '';
        signedWith.push(/Credential=([^/]+)\//.exec(auth)?.[1] ?? '?');
        return next(args);
      },
      { step: 'deserialize', name: 'recordSigningKey' },
    );
  });

  afterAll(async () => {
    stopResponder();
    uploader?.destroy();
    await provider?.close();
    await channel?.close();
  });

  it('refuses a key outside the thing prefixes before asking for credentials', async () => {
    const before = answered.length;
    await expect(
      uploader.upload({ key: 'raw/gw-other/x.bin', source: { data: bytes(10, 1) } }),
    ).rejects.toBeInstanceOf(InvalidObjectKeyError);
    expect(answered).toHaveLength(before);
  });

  it('uploads a small object with one PutObject', async () => {
    const data = bytes(4096, 2);
    const r = await uploader.upload({
      key: `raw/${THING}/small.bin`,
      source: { data },
      contentType: 'application/octet-stream',
    });
    expect(r).toMatchObject({
      multipart: false,
      alreadyUploaded: false,
      bytes: data.length,
      sha256: sha256(data),
    });
    expect((await getObject(`raw/${THING}/small.bin`)).equals(data)).toBe(true);
    const head = await root.send(
      new HeadObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: `raw/${THING}/small.bin` }),
    );
    expect(head.Metadata?.sha256).toBe(sha256(data));
    expect(head.ETag).toBe(r.etag);
    expect(issued).toContain(signedWith.at(-1));
  });

  it('uploads 20 MB in parts, reporting progress', async () => {
    const data = bytes(20 * MiB, 3);
    const file = join(dev.outDir, 'big.bin');
    writeFileSync(file, data);
    const progress: UploadProgress[] = [];
    const r = await uploader.upload({
      key: `frames/${THING}/big.bin`,
      source: { path: file },
      onProgress: (p) => progress.push(p),
    });
    expect(r).toMatchObject({
      multipart: true,
      alreadyUploaded: false,
      bytes: data.length,
      sha256: sha256(data),
    });
    expect(r.etag).toMatch(/-4"$/);
    expect(sha256(await getObject(`frames/${THING}/big.bin`))).toBe(sha256(data));
    expect(progress.at(-1)).toEqual({ sentBytes: data.length, totalBytes: data.length });
  });

  it('never overwrites: the same bytes again succeed as already uploaded, other bytes fail', async () => {
    for (const [key, size] of [
      [`raw/${THING}/dup-small.bin`, 1000],
      [`raw/${THING}/dup-large.bin`, 6 * MiB],
    ] as const) {
      const data = bytes(size, 4);
      const first = await uploader.upload({ key, source: { data } });
      const again = await uploader.upload({ key, source: { data } });
      expect(again).toMatchObject({ alreadyUploaded: true, bytes: size, sha256: sha256(data) });
      expect(again.etag).toBe(first.etag);
      await expect(uploader.upload({ key, source: { data: bytes(size, 5) } })).rejects.toBeInstanceOf(
        DuplicateKeyError,
      );
      expect(sha256(await getObject(key))).toBe(sha256(data));
    }
  });

  it('an upload that outlives its credentials continues with fresh ones', async () => {
    const data = bytes(16 * MiB, 6);
    const requestsBefore = answered.length;
    const firstRequest = signedWith.length;
    let parts = 0;
    const sequential = S3Uploader.fromConfig(
      { ...config, upload: { ...config.upload, queueSize: 1 } },
      provider,
      {
        clock,
      },
    );
    sequential.client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        signedWith.push(/Credential=([^/]+)\//.exec(request.headers?.authorization ?? '')?.[1] ?? '?');
        return next(args);
      },
      { step: 'deserialize', name: 'recordSigningKey' },
    );
    try {
      const r = await sequential.upload({
        key: `raw/${THING}/long.bin`,
        source: { data },
        onProgress: (p) => {
          if (p.sentBytes === 0) return;
          // After the first part the gateway's clock passes the credentials' expiry (900 s sessions).
          if (++parts === 1) offset += 900_000;
        },
      });
      expect(r.multipart).toBe(true);
    } finally {
      sequential.destroy();
    }
    expect(sha256(await getObject(`raw/${THING}/long.bin`))).toBe(sha256(data));
    expect(answered.length).toBe(requestsBefore + 1);
    const keys = signedWith.slice(firstRequest);
    // CreateMultipartUpload and part 1 with the old session, parts 2-4 and Complete with the new one.
    expect(keys).toHaveLength(6);
    expect(new Set(keys.slice(0, 2)).size).toBe(1);
    expect(new Set(keys.slice(2)).size).toBe(1);
    expect(keys[2]).not.toBe(keys[0]);
  });

  it('`edgefleet gateway upload` uploads a file, with progress on stderr and the result on stdout', async () => {
    const thing = 'gw-upload-cli';
    const cliDev = await tc.provision(thing);
    const cfg = join(cliDev.outDir, 'gw.json');
    writeFileSync(cfg, JSON.stringify(gatewayConfig(thing)));
    const data = bytes(12 * MiB, 7);
    const file = join(cliDev.outDir, 'batch.bin');
    writeFileSync(file, data);
    const key = `raw/${thing}/batch.bin`;
    const r = await runCli(['gateway', 'upload', file, '--key', key, '--config', cfg]);
    expect(r.err).toMatch(/uploading raw\/gw-upload-cli\/batch\.bin: 12\.0 MiB of 12\.0 MiB \(100%\)/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      new RegExp(
        `^uploaded s3://${LOCAL_DATA_BUCKET}/${key}\n  key      ${key}\n  etag     "[0-9a-f]+-3"\n  bytes    ${data.length}\n  sha256   ${sha256(data)}\n  seconds  \\d+\\.\\d\\d\n$`,
      ),
    );
    expect(sha256(await getObject(key))).toBe(sha256(data));
    const again = await runCli(['gateway', 'upload', file, '--key', key, '--config', cfg]);
    expect(again.code).toBe(0);
    expect(again.out).toContain(`already uploaded: s3://${LOCAL_DATA_BUCKET}/${key} holds the same content`);
    writeFileSync(file, bytes(12 * MiB, 8));
    const clash = await runCli(['gateway', 'upload', file, '--key', key, '--config', cfg]);
    expect(clash.code).toBe(1);
    expect(clash.err).toContain(
      `edgefleet: s3://${LOCAL_DATA_BUCKET}/${key} already exists with different content`,
    );
  });
});
