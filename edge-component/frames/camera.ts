/**
 * One camera at run time: pulls frames from its source through its pipeline, one at a time, keeps
 * its health figures, and watches for stalls (no frame for `stallAfterIntervals` frame intervals:
 * status `stalled`, the source is restarted). Problems stay with the camera: a bad camera never stops
 * the others.
 */
import pino, { type Logger } from 'pino';
import { systemClock } from '../clock.js';
import type { Clock } from '../ports.js';
import type { FrameOutcome, FramePipeline } from './pipeline.js';
import type { FrameSource } from './ports.js';

export type CameraStatus = 'starting' | 'ok' | 'stalled' | 'error';

/** A camera's entry in the health shadow. */
export interface CameraHealth {
  status: CameraStatus;
  /** When the last frame arrived from the source (ms since the epoch), or null. */
  lastFrameAt: number | null;
  framesKept: number;
  framesSkipped: number;
  framesRejected: number;
  lastError: string | null;
  [key: string]: string | number | null;
}

export interface CameraRunnerDeps {
  clock?: Clock;
  logger?: Logger;
  /** Called after each frame (tests and the gateway's upload loop wait on it). */
  onOutcome?: (camera: string, outcome: FrameOutcome) => void;
}

export class CameraRunner {
  readonly health: CameraHealth = {
    status: 'starting',
    lastFrameAt: null,
    framesKept: 0,
    framesSkipped: 0,
    framesRejected: 0,
    lastError: null,
  };
  /** Restarts after stalls. */
  stalls = 0;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly stopCtrl = new AbortController();
  private loops: Promise<void>[] = [];
  private offError: (() => void) | undefined;
  /** Last frame, start or restart: the stall timer counts from it. */
  private lastActivity = 0;

  constructor(
    private readonly source: FrameSource,
    private readonly pipeline: FramePipeline,
    private readonly deps: CameraRunnerDeps = {},
  ) {
    this.clock = deps.clock ?? systemClock;
    this.log = (deps.logger ?? pino({ level: 'silent' })).child({
      component: 'camera',
      camera: source.camera,
    });
  }

  get id(): string {
    return this.source.camera;
  }

  private get stallMs(): number {
    const c = this.pipeline.camera;
    return c.stallAfterIntervals === 0 ? 0 : (c.stallAfterIntervals * 1000) / c.fps;
  }

  async start(): Promise<void> {
    this.offError = this.source.onError((err) => {
      this.health.status = 'error';
      this.health.lastError = err.message;
    });
    this.lastActivity = this.clock.now();
    await this.source.start();
    this.loops = [this.consume()];
    if (this.stallMs > 0) this.loops.push(this.watchdog());
  }

  private async consume(): Promise<void> {
    for await (const frame of this.source) {
      if (this.stopCtrl.signal.aborted) break;
      this.lastActivity = this.clock.now();
      this.health.lastFrameAt = this.lastActivity;
      const outcome = await this.pipeline.process(frame);
      switch (outcome.result) {
        case 'kept':
          this.health.framesKept++;
          this.health.status = 'ok';
          break;
        case 'skipped':
          this.health.framesSkipped++;
          this.health.status = 'ok';
          break;
        case 'rejected':
          this.health.framesRejected++;
          this.health.status = 'error';
          this.health.lastError = `frame rejected (${outcome.reason}): ${outcome.error.message}`;
          break;
      }
      this.deps.onOutcome?.(this.id, outcome);
    }
  }

  private async watchdog(): Promise<void> {
    const signal = this.stopCtrl.signal;
    while (!signal.aborted) {
      const due = this.lastActivity + this.stallMs - this.clock.now();
      if (due > 0) {
        try {
          await this.clock.sleep(due, signal);
        } catch {
          return;
        }
        continue;
      }
      this.stalls++;
      const silentMs = this.clock.now() - this.lastActivity;
      this.health.status = 'stalled';
      this.health.lastError = `no frame for ${Math.round(silentMs)} ms; source restarted`;
      this.log.warn({ silentMs }, 'camera stalled; restarting its source');
      this.lastActivity = this.clock.now();
      this.source.restart('stalled');
    }
  }

  async stop(): Promise<void> {
    this.stopCtrl.abort();
    await this.source.stop();
    this.offError?.();
    await Promise.allSettled(this.loops);
  }
}
