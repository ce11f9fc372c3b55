/**
 * Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
 * AbortMultipartUpload, ListParts and ListMultipartUploads ("Uploading and copying objects using
 * multipart upload" in the S3 User Guide and each operation's page in the API Reference).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { ServiceResponse } from '../http/server.js';
import { type ReceivedBody, readSmallBody, receiveBody } from './body.js';
import {
  allowedTypes,
  type ChecksumAlgorithm,
  type ChecksumType,
  checksumHeader,
  compositeChecksum,
  createDigest,
  type Digest,
  parseAlgorithm,
} from './checksums.js';
import {
  accountOf,
  authorize,
  bucketArn,
  canonicalUserId,
  emptyResponse,
  header,
  isoDate,
  objectArn,
  queryParam,
  requireBucket,
  type S3Context,
  xmlResponse,
} from './context.js';
import { invalidArgument, invalidRequest, malformedXml, noSuchUpload, S3Error } from './errors.js';
import { isFolderKey, keySegments } from './names.js';
import type { PartInfo, StoredChecksum, UploadInfo } from './object-store.js';
import {
  checksumElements,
  checksumHeaders,
  contentHeaders,
  copyBytes,
  openCopySource,
  pickContentHeaders,
  storageClass,
  userMetadata,
  writeCondition,
} from './objects.js';
import { childText, parseXml, type XmlChildren } from './xml.js';

/** Smallest part other than the last (5 MiB), largest part (5 GiB), most parts. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_BYTES = 5 * 1024 ** 3;
export const MAX_PARTS = 10000;

function partNumberOf(ctx: S3Context): number {
  const raw = queryParam(ctx, 'partNumber') ?? '';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_PARTS) {
    throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber', raw);
  }
  return n;
}

/** The upload named by `?uploadId=`, which must belong to the request's bucket and key. */
async function requireUpload(ctx: S3Context, bucket: string): Promise<UploadInfo> {
  const uploadId = queryParam(ctx, 'uploadId') ?? '';
  const upload = await ctx.store.upload(uploadId);
  if (!upload || upload.bucket !== bucket || upload.key !== ctx.key) throw noSuchUpload(uploadId);
  return upload;
}

function uploadChecksumHeaders(upload: UploadInfo): Record<string, string> {
  return upload.checksumAlgorithm
    ? {
        'x-amz-checksum-algorithm': upload.checksumAlgorithm,
        'x-amz-checksum-type': upload.checksumType ?? 'COMPOSITE',
      }
    : {};
}

export async function createMultipartUpload(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:PutObject', objectArn(ctx, bucket, ctx.key));
  keySegments(ctx.key);
  if (isFolderKey(ctx.key)) {
    throw invalidArgument(
      `Object key '${ctx.key}' ends in '/': the local S3 keeps it as a directory`,
      'key',
      ctx.key,
    );
  }
  const algorithmRaw = header(ctx, 'x-amz-checksum-algorithm');
  const typeRaw = header(ctx, 'x-amz-checksum-type');
  let algorithm: ChecksumAlgorithm | undefined;
  let type: ChecksumType | undefined;
  if (algorithmRaw !== undefined) {
    algorithm = parseAlgorithm(algorithmRaw);
    if (!algorithm) throw invalidRequest(`Checksum algorithm '${algorithmRaw}' is not supported.`);
  }
  if (typeRaw !== undefined) {
    const t = typeRaw.toUpperCase();
    if (t !== 'COMPOSITE' && t !== 'FULL_OBJECT') {
      throw invalidRequest(`Value for x-amz-checksum-type header is invalid: ${typeRaw}`);
    }
    if (!algorithm)
      throw invalidRequest(
        'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.',
      );
    type = t;
  }
  if (algorithm) {
    type ??= algorithm === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE';
    if (!allowedTypes(algorithm).includes(type)) {
      throw invalidRequest(
        `The ${type} checksum type cannot be used with the ${algorithm.toLowerCase()} checksum algorithm.`,
      );
    }
  }
  const sc = storageClass(ctx);
  const upload = await ctx.store.createUpload({
    bucket,
    key: ctx.key,
    ...contentHeaders(ctx),
    userMetadata: userMetadata(ctx),
    ...(sc !== undefined ? { storageClass: sc } : {}),
    ...(algorithm ? { checksumAlgorithm: algorithm, checksumType: type } : {}),
    initiator: ctx.req.caller.principalArn,
  });
  return xmlResponse(
    ctx,
    'InitiateMultipartUploadResult',
    [
      ['Bucket', bucket],
      ['Key', ctx.key],
      ['UploadId', upload.uploadId],
    ],
    uploadChecksumHeaders(upload),
  );
}

/**
 * Checks a part's declared checksum against the upload's algorithm ("Checking object integrity"): an
 * upload created with an algorithm takes parts with that algorithm's checksum (and, for COMPOSITE, only
 * with one). Parts of an upload created without one may carry any checksum (verified, then unused).
 */
function checkPartAlgorithm(upload: UploadInfo, body: ReceivedBody): void {
  const expected = upload.checksumAlgorithm;
  if (!expected) return;
  const declared = body.declared?.algorithm;
  const mismatch = declared ? declared !== expected : upload.checksumType !== 'FULL_OBJECT';
  if (mismatch) {
    throw invalidRequest(
      `Checksum Type mismatch occurred, expected checksum Type: ${expected.toLowerCase()}, actual checksum Type: ${declared?.toLowerCase() ?? 'null'}`,
    );
  }
}

async function storePart(
  ctx: S3Context,
  upload: UploadInfo,
  partNumber: number,
  body: ReceivedBody,
): Promise<PartInfo> {
  const part: PartInfo = {
    partNumber,
    etag: `"${body.md5.toString('hex')}"`,
    size: body.size,
    lastModified: Date.now(),
    checksums: body.checksums,
  };
  try {
    if (!(await ctx.store.putPart(upload.uploadId, body.temp, part))) throw noSuchUpload(upload.uploadId);
  } finally {
    await body.temp.discard();
  }
  return part;
}

function partChecksum(upload: UploadInfo, part: PartInfo): StoredChecksum | undefined {
  const a = upload.checksumAlgorithm;
  const v = a ? part.checksums[a] : undefined;
  return a && v ? { algorithm: a, value: v, type: upload.checksumType ?? 'COMPOSITE' } : undefined;
}

export async function uploadPart(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:PutObject', objectArn(ctx, bucket, ctx.key));
  const partNumber = partNumberOf(ctx);
  const upload = await requireUpload(ctx, bucket);
  const body = await receiveBody(ctx.req, {
    compute: upload.checksumAlgorithm ? [upload.checksumAlgorithm] : [],
    maxSize: MAX_PART_BYTES,
    newTemp: () => ctx.store.newTemp(),
  });
  try {
    checkPartAlgorithm(upload, body);
  } catch (err) {
    await body.temp.discard();
    throw err;
  }
  const part = await storePart(ctx, upload, partNumber, body);
  const c = partChecksum(upload, part);
  return emptyResponse(ctx, 200, {
    etag: part.etag,
    ...(c ? { [checksumHeader(c.algorithm)]: c.value } : {}),
  });
}

export async function uploadPartCopy(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:PutObject', objectArn(ctx, bucket, ctx.key));
  const partNumber = partNumberOf(ctx);
  const upload = await requireUpload(ctx, bucket);
  const src = await openCopySource(ctx);
  try {
    let start = 0;
    let length = src.meta.size;
    const rangeRaw = header(ctx, 'x-amz-copy-source-range');
    if (rangeRaw !== undefined) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(rangeRaw.trim());
      if (!m || Number(m[2]) < Number(m[1]) || Number(m[2]) >= src.meta.size) {
        throw invalidArgument(
          `The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy, within the object of ${src.meta.size} bytes`,
          'x-amz-copy-source-range',
          rangeRaw,
        );
      }
      start = Number(m[1]);
      length = Number(m[2]) - start + 1;
    }
    if (length > MAX_PART_BYTES)
      throw new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size');
    const body = await copyBytes(
      ctx,
      src.handle,
      start,
      length,
      upload.checksumAlgorithm ? [upload.checksumAlgorithm] : [],
    );
    const part = await storePart(ctx, upload, partNumber, body);
    const c = partChecksum(upload, part);
    return xmlResponse(ctx, 'CopyPartResult', [
      ['LastModified', isoDate(part.lastModified)],
      ['ETag', part.etag],
      c && [`Checksum${c.algorithm}`, c.value],
    ]);
  } finally {
    await src.handle?.close();
  }
}

export async function abortMultipartUpload(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:AbortMultipartUpload', objectArn(ctx, bucket, ctx.key));
  const upload = await requireUpload(ctx, bucket);
  await ctx.store.withUploadLock(upload.uploadId, () => ctx.store.removeUpload(upload.uploadId));
  return emptyResponse(ctx, 204);
}

function bareEtag(etag: string): string {
  return etag.trim().replace(/^"|"$/g, '');
}

export async function completeMultipartUpload(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:PutObject', objectArn(ctx, bucket, ctx.key));
  const upload = await requireUpload(ctx, bucket);
  const condition = writeCondition(ctx);
  const doc = parseXml((await readSmallBody(ctx.req, 4 * 1024 * 1024)).toString('utf8'));
  if (doc.name !== 'CompleteMultipartUpload') throw malformedXml();
  const requested = doc.children
    .filter((c) => c.name === 'Part')
    .map((p) => {
      const n = Number(childText(p, 'PartNumber'));
      const etag = childText(p, 'ETag');
      if (!Number.isInteger(n) || etag === undefined) throw malformedXml();
      const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
      for (const c of p.children) {
        const a = c.name.startsWith('Checksum') ? parseAlgorithm(c.name.slice('Checksum'.length)) : undefined;
        if (a) checksums[a] = c.text.trim();
      }
      return { partNumber: n, etag: bareEtag(etag), checksums };
    });
  if (requested.length === 0) throw malformedXml();
  if (condition) condition(await ctx.store.head(bucket, ctx.key));

  return ctx.store.withUploadLock(upload.uploadId, async () => {
    if (!(await ctx.store.upload(upload.uploadId))) throw noSuchUpload(upload.uploadId);
    const stored = new Map((await ctx.store.listParts(upload.uploadId)).map((p) => [p.partNumber, p]));
    const algorithm = upload.checksumAlgorithm;
    const type: ChecksumType = upload.checksumType ?? 'COMPOSITE';
    const parts: PartInfo[] = [];
    let previous = 0;
    for (const [i, r] of requested.entries()) {
      if (r.partNumber <= previous) {
        throw new S3Error(
          400,
          'InvalidPartOrder',
          'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
          { UploadId: upload.uploadId },
        );
      }
      previous = r.partNumber;
      const part = stored.get(r.partNumber);
      const invalidPart = () =>
        new S3Error(
          400,
          'InvalidPart',
          "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag.",
          { UploadId: upload.uploadId, PartNumber: String(r.partNumber), ETag: r.etag },
        );
      if (!part || bareEtag(part.etag) !== r.etag) throw invalidPart();
      if (algorithm) {
        const sent = r.checksums[algorithm];
        if (sent === undefined && type === 'COMPOSITE') {
          throw invalidRequest(
            `The upload was created using a ${algorithm.toLowerCase()} checksum. The complete request must include the checksum for each part. It was missing for part ${r.partNumber} in the request.`,
          );
        }
        if (sent !== undefined && sent !== part.checksums[algorithm]) throw invalidPart();
      }
      for (const a of Object.keys(r.checksums) as ChecksumAlgorithm[]) {
        if (algorithm && a !== algorithm) {
          throw invalidRequest(
            `The upload was created using a ${algorithm.toLowerCase()} checksum; the complete request included a ${a.toLowerCase()} checksum for part ${r.partNumber}.`,
          );
        }
      }
      if (i < requested.length - 1 && part.size < MIN_PART_BYTES) {
        throw new S3Error(
          400,
          'EntityTooSmall',
          'Your proposed upload is smaller than the minimum allowed size',
          {
            ProposedSize: String(part.size),
            MinSizeAllowed: String(MIN_PART_BYTES),
            PartNumber: String(r.partNumber),
            ETag: r.etag,
          },
        );
      }
      parts.push(part);
    }

    // Concatenate the parts into one file, computing the full-object checksum on the way when needed.
    const fullAlgorithm: ChecksumAlgorithm | undefined =
      algorithm === undefined ? 'CRC64NVME' : type === 'FULL_OBJECT' ? algorithm : undefined;
    const full: Digest | undefined = fullAlgorithm ? createDigest(fullAlgorithm) : undefined;
    const temp = await ctx.store.newTemp();
    try {
      for (const p of parts) {
        for await (const chunk of createReadStream(ctx.store.partFile(upload.uploadId, p.partNumber))) {
          full?.update(chunk as Buffer);
          await temp.write(chunk as Buffer);
        }
      }
      await temp.finish();
      const checksum: StoredChecksum =
        full && fullAlgorithm
          ? { algorithm: fullAlgorithm, value: full.digest().toString('base64'), type: 'FULL_OBJECT' }
          : {
              algorithm: algorithm!,
              value: compositeChecksum(
                algorithm!,
                parts.map((p) => p.checksums[algorithm!]!),
              ),
              type: 'COMPOSITE',
            };
      const declaredFull = header(ctx, checksumHeader(checksum.algorithm));
      if (declaredFull !== undefined && declaredFull !== checksum.value) {
        throw new S3Error(
          400,
          'BadDigest',
          `The ${checksum.algorithm} you specified did not match the calculated checksum.`,
        );
      }
      const md5s = createHash('md5');
      for (const p of parts) md5s.update(Buffer.from(bareEtag(p.etag), 'hex'));
      const etag = `"${md5s.digest('hex')}-${parts.length}"`;
      const meta = {
        ...pickContentHeaders(upload),
        userMetadata: upload.userMetadata,
        ...(upload.storageClass !== undefined ? { storageClass: upload.storageClass } : {}),
      };
      const object = await ctx.store.commit(
        bucket,
        ctx.key,
        temp,
        { ...meta, etag, checksum, partSizes: parts.map((p) => p.size) },
        condition,
      );
      await ctx.store.removeUpload(upload.uploadId);
      ctx.objectCreated?.('ObjectCreated:CompleteMultipartUpload', {
        bucket,
        key: ctx.key,
        size: object.size,
        etag: object.etag,
      });
      const host = header(ctx, 'host') ?? 'localhost';
      const location = `http://${host}/${bucket}/${ctx.key.split('/').map(encodeURIComponent).join('/')}`;
      return xmlResponse(
        ctx,
        'CompleteMultipartUploadResult',
        [
          ['Location', location],
          ['Bucket', bucket],
          ['Key', ctx.key],
          ['ETag', object.etag],
          ...checksumElements(checksum),
        ],
        checksumHeaders(checksum),
      );
    } finally {
      await temp.discard();
    }
  });
}

function maxParam(ctx: S3Context, name: string, fallback: number): number {
  const raw = queryParam(ctx, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw))
    throw invalidArgument(`Provided ${name} not an integer or within integer range`, name, raw);
  return Math.min(n, 1000);
}

export async function listParts(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  authorize(ctx, 's3:ListMultipartUploadParts', objectArn(ctx, bucket, ctx.key));
  const upload = await requireUpload(ctx, bucket);
  const maxParts = maxParam(ctx, 'max-parts', 1000);
  const markerRaw = queryParam(ctx, 'part-number-marker') ?? '0';
  const marker = Number(markerRaw);
  if (!/^\d+$/.test(markerRaw)) {
    throw invalidArgument(
      'Provided part-number-marker not an integer or within integer range',
      'part-number-marker',
      markerRaw,
    );
  }
  const all = (await ctx.store.listParts(upload.uploadId)).filter((p) => p.partNumber > marker);
  const page = all.slice(0, maxParts);
  const truncated = all.length > page.length;
  const owner: XmlChildren = [['ID', canonicalUserId(accountOf(ctx))]];
  return xmlResponse(ctx, 'ListPartsResult', [
    ['Bucket', bucket],
    ['Key', ctx.key],
    ['UploadId', upload.uploadId],
    ['PartNumberMarker', marker],
    ['NextPartNumberMarker', page.at(-1)?.partNumber ?? marker],
    ['MaxParts', maxParts],
    ['IsTruncated', truncated],
    ...page.map((p): XmlChildren[number] => [
      'Part',
      [
        ['PartNumber', p.partNumber],
        ['LastModified', isoDate(p.lastModified)],
        ['ETag', p.etag],
        ['Size', p.size],
        ...(upload.checksumAlgorithm && p.checksums[upload.checksumAlgorithm] !== undefined
          ? ([[`Checksum${upload.checksumAlgorithm}`, p.checksums[upload.checksumAlgorithm]!]] as XmlChildren)
          : []),
      ],
    ]),
    [
      'Initiator',
      [
        ['ID', upload.initiator],
        ['DisplayName', upload.initiator],
      ],
    ],
    ['Owner', owner],
    ['StorageClass', upload.storageClass ?? 'STANDARD'],
    upload.checksumAlgorithm !== undefined && ['ChecksumAlgorithm', upload.checksumAlgorithm],
    upload.checksumAlgorithm !== undefined && ['ChecksumType', upload.checksumType ?? 'COMPOSITE'],
  ]);
}

export async function listMultipartUploads(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = requireBucket(ctx).name;
  const prefix = queryParam(ctx, 'prefix') ?? '';
  authorize(
    ctx,
    's3:ListBucketMultipartUploads',
    bucketArn(ctx, bucket),
    prefix ? { 's3:prefix': prefix } : {},
  );
  const maxUploads = maxParam(ctx, 'max-uploads', 1000);
  const keyMarker = queryParam(ctx, 'key-marker');
  const uploadIdMarker = queryParam(ctx, 'upload-id-marker');
  let all = (await ctx.store.listUploads(bucket)).filter((u) => u.key.startsWith(prefix));
  if (keyMarker !== undefined && keyMarker !== '') {
    const idx = uploadIdMarker
      ? all.findIndex((u) => u.key === keyMarker && u.uploadId === uploadIdMarker)
      : -1;
    all = idx >= 0 ? all.slice(idx + 1) : all.filter((u) => u.key > keyMarker);
  }
  const page = all.slice(0, maxUploads);
  const truncated = all.length > page.length;
  const last = page.at(-1);
  const owner: XmlChildren = [['ID', canonicalUserId(accountOf(ctx))]];
  return xmlResponse(ctx, 'ListMultipartUploadsResult', [
    ['Bucket', bucket],
    ['KeyMarker', keyMarker ?? ''],
    ['UploadIdMarker', uploadIdMarker ?? ''],
    truncated && last !== undefined && ['NextKeyMarker', last.key],
    truncated && last !== undefined && ['NextUploadIdMarker', last.uploadId],
    ['Prefix', prefix],
    ['MaxUploads', maxUploads],
    ['IsTruncated', truncated],
    ...page.map((u): XmlChildren[number] => [
      'Upload',
      [
        ['Key', u.key],
        ['UploadId', u.uploadId],
        [
          'Initiator',
          [
            ['ID', u.initiator],
            ['DisplayName', u.initiator],
          ],
        ],
        ['Owner', owner],
        ['StorageClass', u.storageClass ?? 'STANDARD'],
        ['Initiated', isoDate(u.initiated)],
        u.checksumAlgorithm !== undefined && ['ChecksumAlgorithm', u.checksumAlgorithm],
        u.checksumAlgorithm !== undefined && ['ChecksumType', u.checksumType ?? 'COMPOSITE'],
      ],
    ]),
  ]);
}
