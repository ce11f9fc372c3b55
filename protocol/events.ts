/**
 * Exactly-once events (QoS 2 emulation over QoS 1): the gateway publishes each event with a message id
 * on `dt/{thing}/events` and keeps it until the cloud acknowledges that id on `things/{thing}/ack`.
 * The cloud processes every id once; a retransmitted event is acknowledged again as a duplicate.
 */
import { z } from 'zod';

export const eventTopics = (thingName: string) => ({
  events: `dt/${thingName}/events`,
  ack: `things/${thingName}/ack`,
});

/** MQTT filter (and IoT rule `FROM` topic) of every thing's events. */
export const EVENTS_FILTER = 'dt/+/events';

export const EventSchema = z.object({
  msgId: z.uuid('must be a UUID'),
  /** Event type, e.g. `alarm`, `state-change`. */
  type: z.string().min(1).max(64),
  /** Epoch milliseconds on the gateway. */
  ts: z.number().int().nonnegative(),
  data: z.record(z.string(), z.unknown()).default({}),
});
export type GatewayEvent = z.infer<typeof EventSchema>;

export const ACK_STATUSES = ['accepted', 'duplicate', 'rejected'] as const;

export const AckSchema = z.object({
  msgId: z.string().min(1),
  status: z.enum(ACK_STATUSES),
  error: z.string().optional(),
});
export type EventAck = z.infer<typeof AckSchema>;

/** Where the cloud keeps an accepted event: one object per message id (written once). */
export function eventObjectKey(thingName: string, msgId: string, ts: number): string {
  const iso = new Date(ts).toISOString();
  return `events/${thingName}/dt=${iso.slice(0, 10)}/${msgId}.json`;
}
