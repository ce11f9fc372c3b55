/**
 * Names and IAM documents shared by the CDK app and the local cloud: the data bucket, the role gateways
 * upload with, and the session policy that confines one gateway to its own prefixes.
 */
import { ALERT_RULES_KEY } from './alerts.js';
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

/**
 * The restricted prefix of one thing's unmasked frames (cameras configured for identification);
 * the edge's copy is `identificationPrefix()` in edge-component/uploader.ts.
 */
export function identificationPrefix(thingName: string): string {
  return `frames-identify/${thingName}/`;
}

export type IamPolicyDocument = IotPolicyDocument;

/** What a gateway may do on the log stream: put records, nothing else (no reads, no describe calls). */
export const LOG_STREAM_ACTIONS = ['kinesis:PutRecord', 'kinesis:PutRecords'];

/**
 * Objects under `prefixes` of the bucket (put, get, multipart), listing those prefixes, and, given its ARN,
 * putting records into the gateway log stream.
 */
function uploadPolicy(bucketArn: string, prefixes: string[], logStreamArn?: string): IamPolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: prefixes.map((p) => `${bucketArn}/${p}*`),
      },
      {
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: bucketArn,
        Condition: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
      },
      ...(logStreamArn === undefined
        ? []
        : [{ Effect: 'Allow' as const, Action: LOG_STREAM_ACTIONS, Resource: logStreamArn }]),
    ],
  };
}

/**
 * The upload role's own permissions: objects under raw/, frames/ and frames-identify/ (unmasked frames
 * of identification cameras), listing those prefixes, and, given its ARN, putting records into the
 * gateway log stream.
 */
export function uploadRolePolicy(
  bucket: string,
  partition = 'aws',
  logStreamArn?: string,
): IamPolicyDocument {
  return uploadPolicy(
    `arn:${partition}:s3:::${bucket}`,
    ['raw/', 'frames/', 'frames-identify/'],
    logStreamArn,
  );
}

/**
 * The session policy the vending function passes to AssumeRole for one thing: the effective permissions
 * are the role's intersected with these, i.e. only the thing's own prefixes (raw/, frames/ and the
 * restricted frames-identify/ of unmasked identification frames) and, given its ARN, putting records
 * into the gateway log stream (IAM cannot narrow that to the thing's own partition key: each record
 * names its thing, and the stream is shared by all gateways).
 */
export function uploadSessionPolicy(
  bucket: string,
  thingName: string,
  partition = 'aws',
  logStreamArn?: string,
): IamPolicyDocument {
  const prefixes = [...thingPrefixes(thingName), identificationPrefix(thingName)];
  return uploadPolicy(`arn:${partition}:s3:::${bucket}`, prefixes, logStreamArn);
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

/** The frame analysis function (Rekognition on new frames, results, alerts) and its execution role. */
export const FRAME_ANALYSIS_FUNCTION_NAME = 'edgefleet-frame-analysis';
export const FRAME_ANALYSIS_ROLE_NAME = 'edgefleet-frame-analysis';

/** The results bucket's name in the local cloud (on AWS the CDK app names it). */
export const LOCAL_RESULTS_BUCKET = 'edgefleet-results';

/**
 * The firmware bucket's name in the local cloud (on AWS the CDK app names it). Artifacts live under
 * `firmware/{target}/{version}/{sha256}.bin`, signed manifests under `manifests/{target}/{version}.json`.
 */
export const LOCAL_FIRMWARE_BUCKET = 'edgefleet-firmware';

/** The SNS topic alerts are published to (its name; the ARN is built per region and account). */
export const ALERTS_TOPIC_NAME = 'edgefleet-alerts';

/** The Rekognition face collection identification cameras are searched against. */
export const FACE_COLLECTION_ID = 'edgefleet-faces';

/** Key prefixes of the data bucket whose new objects are frames to analyse. */
export const FRAME_PREFIXES = ['frames/', 'frames-identify/'] as const;

/** Key suffixes of frame images (sidecar `.json` files next to them are not frames). */
export const FRAME_SUFFIXES = ['.jpg', '.jpeg', '.webp'] as const;

/** Where the frame analysis function writes results and reads the alert rules, in the results bucket. */
export const RESULTS_PREFIX = 'results/';

export function alertsTopicArn(region: string, account: string, partition = 'aws'): string {
  return `arn:${partition}:sns:${region}:${account}:${ALERTS_TOPIC_NAME}`;
}

export function faceCollectionArn(region: string, account: string, partition = 'aws'): string {
  return `arn:${partition}:rekognition:${region}:${account}:collection/${FACE_COLLECTION_ID}`;
}

/**
 * The frame analysis function's permissions: read frames (and their sidecars) from the data bucket, read
 * the alert rules and write results in the results bucket, ask Rekognition about images, search the face
 * collection, publish alerts on the topic and summaries on the things' analysis topics. Rekognition reads
 * `Image.S3Object` with the caller's permissions, hence s3:GetObject on the frames. (KMS and logs are
 * granted by the CDK app.)
 */
export function frameAnalysisRolePolicy(opts: {
  dataBucket: string;
  resultsBucket: string;
  topicArn: string;
  region: string;
  account: string;
  partition?: string;
}): IamPolicyDocument {
  const p = opts.partition ?? 'aws';
  const data = `arn:${p}:s3:::${opts.dataBucket}`;
  const results = `arn:${p}:s3:::${opts.resultsBucket}`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 's3:GetObject',
        Resource: [...FRAME_PREFIXES.map((prefix) => `${data}/${prefix}*`), `${results}/${ALERT_RULES_KEY}`],
      },
      { Effect: 'Allow', Action: 's3:PutObject', Resource: `${results}/${RESULTS_PREFIX}*` },
      { Effect: 'Allow', Action: ['rekognition:DetectLabels', 'rekognition:DetectFaces'], Resource: '*' },
      {
        Effect: 'Allow',
        Action: 'rekognition:SearchFacesByImage',
        Resource: faceCollectionArn(opts.region, opts.account, p),
      },
      { Effect: 'Allow', Action: 'sns:Publish', Resource: opts.topicArn },
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: `arn:${p}:iot:${opts.region}:${opts.account}:topic/things/*/analysis`,
      },
    ],
  };
}

/** The anomaly detection function (high-rate telemetry from Kinesis, alerts on MQTT) and its role. */
export const ANOMALY_DETECTION_FUNCTION_NAME = 'edgefleet-anomaly-detection';
export const ANOMALY_DETECTION_ROLE_NAME = 'edgefleet-anomaly-detection';

/** The topic filter alerts are published on (`alerts/{site}`). */
export const ALERTS_TOPIC_PREFIX = 'alerts/';

/**
 * The anomaly detection function's own permissions: publish on the alerts topics. (Reading the stream
 * is the event source mapping's, granted by the CDK app with the mapping; logs too.)
 */
export function anomalyDetectionRolePolicy(
  region: string,
  account: string,
  partition = 'aws',
): IamPolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: `arn:${partition}:iot:${region}:${account}:topic/${ALERTS_TOPIC_PREFIX}*`,
      },
    ],
  };
}
