/**
 * A sensor simulator for demos and tests: every `intervalMs`, one JSON record per sensor, handed to a
 * sink (the gateway's ingest). Values are deterministic functions of the sensor and the tick, so a run
 * can be checked.
 */
import type { SimulatorConfig } from './config.js';
import type { Clock } from './ports.js';

export interface SimulatedRecord {
  sensorId: string;
  ts: number;
  seq: number;
  temperature: number;
  vibration: number;
}

export function simulatedRecord(sensor: number, tick: number, ts: number): SimulatedRecord {
  return {
    sensorId: `sensor-${sensor}`,
    ts,
    seq: tick,
    temperature: Math.round((20 + 5 * Math.sin(tick / 10 + sensor)) * 100) / 100,
    vibration: Math.round(Math.abs(Math.cos(tick / 7 + sensor)) * 1000) / 1000,
  };
}

export interface SimulatorHandle {
  /** Stops generating; resolves when the last sink call has finished. */
  stop(): Promise<void>;
}

/** Starts the simulator; sink errors are passed to `onError` and do not stop it. */
export function startSimulator(
  config: SimulatorConfig,
  clock: Clock,
  sink: (record: SimulatedRecord) => Promise<unknown>,
  onError: (err: unknown) => void = () => {},
): SimulatorHandle {
  const abort = new AbortController();
  const run = (async () => {
    for (let tick = 1; !abort.signal.aborted; tick++) {
      try {
        await clock.sleep(config.intervalMs, abort.signal);
      } catch {
        return;
      }
      const ts = clock.now();
      for (let s = 1; s <= config.sensors; s++) {
        try {
          await sink(simulatedRecord(s, tick, ts));
        } catch (err) {
          onError(err);
        }
      }
    }
  })();
  return {
    async stop() {
      abort.abort();
      await run;
    },
  };
}
