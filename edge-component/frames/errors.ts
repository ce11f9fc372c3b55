/** Errors of the camera frames: sources, decoding, face detection and masking. */
import { EdgeError } from '../errors.js';

/** Base class of every frames error. */
export class FrameError extends EdgeError {}

/**
 * A frame source failed: ffmpeg missing or exited, a snapshot poll failed, a folder unreadable. The
 * source keeps retrying (with backoff); the error goes to the camera's health.
 */
export class FrameSourceError extends FrameError {
  constructor(
    message: string,
    readonly camera: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The bytes of a frame are not a decodable image (corrupt, truncated, another format). */
export class FrameDecodeError extends FrameError {}

/** Face detection failed: the frame is not uploaded (fail closed). */
export class FaceDetectionError extends FrameError {}

/** Masking a frame failed: the frame is not uploaded (fail closed). */
export class MaskingError extends FrameError {}
