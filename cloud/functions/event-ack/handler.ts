/**
 * Exactly-once events (QoS 2 emulation). A rule passes every event published on `dt/{thing}/events` with
 * the publisher's client id; the function stores the event once, as an object whose key is made of the
 * message id, written with `If-None-Match: *` (a conditional write: a retransmitted event finds the object
 * and is a duplicate), and acknowledges `{msgId, status}` on `things/{thing}/ack`.
 */
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { type EventAck, EventSchema, eventObjectKey, eventTopics } from '../../../protocol/events.js';
import { EVENT_ACK_FUNCTION_NAME, EVENT_ACK_ROLE_NAME } from '../../rules/resources.js';
import type { Handler } from '../index.js';
import { type FunctionDefinition, type FunctionRuntime, requireEnv } from '../runtime.js';

const RoutingSchema = z.object({
  clientId: z.string().min(1),
  thingName: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be a thing name'),
});

export type EventAckResult =
  | { status: EventAck['status']; msgId: string; key?: string }
  | { status: 'refused'; reason: string };

function isPreconditionFailed(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412;
}

export function createEventAckHandler(runtime: FunctionRuntime): Handler {
  const bucket = requireEnv(runtime, 'DATA_BUCKET');
  const s3 = new S3Client({
    region: runtime.region,
    ...runtime.clientConfig,
    ...(runtime.env.S3_FORCE_PATH_STYLE === 'true' ? { forcePathStyle: true } : {}),
  });
  const iotEndpoint = runtime.env.IOT_DATA_ENDPOINT;
  const iot = new IoTDataPlaneClient({
    region: runtime.region,
    ...runtime.clientConfig,
    ...(iotEndpoint ? { endpoint: iotEndpoint } : {}),
  });
  const log = runtime.logger;

  const ack = (thingName: string, body: EventAck) =>
    iot.send(
      new PublishCommand({
        topic: eventTopics(thingName).ack,
        qos: 1,
        payload: Buffer.from(JSON.stringify(body)),
      }),
    );

  return async (input): Promise<EventAckResult> => {
    const routing = RoutingSchema.safeParse(input);
    if (!routing.success) {
      const reason = `not an event routed by the rule: ${routing.error.issues[0]?.path.join('.')}`;
      log.warn({ reason }, 'event refused');
      return { status: 'refused', reason };
    }
    const { clientId, thingName } = routing.data;
    if (clientId !== thingName) {
      const reason = `client ${clientId} published on the events topic of thing ${thingName}`;
      log.warn({ clientId, thingName }, 'event refused: client id is not the thing in the topic');
      return { status: 'refused', reason };
    }
    const { clientId: _c, thingName: _t, ...body } = input as Record<string, unknown>;
    const parsed = EventSchema.safeParse(body);
    if (!parsed.success) {
      // A malformed event is acknowledged as rejected, so the gateway dead-letters it instead of
      // retransmitting it for ever; without a usable message id there is nothing to acknowledge.
      const msgId = typeof body.msgId === 'string' ? body.msgId : undefined;
      const issue = parsed.error.issues[0]!;
      const error = `${issue.path.join('.') || 'event'}: ${issue.message}`;
      log.warn({ thingName, msgId, error }, 'event rejected');
      if (msgId) await ack(thingName, { msgId, status: 'rejected', error });
      return msgId ? { status: 'rejected', msgId } : { status: 'refused', reason: error };
    }
    const event = parsed.data;
    const key = eventObjectKey(thingName, event.msgId, event.ts);
    let status: EventAck['status'];
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: JSON.stringify({ thingName, ...event }),
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      );
      status = 'accepted';
    } catch (err) {
      if (!isPreconditionFailed(err)) throw err; // no ack: the gateway retransmits
      status = 'duplicate';
    }
    await ack(thingName, { msgId: event.msgId, status });
    log.info({ thingName, msgId: event.msgId, status }, 'event acknowledged');
    return { status, msgId: event.msgId, key };
  };
}

export const eventAck: FunctionDefinition = {
  name: EVENT_ACK_FUNCTION_NAME,
  roleName: EVENT_ACK_ROLE_NAME,
  environment: ['DATA_BUCKET', 'IOT_DATA_ENDPOINT', 'S3_FORCE_PATH_STYLE'],
  create: createEventAckHandler,
};
