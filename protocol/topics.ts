/**
 * Topic names and templates shared by the edge and the cloud. The thing name is always the first
 * variable part so that IoT policies can confine a thing to its own topics.
 */

/** Prefix of the AWS IoT reserved topics. */
export const RESERVED_PREFIX = '$aws/';

/** Topics of one thing's application traffic (non-reserved). */
export const thingTopics = (thing: string) => ({
  /** Root of the thing's command/response topics: `things/{thing}/...`. */
  root: `things/${thing}`,
  /** Root of the thing's telemetry topics: `dt/{thing}/...`. */
  telemetryRoot: `dt/${thing}`,
});

/** MQTT filter (and IoT rule `FROM` topic) of every thing's streamed telemetry. */
export const TELEMETRY_FILTER = 'dt/+/telemetry';
/** The topic a gateway streams telemetry records on, one record (a JSON object) per message. */
export const telemetryTopic = (thing: string): string => `dt/${thing}/telemetry`;

export type ShadowOperation = 'get' | 'update' | 'delete';

/**
 * The reserved MQTT topic prefix of a thing's shadow, classic (no name) or named, as AWS IoT documents
 * it: `$aws/things/{thing}/shadow` and `$aws/things/{thing}/shadow/name/{shadow}`.
 */
export function shadowTopicPrefix(thing: string, shadowName?: string): string {
  return shadowName === undefined
    ? `$aws/things/${thing}/shadow`
    : `$aws/things/${thing}/shadow/name/${shadowName}`;
}

export const shadowTopics = (thing: string, shadowName?: string) => {
  const p = shadowTopicPrefix(thing, shadowName);
  return {
    get: `${p}/get`,
    getAccepted: `${p}/get/accepted`,
    getRejected: `${p}/get/rejected`,
    update: `${p}/update`,
    updateAccepted: `${p}/update/accepted`,
    updateRejected: `${p}/update/rejected`,
    updateDelta: `${p}/update/delta`,
    updateDocuments: `${p}/update/documents`,
    delete: `${p}/delete`,
    deleteAccepted: `${p}/delete/accepted`,
    deleteRejected: `${p}/delete/rejected`,
  };
};

export interface ParsedShadowTopic {
  thingName: string;
  /** Undefined for the classic shadow. */
  shadowName?: string;
  operation: ShadowOperation;
  /** The rest after the operation: '' for a request, 'accepted', 'rejected', 'delta', 'documents'. */
  suffix: string;
}

const SHADOW_TOPIC =
  /^\$aws\/things\/([^/]+)\/shadow(?:\/name\/([^/]+))?\/(get|update|delete)(?:\/(accepted|rejected|delta|documents))?$/;

/** Parses a shadow topic; returns undefined for any other topic. */
export function parseShadowTopic(topic: string): ParsedShadowTopic | undefined {
  const m = SHADOW_TOPIC.exec(topic);
  if (!m) return undefined;
  const [, thingName, shadowName, operation, suffix] = m;
  return {
    thingName: thingName!,
    ...(shadowName !== undefined ? { shadowName } : {}),
    operation: operation as ShadowOperation,
    suffix: suffix ?? '',
  };
}

/** Lifecycle event topics published by the broker. */
export const presenceTopic = (event: 'connected' | 'disconnected', clientId: string) =>
  `$aws/events/presence/${event}/${clientId}`;
