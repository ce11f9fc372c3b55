import {
  createDetector,
  type Detection,
  Detector,
  DetectorBank,
  evaluate,
  generateSeries,
  InvalidDetectorOptionsError,
  InvalidDetectorStateError,
  type SyntheticSeries,
} from '../../analytics/anomaly/index.js';

function detect(series: SyntheticSeries, detector = createDetector()): Detection[] {
  const out: Detection[] = [];
  series.values.forEach((v, i) => {
    const r = detector.update(v, series.ts[i]!);
    if (r.anomaly) out.push({ index: i, kind: r.kind });
  });
  return out;
}

describe('anomaly detector on synthetic series', () => {
  // Measured with the default options (spikeThreshold 5.5, shiftThreshold 6) over these seeds, 20 000
  // readings each (20 spikes of 7-12 sigma, 10 level shifts of 3-8 sigma, daily and seasonal cycles):
  // precision 1.0 on every seed, recall 0.97-1.0 (0.99 overall); the bound asserted is 0.8.
  const seeds = [1, 2, 3, 4, 5, 6];

  it.each(seeds)('flags injected spikes and level shifts (seed %i)', (seed) => {
    const series = generateSeries({ seed, length: 20_000 });
    expect(series.anomalies).toHaveLength(30);
    const e = evaluate(series.anomalies, detect(series), { spikeTolerance: 0, shiftTolerance: 20 });
    expect(e.precision).toBeGreaterThanOrEqual(0.8);
    expect(e.recall).toBeGreaterThanOrEqual(0.8);
    expect(e.byKind.spike.recall).toBeGreaterThanOrEqual(0.8);
    expect(e.byKind['level-shift'].recall).toBeGreaterThanOrEqual(0.8);
  });

  // Measured: 2 alarms in 1.2 million normal readings (12 seeds x 100 000); bound asserted: at most 1
  // alarm per 100 000 readings of each seed.
  it.each(seeds)('stays quiet on 100 000 normal readings (seed %i)', (seed) => {
    const series = generateSeries({ seed: seed + 100, length: 100_000, spikes: 0, levelShifts: 0 });
    expect(detect(series).length).toBeLessThanOrEqual(1);
  });

  it('labels a lone spike as a spike and a lasting shift as a level shift, once', () => {
    const series = generateSeries({ seed: 9, length: 3000, spikes: 0, levelShifts: 0 });
    const values = series.values.map((v, i) => (i === 1000 ? v + 10 : i >= 2000 ? v + 4 : v));
    const d = createDetector();
    const hits: { i: number; kind?: string }[] = [];
    values.forEach((v, i) => {
      const r = d.update(v, series.ts[i]!);
      if (r.anomaly) hits.push({ i, kind: r.kind });
    });
    expect(hits[0]).toEqual({ i: 1000, kind: 'spike' });
    expect(hits).toHaveLength(2);
    expect(hits[1]!.kind).toBe('level-shift');
    expect(hits[1]!.i).toBeGreaterThanOrEqual(2000);
    expect(hits[1]!.i).toBeLessThanOrEqual(2010);
  });

  it('raises no alarm during warm-up', () => {
    const d = createDetector({ warmup: 50 });
    for (let i = 0; i < 50; i++) {
      const r = d.update(i % 7 === 0 ? 1000 : i % 2, i);
      expect(r.anomaly).toBe(false);
    }
    expect(d.update(1e6, 50).anomaly).toBe(true);
  });

  it('is deterministic and the synthetic series depend only on the seed', () => {
    const a = generateSeries({ seed: 42, length: 5000 });
    const b = generateSeries({ seed: 42, length: 5000 });
    expect(b).toEqual(a);
    expect(generateSeries({ seed: 43, length: 5000 }).values).not.toEqual(a.values);
    expect(detect(b)).toEqual(detect(a));
  });
});

describe('detector state', () => {
  it('restored mid-series through JSON, gives identical results afterwards', () => {
    const series = generateSeries({ seed: 7, length: 10_000 });
    const whole = createDetector();
    const first = createDetector();
    const half = 4321;
    const expected = series.values.map((v, i) => whole.update(v, series.ts[i]!));
    for (let i = 0; i < half; i++) first.update(series.values[i]!, series.ts[i]!);
    const restored = Detector.fromJSON(JSON.parse(JSON.stringify(first)));
    for (let i = half; i < series.values.length; i++) {
      expect(restored.update(series.values[i]!, series.ts[i]!)).toEqual(expected[i]);
    }
    expect(restored.toJSON()).toEqual(whole.toJSON());
  });

  it('round-trips during the start-up window', () => {
    const d = createDetector();
    d.update(1, 1);
    d.update(2, 2);
    const r = Detector.fromJSON(JSON.parse(JSON.stringify(d.toJSON())));
    expect(r.toJSON()).toEqual(d.toJSON());
    expect(r.readings).toBe(2);
  });

  it('rejects a bad state, naming the field', () => {
    const state = { ...createDetector().toJSON(), scale: 'x' };
    expect(() => Detector.fromJSON(state)).toThrow(InvalidDetectorStateError);
    expect(() => Detector.fromJSON(state)).toThrow(/scale/);
    expect(() => Detector.fromJSON({ ...createDetector().toJSON(), v: 2 })).toThrow(/v:/);
    expect(() => Detector.fromJSON(null)).toThrow(InvalidDetectorStateError);
  });
});

describe('bad input', () => {
  it('ignores non-finite and out-of-order readings with a reason, leaving the state unchanged', () => {
    const d = createDetector();
    for (let i = 0; i < 200; i++) d.update(i % 3, i);
    const before = d.toJSON();
    expect(d.update(Number.NaN, 300)).toEqual({
      score: 0,
      anomaly: false,
      ignored: expect.stringMatching(/value/),
    });
    expect(d.update(Number.POSITIVE_INFINITY, 300).ignored).toMatch(/not finite/);
    expect(d.update(1, Number.NaN).ignored).toMatch(/ts is not finite/);
    expect(d.update(1, 100).ignored).toMatch(/earlier/);
    expect(d.toJSON()).toEqual(before);
    expect(d.update(1, 199).ignored).toBeUndefined();
  });

  it('rejects invalid options, naming the field', () => {
    expect(() => createDetector({ spikeThreshold: -1 })).toThrow(InvalidDetectorOptionsError);
    expect(() => createDetector({ spikeThreshold: -1 })).toThrow(/spikeThreshold/);
    expect(() => createDetector({ warmup: 1.5 })).toThrow(/warmup/);
    expect(() => createDetector({ levelAlpha: 0 })).toThrow(/levelAlpha/);
    expect(() => createDetector({ shingle: 4 } as never)).toThrow(/shingle/);
    expect(() => new DetectorBank({ maxSeries: 0 })).toThrow(/maxSeries/);
  });

  it('handles a constant series without dividing by zero', () => {
    const d = createDetector({ warmup: 20 });
    for (let i = 0; i < 100; i++) expect(d.update(5, i).anomaly).toBe(false);
    const r = d.update(6, 100);
    expect(Number.isFinite(r.score)).toBe(true);
    expect(r.anomaly).toBe(true);
  });
});

describe('DetectorBank', () => {
  it('keeps one detector per (device, metric) and evicts the least recently observed', () => {
    const bank = new DetectorBank({ maxSeries: 3 });
    bank.observe('d1', 'temperature', 1, 1);
    bank.observe('d1', 'vibration', 1, 1);
    bank.observe('d2', 'temperature', 1, 1);
    bank.observe('d1', 'temperature', 1, 2); // d1/temperature is now the most recent
    const r = bank.observe('d3', 'temperature', 1, 1);
    expect(r.evicted).toEqual({ deviceId: 'd1', metric: 'vibration' });
    expect(bank.size).toBe(3);
    expect(bank.evictions).toBe(1);
    expect(bank.has('d1', 'vibration')).toBe(false);
    expect(bank.has('d1', 'temperature')).toBe(true);
    for (let i = 0; i < 1000; i++) bank.observe(`dev-${i}`, 'temperature', i, i);
    expect(bank.size).toBe(3);
    expect(bank.evictions).toBe(1001);
  });

  it('does not create or evict a series for bad input', () => {
    const bank = new DetectorBank({ maxSeries: 1 });
    bank.observe('d1', 'temperature', 1, 1);
    expect(bank.observe('d2', 'temperature', Number.NaN, 1).ignored).toMatch(/not finite/);
    expect(bank.observe('', 'temperature', 1, 1).ignored).toMatch(/deviceId/);
    expect(bank.observe('d2', '', 1, 1).ignored).toMatch(/metric/);
    expect(bank.has('d1', 'temperature')).toBe(true);
    expect(bank.evictions).toBe(0);
  });

  it('round-trips through JSON with the same results and recency order', () => {
    const series = generateSeries({ seed: 3, length: 4000 });
    const a = new DetectorBank({ maxSeries: 2, detector: { warmup: 50 } });
    const half = 2000;
    const feed = (bank: DetectorBank, i: number) => [
      bank.observe('d1', 'temperature', series.values[i]!, series.ts[i]!),
      bank.observe('d2', 'temperature', series.values[i]! * 2, series.ts[i]!),
    ];
    for (let i = 0; i < half; i++) feed(a, i);
    const b = DetectorBank.fromJSON(JSON.parse(JSON.stringify(a)));
    for (let i = half; i < series.values.length; i++) expect(feed(b, i)).toEqual(feed(a, i));
    expect(b.observe('d3', 'vibration', 1, 1).evicted).toEqual({ deviceId: 'd1', metric: 'temperature' });
    expect(() => DetectorBank.fromJSON({ ...a.toJSON(), maxSeries: -1 })).toThrow(InvalidDetectorStateError);
  });
});

describe('evaluate', () => {
  it('counts one detection per anomaly within its window, ignores duplicates, counts the rest as false', () => {
    const anomalies = [
      { index: 10, kind: 'spike' as const, magnitude: 8 },
      { index: 100, kind: 'level-shift' as const, magnitude: 4 },
    ];
    const e = evaluate(
      anomalies,
      [
        { index: 10, kind: 'spike' },
        { index: 100, kind: 'spike' },
        { index: 104, kind: 'level-shift' },
        { index: 130, kind: 'level-shift' },
      ],
      { shiftTolerance: 20 },
    );
    expect(e).toMatchObject({ truePositives: 2, falsePositives: 1, falseNegatives: 0, duplicates: 1 });
    expect(e.precision).toBeCloseTo(2 / 3);
    expect(e.recall).toBe(1);
    expect(e.byKind['level-shift'].precision).toBe(0.5);
    expect(evaluate(anomalies, [{ index: 11 }]).recall).toBe(0);
  });
});
