/**
 * The AWS IoT SQL function library: every documented function that needs no external AWS service,
 * and get_thing_shadow against the services in the evaluation context. Functions that need another AWS
 * service are registered too, and throw a SqlEvaluationError when called.
 *
 * `cast(x AS type)` is syntax, handled by the evaluator, and is not in this table.
 */
import type { FunctionSpec, SqlVersion } from '../context.js';
import { VALUE_FUNCTIONS } from './collections.js';
import { EXTERNAL_FUNCTIONS } from './external.js';
import { HASH_FUNCTIONS } from './hash.js';
import { MATH_FUNCTIONS } from './math.js';
import { MESSAGE_FUNCTIONS } from './message.js';
import { REGEXP_FUNCTIONS } from './regexp.js';
import { STRING_FUNCTIONS } from './strings.js';
import { TIME_FUNCTIONS } from './time.js';

export {
  decimalText,
  parseDecimalString,
  toBooleanValue,
  toDecimal,
  toDouble,
  toIntRoundedDown,
  toNumber,
  toStringValue,
  toText,
} from './convert.js';
export { remainder } from './math.js';
export { ruleTopic } from './message.js';

const ALL: readonly FunctionSpec[] = [
  ...MATH_FUNCTIONS,
  ...STRING_FUNCTIONS,
  ...REGEXP_FUNCTIONS,
  ...HASH_FUNCTIONS,
  ...TIME_FUNCTIONS,
  ...MESSAGE_FUNCTIONS,
  ...VALUE_FUNCTIONS,
  ...EXTERNAL_FUNCTIONS,
];

/** Functions by lower-case name (SQL function names are matched case-insensitively: `isNull`, `Round`). */
export const FUNCTIONS: ReadonlyMap<string, FunctionSpec> = new Map(
  ALL.map((f) => [f.name.toLowerCase(), f]),
);

/**
 * The SQL version from which the Functions page says each function is supported, for an evaluator or
 * rule validator that wants to reject a function under an older `awsIotSqlVersion`. Functions not listed
 * are supported from 2015-10-08. Entries marked "(page)" are stated on the stored Functions page; the
 * others are from the current page as remembered and should be checked.
 */
export const SUPPORTED_SINCE: ReadonlyMap<string, SqlVersion> = new Map<string, SqlVersion>([
  ['decode', '2016-03-23'], // (page)
  ['encode', '2016-03-23'], // (page)
  ['get_dynamodb', '2016-03-23'], // (page)
  ['get_thing_shadow', '2016-03-23'], // (page)
  ['indexof', '2016-03-23'], // (page)
  ['isundefined', '2016-03-23'], // (page)
  ['length', '2016-03-23'], // (page)
  ['numbytes', '2016-03-23'], // (page)
  ['parse_time', '2016-03-23'], // (page)
  ['time_to_epoch', '2016-03-23'], // (page)
  ['transform', '2016-03-23'], // (page)
  ['get_or_default', '2016-03-23'],
  ['sourceip', '2016-03-23'],
]);

/**
 * Functions whose argument at the given position, when it is a bare `*`, must be passed as the raw
 * payload (`bin(message.payload)`) rather than the parsed JSON document: encode "the entire payload,
 * regardless of whether it's in JSON format", and decode a base64 (or protobuf) payload.
 */
export const RAW_PAYLOAD_ARGUMENT: ReadonlyMap<string, number> = new Map([
  ['encode', 0],
  ['decode', 0],
]);

/**
 * Functions whose first argument may fail without failing the rule: get_or_default returns its default
 * when its first argument is Null, Undefined, or its evaluation fails. An evaluator should
 * catch a SqlEvaluationError raised while evaluating that argument and pass Undefined instead.
 */
export const CATCHES_ARGUMENT_ERRORS: ReadonlySet<string> = new Set(['get_or_default']);
