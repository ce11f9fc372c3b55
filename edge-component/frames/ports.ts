/**
 * The ports of the camera frames: where frames come from (`FrameSource`, one per camera) and how faces
 * are found (`FaceDetector`). Adapters: sources/*.ts (ffmpeg, HTTP snapshots, a folder, synthetic) and
 * face-engine.ts (face-api on tfjs wasm, through analytics/vision).
 */
import type { RgbImage } from '../../analytics/vision/image.js';
import type { FrameSourceError } from './errors.js';

/** One captured image, as the camera delivered it (JPEG, or PNG/WebP from a folder). */
export interface Frame {
  camera: string;
  bytes: Uint8Array;
  /** Capture time, ms since the epoch (the gateway's clock, or the file's mtime). */
  capturedAt: number;
}

/**
 * A camera's frames as an async stream. `start()` begins capturing (it does not wait for a first frame);
 * iterating yields frames until `stop()`, after which the iteration ends. Problems that do not end the
 * stream (ffmpeg exited, a poll failed) go to `onError` listeners while the source retries with backoff.
 * A slow consumer does not make frames pile up: only the newest few are kept.
 */
export interface FrameSource extends AsyncIterable<Frame> {
  readonly camera: string;
  start(): Promise<void>;
  /** Stops capturing (kills a child process, ends polling); the iteration ends; idempotent. */
  stop(): Promise<void>;
  /** Drops the current process or connection and starts over (the camera stalled). */
  restart(reason: string): void;
  /** Calls `listener` for each problem; returns a function that removes it. */
  onError(listener: (err: FrameSourceError) => void): () => void;
}

/** A face, in pixels of the image it was found in. */
export interface FaceRegion {
  left: number;
  top: number;
  width: number;
  height: number;
  confidence: number;
}

export interface DetectOptions {
  detector: 'tiny' | 'ssd';
  minConfidence: number;
}

/** Finds faces. Rejects when it cannot tell (then the frame is dropped: fail closed). */
export interface FaceDetector {
  detect(image: RgbImage, opts: DetectOptions): Promise<FaceRegion[]>;
}
