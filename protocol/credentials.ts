/**
 * The temporary-token protocol: a gateway asks for short-lived AWS credentials over MQTT and the cloud
 * (the credential vending function) answers on the thing's response topic.
 *
 * - request, published by the gateway at QoS 1 on `things/{thing}/credentials/request`:
 *   `{ "requestId": "<uuid>" }`
 * - response, published by the cloud on `things/{thing}/credentials/response`, either
 *   `{ "requestId", "accessKeyId", "secretAccessKey", "sessionToken", "expiration": "<ISO 8601>" }`
 *   or `{ "requestId", "error": "<why>" }`.
 *
 * Both sides import this module; the schemas are the single definition of the messages.
 */
import { z } from 'zod';
import { thingTopics } from './topics.js';

/** QoS of the request publish (the gateway retries on its own timeout as well). */
export const CREDENTIALS_REQUEST_QOS = 1;

/** The request and response topics of one thing. */
export function credentialsTopics(thingName: string): { request: string; response: string } {
  const root = `${thingTopics(thingName).root}/credentials`;
  return { request: `${root}/request`, response: `${root}/response` };
}

/** MQTT filter (and IoT rule `FROM` topic) that matches every thing's credentials request. */
export const CREDENTIALS_REQUEST_FILTER = 'things/+/credentials/request';

const TOPIC = /^things\/([^/]+)\/credentials\/(request|response)$/;

/** The thing and direction of a credentials topic; undefined for any other topic. */
export function parseCredentialsTopic(
  topic: string,
): { thingName: string; kind: 'request' | 'response' } | undefined {
  const m = TOPIC.exec(topic);
  if (!m) return undefined;
  return { thingName: m[1]!, kind: m[2] as 'request' | 'response' };
}

const requestId = z.uuid('must be a UUID');
const nonEmpty = z.string('must be a string').min(1, 'must not be empty');

export const CredentialsRequestSchema = z.object({ requestId });
export type CredentialsRequest = z.infer<typeof CredentialsRequestSchema>;

export const CredentialsGrantSchema = z.object({
  requestId,
  accessKeyId: nonEmpty,
  secretAccessKey: nonEmpty,
  sessionToken: nonEmpty,
  expiration: z.iso.datetime({
    offset: true,
    error: 'must be an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z',
  }),
});
export type CredentialsGrant = z.infer<typeof CredentialsGrantSchema>;

export const CredentialsDenialSchema = z.object({ requestId, error: nonEmpty });
export type CredentialsDenial = z.infer<typeof CredentialsDenialSchema>;

export type CredentialsResponse = CredentialsGrant | CredentialsDenial;

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** `field: message` of the first issue of a failed parse. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.map(String).join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}

function decodeJson(payload: string | Uint8Array): Decoded<unknown> {
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, error: 'payload: is not JSON' };
  }
}

/** Decodes and validates a request payload; the error names the field. */
export function decodeCredentialsRequest(payload: string | Uint8Array): Decoded<CredentialsRequest> {
  const json = decodeJson(payload);
  if (!json.ok) return json;
  const r = CredentialsRequestSchema.safeParse(json.value);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: firstIssue(r.error) };
}

/**
 * Decodes and validates a response payload: a grant (credentials) or a denial (`error`). A payload with
 * an `error` member is a denial; the error of a failed validation names the field.
 */
export function decodeCredentialsResponse(payload: string | Uint8Array): Decoded<CredentialsResponse> {
  const json = decodeJson(payload);
  if (!json.ok) return json;
  const v = json.value;
  const isDenial = typeof v === 'object' && v !== null && 'error' in v;
  const r = (isDenial ? CredentialsDenialSchema : CredentialsGrantSchema).safeParse(v);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: firstIssue(r.error) };
}

/** Whether a response is a denial (`{ requestId, error }`). */
export function isCredentialsDenial(r: CredentialsResponse): r is CredentialsDenial {
  return 'error' in r;
}

/** The request id of a payload that may fail validation otherwise (for logging and correlation). */
export function peekRequestId(payload: string | Uint8Array): string | undefined {
  const json = decodeJson(payload);
  if (!json.ok || typeof json.value !== 'object' || json.value === null) return undefined;
  const id = (json.value as { requestId?: unknown }).requestId;
  return typeof id === 'string' ? id : undefined;
}
