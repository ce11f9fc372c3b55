/**
 * Time zones for parse_time and time_to_epoch: IANA region IDs (through Intl, so the tz database
 * bundled with Node), UTC/GMT/UT/Z, fixed offsets (`+01:00`, `-0800`, `+1`) and prefixed offsets
 * (`UTC+01:00`, `GMT-5`), as Joda-Time's DateTimeZone.forID and java.time's ZoneId.of accept them.
 */

const MINUTE = 60_000;

export interface Zone {
  /** The ID as Joda/Java would print it (`UTC`, `+01:00`, `America/Belize`). */
  readonly id: string;
  /** Offset from UTC in milliseconds at the given instant. */
  offsetAt(epochMs: number): number;
  /** Short display name at the instant (`CST`, `UTC`, `+01:00`). */
  shortName(epochMs: number): string;
  /** Long display name at the instant (`Central Standard Time`). */
  longName(epochMs: number): string;
}

function offsetText(ms: number, colon = true): string {
  const sign = ms < 0 ? '-' : '+';
  const total = Math.abs(Math.round(ms / MINUTE));
  const h = String(Math.floor(total / 60)).padStart(2, '0');
  const m = String(total % 60).padStart(2, '0');
  return colon ? `${sign}${h}:${m}` : `${sign}${h}${m}`;
}

/** `+hh:mm` / `-hhmm` style text of an offset. */
export function formatOffset(ms: number, colon: boolean): string {
  return offsetText(ms, colon);
}

export const UTC_ZONE: Zone = {
  id: 'UTC',
  offsetAt: () => 0,
  shortName: () => 'UTC',
  longName: () => 'Coordinated Universal Time',
};

function fixedZone(offsetMs: number, id?: string): Zone {
  if (offsetMs === 0 && id === undefined) return UTC_ZONE;
  const text = offsetText(offsetMs);
  const zoneId = id ?? text;
  return { id: zoneId, offsetAt: () => offsetMs, shortName: () => zoneId, longName: () => zoneId };
}

/** Parses `+h`, `+hh`, `+hhmm`, `+hh:mm` (and with seconds); undefined if it is not an offset. */
export function parseOffset(text: string): number | undefined {
  const m = /^([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?$/.exec(text);
  if (!m) return undefined;
  const h = Number(m[2]);
  const min = Number(m[3] ?? '0');
  const s = Number(m[4] ?? '0');
  if (h > 18 || min > 59 || s > 59) return undefined;
  const ms = ((h * 60 + min) * 60 + s) * 1000;
  return m[1] === '-' ? -ms : ms;
}

const partsFormatters = new Map<string, Intl.DateTimeFormat>();

function partsFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = partsFormatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    partsFormatters.set(timeZone, f);
  }
  return f;
}

function intlOffset(timeZone: string, epochMs: number): number {
  const parts = partsFormatter(timeZone).formatToParts(new Date(epochMs));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? '0');
  const era = parts.find((p) => p.type === 'era')?.value;
  let year = get('year');
  if (era === 'BC' || era === 'B') year = 1 - year;
  const local = Date.UTC(year, get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  const d = new Date(local);
  if (year >= 0 && year < 100) d.setUTCFullYear(year);
  const wholeSeconds = Math.floor(epochMs / 1000) * 1000;
  return d.getTime() - wholeSeconds;
}

/** Locales tried in order for a short zone name that is not just a GMT offset. */
const NAME_LOCALES = ['en-US', 'en-GB', 'en-AU', 'en-IN', 'en-NZ', 'en-CA', 'en-IE', 'en-ZA', 'en-SG'];

function intlName(timeZone: string, epochMs: number, style: 'short' | 'long'): string | undefined {
  for (const locale of style === 'short' ? NAME_LOCALES : ['en-US']) {
    const name = new Intl.DateTimeFormat(locale, { timeZone, timeZoneName: style })
      .formatToParts(new Date(epochMs))
      .find((p) => p.type === 'timeZoneName')?.value;
    if (name !== undefined && !/^GMT[+-]/.test(name)) return name;
  }
  return undefined;
}

function regionZone(id: string): Zone | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: id });
  } catch {
    return undefined;
  }
  const zone: Zone = {
    id,
    offsetAt: (ms) => intlOffset(id, ms),
    // Java prints "GMT+09:00" for zones without an English abbreviation.
    shortName: (ms) => intlName(id, ms, 'short') ?? `GMT${offsetText(intlOffset(id, ms))}`,
    longName: (ms) => intlName(id, ms, 'long') ?? `GMT${offsetText(intlOffset(id, ms))}`,
  };
  return zone;
}

/** A zone by ID (Joda DateTimeZone.forID / java.time ZoneId.of syntax), or undefined if unknown. */
export function zoneById(id: string): Zone | undefined {
  if (id === 'UTC' || id === 'Z' || id === 'Etc/UTC' || id === 'UCT' || id === 'Zulu') return UTC_ZONE;
  if (id === 'GMT' || id === 'UT' || id === 'Etc/GMT') return fixedZone(0, id);
  const fixed = parseOffset(id);
  if (fixed !== undefined) return fixedZone(fixed);
  const prefixed = /^(UTC|GMT|UT)([+-].*)$/.exec(id);
  if (prefixed) {
    const off = parseOffset(prefixed[2]!);
    return off === undefined ? undefined : fixedZone(off, `${prefixed[1]}${offsetText(off)}`);
  }
  if (!/^[A-Za-z][A-Za-z0-9~/._+-]*$/.test(id)) return undefined;
  return regionZone(id);
}

/**
 * Zone names accepted by time_to_epoch's `z` pattern letter besides region IDs: the usual English
 * abbreviations, mapped to the region java.time maps them to.
 */
const ABBREVIATIONS: Readonly<Record<string, string>> = {
  UTC: 'UTC',
  GMT: 'GMT',
  UT: 'UT',
  Z: 'UTC',
  'Coordinated Universal Time': 'UTC',
  'Greenwich Mean Time': 'GMT',
  PST: 'America/Los_Angeles',
  PDT: 'America/Los_Angeles',
  PT: 'America/Los_Angeles',
  MST: 'America/Denver',
  MDT: 'America/Denver',
  MT: 'America/Denver',
  CST: 'America/Chicago',
  CDT: 'America/Chicago',
  CT: 'America/Chicago',
  EST: 'America/New_York',
  EDT: 'America/New_York',
  ET: 'America/New_York',
  AKST: 'America/Anchorage',
  AKDT: 'America/Anchorage',
  HST: 'Pacific/Honolulu',
  CET: 'Europe/Paris',
  CEST: 'Europe/Paris',
  EET: 'Europe/Bucharest',
  EEST: 'Europe/Bucharest',
  WET: 'Europe/Lisbon',
  WEST: 'Europe/Lisbon',
  BST: 'Europe/London',
  IST: 'Asia/Kolkata',
  JST: 'Asia/Tokyo',
  KST: 'Asia/Seoul',
  MSK: 'Europe/Moscow',
  AEST: 'Australia/Sydney',
  AEDT: 'Australia/Sydney',
  ACST: 'Australia/Adelaide',
  AWST: 'Australia/Perth',
  NZST: 'Pacific/Auckland',
  NZDT: 'Pacific/Auckland',
  'Pacific Standard Time': 'America/Los_Angeles',
  'Pacific Daylight Time': 'America/Los_Angeles',
  'Mountain Standard Time': 'America/Denver',
  'Mountain Daylight Time': 'America/Denver',
  'Central Standard Time': 'America/Chicago',
  'Central Daylight Time': 'America/Chicago',
  'Eastern Standard Time': 'America/New_York',
  'Eastern Daylight Time': 'America/New_York',
};

/** A zone by display name (abbreviation or long name) or ID, for parsing. */
export function zoneByName(name: string): Zone | undefined {
  const mapped = ABBREVIATIONS[name];
  return zoneById(mapped ?? name);
}

/**
 * The instant of a local date-time (given as if it were UTC, in ms) in a zone. In a gap the time is
 * moved later by the gap's length; in an overlap the earlier offset wins (java.time ZonedDateTime.ofLocal).
 */
export function localToInstant(localMs: number, zone: Zone): number {
  const day = 86_400_000;
  const before = zone.offsetAt(localMs - day);
  const after = zone.offsetAt(localMs + day);
  const valid = [before, after].filter((o) => zone.offsetAt(localMs - o) === o);
  if (valid.length === 0) return localMs - before;
  return localMs - Math.max(...valid);
}
