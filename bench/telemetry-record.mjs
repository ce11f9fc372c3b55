// The telemetry record of the lake ingest benchmark, shared by the load worker and the baseline: a
// sensor record padded to `bytes` bytes of JSON (without the `thing` and `ingest_ts` the rule adds).
export function telemetryRecord(i, bytes) {
  const r = {
    sensorId: `sensor-${i % 16}`,
    ts: 1_795_000_000_000 + i,
    seq: i,
    temperature: Math.round((20 + 5 * Math.sin(i / 10)) * 100) / 100,
    vibration: Math.round(Math.abs(Math.cos(i / 7)) * 1000) / 1000,
    note: '',
  };
  r.note = 'x'.repeat(Math.max(0, bytes - Buffer.byteLength(JSON.stringify(r))));
  return JSON.stringify(r);
}
