import {
  type AlertRule,
  type AlertRuleInput,
  AlertRuleSchema,
  evaluateAlertRules,
  type FrameFacts,
  inWindow,
  parseAlertRulesDocument,
  siteOfThing,
} from '../../cloud/rules/alerts.js';

const rule = (input: Partial<AlertRuleInput> = {}): AlertRule =>
  AlertRuleSchema.parse({
    id: 'r1',
    site: 'plant-a',
    label: 'Person',
    minConfidence: 90,
    severity: 'critical',
    ...input,
  });

/** The example: label Person over 90 in camera dock-3 between 22:00 and 06:00. */
const nightDock = rule({
  id: 'night-person-dock-3',
  camera: 'dock-3',
  window: { from: '22:00', to: '06:00' },
});

const frame = (over: Partial<FrameFacts> = {}): FrameFacts => ({
  thing: 'gw-1',
  camera: 'dock-3',
  site: 'plant-a',
  capturedAt: '2025-03-01T23:30:00Z',
  labels: [{ name: 'Person', confidence: 97.5, instances: [{ confidence: 97.5 }] }],
  ...over,
});

describe('evaluateAlertRules', () => {
  test("the issue's example fires for a confident Person at night on dock-3", () => {
    const matches = evaluateAlertRules([nightDock], frame());
    expect(matches).toEqual([
      {
        ruleId: 'night-person-dock-3',
        site: 'plant-a',
        severity: 'critical',
        thing: 'gw-1',
        camera: 'dock-3',
        capturedAt: '2025-03-01T23:30:00.000Z',
        label: 'Person',
        confidence: 97.5,
        count: 1,
      },
    ]);
  });

  test('does not fire during the day, on another camera, below the confidence, or for another label', () => {
    expect(evaluateAlertRules([nightDock], frame({ capturedAt: '2025-03-01T12:00:00Z' }))).toEqual([]);
    expect(evaluateAlertRules([nightDock], frame({ camera: 'dock-4' }))).toEqual([]);
    expect(
      evaluateAlertRules(
        [nightDock],
        frame({ labels: [{ name: 'Person', confidence: 85, instances: [{ confidence: 85 }] }] }),
      ),
    ).toEqual([]);
    expect(
      evaluateAlertRules([nightDock], frame({ labels: [{ name: 'Car', confidence: 99, instances: [] }] })),
    ).toEqual([]);
  });

  test('the window wraps midnight: from inclusive, to exclusive', () => {
    const at = (t: string) => evaluateAlertRules([nightDock], frame({ capturedAt: `2025-03-02T${t}Z` }));
    expect(at('21:59:59')).toHaveLength(0);
    expect(at('22:00:00')).toHaveLength(1);
    expect(at('00:00:00')).toHaveLength(1);
    expect(at('05:59:59')).toHaveLength(1);
    expect(at('06:00:00')).toHaveLength(0);
  });

  test('windows are in the rule time zone', () => {
    const berlin = rule({ window: { from: '22:00', to: '06:00', timeZone: 'Europe/Berlin' } });
    // 21:30 UTC is 22:30 in Berlin in winter (UTC+1); 04:30 UTC in summer is 06:30 (UTC+2).
    expect(evaluateAlertRules([berlin], frame({ capturedAt: '2025-01-15T21:30:00Z' }))).toHaveLength(1);
    expect(evaluateAlertRules([berlin], frame({ capturedAt: '2025-07-15T04:30:00Z' }))).toHaveLength(0);
    expect(evaluateAlertRules([berlin], frame({ capturedAt: '2025-07-15T03:30:00Z' }))).toHaveLength(1);
  });

  test('a window that does not wrap, and one from equal to to (all day)', () => {
    const day = { from: '08:00', to: '17:30' };
    expect(inWindow({ ...day, timeZone: 'UTC' }, new Date('2025-01-01T08:00:00Z'))).toBe(true);
    expect(inWindow({ ...day, timeZone: 'UTC' }, new Date('2025-01-01T17:29:00Z'))).toBe(true);
    expect(inWindow({ ...day, timeZone: 'UTC' }, new Date('2025-01-01T17:30:00Z'))).toBe(false);
    expect(inWindow({ from: '07:00', to: '07:00', timeZone: 'UTC' }, new Date('2025-01-01T03:00:00Z'))).toBe(
      true,
    );
  });

  test('minCount counts instances at or above minConfidence; labels without instances count once', () => {
    const crowd = rule({ minConfidence: 80, minCount: 3 });
    const people = (...c: number[]) =>
      frame({
        labels: [{ name: 'Person', confidence: 99, instances: c.map((confidence) => ({ confidence })) }],
      });
    expect(evaluateAlertRules([crowd], people(99, 95))).toEqual([]);
    expect(evaluateAlertRules([crowd], people(99, 95, 70, 81))).toMatchObject([{ count: 3, confidence: 99 }]);
    const scene = rule({ label: 'fire', minConfidence: 60 });
    expect(
      evaluateAlertRules([scene], frame({ labels: [{ name: 'Fire', confidence: 75, instances: [] }] })),
    ).toMatchObject([{ label: 'Fire', count: 1, confidence: 75 }]);
  });

  test('camera * and rules scoped by thing or by site', () => {
    const anyCamera = rule({ id: 'any' });
    expect(evaluateAlertRules([anyCamera], frame({ camera: 'gate' }))).toHaveLength(1);
    expect(evaluateAlertRules([anyCamera], frame({ site: 'plant-b' }))).toHaveLength(0);
    expect(evaluateAlertRules([anyCamera], frame({ site: undefined }))).toHaveLength(0);
    const byThing = rule({ id: 'thing', things: ['gw-1'] });
    expect(evaluateAlertRules([byThing], frame({ site: undefined }))).toMatchObject([{ site: 'plant-a' }]);
    expect(evaluateAlertRules([byThing], frame({ thing: 'gw-2' }))).toHaveLength(0);
    expect(evaluateAlertRules([rule({ enabled: false })], frame())).toHaveLength(0);
  });

  test('identity rules need a searched frame', () => {
    const known = rule({ id: 'known', identity: { match: 'known', externalImageIds: ['alice'] } });
    const unknown = rule({ id: 'unknown', identity: { match: 'unknown' } });
    const searched = (matchedFaces: FrameFacts['matchedFaces']) => frame({ faceCount: 1, matchedFaces });
    expect(evaluateAlertRules([known, unknown], frame())).toEqual([]);
    expect(
      evaluateAlertRules([known, unknown], searched([{ externalImageId: 'alice', similarity: 99 }])),
    ).toMatchObject([{ ruleId: 'known', matchedFaces: [{ externalImageId: 'alice' }] }]);
    expect(
      evaluateAlertRules([known, unknown], searched([{ externalImageId: 'bob', similarity: 99 }])),
    ).toEqual([]);
    expect(evaluateAlertRules([known, unknown], searched([]))).toMatchObject([{ ruleId: 'unknown' }]);
  });

  test('an unreadable capture time fires nothing', () => {
    expect(evaluateAlertRules([rule()], frame({ capturedAt: 'yesterday' }))).toEqual([]);
  });
});

describe('parseAlertRulesDocument', () => {
  const doc = {
    site: 'plant-a',
    things: { 'gw-yard': 'plant-b' },
    rules: [{ id: 'a', site: 'plant-a', label: 'Person', minConfidence: 90, severity: 'warning' }],
  };

  test('parses a document and applies defaults', () => {
    const parsed = parseAlertRulesDocument(JSON.stringify(doc));
    if (!parsed.ok) throw new Error(parsed.error);
    expect(parsed.document.rules[0]).toMatchObject({ camera: '*', minCount: 1, enabled: true });
    expect(siteOfThing(parsed.document, 'gw-yard')).toBe('plant-b');
    expect(siteOfThing(parsed.document, 'gw-other')).toBe('plant-a');
  });

  test.each([
    ['not json', '{', '(document)'],
    [
      'a window time',
      { ...doc, rules: [{ ...doc.rules[0], window: { from: '24:00', to: '06:00' } }] },
      'rules.0.window.from',
    ],
    [
      'a time zone',
      {
        ...doc,
        rules: [{ ...doc.rules[0], window: { from: '22:00', to: '06:00', timeZone: 'Mars/Olympus' } }],
      },
      'rules.0.window.timeZone',
    ],
    ['a confidence', { ...doc, rules: [{ ...doc.rules[0], minConfidence: 101 }] }, 'rules.0.minConfidence'],
    ['a site with a topic wildcard', { ...doc, site: 'plant/#' }, 'site'],
    ['a duplicate id', { ...doc, rules: [doc.rules[0], doc.rules[0]] }, 'rules.1.id'],
    ['an unknown field', { ...doc, rules: [{ ...doc.rules[0], lable: 'x' }] }, 'rules.0'],
    ['missing rules', { site: 'plant-a' }, 'rules'],
  ])('names the field when %s is invalid', (_what, input, field) => {
    const parsed = parseAlertRulesDocument(typeof input === 'string' ? input : JSON.stringify(input));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.startsWith(`${field}:`)).toBe(true);
  });
});
