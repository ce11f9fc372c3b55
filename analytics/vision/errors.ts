/** Errors of the vision module (image decoding, face detection). */
export class VisionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The bytes are not a decodable JPEG/PNG/WebP image (corrupt, truncated, or another format). */
export class InvalidImageError extends VisionError {}

/** The face models or the tfjs backend could not be loaded. */
export class ModelLoadError extends VisionError {}
