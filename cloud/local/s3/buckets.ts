/** Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation. */
import type { ServiceResponse } from '../http/server.js';
import { readSmallBody } from './body.js';
import {
  accountOf,
  authorize,
  bucketArn,
  canonicalUserId,
  emptyResponse,
  isoDate,
  requireBucket,
  responseHeaders,
  type S3Context,
  xmlResponse,
} from './context.js';
import { S3Error } from './errors.js';
import { assertBucketName } from './names.js';
import { childText, parseXml, S3_NAMESPACE, xmlEscape } from './xml.js';

export function listBuckets(ctx: S3Context): ServiceResponse {
  authorize(ctx, 's3:ListAllMyBuckets', `arn:${ctx.partition}:s3:::*`);
  const buckets = ctx.store.listBuckets();
  return xmlResponse(ctx, 'ListAllMyBucketsResult', [
    ['Owner', [['ID', canonicalUserId(accountOf(ctx))]]],
    [
      'Buckets',
      buckets.map((b) => [
        'Bucket',
        [
          ['Name', b.name],
          ['CreationDate', isoDate(b.creationDate)],
          ['BucketRegion', b.region || ctx.region],
        ],
      ]),
    ],
  ]);
}

/**
 * CreateBucket. Re-creating a bucket the account owns answers 200 in us-east-1 (legacy behaviour) and
 * 409 BucketAlreadyOwnedByYou in every other region, as the CreateBucket page documents.
 */
export async function createBucket(ctx: S3Context): Promise<ServiceResponse> {
  const bucket = ctx.bucket ?? '';
  assertBucketName(bucket);
  authorize(ctx, 's3:CreateBucket', bucketArn(ctx, bucket));
  const body = (await readSmallBody(ctx.req, 64 * 1024)).toString('utf8');
  if (body.trim() !== '') {
    const doc = parseXml(body);
    const constraint =
      doc.name === 'CreateBucketConfiguration' ? childText(doc, 'LocationConstraint') : undefined;
    if (constraint !== undefined && constraint !== '' && constraint !== ctx.region) {
      throw new S3Error(
        400,
        'IllegalLocationConstraintException',
        `The ${constraint} location constraint is incompatible for the region specific endpoint this request was sent to.`,
      );
    }
  }
  if (!ctx.store.createBucket(bucket, ctx.region) && ctx.region !== 'us-east-1') {
    throw new S3Error(
      409,
      'BucketAlreadyOwnedByYou',
      'Your previous request to create the named bucket succeeded and you already own it.',
      { BucketName: bucket },
    );
  }
  return emptyResponse(ctx, 200, { location: `/${bucket}` });
}

export function headBucket(ctx: S3Context): ServiceResponse {
  const info = requireBucket(ctx);
  authorize(ctx, 's3:ListBucket', bucketArn(ctx, info.name));
  return emptyResponse(ctx, 200, {
    'x-amz-bucket-region': info.region || ctx.region,
    'x-amz-access-point-alias': 'false',
  });
}

export async function deleteBucket(ctx: S3Context): Promise<ServiceResponse> {
  const info = requireBucket(ctx);
  authorize(ctx, 's3:DeleteBucket', bucketArn(ctx, info.name));
  await ctx.store.deleteBucket(info.name);
  return emptyResponse(ctx, 204);
}

export function getBucketLocation(ctx: S3Context): ServiceResponse {
  const info = requireBucket(ctx);
  authorize(ctx, 's3:GetBucketLocation', bucketArn(ctx, info.name));
  const region = info.region || ctx.region;
  // us-east-1 is reported as an empty LocationConstraint ("GetBucketLocation").
  return {
    status: 200,
    headers: responseHeaders(ctx.req.requestId, { 'content-type': 'application/xml' }),
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="${S3_NAMESPACE}">${region === 'us-east-1' ? '' : xmlEscape(region)}</LocationConstraint>`,
  };
}
