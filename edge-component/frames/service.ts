/**
 * All cameras of a gateway: builds each camera's source (from `cameras` in the configuration, unless
 * given) and pipeline, starts and stops them together, and reports their health. The face detector
 * (face-api on tfjs wasm) is loaded only if a camera needs it.
 */
import pino, { type Logger } from 'pino';
import sharp from 'sharp';
import { systemClock } from '../clock.js';
import type { CameraConfig } from '../config.js';
import type { Clock } from '../ports.js';
import { type CameraHealth, CameraRunner } from './camera.js';
import { FrameError } from './errors.js';
import { FaceEngineDetector } from './face-engine.js';
import { type FrameOutcome, FramePipeline, type FrameSink } from './pipeline.js';
import type { FaceDetector, FrameSource } from './ports.js';
import { createFrameSource } from './sources/index.js';

export interface FrameServiceDeps {
  thing: string;
  sink: FrameSink;
  /** Sources by camera id (tests); the others are built from the configuration. */
  sources?: FrameSource[];
  /** Default: face-api on tfjs wasm, loaded when a camera needs it. */
  detector?: FaceDetector;
  clock?: Clock;
  logger?: Logger;
  onOutcome?: (camera: string, outcome: FrameOutcome) => void;
}

export class FrameService {
  private constructor(readonly cameras: CameraRunner[]) {}

  static create(configs: CameraConfig[], deps: FrameServiceDeps): FrameService {
    const logger = deps.logger ?? pino({ level: 'silent' });
    // Frames never repeat: sharp's operation cache would only hold memory.
    sharp.cache(false);
    const clock = deps.clock ?? systemClock;
    const given = new Map((deps.sources ?? []).map((s) => [s.camera, s]));
    for (const id of given.keys()) {
      if (!configs.some((c) => c.id === id)) {
        throw new FrameError(`frame source for camera '${id}' has no entry in the cameras configuration`);
      }
    }
    const needsDetector = configs.some((c) => c.identification || c.masking.faces);
    const detector = deps.detector ?? (needsDetector ? new FaceEngineDetector() : undefined);
    const runners = configs.map((c) => {
      const source = given.get(c.id) ?? createFrameSource(c, { logger, clock });
      const pipeline = new FramePipeline(c, {
        thing: deps.thing,
        sink: deps.sink,
        ...(detector ? { detector } : {}),
        logger,
      });
      return new CameraRunner(source, pipeline, {
        clock,
        logger,
        ...(deps.onOutcome ? { onOutcome: deps.onOutcome } : {}),
      });
    });
    return new FrameService(runners);
  }

  async start(): Promise<void> {
    await Promise.all(this.cameras.map((c) => c.start()));
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.cameras.map((c) => c.stop()));
  }

  /** Each camera's health, by id. */
  health(): Record<string, CameraHealth> {
    return Object.fromEntries(this.cameras.map((c) => [c.id, { ...c.health }]));
  }
}
