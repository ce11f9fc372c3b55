/**
 * Alert rules: data that operators edit, evaluated by the frame analysis function against each frame's
 * Rekognition results.
 *
 * Where they live: one JSON document, `config/alert-rules.json` in the results bucket
 * ({@link ALERT_RULES_KEY}), read by the function on each invocation through a short cache. A missing or
 * invalid document means no alerts (and a logged error naming the field), never a failed invocation.
 *
 * ```json
 * {
 *   "site": "plant-a",
 *   "things": { "gw-dock": "plant-a", "gw-yard": "plant-b" },
 *   "rules": [
 *     { "id": "night-person-dock-3", "site": "plant-a", "camera": "dock-3", "label": "Person",
 *       "minConfidence": 90, "window": { "from": "22:00", "to": "06:00", "timeZone": "Europe/Berlin" },
 *       "severity": "critical" }
 *   ]
 * }
 * ```
 *
 * A frame's site is `things[thing]`, else the document's `site`. A rule applies to a frame when the
 * frame's thing is in the rule's `things`, or (without `things`) when the frame's site is the rule's site.
 */
import { z } from 'zod';

/** Key of the alert-rule document in the results bucket. */
export const ALERT_RULES_KEY = 'config/alert-rules.json';

export const ALERT_SEVERITIES = ['info', 'warning', 'critical'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

/** A site name: one MQTT topic level (`alerts/{site}`), so no `/`, `+`, `#`. */
const SiteSchema = z
  .string()
  .regex(/^[a-zA-Z0-9:_.-]{1,128}$/, 'must be 1-128 letters, digits or :_.- (one topic level)');

const ThingSchema = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be a thing name');

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const AlertWindowSchema = z
  .object({
    /** Start of the window, `HH:MM` (24 h), inclusive. */
    from: z.string().regex(HHMM, 'must be HH:MM (00:00-23:59)'),
    /** End of the window, `HH:MM`, exclusive. A window whose end is before its start wraps midnight. */
    to: z.string().regex(HHMM, 'must be HH:MM (00:00-23:59)'),
    /** IANA time zone the times are in (default UTC). */
    timeZone: z.string().refine(isTimeZone, 'must be an IANA time zone, e.g. Europe/Berlin').default('UTC'),
  })
  .strict();
export type AlertWindow = z.output<typeof AlertWindowSchema>;

export const AlertRuleSchema = z
  .object({
    id: z.string().regex(/^[a-zA-Z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits or _.:-'),
    description: z.string().max(1024).optional(),
    /** Rules can be switched off without deleting them. */
    enabled: z.boolean().default(true),
    /** The site the alert is raised for (published on `alerts/{site}`). */
    site: SiteSchema,
    /** Things the rule applies to; without it, every thing whose site is the rule's site. */
    things: z.array(ThingSchema).min(1).optional(),
    /** Camera id, or `*` (the default) for every camera. */
    camera: z.string().min(1).max(128).default('*'),
    /** Rekognition label name, compared case-insensitively (e.g. `Person`, `Face`). */
    label: z.string().min(1).max(256),
    /** Lowest label (or instance) confidence that counts, 0-100. */
    minConfidence: z.number().min(0).max(100),
    /** Local time window in which the rule is active; always active without one. */
    window: AlertWindowSchema.optional(),
    /** Fewest instances of the label (each at least minConfidence) that raise the alert (default 1). */
    minCount: z.number().int().min(1).max(1000).default(1),
    /**
     * Only for identification cameras: `known` requires a face that matched the collection (optionally
     * one of `externalImageIds`, with at least `minSimilarity`), `unknown` requires faces but no match.
     */
    identity: z
      .object({
        match: z.enum(['known', 'unknown']),
        externalImageIds: z.array(z.string().min(1)).min(1).optional(),
        minSimilarity: z.number().min(0).max(100).default(80),
      })
      .strict()
      .optional(),
    severity: z.enum(ALERT_SEVERITIES),
  })
  .strict();
export type AlertRule = z.output<typeof AlertRuleSchema>;
export type AlertRuleInput = z.input<typeof AlertRuleSchema>;

export const AlertRulesDocumentSchema = z
  .object({
    /** Site of every thing not named in `things`. */
    site: SiteSchema.optional(),
    /** Site by thing name. */
    things: z.record(ThingSchema, SiteSchema).default({}),
    rules: z.array(AlertRuleSchema).max(1000),
  })
  .strict()
  .superRefine((doc, ctx) => {
    const seen = new Set<string>();
    doc.rules.forEach((r, i) => {
      if (seen.has(r.id)) {
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id '${r.id}'` });
      }
      seen.add(r.id);
    });
  });
export type AlertRulesDocument = z.output<typeof AlertRulesDocumentSchema>;
export type AlertRulesDocumentInput = z.input<typeof AlertRulesDocumentSchema>;

export type ParsedAlertRules = { ok: true; document: AlertRulesDocument } | { ok: false; error: string };

/** Parses the document's text; an error names the first offending field (e.g. `rules.2.window.from`). */
export function parseAlertRulesDocument(text: string): ParsedAlertRules {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `(document): not JSON: ${(err as Error).message}` };
  }
  const parsed = AlertRulesDocumentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, error: `${issue.path.join('.') || '(document)'}: ${issue.message}` };
  }
  return { ok: true, document: parsed.data };
}

/** The site of a thing according to the document, if it has one. */
export function siteOfThing(document: AlertRulesDocument, thing: string): string | undefined {
  return document.things[thing] ?? document.site;
}

export interface DetectedLabel {
  name: string;
  /** 0-100. */
  confidence: number;
  /** Located instances (Person, Car, ...); each with its own confidence. */
  instances: readonly { confidence: number }[];
}

export interface MatchedFace {
  faceId?: string;
  externalImageId?: string;
  /** 0-100. */
  similarity: number;
}

export interface FrameFacts {
  thing: string;
  camera: string;
  /** Site of the thing (from the rules document), if known. */
  site?: string;
  /** When the frame was captured: epoch ms or an ISO 8601 date. */
  capturedAt: number | string | Date;
  labels: readonly DetectedLabel[];
  /** Number of faces detected (DetectFaces). */
  faceCount?: number;
  /** Faces matched against the collection; undefined when the frame was not searched (not an identification camera). */
  matchedFaces?: readonly MatchedFace[];
}

export interface AlertMatch {
  ruleId: string;
  site: string;
  severity: AlertSeverity;
  description?: string;
  thing: string;
  camera: string;
  /** ISO 8601. */
  capturedAt: string;
  label: string;
  /** Highest confidence among what counted. */
  confidence: number;
  /** How many instances (or 1 for a label without instances) counted. */
  count: number;
  matchedFaces?: MatchedFace[];
}

/** Minutes since local midnight of `at` in `timeZone`. */
export function minutesOfDay(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const hour = Number(parts.find((p) => p.type === 'hour')?.value ?? 0);
  const minute = Number(parts.find((p) => p.type === 'minute')?.value ?? 0);
  return (hour % 24) * 60 + minute;
}

function hhmm(value: string): number {
  const m = HHMM.exec(value);
  return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
}

/**
 * Whether `at` is inside the window: `from` inclusive, `to` exclusive; `to` before `from` wraps midnight
 * (22:00-06:00 is 22:00 to 05:59); `from` equal to `to` is the whole day.
 */
export function inWindow(window: AlertWindow, at: Date): boolean {
  const t = minutesOfDay(at, window.timeZone);
  const from = hhmm(window.from);
  const to = hhmm(window.to);
  if (from === to) return true;
  return from < to ? t >= from && t < to : t >= from || t < to;
}

function appliesTo(rule: AlertRule, frame: FrameFacts): boolean {
  if (!rule.enabled) return false;
  if (rule.things ? !rule.things.includes(frame.thing) : rule.site !== frame.site) return false;
  return rule.camera === '*' || rule.camera === frame.camera;
}

function identityMatches(rule: AlertRule, frame: FrameFacts): MatchedFace[] | undefined | false {
  const id = rule.identity;
  if (!id) return undefined;
  if (frame.matchedFaces === undefined) return false; // not searched: identity rules cannot apply
  const matches = frame.matchedFaces.filter(
    (m) =>
      m.similarity >= id.minSimilarity &&
      (id.externalImageIds === undefined ||
        (m.externalImageId !== undefined && id.externalImageIds.includes(m.externalImageId))),
  );
  if (id.match === 'known') return matches.length > 0 ? matches : false;
  // unknown: faces were seen, none matched the collection
  const faces = frame.faceCount ?? 0;
  return faces > 0 && frame.matchedFaces.every((m) => m.similarity < id.minSimilarity) ? [] : false;
}

/** The rules that fire for one analysed frame. Pure: the same rules and frame give the same matches. */
export function evaluateAlertRules(rules: readonly AlertRule[], frame: FrameFacts): AlertMatch[] {
  const at = frame.capturedAt instanceof Date ? frame.capturedAt : new Date(frame.capturedAt);
  if (Number.isNaN(at.getTime())) return [];
  const out: AlertMatch[] = [];
  for (const rule of rules) {
    if (!appliesTo(rule, frame)) continue;
    if (rule.window && !inWindow(rule.window, at)) continue;
    const wanted = rule.label.toLowerCase();
    const label = frame.labels.find((l) => l.name.toLowerCase() === wanted);
    if (!label) continue;
    const confidences =
      label.instances.length > 0 ? label.instances.map((i) => i.confidence) : [label.confidence];
    const counted = confidences.filter((c) => c >= rule.minConfidence);
    if (counted.length < rule.minCount) continue;
    const faces = identityMatches(rule, frame);
    if (faces === false) continue;
    out.push({
      ruleId: rule.id,
      site: rule.site,
      severity: rule.severity,
      ...(rule.description !== undefined ? { description: rule.description } : {}),
      thing: frame.thing,
      camera: frame.camera,
      capturedAt: at.toISOString(),
      label: label.name,
      confidence: Math.max(...counted),
      count: counted.length,
      ...(faces !== undefined ? { matchedFaces: faces } : {}),
    });
  }
  return out;
}
