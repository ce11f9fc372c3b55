/**
 * S3 prefixes of a delivery stream ("Custom Prefixes for Amazon S3 Objects", "Dynamic partitioning").
 *
 * A prefix is literal text with expressions `!{namespace:value}`:
 * - `!{timestamp:<DateTimeFormatter pattern>}`: the approximate arrival time of the oldest record in the
 *   object, in UTC (or the stream's CustomTimeZone); every instance in a prefix is the same instant.
 * - `!{firehose:random-string}`: 11 random characters, a new string for each instance;
 *   `!{firehose:error-output-type}`: the reason of failure (`processing-failed`), ErrorOutputPrefix only.
 * - `!{partitionKeyFromQuery:NAME}`: a partition key of the record (dynamic partitioning);
 *   `!{partitionKeyFromLambda:NAME}` needs a Lambda processor, which the local Firehose does not run.
 *
 * The semantic rules (enforced by {@link destinationPrefixes}):
 * - `!{` may appear only as the start of an expression; quoted text in a timestamp pattern is literal.
 * - A Prefix without a timestamp expression gets `yyyy/MM/dd/HH/` appended (not with dynamic
 *   partitioning, whose prefixes are made of the partition keys); no Prefix at all is `yyyy/MM/dd/HH/`.
 * - ErrorOutputPrefix can be null only if Prefix contains no expressions: failed records then go to
 *   `<Prefix><error-output-type>/yyyy/MM/dd/HH/`, as a static ErrorOutputPrefix does.
 * - An ErrorOutputPrefix with expressions must contain `!{firehose:error-output-type}`, and no partition
 *   key expressions; Prefix cannot contain `!{firehose:error-output-type}`.
 * - Neither prefix may be longer than 512 characters once evaluated (1024 as configured).
 */
import { randomBytes } from 'node:crypto';
import { invalidArgument } from './errors.js';
import { compileDateTimePattern, type DateTimePattern, formatDateTime } from './time-format.js';

/** Evaluated prefixes may not be longer than this. */
export const MAX_EVALUATED_PREFIX_LENGTH = 512;
/** Prefix and ErrorOutputPrefix as configured. */
export const MAX_PREFIX_LENGTH = 1024;
/** Length of `!{firehose:random-string}`. */
export const RANDOM_STRING_LENGTH = 11;
/** The error output type of records that processing (dynamic partitioning) could not place. */
export const PROCESSING_FAILED = 'processing-failed';
/** The timestamp appended to a Prefix without one. */
export const DEFAULT_TIMESTAMP_PATTERN = 'yyyy/MM/dd/HH/';

export type PrefixSegment =
  | { kind: 'literal'; text: string }
  | { kind: 'timestamp'; pattern: DateTimePattern }
  | { kind: 'randomString' }
  | { kind: 'errorOutputType' }
  | { kind: 'partitionKeyFromQuery'; key: string }
  | { kind: 'partitionKeyFromLambda'; key: string };

/** A parsed prefix. */
export interface CompiledPrefix {
  /** The prefix as configured (empty when none was). */
  readonly source: string;
  readonly segments: readonly PrefixSegment[];
  readonly hasExpressions: boolean;
  readonly hasTimestamp: boolean;
  readonly hasErrorOutputType: boolean;
  readonly hasRandomString: boolean;
  /** Names of `partitionKeyFromQuery` expressions, in order of appearance. */
  readonly queryKeys: readonly string[];
  /** Names of `partitionKeyFromLambda` expressions. */
  readonly lambdaKeys: readonly string[];
}

const NAMESPACES = ['firehose', 'timestamp', 'partitionKeyFromQuery', 'partitionKeyFromLambda'] as const;
const PARTITION_KEY_NAME = /^[A-Za-z0-9_-]+$/;

function compile(source: string, segments: PrefixSegment[]): CompiledPrefix {
  const exprs = segments.filter((s) => s.kind !== 'literal');
  return {
    source,
    segments,
    hasExpressions: exprs.length > 0,
    hasTimestamp: exprs.some((s) => s.kind === 'timestamp'),
    hasErrorOutputType: exprs.some((s) => s.kind === 'errorOutputType'),
    hasRandomString: exprs.some((s) => s.kind === 'randomString'),
    queryKeys: exprs.flatMap((s) => (s.kind === 'partitionKeyFromQuery' ? [s.key] : [])),
    lambdaKeys: exprs.flatMap((s) => (s.kind === 'partitionKeyFromLambda' ? [s.key] : [])),
  };
}

/**
 * Parses a prefix; throws InvalidArgumentException naming `field` for a syntax error: `!{` outside an
 * expression, an unterminated expression, an unknown namespace or `firehose` value, a bad timestamp
 * pattern or partition key name.
 */
export function parsePrefix(text: string, field: string): CompiledPrefix {
  if (text.length > MAX_PREFIX_LENGTH) {
    throw invalidArgument(
      `${field} is ${text.length} characters long; at most ${MAX_PREFIX_LENGTH} are allowed`,
    );
  }
  const segments: PrefixSegment[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const start = text.indexOf('!{', i);
    if (start < 0) {
      literal += text.slice(i);
      break;
    }
    literal += text.slice(i, start);
    const colon = text.indexOf(':', start + 2);
    const brace = text.indexOf('}', start + 2);
    if (colon < 0 || (brace >= 0 && brace < colon)) {
      throw invalidArgument(
        `${field}: '!{' at position ${start} does not start an expression of the form !{namespace:value}`,
      );
    }
    const namespace = text.slice(start + 2, colon);
    if (!(NAMESPACES as readonly string[]).includes(namespace)) {
      throw invalidArgument(
        `${field}: unknown expression namespace '${namespace}' at position ${start}; the namespaces are ${NAMESPACES.join(', ')}`,
      );
    }
    // The value ends at the first '}' outside single quotes (quoted text of a timestamp is literal).
    let end = -1;
    let quoted = false;
    for (let j = colon + 1; j < text.length; j++) {
      const c = text[j];
      if (c === "'" && namespace === 'timestamp') quoted = !quoted;
      else if (c === '}' && !quoted) {
        end = j;
        break;
      }
    }
    if (end < 0)
      throw invalidArgument(`${field}: the expression at position ${start} is not closed with '}'`);
    const value = text.slice(colon + 1, end);
    const expression = text.slice(start, end + 1);
    if (literal) segments.push({ kind: 'literal', text: literal });
    literal = '';
    switch (namespace) {
      case 'timestamp':
        if (value === '') throw invalidArgument(`${field}: ${expression} has an empty timestamp pattern`);
        segments.push({ kind: 'timestamp', pattern: compileDateTimePattern(value, field) });
        break;
      case 'firehose':
        if (value === 'random-string') segments.push({ kind: 'randomString' });
        else if (value === 'error-output-type') segments.push({ kind: 'errorOutputType' });
        else {
          throw invalidArgument(
            `${field}: ${expression} is not a firehose expression; the values are error-output-type and random-string`,
          );
        }
        break;
      default:
        if (!PARTITION_KEY_NAME.test(value)) {
          throw invalidArgument(
            `${field}: ${expression} must name a partition key of letters, digits, '_' and '-'`,
          );
        }
        segments.push(
          namespace === 'partitionKeyFromQuery'
            ? { kind: 'partitionKeyFromQuery', key: value }
            : { kind: 'partitionKeyFromLambda', key: value },
        );
    }
    i = end + 1;
  }
  if (literal) segments.push({ kind: 'literal', text: literal });
  return compile(text, segments);
}

/** A random string of {@link RANDOM_STRING_LENGTH} characters (lower-case hex, as the documented example). */
export function randomString(): string {
  return randomBytes(6).toString('hex').slice(0, RANDOM_STRING_LENGTH);
}

export interface PrefixContext {
  /** Approximate arrival time (ms since the epoch) of the oldest record of the object. */
  arrivalMs: number;
  /** IANA zone of the timestamps (UTC by default). */
  timeZone?: string;
  /** Value of `!{firehose:error-output-type}`. */
  errorOutputType?: string;
  /** Values of `!{partitionKeyFromQuery:NAME}`. */
  partitionKeys?: Readonly<Record<string, string>>;
  /** Source of `!{firehose:random-string}` values. */
  random?: () => string;
}

/** Evaluates a compiled prefix. */
export function evaluatePrefix(prefix: CompiledPrefix, ctx: PrefixContext): string {
  let out = '';
  for (const s of prefix.segments) {
    switch (s.kind) {
      case 'literal':
        out += s.text;
        break;
      case 'timestamp':
        out += formatDateTime(s.pattern, ctx.arrivalMs, ctx.timeZone);
        break;
      case 'randomString':
        out += (ctx.random ?? randomString)();
        break;
      case 'errorOutputType':
        out += ctx.errorOutputType ?? PROCESSING_FAILED;
        break;
      case 'partitionKeyFromQuery':
      case 'partitionKeyFromLambda':
        out += ctx.partitionKeys?.[s.key] ?? '';
        break;
    }
  }
  return out;
}

export interface PrefixOptions {
  prefix?: string | undefined;
  errorOutputPrefix?: string | undefined;
  dynamicPartitioning: boolean;
  /** Keys the MetadataExtraction query produces (dynamic partitioning with inline parsing). */
  queryKeys?: readonly string[];
  /** Name of the destination configuration, for messages (`ExtendedS3DestinationConfiguration`). */
  field: string;
}

/** The prefixes records are delivered under, with the defaults applied. */
export interface DestinationPrefixes {
  /** Delivered records. */
  data: CompiledPrefix;
  /** Failed records. */
  error: CompiledPrefix;
}

/**
 * Validates Prefix and ErrorOutputPrefix by the documented rules and returns the effective prefixes
 * (defaults applied). Throws InvalidArgumentException naming the field.
 */
export function destinationPrefixes(opts: PrefixOptions): DestinationPrefixes {
  const prefixField = `${opts.field}.Prefix`;
  const errorField = `${opts.field}.ErrorOutputPrefix`;
  const prefix = parsePrefix(opts.prefix ?? '', prefixField);
  const hasErrorPrefix = opts.errorOutputPrefix !== undefined && opts.errorOutputPrefix !== '';
  const errorPrefix = hasErrorPrefix ? parsePrefix(opts.errorOutputPrefix ?? '', errorField) : undefined;

  if (prefix.hasErrorOutputType)
    throw invalidArgument(`${prefixField} can't contain !{firehose:error-output-type}`);
  if (prefix.hasExpressions && !errorPrefix) {
    throw invalidArgument(`${errorField} can't be null when ${prefixField} contains expressions`);
  }
  if (errorPrefix && (errorPrefix.queryKeys.length > 0 || errorPrefix.lambdaKeys.length > 0)) {
    throw invalidArgument(
      `${errorField} can't contain partitionKeyFromQuery or partitionKeyFromLambda expressions`,
    );
  }
  if (errorPrefix?.hasExpressions && !errorPrefix.hasErrorOutputType) {
    throw invalidArgument(
      `${errorField} contains expressions, so it must include at least one !{firehose:error-output-type}`,
    );
  }
  if (prefix.lambdaKeys.length > 0) {
    throw invalidArgument(
      `${prefixField}: !{partitionKeyFromLambda:${prefix.lambdaKeys[0]}} needs a Lambda processor, which the local Firehose does not run; use partitionKeyFromQuery with a MetadataExtraction processor`,
    );
  }
  if (opts.dynamicPartitioning) {
    if (prefix.queryKeys.length === 0) {
      throw invalidArgument(
        `${prefixField} must contain at least one !{partitionKeyFromQuery:NAME} expression when dynamic partitioning is enabled`,
      );
    }
    const known = new Set(opts.queryKeys ?? []);
    const missing = prefix.queryKeys.find((k) => !known.has(k));
    if (missing !== undefined) {
      throw invalidArgument(
        `${prefixField}: !{partitionKeyFromQuery:${missing}} names a key the MetadataExtractionQuery does not produce (it produces ${[...known].join(', ') || 'none'})`,
      );
    }
  } else if (prefix.queryKeys.length > 0) {
    throw invalidArgument(
      `${prefixField}: !{partitionKeyFromQuery:${prefix.queryKeys[0]}} requires dynamic partitioning (DynamicPartitioningConfiguration.Enabled)`,
    );
  }

  const timestamp = (): PrefixSegment => ({
    kind: 'timestamp',
    pattern: compileDateTimePattern(DEFAULT_TIMESTAMP_PATTERN, prefixField),
  });
  const data =
    prefix.hasTimestamp || opts.dynamicPartitioning
      ? prefix
      : compile(prefix.source, [...prefix.segments, timestamp()]);
  // A static error prefix (or, without one, the static Prefix) is followed by the error output type and
  // the default timestamp.
  const error =
    errorPrefix?.hasExpressions === true
      ? errorPrefix
      : compile(errorPrefix?.source ?? '', [
          ...(errorPrefix ?? prefix).segments,
          { kind: 'errorOutputType' },
          { kind: 'literal', text: '/' },
          timestamp(),
        ]);

  // Evaluated lengths: the longest the expressions can make them (partition keys count as empty here;
  // their values are checked per record).
  const sample = Date.UTC(2000, 8, 30, 23, 59, 59, 999);
  for (const [p, field] of [
    [data, prefixField],
    [error, errorField],
  ] as const) {
    const n = evaluatePrefix(p, { arrivalMs: sample, errorOutputType: 'format-conversion-failed' }).length;
    if (n > MAX_EVALUATED_PREFIX_LENGTH) {
      throw invalidArgument(
        `${field} evaluates to ${n} characters; at most ${MAX_EVALUATED_PREFIX_LENGTH} are allowed`,
      );
    }
  }
  return { data, error };
}
