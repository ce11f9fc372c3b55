/**
 * Date formatting for Firehose prefixes and partition keys:
 *
 * - `!{timestamp:<pattern>}` takes a Java `DateTimeFormatter` pattern ("Custom Prefixes for Amazon S3
 *   Objects"). The pattern letters of dates and times are implemented (G u y D M L d Q q E a h K k H m s
 *   S and the offsets Z X x), with Java's rules for letter counts, `'quoted'` literals (`''` is a quote)
 *   and optional sections `[...]` (always printed: every field of an instant is available). Letters Java
 *   knows but that depend on a locale's week rules (Y w W e c F) or need a zone name (V z O) are refused
 *   as unsupported; unknown letters and the reserved `#{}` are refused as Java refuses them.
 * - jq's `strftime(fmt)` (the MetadataExtraction query), which formats epoch seconds in UTC with the C
 *   library's conversions; the common conversions are implemented.
 *
 * Times are evaluated in UTC, or in a stream's `CustomTimeZone` (an IANA zone name).
 */
import { invalidArgument } from './errors.js';

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
] as const;
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

/** The calendar fields of an instant in a time zone. */
export interface ZonedFields {
  year: number;
  /** 1-12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
  /** 0 = Sunday */
  weekday: number;
  /** 1-366 */
  dayOfYear: number;
  /** Offset from UTC in minutes (east positive). */
  offsetMinutes: number;
}

const zoneFormatters = new Map<string, Intl.DateTimeFormat>();

/** Whether `zone` is a time zone name this runtime knows (IANA). */
export function isKnownTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function dayOfYear(year: number, month: number, day: number): number {
  return Math.round((Date.UTC(year, month - 1, day) - Date.UTC(year, 0, 1)) / 86_400_000) + 1;
}

/** The fields of `epochMs` in `zone` (UTC when undefined or `UTC`). */
export function zonedFields(epochMs: number, zone?: string): ZonedFields {
  const millisecond = ((epochMs % 1000) + 1000) % 1000;
  if (zone === undefined || zone === '' || zone === 'UTC') {
    const d = new Date(epochMs);
    const year = d.getUTCFullYear();
    const month = d.getUTCMonth() + 1;
    const day = d.getUTCDate();
    return {
      year,
      month,
      day,
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
      millisecond,
      weekday: d.getUTCDay(),
      dayOfYear: dayOfYear(year, month, day),
      offsetMinutes: 0,
    };
  }
  let fmt = zoneFormatters.get(zone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    zoneFormatters.set(zone, fmt);
  }
  const parts: Record<string, string> = {};
  for (const p of fmt.formatToParts(new Date(epochMs))) parts[p.type] = p.value;
  const era = parts.era === 'BC' ? -1 : 1;
  const year = era < 0 ? 1 - Number(parts.year) : Number(parts.year);
  const month = Number(parts.month);
  const day = Number(parts.day);
  const hour = Number(parts.hour);
  const minute = Number(parts.minute);
  const second = Number(parts.second);
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const offsetMinutes = Math.round((wall - (epochMs - millisecond)) / 60_000);
  return {
    year,
    month,
    day,
    hour,
    minute,
    second,
    millisecond,
    weekday: new Date(Date.UTC(year, month - 1, day)).getUTCDay(),
    dayOfYear: dayOfYear(year, month, day),
    offsetMinutes,
  };
}

const pad = (n: number, width: number): string => {
  const s = String(Math.abs(n));
  const padded = s.length >= width ? s : '0'.repeat(width - s.length) + s;
  return n < 0 ? `-${padded}` : padded;
};

// ---------------------------------------------------------------------------------------------
// Java DateTimeFormatter patterns
// ---------------------------------------------------------------------------------------------

type PatternToken = { literal: string } | { letter: string; count: number };

/** A compiled `DateTimeFormatter` pattern. */
export interface DateTimePattern {
  readonly source: string;
  readonly tokens: readonly PatternToken[];
}

/** Most letters Java accepts for each supported field. */
const MAX_COUNT: Record<string, number> = {
  G: 5,
  u: 19,
  y: 19,
  D: 3,
  M: 5,
  L: 5,
  d: 2,
  Q: 5,
  q: 5,
  E: 5,
  a: 1,
  h: 2,
  K: 2,
  k: 2,
  H: 2,
  m: 2,
  s: 2,
  S: 9,
  Z: 5,
  X: 5,
  x: 5,
};
/** Letters Java knows that the local Firehose does not format (locale week rules, zone names). */
const UNSUPPORTED = new Set(['Y', 'w', 'W', 'e', 'c', 'F', 'V', 'v', 'z', 'O', 'A', 'n', 'N', 'p', 'B']);

/**
 * Compiles a `DateTimeFormatter` pattern; throws InvalidArgumentException naming `field` when Java would
 * refuse it or the local Firehose cannot format it.
 */
export function compileDateTimePattern(pattern: string, field: string): DateTimePattern {
  const tokens: PatternToken[] = [];
  const fail = (why: string) =>
    invalidArgument(`${field}: the timestamp pattern '${pattern}' is not valid: ${why}`);
  let literal = '';
  const flush = () => {
    if (literal) tokens.push({ literal });
    literal = '';
  };
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "'") {
      const close = (from: number): number => {
        let j = from;
        for (;;) {
          const q = pattern.indexOf("'", j);
          if (q < 0) return -1;
          if (pattern[q + 1] === "'") {
            j = q + 2;
            continue;
          }
          return q;
        }
      };
      if (pattern[i + 1] === "'") {
        literal += "'";
        i += 2;
        continue;
      }
      const end = close(i + 1);
      if (end < 0) throw fail('the pattern ends with an incomplete string literal');
      literal += pattern.slice(i + 1, end).replaceAll("''", "'");
      i = end + 1;
      continue;
    }
    if (/[A-Za-z]/.test(c)) {
      let count = 1;
      while (pattern[i + count] === c) count++;
      const max = MAX_COUNT[c];
      if (max === undefined) {
        if (UNSUPPORTED.has(c))
          throw fail(`the pattern letter '${c}' is not supported by the local Firehose`);
        throw fail(`unknown pattern letter: ${c}`);
      }
      if (count > max) throw fail(`too many pattern letters: ${c}`);
      if ((c === 'Q' || c === 'q') && count > 2)
        throw fail(`the pattern letter '${c}' is supported in its numeric forms only (${c}, ${c}${c})`);
      flush();
      tokens.push({ letter: c, count });
      i += count;
      continue;
    }
    if (c === '#' || c === '{' || c === '}') throw fail(`pattern includes reserved character: '${c}'`);
    // Optional sections print their content: every field of an instant is available.
    if (c !== '[' && c !== ']') literal += c;
    i++;
  }
  flush();
  return { source: pattern, tokens };
}

function offsetText(minutes: number, style: 'basic' | 'extended' | 'hours', zForZero: boolean): string {
  if (minutes === 0 && zForZero) return 'Z';
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  const hh = pad(Math.floor(abs / 60), 2);
  const mm = pad(abs % 60, 2);
  if (style === 'hours') return mm === '00' ? `${sign}${hh}` : `${sign}${hh}${mm}`;
  return style === 'basic' ? `${sign}${hh}${mm}` : `${sign}${hh}:${mm}`;
}

function formatField(letter: string, count: number, f: ZonedFields): string {
  switch (letter) {
    case 'G':
      return count === 4 ? (f.year > 0 ? 'Anno Domini' : 'Before Christ') : f.year > 0 ? 'AD' : 'BC';
    case 'u':
    case 'y': {
      const year = letter === 'y' && f.year <= 0 ? 1 - f.year : f.year;
      if (count === 2) return pad(((year % 100) + 100) % 100, 2);
      return pad(year, count);
    }
    case 'D':
      return pad(f.dayOfYear, count);
    case 'M':
    case 'L':
      if (count <= 2) return pad(f.month, count);
      if (count === 3) return MONTHS[f.month - 1]!.slice(0, 3);
      if (count === 4) return MONTHS[f.month - 1]!;
      return MONTHS[f.month - 1]!.slice(0, 1);
    case 'd':
      return pad(f.day, count);
    case 'Q':
    case 'q':
      return pad(Math.floor((f.month - 1) / 3) + 1, count);
    case 'E':
      if (count <= 3) return DAYS[f.weekday]!.slice(0, 3);
      if (count === 4) return DAYS[f.weekday]!;
      return DAYS[f.weekday]!.slice(0, 1);
    case 'a':
      return f.hour < 12 ? 'AM' : 'PM';
    case 'h':
      return pad(f.hour % 12 === 0 ? 12 : f.hour % 12, count);
    case 'K':
      return pad(f.hour % 12, count);
    case 'k':
      return pad(f.hour === 0 ? 24 : f.hour, count);
    case 'H':
      return pad(f.hour, count);
    case 'm':
      return pad(f.minute, count);
    case 's':
      return pad(f.second, count);
    case 'S':
      return `${pad(f.millisecond, 3)}000000`.slice(0, count);
    case 'Z':
      if (count <= 3) return offsetText(f.offsetMinutes, 'basic', false);
      if (count === 4)
        return f.offsetMinutes === 0 ? 'GMT' : `GMT${offsetText(f.offsetMinutes, 'extended', false)}`;
      return offsetText(f.offsetMinutes, 'extended', true);
    case 'X':
    case 'x': {
      const z = letter === 'X';
      if (count === 1) return offsetText(f.offsetMinutes, 'hours', z);
      if (count === 2 || count === 4) return offsetText(f.offsetMinutes, 'basic', z);
      return offsetText(f.offsetMinutes, 'extended', z);
    }
    default:
      return '';
  }
}

/** Formats `epochMs` with a compiled pattern, in `zone` (UTC by default). */
export function formatDateTime(pattern: DateTimePattern, epochMs: number, zone?: string): string {
  const f = zonedFields(epochMs, zone);
  let out = '';
  for (const t of pattern.tokens) out += 'literal' in t ? t.literal : formatField(t.letter, t.count, f);
  return out;
}

// ---------------------------------------------------------------------------------------------
// jq strftime
// ---------------------------------------------------------------------------------------------

const STRFTIME_CONVERSIONS = new Set('YCymdejHIMSpabABhZzsuwFTDRnt%');

/** Checks a `strftime` format; returns the unsupported conversion, if any. */
export function unsupportedStrftimeConversion(format: string): string | undefined {
  for (let i = 0; i < format.length; i++) {
    if (format[i] !== '%') continue;
    const c = format[i + 1];
    if (c === undefined || !STRFTIME_CONVERSIONS.has(c)) return `%${c ?? ''}`;
    i++;
  }
  return undefined;
}

/** jq's `strftime(format)` of epoch seconds (gmtime, so always UTC). */
export function strftime(format: string, epochSeconds: number): string {
  const f = zonedFields(Math.floor(epochSeconds * 1000));
  let out = '';
  for (let i = 0; i < format.length; i++) {
    const ch = format[i]!;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const c = format[++i];
    switch (c) {
      case 'Y':
        out += String(f.year);
        break;
      case 'C':
        out += pad(Math.floor(f.year / 100), 2);
        break;
      case 'y':
        out += pad(f.year % 100, 2);
        break;
      case 'm':
        out += pad(f.month, 2);
        break;
      case 'd':
        out += pad(f.day, 2);
        break;
      case 'e':
        out += String(f.day).padStart(2, ' ');
        break;
      case 'j':
        out += pad(f.dayOfYear, 3);
        break;
      case 'H':
        out += pad(f.hour, 2);
        break;
      case 'I':
        out += pad(f.hour % 12 === 0 ? 12 : f.hour % 12, 2);
        break;
      case 'M':
        out += pad(f.minute, 2);
        break;
      case 'S':
        out += pad(f.second, 2);
        break;
      case 'p':
        out += f.hour < 12 ? 'AM' : 'PM';
        break;
      case 'a':
        out += DAYS[f.weekday]!.slice(0, 3);
        break;
      case 'A':
        out += DAYS[f.weekday]!;
        break;
      case 'b':
      case 'h':
        out += MONTHS[f.month - 1]!.slice(0, 3);
        break;
      case 'B':
        out += MONTHS[f.month - 1]!;
        break;
      case 'Z':
        out += 'UTC';
        break;
      case 'z':
        out += '+0000';
        break;
      case 's':
        out += String(Math.floor(epochSeconds));
        break;
      case 'u':
        out += String(f.weekday === 0 ? 7 : f.weekday);
        break;
      case 'w':
        out += String(f.weekday);
        break;
      case 'F':
        out += `${f.year}-${pad(f.month, 2)}-${pad(f.day, 2)}`;
        break;
      case 'T':
        out += `${pad(f.hour, 2)}:${pad(f.minute, 2)}:${pad(f.second, 2)}`;
        break;
      case 'D':
        out += `${pad(f.month, 2)}/${pad(f.day, 2)}/${pad(f.year % 100, 2)}`;
        break;
      case 'R':
        out += `${pad(f.hour, 2)}:${pad(f.minute, 2)}`;
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case '%':
        out += '%';
        break;
      default:
        out += `%${c ?? ''}`;
    }
  }
  return out;
}
