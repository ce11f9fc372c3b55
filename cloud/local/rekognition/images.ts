/**
 * The `Image` input of the Rekognition image operations: `Bytes` (base64 in the JSON body, at most 5 MB
 * of raw bytes) or `S3Object {Bucket, Name}` (at most 15 MB), read from the local S3 with the caller's
 * own permissions (`s3:GetObject` on the object), as Rekognition reads S3 with the credentials of the
 * request. JPEG and PNG only ("Guidelines and quotas in Amazon Rekognition"), at least 80x80 pixels.
 */
import { z } from 'zod';
import { decodeImage, InvalidImageError, type RgbImage } from '../../../analytics/vision/image.js';
import type { Authorizer } from '../authz.js';
import type { ServiceRequest } from '../http/server.js';
import { partitionOf } from '../s3/context.js';
import type { ObjectStore } from '../s3/object-store.js';
import { imageTooLarge, invalidImageFormat, invalidParameter, invalidS3Object } from './errors.js';

export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
export const MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024;
export const MIN_IMAGE_SIDE = 80;
/** Images are analysed at most this large (longer side); boxes are ratios, so the scale does not show. */
const ANALYSIS_MAX_SIDE = 1920;

export const ImageSchema = z
  .object({
    Bytes: z.string().optional(),
    S3Object: z
      .object({
        Bucket: z.string().min(3).max(255),
        Name: z.string().min(1).max(1024),
        Version: z.string().min(1).max(1024).optional(),
      })
      .optional(),
  })
  .refine((i) => (i.Bytes === undefined) !== (i.S3Object === undefined), {
    message: 'exactly one of Bytes and S3Object must be given',
  });
export type ImageInput = z.output<typeof ImageSchema>;

export interface ImageDeps {
  store: ObjectStore;
  authorizer: Authorizer;
  region: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isJpeg(b: Buffer): boolean {
  return b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}
function isPng(b: Buffer): boolean {
  return (
    b.length > 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  );
}

async function readS3(deps: ImageDeps, req: ServiceRequest, s3: NonNullable<ImageInput['S3Object']>) {
  const arn = `arn:${partitionOf(deps.region)}:s3:::${s3.Bucket}/${s3.Name}`;
  const decision = deps.authorizer.authorize(req.caller, { action: 's3:GetObject', resource: arn });
  if (!decision.allowed) {
    // Rekognition reports an object it may not read like a missing one.
    throw invalidS3Object();
  }
  if (s3.Version !== undefined) throw invalidS3Object('The local S3 does not keep object versions.');
  if (!deps.store.bucketInfo(s3.Bucket)) throw invalidS3Object();
  const opened = await deps.store.open(s3.Bucket, s3.Name).catch(() => undefined);
  if (!opened?.handle) throw invalidS3Object();
  try {
    if (opened.meta.size > MAX_S3_IMAGE_BYTES) {
      throw imageTooLarge(
        `Image size is too large: the S3 object is larger than ${MAX_S3_IMAGE_BYTES} bytes.`,
      );
    }
    return await opened.handle.readFile();
  } finally {
    await opened.handle.close();
  }
}

/** The image's bytes, as given inline or read from S3. */
export async function imageBytes(deps: ImageDeps, req: ServiceRequest, image: ImageInput): Promise<Buffer> {
  if (image.S3Object) return readS3(deps, req, image.S3Object);
  const b64 = image.Bytes ?? '';
  if (!BASE64.test(b64) || b64.length % 4 !== 0) throw invalidParameter('Image.Bytes is not valid base64');
  // base64 of 5 MB is ~6.7 MB of text; the raw size is what counts.
  const raw = Buffer.from(b64, 'base64');
  if (raw.length > MAX_IMAGE_BYTES) {
    throw imageTooLarge(`Image size is too large: Image.Bytes is larger than ${MAX_IMAGE_BYTES} bytes.`);
  }
  return raw;
}

/** Decodes JPEG/PNG bytes for analysis; anything else is InvalidImageFormatException. */
export async function analysisImage(bytes: Buffer): Promise<RgbImage> {
  if (!isJpeg(bytes) && !isPng(bytes)) throw invalidImageFormat();
  let image: RgbImage;
  try {
    image = await decodeImage(bytes, { maxSide: ANALYSIS_MAX_SIDE });
  } catch (err) {
    if (err instanceof InvalidImageError) throw invalidImageFormat();
    throw err;
  }
  if (image.width < MIN_IMAGE_SIDE || image.height < MIN_IMAGE_SIDE) {
    // Checked on the analysed size: smaller than the original only for images with a side above 1920
    // and an extreme aspect ratio.
    throw invalidParameter(`The minimum image dimensions are ${MIN_IMAGE_SIDE}x${MIN_IMAGE_SIDE} pixels.`);
  }
  return image;
}
