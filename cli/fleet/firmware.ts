/**
 * Publishing firmware: signer keys, the firmware bucket's layout, uploading an artifact with its signed
 * manifest, and reading a published manifest back (verified against trusted keys).
 *
 * Layout of the firmware bucket: artifacts at `firmware/{target}/{version}/{sha256}.bin`, signed manifests
 * at `manifests/{target}/{version}.json`. A version is published once: the manifest is written with
 * `If-None-Match: *`.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  NotFound,
  PutObjectCommand,
  type S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Logger } from 'pino';
import {
  type Manifest,
  ManifestBodySchema,
  ManifestSchema,
  signManifest,
  verifyManifestSignature,
} from '../../protocol/firmware.js';
import { FirmwarePublishError, ManifestError } from './errors.js';

/** Parts of a multipart artifact upload (S3's minimum is 5 MiB). */
const PART_SIZE = 8 * 1024 * 1024;

export const artifactKey = (target: string, version: string, sha256: string) =>
  `firmware/${target}/${version}/${sha256}.bin`;
export const manifestKey = (target: string, version: string) => `manifests/${target}/${version}.json`;

/** The default key id: the first 16 hex digits of the SHA-256 of the public key's DER (SPKI). */
export function keyIdOf(key: KeyObject | string): string {
  const pub =
    typeof key === 'string' ? createPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

export interface SignerKeyPair {
  keyId: string;
  privateKeyPem: string;
  publicKeyPem: string;
}

/** A new EC P-256 signer key pair. */
export function generateSignerKey(keyId?: string): SignerKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyId: keyId ?? keyIdOf(publicKey),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Reads an EC P-256 private key (PEM); anything else is a FirmwarePublishError. */
export function signerKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new FirmwarePublishError('the signer key is not a private key in PEM', { cause: err });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new FirmwarePublishError('the signer key must be an EC P-256 key');
  }
  return key;
}

/** Size and SHA-256 (hex) of a file, read as a stream. */
export async function digestFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { size, sha256: hash.digest('hex') };
}

export interface PublishInput {
  s3: S3Client;
  bucket: string;
  file: string;
  target: string;
  version: string;
  privateKey: KeyObject;
  /** Default: keyIdOf(privateKey). */
  keyId?: string | undefined;
  expiresInDays: number;
  now?: () => Date;
  logger?: Logger;
}

export interface PublishResult {
  manifest: Manifest;
  artifactKey: string;
  manifestKey: string;
}

const isPreconditionFailed = (err: unknown) =>
  err instanceof S3ServiceException &&
  (err.name === 'PreconditionFailed' || err.$metadata.httpStatusCode === 412);

/** Uploads the artifact and its signed manifest; refuses a version that is already published. */
export async function publishFirmware(input: PublishInput): Promise<PublishResult> {
  const { s3, bucket, target, version } = input;
  const now = (input.now ?? (() => new Date()))();
  const mKey = manifestKey(target, version);
  const refused = () =>
    new FirmwarePublishError(
      `firmware ${target} ${version} is already published (s3://${bucket}/${mKey}); publish a new version instead`,
    );
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: mKey }));
    throw refused();
  } catch (err) {
    if (
      !(
        err instanceof NotFound ||
        (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)
      )
    ) {
      throw err;
    }
  }
  try {
    if (!(await stat(input.file)).isFile()) throw new FirmwarePublishError(`${input.file} is not a file`);
  } catch (err) {
    if (err instanceof FirmwarePublishError) throw err;
    throw new FirmwarePublishError(`cannot read ${input.file}`, { cause: err });
  }
  const { size, sha256 } = await digestFile(input.file);
  if (size === 0) throw new FirmwarePublishError(`${input.file} is empty`);
  const aKey = artifactKey(target, version, sha256);
  const body = ManifestBodySchema.safeParse({
    target,
    version,
    url: `s3://${bucket}/${aKey}`,
    size,
    sha256,
    issuedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + input.expiresInDays * 86_400_000).toISOString(),
    keyId: input.keyId ?? keyIdOf(input.privateKey),
  });
  if (!body.success) {
    const issue = body.error.issues[0];
    throw new FirmwarePublishError(
      `manifest ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'is invalid'}`,
    );
  }
  const manifest = signManifest(body.data, input.privateKey);

  input.logger?.info({ bucket, key: aKey, size }, 'uploading firmware artifact');
  const upload = new Upload({
    client: s3,
    params: {
      Bucket: bucket,
      Key: aKey,
      Body: createReadStream(input.file),
      ContentType: 'application/octet-stream',
    },
    partSize: PART_SIZE,
    queueSize: 4,
  });
  await upload.done();
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: mKey,
        Body: `${JSON.stringify(manifest, null, 2)}\n`,
        ContentType: 'application/json',
        IfNoneMatch: '*',
      }),
    );
  } catch (err) {
    if (isPreconditionFailed(err)) throw refused();
    throw err;
  }
  input.logger?.info({ bucket, key: mKey, target, version }, 'published firmware manifest');
  return { manifest, artifactKey: aKey, manifestKey: mKey };
}

/** Trusted signer keys: key id -> public key (PEM), as `fleet firmware keygen` writes them to signer.json. */
export type TrustedKeys = Record<string, string>;

/**
 * Reads the manifest of `target` `version` and checks it: schema, target and version, not expired, and a
 * signature that verifies with the trusted key it names.
 */
export async function readManifest(
  s3: S3Client,
  bucket: string,
  target: string,
  version: string,
  trusted: TrustedKeys,
  now: Date = new Date(),
): Promise<Manifest> {
  const key = manifestKey(target, version);
  let text: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = (await out.Body?.transformToString('utf8')) ?? '';
  } catch (err) {
    if (
      err instanceof S3ServiceException &&
      (err.name === 'NoSuchKey' || err.$metadata.httpStatusCode === 404)
    ) {
      throw new ManifestError(`firmware ${target} ${version} is not published (no s3://${bucket}/${key})`, {
        cause: err,
      });
    }
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`s3://${bucket}/${key} is not JSON`, { cause: err });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ManifestError(
      `s3://${bucket}/${key}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const m = parsed.data;
  if (m.target !== target || m.version !== version) {
    throw new ManifestError(
      `s3://${bucket}/${key} is for ${m.target} ${m.version}, not ${target} ${version}`,
    );
  }
  if (Date.parse(m.expiresAt) <= now.getTime()) {
    throw new ManifestError(
      `the manifest of ${target} ${version} expired at ${m.expiresAt}; publish a new version`,
    );
  }
  const pub = trusted[m.keyId];
  if (pub === undefined) {
    throw new ManifestError(
      `the manifest of ${target} ${version} is signed by key ${m.keyId}, which is not trusted`,
    );
  }
  if (!verifyManifestSignature(m, pub)) {
    throw new ManifestError(
      `the signature of the manifest of ${target} ${version} does not verify with key ${m.keyId}`,
    );
  }
  return m;
}

/** Bucket and key of an `s3://bucket/key` URL. */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new ManifestError(`manifest url '${url}' is not an s3://bucket/key URL`);
  return { bucket: m[1]!, key: m[2]! };
}
