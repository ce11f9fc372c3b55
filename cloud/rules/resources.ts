/**
 * Names and IAM documents shared by the CDK app and the local cloud: the data bucket, the role gateways
 * upload with, and the session policy that confines one gateway to its own prefixes.
 */
import type { IotPolicyDocument } from './policies.js';

/** The data bucket's name in the local cloud (on AWS the CDK app names it and passes it in). */
export const LOCAL_DATA_BUCKET = 'edgefleet-data';

/** The role gateways' temporary credentials are sessions of. */
export const UPLOAD_ROLE_NAME = 'edgefleet-gateway-upload';

/** The credential vending function (cloud/functions) and its execution role. */
export const VENDING_FUNCTION_NAME = 'edgefleet-credential-vending';
export const VENDING_ROLE_NAME = 'edgefleet-credential-vending';

/** The event acknowledgement function (QoS 2 emulation) and its execution role. */
export const EVENT_ACK_FUNCTION_NAME = 'edgefleet-event-ack';
export const EVENT_ACK_ROLE_NAME = 'edgefleet-event-ack';

/** Lifetime of vended credentials, seconds (STS AssumeRole DurationSeconds). */
export const VENDED_CREDENTIALS_SECONDS = 3600;

/** The S3 key prefixes one thing may write and read. */
export function thingPrefixes(thingName: string): string[] {
  return [`raw/${thingName}/`, `frames/${thingName}/`];
}

export type IamPolicyDocument = IotPolicyDocument;

/** The upload role's own permissions: objects under raw/ and frames/, listing those prefixes. */
export function uploadRolePolicy(bucket: string, partition = 'aws'): IamPolicyDocument {
  const b = `arn:${partition}:s3:::${bucket}`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: [`${b}/raw/*`, `${b}/frames/*`],
      },
      {
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: b,
        Condition: { StringLike: { 's3:prefix': ['raw/*', 'frames/*'] } },
      },
    ],
  };
}

/**
 * The session policy the vending function passes to AssumeRole for one thing: the effective permissions
 * are the role's intersected with these, i.e. only the thing's own prefixes.
 */
export function uploadSessionPolicy(bucket: string, thingName: string, partition = 'aws'): IamPolicyDocument {
  const b = `arn:${partition}:s3:::${bucket}`;
  const prefixes = thingPrefixes(thingName);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: prefixes.map((p) => `${b}/${p}*`),
      },
      {
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: b,
        Condition: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
      },
    ],
  };
}

/**
 * The event acknowledgement function's permissions: write each event once under `events/` in the data
 * bucket, and publish on the things' ack topics. (Its logs are granted by the CDK app.)
 */
export function eventAckRolePolicy(
  bucket: string,
  region: string,
  account: string,
  partition = 'aws',
): IamPolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 's3:PutObject', Resource: `arn:${partition}:s3:::${bucket}/events/*` },
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: `arn:${partition}:iot:${region}:${account}:topic/things/*/ack`,
      },
    ],
  };
}
