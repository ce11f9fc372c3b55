/**
 * Functions about the triggering message and the rule's environment ("Functions" page of the AWS IoT SQL
 * reference): accountid, clientid, principal, sourceip, traceid, topic, sql_version, newuuid, rand,
 * encode, decode, get_mqtt_property, get_user_properties, get_thing_shadow.
 */
import type { EvalContext, FunctionSpec } from '../context.js';
import { arr, dec, NULL, obj, parseJsonValue, type SqlValue, str, UNDEFINED } from '../values.js';
import { toIntRoundedDown, toText, utf8 } from './convert.js';
import { arg, define } from './define.js';

const optionalString = (s: string | undefined): SqlValue => (s === undefined ? UNDEFINED : str(s));

/**
 * The topic as rules see it: for Basic Ingest (`$aws/rules/<rule-name>/...`) the page says topic() does
 * not see that prefix.
 */
export function ruleTopic(topic: string): string {
  if (!topic.startsWith('$aws/rules/')) return topic;
  const segments = topic.split('/');
  return segments.slice(3).join('/');
}

/** topic() is the whole topic; topic(n) the n-th segment, 1-based; out of range → Undefined. */
function topic(args: readonly SqlValue[], ctx: EvalContext): SqlValue {
  const t = ruleTopic(ctx.message.topic);
  if (args.length === 0) return str(t);
  const v = arg(args, 0);
  if (v.type !== 'Int' && v.type !== 'Decimal' && v.type !== 'String') return UNDEFINED;
  const n = toIntRoundedDown(v);
  const segments = t.split('/');
  if (n === undefined || n < 1n || n > BigInt(segments.length)) return UNDEFINED;
  return str(segments[Number(n) - 1]!);
}

/** Strict base64 (RFC 4648 alphabet, padding optional as java.util.Base64's basic decoder allows). */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const body = text.replace(/=+$/, '');
  if (body.length % 4 === 1) return undefined;
  if (text.length !== body.length && text.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64');
}

const utf8Decoder = new TextDecoder('utf-8');

/**
 * encode(value, 'base64'): `*` (which the evaluator passes as the raw payload, a Binary) is encoded as
 * its bytes, JSON or not; any other value is first converted to a String (then UTF-8 encoded). Other schemes → Undefined.
 */
function encode(args: readonly SqlValue[]): SqlValue {
  const scheme = arg(args, 1);
  if (scheme.type !== 'String' || scheme.value !== 'base64') return UNDEFINED;
  const v = arg(args, 0);
  let bytes: Uint8Array;
  if (v.type === 'Binary') bytes = v.value;
  else {
    const t = toText(v);
    if (t === undefined) return UNDEFINED;
    bytes = utf8(t);
  }
  return str(Buffer.from(bytes).toString('base64'));
}

/**
 * decode(value, 'base64'): a decoded JSON document becomes an addressable value, anything else the
 * decoded string; a value that is not valid base64 gives Null (the page documents NULL for an undecodable
 * string). The protobuf mode (`decode(*, 'proto', bucket, key, file, messageType)`) needs
 * a descriptor file from S3 and is not implemented: it returns Undefined.
 */
function decode(args: readonly SqlValue[]): SqlValue {
  const scheme = arg(args, 1);
  if (scheme.type !== 'String' || scheme.value !== 'base64') return UNDEFINED;
  if (args.length !== 2) return UNDEFINED;
  const v = arg(args, 0);
  const text = toText(v);
  if (text === undefined) return UNDEFINED;
  const bytes = decodeBase64(text);
  if (bytes === undefined) return NULL;
  const decoded = utf8Decoder.decode(bytes);
  return parseJsonValue(decoded) ?? str(decoded);
}

/**
 * get_mqtt_property(name): the MQTT 5 PUBLISH properties `content_type`, `format_indicator`
 * (`UNSPECIFIED_BYTES` or `UTF8_DATA`), `response_topic` and `correlation_data` (base64 of the bytes).
 * An absent property, an unknown name or a non-MQTT-5 message gives Undefined, except that an MQTT 5
 * message without a payload format indicator reports `UNSPECIFIED_BYTES` (MQTT 5: absence means
 * unspecified bytes).
 */
function getMqttProperty(args: readonly SqlValue[], ctx: EvalContext): SqlValue {
  const name = arg(args, 0);
  if (name.type !== 'String') return UNDEFINED;
  const props = ctx.message.mqttProperties;
  if (props === undefined) return UNDEFINED;
  const v = Object.hasOwn(props, name.value) ? props[name.value] : undefined;
  switch (name.value) {
    case 'content_type':
    case 'response_topic':
      return v?.type === 'String' ? v : UNDEFINED;
    case 'format_indicator': {
      if (v === undefined) return str('UNSPECIFIED_BYTES');
      if (v.type === 'String') return v;
      if (v.type === 'Int') return str(v.value === 1n ? 'UTF8_DATA' : 'UNSPECIFIED_BYTES');
      if (v.type === 'Boolean') return str(v.value ? 'UTF8_DATA' : 'UNSPECIFIED_BYTES');
      return UNDEFINED;
    }
    case 'correlation_data':
      if (v === undefined) return UNDEFINED;
      if (v.type === 'Binary') return str(Buffer.from(v.value).toString('base64'));
      if (v.type === 'String') return v;
      return UNDEFINED;
    default:
      return UNDEFINED;
  }
}

/**
 * get_user_properties(): every MQTT 5 user property as an array of one-key objects, in message order;
 * get_user_properties(key): an array of the values of that key (a key may repeat). No user properties,
 * or no value for the key → Undefined.
 */
function getUserProperties(args: readonly SqlValue[], ctx: EvalContext): SqlValue {
  const props = ctx.message.userProperties ?? [];
  if (args.length === 0) {
    return props.length === 0 ? UNDEFINED : arr(props.map(([k, v]) => obj([[k, str(v)]])));
  }
  const key = toText(arg(args, 0));
  if (key === undefined) return UNDEFINED;
  const values = props.filter(([k]) => k === key).map(([, v]) => str(v));
  return values.length === 0 ? UNDEFINED : arr(values);
}

/**
 * get_thing_shadow(thingName, roleArn) for the classic shadow, get_thing_shadow(thingName, shadowName,
 * roleArn) for a named one. The role is not checked locally. Without a shadow service in the context, or
 * without such a shadow, the result is Undefined.
 */
function getThingShadow(args: readonly SqlValue[], ctx: EvalContext): SqlValue {
  const thing = arg(args, 0);
  const shadow = args.length === 3 ? arg(args, 1) : undefined;
  const role = arg(args, args.length - 1);
  if (thing.type !== 'String' || role.type !== 'String') return UNDEFINED;
  if (shadow !== undefined && shadow.type !== 'String') return UNDEFINED;
  const service = ctx.services.getThingShadow;
  if (service === undefined) return UNDEFINED;
  return service.call(ctx.services, thing.value, shadow?.value) ?? UNDEFINED;
}

export const MESSAGE_FUNCTIONS: readonly FunctionSpec[] = [
  define('accountid', 0, 0, (_a, ctx) => str(ctx.accountId)),
  // n/a for a message that did not come over MQTT
  define('clientid', 0, 0, (_a, ctx) => str(ctx.message.clientId ?? 'n/a')),
  define('principal', 0, 0, (_a, ctx) => optionalString(ctx.message.principal)),
  define('sourceip', 0, 0, (_a, ctx) => optionalString(ctx.message.sourceIp)),
  // Undefined for a message that did not come over MQTT
  define('traceid', 0, 0, (_a, ctx) => optionalString(ctx.message.traceId)),
  define('topic', 0, 1, topic),
  define('sql_version', 0, 0, (_a, ctx) => str(ctx.sqlVersion)),
  define('newuuid', 0, 0, (_a, ctx) => str(ctx.uuid())),
  define('rand', 0, 0, (_a, ctx) => dec(ctx.random())),
  define('encode', 2, 2, encode),
  define('decode', 2, 6, decode),
  define('get_mqtt_property', 1, 1, getMqttProperty),
  define('get_user_properties', 0, 1, getUserProperties),
  define('get_thing_shadow', 2, 3, getThingShadow),
];
