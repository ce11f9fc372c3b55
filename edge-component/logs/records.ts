/**
 * Log records as the shipper stores and sends them (the format is protocol/logs.ts).
 *
 * A spool entry of the `logs` stream holds the lines of one source: NDJSON "bodies", each a JSON object
 * with what is particular to the line (`ts`, `level`, `msg`, `data` or `ts`, `line`, `cut`). Its metadata
 * is `{source, records}`. At shipping time a body becomes a record by putting the envelope in front:
 * `{"thing":…,"source":…,"seq":…,"n":…,` + the body without its `{`, so the bytes are not parsed again.
 *
 * Sizes: a body is at most MAX_BODY_BYTES, which leaves room for the envelope and the partition key
 * within Kinesis's 1 MiB per record (thing names are at most 128 characters, sources 64, and neither
 * needs escaping in JSON).
 */
import { MAX_KINESIS_RECORD_BYTES } from '../../protocol/logs.js';

/** The largest body: the record limit less room for the envelope (<= 300 bytes) and the key (<= 193). */
export const MAX_BODY_BYTES = MAX_KINESIS_RECORD_BYTES - 1024;

/** Room a file line's body needs besides the line's JSON string: `{"ts":<13 digits>,"line":,"cut":true}`. */
const FILE_BODY_OVERHEAD = 64;

/** The largest JSON string (quotes and escapes included) of one file line piece. */
export const MAX_LINE_JSON_BYTES = MAX_BODY_BYTES - FILE_BODY_OVERHEAD;

/** pino's numeric levels and their labels. */
const LEVEL_LABELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
export const LEVEL_VALUES: Record<string, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};

/** The body of a file line (or of a piece of one that goes on in the next record, `cut`). */
export function fileLineBody(ts: number, text: string, cut: boolean): string {
  return `{"ts":${ts},"line":${JSON.stringify(text)}${cut ? ',"cut":true' : ''}}`;
}

/** What a component log line (one pino JSON line) becomes, or why it is not shipped. */
export type ComponentLine =
  | { ship: true; body: string; level: number }
  | { ship: false; reason: 'own' | 'level' | 'empty' };

/**
 * Turns one line of the component's pino log into a body, unless it comes from `ownComponent` (the
 * shipper's own lines are never shipped) or is below `minLevel`. A line that is not JSON is shipped as
 * text (`line`). A body larger than MAX_BODY_BYTES loses its `data` and keeps the start of `msg`
 * (`cut: true`).
 */
export function componentLineBody(
  line: string,
  opts: { minLevel: number; ownComponent: string; now: number },
): ComponentLine {
  const text = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (text.trim() === '') return { ship: false, reason: 'empty' };
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    obj = undefined;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return { ship: true, level: 30, body: fitBody(fileLineBody(opts.now, text, false), opts.now, text) };
  }
  const { level, time, msg, pid: _pid, hostname: _hostname, ...data } = obj as Record<string, unknown>;
  if (data.component === opts.ownComponent) return { ship: false, reason: 'own' };
  const levelValue = typeof level === 'number' ? level : (LEVEL_VALUES[String(level)] ?? 30);
  if (levelValue < opts.minLevel) return { ship: false, reason: 'level' };
  const label = typeof level === 'number' ? (LEVEL_LABELS[level] ?? String(level)) : String(level ?? 'info');
  const ts = typeof time === 'number' && Number.isFinite(time) ? Math.trunc(time) : opts.now;
  const message = msg === undefined ? undefined : typeof msg === 'string' ? msg : JSON.stringify(msg);
  const body = JSON.stringify({
    ts,
    level: label,
    ...(message !== undefined ? { msg: message } : {}),
    ...(Object.keys(data).length > 0 ? { data } : {}),
  });
  if (Buffer.byteLength(body) <= MAX_BODY_BYTES) return { ship: true, level: levelValue, body };
  // Too large for a record: the start of the message is kept.
  const head = (message ?? '').slice(0, Math.floor(MAX_BODY_BYTES / 8));
  return {
    ship: true,
    level: levelValue,
    body: JSON.stringify({ ts, level: label, msg: head, cut: true }),
  };
}

/** A text body that might be too large: its text is cut to fit (the rest is dropped, `cut`). */
function fitBody(body: string, ts: number, text: string): string {
  if (Buffer.byteLength(body) <= MAX_BODY_BYTES) return body;
  return fileLineBody(ts, text.slice(0, Math.floor(MAX_BODY_BYTES / 8)), true);
}

/** The number of bytes JSON.stringify gives for the UTF-8 text of `buf[start, end)`. */
function jsonBytes(buf: Buffer, start: number, end: number): number {
  return Buffer.byteLength(JSON.stringify(buf.toString('utf8', start, end)));
}

/** Whether `buf[start, end)`, as a JSON string, fits in `max` bytes. */
export function fitsJson(buf: Buffer, start: number, end: number, max: number): boolean {
  // Each byte becomes at most 6 bytes of JSON (a control character's \u00XX; an invalid byte's U+FFFD
  // takes 3); 2 for the quotes.
  if ((end - start) * 6 + 2 <= max) return true;
  if (end - start + 2 > max) return false;
  return jsonBytes(buf, start, end) <= max;
}

/**
 * The length of the longest prefix of `buf[start, end)` that ends on a UTF-8 character boundary and
 * whose JSON string fits in `max` bytes (at least 1, so that a cut always moves on).
 */
export function fittingPrefix(buf: Buffer, start: number, end: number, max: number): number {
  let lo = 1;
  let hi = Math.min(end - start, max - 2);
  // Binary search of the largest n with jsonBytes(prefix n) <= max (it grows with n).
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (jsonBytes(buf, start, start + mid) <= max) lo = mid;
    else hi = mid - 1;
  }
  const n = lo;
  // Do not split a character: move the cut back over continuation bytes (10xxxxxx); a character has at
  // most 3 of them (beyond that the bytes are not UTF-8 anyway, and any cut will do).
  const continuation = (i: number) => start + i < end && ((buf[start + i] ?? 0) & 0xc0) === 0x80;
  let cut = n;
  for (let i = 0; i < 3 && cut > 1 && continuation(cut); i++) cut--;
  return continuation(cut) ? n : cut;
}
