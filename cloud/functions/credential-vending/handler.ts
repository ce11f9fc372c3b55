/**
 * Credential vending (the "temporary token" pattern). A rule on `things/+/credentials/request` passes the
 * request with the publisher's client id and the thing named in the topic; the function checks that they
 * are the same thing, asks STS for a session of the upload role whose session policy allows only that
 * thing's S3 prefixes (and, when LOG_STREAM_ARN is set, putting records into the gateway log stream),
 * and publishes the credentials (or an error) to the thing's response topic.
 */
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { z } from 'zod';
import {
  CredentialsRequestSchema,
  type CredentialsResponse,
  credentialsTopics,
} from '../../../protocol/credentials.js';
import {
  uploadSessionPolicy,
  VENDED_CREDENTIALS_SECONDS,
  VENDING_FUNCTION_NAME,
  VENDING_ROLE_NAME,
} from '../../rules/resources.js';
import type { Handler } from '../index.js';
import { type FunctionDefinition, type FunctionRuntime, requireEnv } from '../runtime.js';

/** What the rule's SQL passes: the request payload plus `clientid()` and `topic(2)`. */
export const VendingEventSchema = CredentialsRequestSchema.extend({
  clientId: z.string().min(1),
  thingName: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be a thing name'),
});

export type VendingResult =
  | { status: 'issued'; thingName: string; requestId: string; expiration: string }
  | { status: 'refused'; reason: string }
  | { status: 'failed'; thingName: string; requestId: string; error: string };

/** RoleSessionName allows 2-64 characters of [\w+=,.@-]; thing names may also hold ':'. */
function sessionName(thingName: string): string {
  const s = thingName.replace(/[^\w+=,.@-]/g, '_').slice(0, 64);
  return s.length >= 2 ? s : `${s}__`.slice(0, 2);
}

export function createVendingHandler(runtime: FunctionRuntime): Handler {
  const roleArn = requireEnv(runtime, 'UPLOAD_ROLE_ARN');
  const bucket = requireEnv(runtime, 'DATA_BUCKET');
  const duration = Number(runtime.env.CREDENTIALS_DURATION_SECONDS ?? VENDED_CREDENTIALS_SECONDS);
  if (!Number.isInteger(duration) || duration < 900 || duration > 43_200) {
    throw new Error('environment variable CREDENTIALS_DURATION_SECONDS must be an integer from 900 to 43200');
  }
  const partition = runtime.env.AWS_PARTITION ?? 'aws';
  // Optional: without it, the sessions cannot put log records (gateways without log shipping need none).
  const logStreamArn = runtime.env.LOG_STREAM_ARN || undefined;
  if (
    logStreamArn !== undefined &&
    !/^arn:[a-z-]+:kinesis:[a-z0-9-]+:\d{12}:stream\/[\w.-]{1,128}$/.test(logStreamArn)
  ) {
    throw new Error('environment variable LOG_STREAM_ARN must be the ARN of a Kinesis data stream');
  }
  const sts = new STSClient({ region: runtime.region, ...runtime.clientConfig });
  const iotEndpoint = runtime.env.IOT_DATA_ENDPOINT;
  const iot = new IoTDataPlaneClient({
    region: runtime.region,
    ...runtime.clientConfig,
    ...(iotEndpoint ? { endpoint: iotEndpoint } : {}),
  });
  const log = runtime.logger;

  const respond = async (thingName: string, body: CredentialsResponse) => {
    await iot.send(
      new PublishCommand({
        topic: credentialsTopics(thingName).response,
        qos: 1,
        payload: Buffer.from(JSON.stringify(body)),
      }),
    );
  };

  return async (event): Promise<VendingResult> => {
    const parsed = VendingEventSchema.safeParse(event);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const reason = `invalid request: ${issue.path.join('.') || 'event'}: ${issue.message}`;
      log.warn({ reason }, 'credentials request refused');
      return { status: 'refused', reason };
    }
    const { requestId, clientId, thingName } = parsed.data;
    if (clientId !== thingName) {
      // Defence in depth behind the IoT policy: nothing is published, so the named thing learns nothing.
      const reason = `client ${clientId} asked for the credentials of thing ${thingName}`;
      log.warn(
        { clientId, thingName, requestId },
        'credentials request refused: client id is not the thing in the topic',
      );
      return { status: 'refused', reason };
    }
    try {
      const out = await sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: sessionName(thingName),
          DurationSeconds: duration,
          Policy: JSON.stringify(uploadSessionPolicy(bucket, thingName, partition, logStreamArn)),
        }),
      );
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
        throw new Error('STS answered without credentials');
      }
      const expiration = c.Expiration.toISOString();
      await respond(thingName, {
        requestId,
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        sessionToken: c.SessionToken,
        expiration,
      });
      log.info({ thingName, requestId, expiration }, 'credentials issued');
      return { status: 'issued', thingName, requestId, expiration };
    } catch (err) {
      const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      log.error({ thingName, requestId, error }, 'credentials not issued');
      await respond(thingName, {
        requestId,
        error: 'credentials could not be issued; try again later',
      }).catch((e) => log.error({ err: e }, 'error response not published'));
      return { status: 'failed', thingName, requestId, error };
    }
  };
}

export const credentialVending: FunctionDefinition = {
  name: VENDING_FUNCTION_NAME,
  roleName: VENDING_ROLE_NAME,
  environment: [
    'UPLOAD_ROLE_ARN',
    'DATA_BUCKET',
    'CREDENTIALS_DURATION_SECONDS',
    'IOT_DATA_ENDPOINT',
    'AWS_PARTITION',
    'LOG_STREAM_ARN',
  ],
  create: createVendingHandler,
};
