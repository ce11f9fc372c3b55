/**
 * Date/time functions of the AWS IoT SQL "Functions" page: timestamp(), parse_time (formats an epoch
 * time with a Joda-Time pattern) and time_to_epoch (parses a date/time with a java.time
 * DateTimeFormatter pattern, JDK 11).
 *
 * Joda-Time pattern letters implemented for parse_time (English names, as a JVM in the en_US locale):
 * G era (AD/BC), C century of era, Y year of era, y year, x weekyear, w week of weekyear, e day of week
 * (1 = Monday), E day of week text (EEEE full, fewer short), D day of year, M month (MMM short text,
 * MMMM full text), d day of month, a AM/PM, K hour of half-day (0-11), h clock hour of half-day (1-12),
 * H hour of day (0-23), k clock hour of day (1-24), m minute, s second, S fraction of second (truncated
 * to the number of letters), z zone name (zzzz long), Z offset (Z `-0800`, ZZ `-08:00`, ZZZ zone ID),
 * `'text'` literals and `''` for a quote. Counts pad numbers with zeros; `yy`/`YY`/`xx` print two digits.
 * Any other letter makes the pattern invalid, and the result Undefined (Joda throws for it).
 *
 * java.time pattern letters implemented for time_to_epoch: G, u, y (yy = 2000-2099), M/L (number,
 * MMM, MMMM), d, D, E (text, cross-checked with the date), a, h, K, k, H, m, s, S (exact digit count),
 * n, A, VV (zone ID), z (zone name or ID), O, X, x, Z (offsets), `'text'`, and `[...]` optional
 * sections. Parsing is strict and case-sensitive as `DateTimeFormatter.ofPattern` is, days beyond the
 * month's end are clamped (ResolverStyle.SMART: 2021-02-31 → 2021-02-28), a missing time of day is
 * midnight (the page's `"18 December 2015"` example), and a missing zone is UTC (the page says so).
 * Year, month and day must be present (or year and day of year); otherwise the result is Undefined.
 */
import type { FunctionSpec } from '../context.js';
import { int, type SqlValue, str, UNDEFINED } from '../values.js';
import { toFlooredDouble, toText } from './convert.js';
import { arg, define } from './define.js';
import {
  formatOffset,
  localToInstant,
  parseOffset,
  UTC_ZONE,
  type Zone,
  zoneById,
  zoneByName,
} from './zones.js';

const DAY = 86_400_000;
const MAX_EPOCH_MS = 8.64e15;

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
];
const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

/** A pattern that cannot be used (the SQL function returns Undefined). */
export class TimePatternError extends Error {}

const fail = (message: string): never => {
  throw new TimePatternError(message);
};

/** UTC epoch ms of a proleptic Gregorian date (years 0..99 included). */
function utcDate(year: number, month: number, day: number): number {
  const d = new Date(Date.UTC(2000, month - 1, day));
  d.setUTCFullYear(year);
  return d.getTime();
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function monthLength(y: number, m: number): number {
  return [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;
}

interface LocalFields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millis: number;
  /** ISO day of week, 1 = Monday. */
  dayOfWeek: number;
  dayOfYear: number;
  weekyear: number;
  week: number;
}

function localFields(localMs: number): LocalFields {
  const d = new Date(localMs);
  const year = d.getUTCFullYear();
  const dayOfWeek = ((d.getUTCDay() + 6) % 7) + 1;
  const midnight = utcDate(year, d.getUTCMonth() + 1, d.getUTCDate());
  const dayOfYear = Math.round((midnight - utcDate(year, 1, 1)) / DAY) + 1;
  const thursday = midnight + (4 - dayOfWeek) * DAY;
  const weekyear = new Date(thursday).getUTCFullYear();
  const week = Math.floor(Math.round((thursday - utcDate(weekyear, 1, 1)) / DAY) / 7) + 1;
  return {
    year,
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    millis: d.getUTCMilliseconds(),
    dayOfWeek,
    dayOfYear,
    weekyear,
    week,
  };
}

type Token = { letter: string; count: number } | { text: string };

/** Splits a Joda/java.time pattern into letter runs and literal text (`'...'` quoting, `''` = `'`). */
function tokenize(pattern: string, literalChars?: RegExp): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const pushText = (t: string) => {
    const last = tokens[tokens.length - 1];
    if (last && 'text' in last) tokens[tokens.length - 1] = { text: last.text + t };
    else tokens.push({ text: t });
  };
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "'") {
      if (pattern[i + 1] === "'") {
        pushText("'");
        i += 2;
        continue;
      }
      let j = i + 1;
      let t = '';
      for (;;) {
        if (j >= pattern.length) fail('unterminated quote');
        if (pattern[j] === "'") {
          if (pattern[j + 1] === "'") {
            t += "'";
            j += 2;
            continue;
          }
          break;
        }
        t += pattern[j];
        j++;
      }
      pushText(t);
      i = j + 1;
    } else if (/[A-Za-z]/.test(c)) {
      let j = i;
      while (pattern[j] === c) j++;
      tokens.push({ letter: c, count: j - i });
      i = j;
    } else {
      if (literalChars?.test(c)) tokens.push({ letter: c, count: 1 });
      else pushText(c);
      i++;
    }
  }
  return tokens;
}

const pad = (n: number, width: number): string =>
  n < 0 ? `-${String(-n).padStart(width, '0')}` : String(n).padStart(width, '0');

/** Formats an instant with a Joda-Time pattern in a zone (parse_time). Throws TimePatternError. */
export function formatJoda(pattern: string, epochMs: number, zone: Zone): string {
  const offset = zone.offsetAt(epochMs);
  const f = localFields(epochMs + offset);
  const yearOfEra = f.year <= 0 ? 1 - f.year : f.year;
  let out = '';
  for (const t of tokenize(pattern)) {
    if ('text' in t) {
      out += t.text;
      continue;
    }
    const n = t.count;
    switch (t.letter) {
      case 'G':
        out += f.year <= 0 ? 'BC' : 'AD';
        break;
      case 'C':
        out += pad(Math.floor(yearOfEra / 100), n);
        break;
      case 'Y':
        out += n === 2 ? pad(yearOfEra % 100, 2) : pad(yearOfEra, n);
        break;
      case 'y':
        out += n === 2 ? pad(((f.year % 100) + 100) % 100, 2) : pad(f.year, n);
        break;
      case 'x':
        out += n === 2 ? pad(((f.weekyear % 100) + 100) % 100, 2) : pad(f.weekyear, n);
        break;
      case 'w':
        out += pad(f.week, n);
        break;
      case 'e':
        out += pad(f.dayOfWeek, n);
        break;
      case 'E': {
        const name = DAYS[f.dayOfWeek - 1]!;
        out += n >= 4 ? name : name.slice(0, 3);
        break;
      }
      case 'D':
        out += pad(f.dayOfYear, n);
        break;
      case 'M': {
        const name = MONTHS[f.month - 1]!;
        out += n >= 4 ? name : n === 3 ? name.slice(0, 3) : pad(f.month, n);
        break;
      }
      case 'd':
        out += pad(f.day, n);
        break;
      case 'a':
        out += f.hour < 12 ? 'AM' : 'PM';
        break;
      case 'K':
        out += pad(f.hour % 12, n);
        break;
      case 'h':
        out += pad(f.hour % 12 === 0 ? 12 : f.hour % 12, n);
        break;
      case 'H':
        out += pad(f.hour, n);
        break;
      case 'k':
        out += pad(f.hour === 0 ? 24 : f.hour, n);
        break;
      case 'm':
        out += pad(f.minute, n);
        break;
      case 's':
        out += pad(f.second, n);
        break;
      case 'S': {
        const ms = String(f.millis).padStart(3, '0');
        out += n <= 3 ? ms.slice(0, n) : ms + '0'.repeat(n - 3);
        break;
      }
      case 'z':
        out += n >= 4 ? zone.longName(epochMs) : zone.shortName(epochMs);
        break;
      case 'Z':
        out += n === 1 ? formatOffset(offset, false) : n === 2 ? formatOffset(offset, true) : zone.id;
        break;
      default:
        fail(`illegal pattern component: ${t.letter}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// time_to_epoch: java.time parsing

interface Parsed {
  era?: number; // 1 = AD, 0 = BC
  yearOfEra?: number;
  year?: number;
  month?: number;
  day?: number;
  dayOfYear?: number;
  dayOfWeek?: number;
  ampm?: number; // 0 AM, 1 PM
  hourOfDay?: number;
  hourOfAmPm?: number;
  minute?: number;
  second?: number;
  nano?: number;
  milliOfDay?: number;
  zone?: Zone;
  offset?: number;
}

interface Piece {
  /** Regex source; if `set` is present, it contains exactly one capturing group at its start. */
  re: string;
  set?: (text: string, p: Parsed) => boolean;
}

const escapeRe = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

const alternatives = (names: readonly string[]): string =>
  `(${[...names]
    .sort((a, b) => b.length - a.length)
    .map(escapeRe)
    .join('|')})`;

function numberPiece(
  min: number,
  max: number,
  set: (v: number, p: Parsed) => boolean,
  signed = false,
): Piece {
  return {
    re: `(${signed ? '[+-]?' : ''}\\d{${min},${max}})`,
    set: (t, p) => set(Number(t), p),
  };
}

const assign =
  <K extends keyof Parsed>(key: K) =>
  (v: number, p: Parsed): boolean => {
    const prev = p[key];
    if (prev !== undefined && prev !== v) return false;
    (p as Record<K, number>)[key] = v;
    return true;
  };

const ZONE_ID_RE =
  '([A-Za-z][A-Za-z0-9~/._+-]*(?:[+-]\\d{1,2}(?::?\\d{2}){0,2})?|[+-]\\d{1,2}(?::?\\d{2}){0,2})';
const OFFSET_RE = '(Z|[+-]\\d{2}(?::?\\d{2}){0,2})';

function offsetSetter(allowZ: boolean): (t: string, p: Parsed) => boolean {
  return (t, p) => {
    if (t === 'Z') {
      if (!allowZ) return false;
      p.offset = 0;
      return true;
    }
    const o = parseOffset(t);
    if (o === undefined) return false;
    p.offset = o;
    return true;
  };
}

/** One java.time pattern letter run as a regex piece. */
function javaPiece(letter: string, n: number): Piece {
  const tooMany = () => fail(`too many pattern letters: ${letter}`);
  const fixedOrVariable = (key: keyof Parsed, max = 2): Piece => {
    if (n > max) tooMany();
    return n === 1 ? numberPiece(1, 19, assign(key)) : numberPiece(n, n, assign(key));
  };
  switch (letter) {
    case 'G':
      if (n <= 3) return { re: '(AD|BC)', set: (t, p) => assign('era')(t === 'AD' ? 1 : 0, p) };
      if (n === 4)
        return {
          re: '(Anno Domini|Before Christ)',
          set: (t, p) => assign('era')(t === 'Anno Domini' ? 1 : 0, p),
        };
      return fail('unsupported era width');
    case 'y':
    case 'u': {
      const key = letter === 'y' ? 'yearOfEra' : 'year';
      if (n === 2) return numberPiece(2, 2, (v, p) => assign(key)(2000 + v, p));
      return numberPiece(n, Math.max(n, 9), assign(key), letter === 'u' || n >= 4);
    }
    case 'M':
    case 'L':
      if (n <= 2) return fixedOrVariable('month');
      if (n === 3)
        return {
          re: alternatives(MONTHS.map((m) => m.slice(0, 3))),
          set: (t, p) => assign('month')(MONTHS.findIndex((m) => m.startsWith(t)) + 1, p),
        };
      if (n === 4)
        return { re: alternatives(MONTHS), set: (t, p) => assign('month')(MONTHS.indexOf(t) + 1, p) };
      return fail('narrow month names are not supported');
    case 'd':
      return fixedOrVariable('day');
    case 'D':
      if (n > 3) tooMany();
      return n === 1
        ? numberPiece(1, 3, assign('dayOfYear'))
        : n === 2
          ? numberPiece(2, 3, assign('dayOfYear'))
          : numberPiece(3, 3, assign('dayOfYear'));
    case 'E':
      if (n <= 3)
        return {
          re: alternatives(DAYS.map((d) => d.slice(0, 3))),
          set: (t, p) => assign('dayOfWeek')(DAYS.findIndex((d) => d.startsWith(t)) + 1, p),
        };
      if (n === 4)
        return { re: alternatives(DAYS), set: (t, p) => assign('dayOfWeek')(DAYS.indexOf(t) + 1, p) };
      return fail('narrow day names are not supported');
    case 'a':
      if (n > 1) tooMany();
      return { re: '(AM|PM)', set: (t, p) => assign('ampm')(t === 'AM' ? 0 : 1, p) };
    case 'H':
      return fixedOrVariable('hourOfDay');
    case 'k': {
      if (n > 2) tooMany();
      const set = (v: number, p: Parsed) => v >= 1 && v <= 24 && assign('hourOfDay')(v === 24 ? 0 : v, p);
      return n === 1 ? numberPiece(1, 19, set) : numberPiece(2, 2, set);
    }
    case 'K':
      return fixedOrVariable('hourOfAmPm');
    case 'h': {
      if (n > 2) tooMany();
      const set = (v: number, p: Parsed) => v >= 1 && v <= 12 && assign('hourOfAmPm')(v === 12 ? 0 : v, p);
      return n === 1 ? numberPiece(1, 19, set) : numberPiece(2, 2, set);
    }
    case 'm':
      return fixedOrVariable('minute');
    case 's':
      return fixedOrVariable('second');
    case 'S':
      return {
        re: `(\\d{${n}})`,
        set: (t, p) => assign('nano')(Math.floor(Number(`0.${t}`) * 1e9 + 1e-6), p),
      };
    case 'n':
      return numberPiece(1, 9, assign('nano'));
    case 'A':
      return numberPiece(1, 8, assign('milliOfDay'));
    case 'V':
      if (n !== 2) fail('pattern letter V must be VV');
      return {
        re: ZONE_ID_RE,
        set: (t, p) => {
          const z = zoneById(t);
          if (!z) return false;
          p.zone = z;
          return true;
        },
      };
    case 'z':
      if (n > 4) tooMany();
      return {
        re: '([A-Za-z][A-Za-z0-9~/._+ -]*?(?:[+-]\\d{1,2}(?::?\\d{2}){0,2})?)',
        set: (t, p) => {
          const z = zoneByName(t);
          if (!z) return false;
          p.zone = z;
          return true;
        },
      };
    case 'O':
      if (n !== 1 && n !== 4) fail('pattern letter O must be O or OOOO');
      return {
        re: '(GMT(?:[+-]\\d{1,2}(?::?\\d{2}){0,2})?)',
        set: (t, p) => {
          if (t === 'GMT') {
            p.offset = 0;
            return true;
          }
          return offsetSetter(false)(t.slice(3), p);
        },
      };
    case 'X':
      if (n > 5) tooMany();
      return { re: OFFSET_RE, set: offsetSetter(true) };
    case 'x':
      if (n > 5) tooMany();
      return { re: OFFSET_RE, set: offsetSetter(false) };
    case 'Z':
      if (n > 5) tooMany();
      if (n === 4) return javaPiece('O', 4);
      return { re: OFFSET_RE, set: offsetSetter(n === 5) };
    default:
      return fail(`unsupported pattern letter: ${letter}`);
  }
}

interface CompiledParser {
  re: RegExp;
  setters: ((text: string, p: Parsed) => boolean)[];
}

const parserCache = new Map<string, CompiledParser>();

function compileJavaPattern(pattern: string): CompiledParser {
  const hit = parserCache.get(pattern);
  if (hit) return hit;
  const setters: ((text: string, p: Parsed) => boolean)[] = [];
  let src = '';
  let depth = 0;
  for (const t of tokenize(pattern, /[[\]{}#]/)) {
    if ('text' in t) {
      src += escapeRe(t.text);
      continue;
    }
    if (t.letter === '[') {
      src += '(?:';
      depth++;
      continue;
    }
    if (t.letter === ']') {
      if (depth === 0) fail('unbalanced ]');
      src += ')?';
      depth--;
      continue;
    }
    if (t.letter === '{' || t.letter === '}' || t.letter === '#')
      fail(`reserved pattern character ${t.letter}`);
    const piece = javaPiece(t.letter, t.count);
    src += piece.re;
    if (piece.set) setters.push(piece.set);
  }
  src += ')?'.repeat(depth);
  const compiled = { re: new RegExp(`^${src}$`), setters };
  if (parserCache.size > 256) parserCache.clear();
  parserCache.set(pattern, compiled);
  return compiled;
}

/** Parses a date/time with a java.time pattern to epoch milliseconds; undefined if it does not parse. */
export function parseJavaTime(text: string, pattern: string): number | undefined {
  const parser = compileJavaPattern(pattern);
  const m = parser.re.exec(text);
  if (!m) return undefined;
  const p: Parsed = {};
  for (let k = 0; k < parser.setters.length; k++) {
    const captured = m[k + 1];
    if (captured !== undefined && !parser.setters[k]!(captured, p)) return undefined;
  }
  // Year.
  let year = p.year;
  if (p.yearOfEra !== undefined) {
    const y = p.era === 0 ? 1 - p.yearOfEra : p.yearOfEra;
    if (year !== undefined && year !== y) return undefined;
    year = y;
  }
  if (year === undefined) return undefined;
  // Date.
  let dateMs: number;
  if (p.month !== undefined && p.day !== undefined) {
    if (p.month < 1 || p.month > 12 || p.day < 1 || p.day > 31) return undefined;
    dateMs = utcDate(year, p.month, Math.min(p.day, monthLength(year, p.month)));
    if (p.dayOfYear !== undefined && localFields(dateMs).dayOfYear !== p.dayOfYear) return undefined;
  } else if (p.dayOfYear !== undefined && p.month === undefined && p.day === undefined) {
    if (p.dayOfYear < 1 || p.dayOfYear > (isLeap(year) ? 366 : 365)) return undefined;
    dateMs = utcDate(year, 1, 1) + (p.dayOfYear - 1) * DAY;
  } else return undefined;
  if (p.dayOfWeek !== undefined && localFields(dateMs).dayOfWeek !== p.dayOfWeek) return undefined;
  // Time of day.
  let hour = p.hourOfDay;
  if (p.hourOfAmPm !== undefined) {
    if (p.ampm === undefined || p.hourOfAmPm > 11) return undefined;
    const h = p.ampm * 12 + p.hourOfAmPm;
    if (hour !== undefined && hour !== h) return undefined;
    hour = h;
  } else if (p.ampm !== undefined && hour !== undefined && Math.floor(hour / 12) !== p.ampm) return undefined;
  const minute = p.minute ?? 0;
  const second = p.second ?? 0;
  const nano = p.nano ?? 0;
  if (hour !== undefined && hour > 23) return undefined;
  if (minute > 59 || second > 59) return undefined;
  let timeMs = ((hour ?? 0) * 60 + minute) * 60_000 + second * 1000 + Math.floor(nano / 1e6);
  if (p.milliOfDay !== undefined) {
    if (p.milliOfDay >= DAY) return undefined;
    if (hour !== undefined && Math.floor(p.milliOfDay / 1000) !== Math.floor(timeMs / 1000)) return undefined;
    timeMs = p.milliOfDay;
  }
  const local = dateMs + timeMs;
  if (p.offset !== undefined) return local - p.offset;
  return localToInstant(local, p.zone ?? UTC_ZONE);
}

// ---------------------------------------------------------------------------------------------------
// The SQL functions

/** parse_time(pattern, timestamp[, timezone]): timezone defaults to UTC. */
function parseTime(args: readonly SqlValue[]): SqlValue {
  const pattern = toText(arg(args, 0));
  const tsArg = arg(args, 1);
  if (pattern === undefined) return UNDEFINED;
  if (tsArg.type !== 'Int' && tsArg.type !== 'Decimal' && tsArg.type !== 'String') return UNDEFINED;
  const ms = toFlooredDouble(tsArg);
  if (ms === undefined || Math.abs(ms) > MAX_EPOCH_MS) return UNDEFINED;
  let zone: Zone | undefined = UTC_ZONE;
  if (args.length > 2) {
    const tz = arg(args, 2);
    if (tz.type !== 'String') return UNDEFINED;
    zone = zoneById(tz.value);
  }
  if (zone === undefined) return UNDEFINED;
  try {
    return str(formatJoda(pattern, ms, zone));
  } catch (e) {
    if (e instanceof TimePatternError) return UNDEFINED;
    throw e;
  }
}

/** time_to_epoch(timestamp, pattern): epoch milliseconds as an Int. */
function timeToEpoch(args: readonly SqlValue[]): SqlValue {
  const text = toText(arg(args, 0));
  const pattern = toText(arg(args, 1));
  if (text === undefined || pattern === undefined) return UNDEFINED;
  try {
    const ms = parseJavaTime(text, pattern);
    return ms === undefined || !Number.isFinite(ms) ? UNDEFINED : int(ms);
  } catch (e) {
    if (e instanceof TimePatternError) return UNDEFINED;
    throw e;
  }
}

export const TIME_FUNCTIONS: readonly FunctionSpec[] = [
  // The current time as the rules engine sees it: the context's clock.
  define('timestamp', 0, 0, (_args, ctx) => int(Math.floor(ctx.now()))),
  define('parse_time', 2, 3, parseTime),
  define('time_to_epoch', 2, 2, timeToEpoch),
];
