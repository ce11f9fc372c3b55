/**
 * Image decoding for the vision module: any JPEG/PNG/WebP becomes packed 8-bit RGB, auto-oriented by its
 * EXIF orientation (as a camera shows it), optionally downsized.
 */
import sharp from 'sharp';
import { InvalidImageError } from './errors.js';

export { InvalidImageError } from './errors.js';

/** Packed RGB pixels, row-major, `width * height * 3` bytes. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
}

const SUPPORTED_FORMATS = new Set(['jpeg', 'png', 'webp']);

/**
 * Decodes JPEG/PNG/WebP with sharp, auto-orients (EXIF), optionally downsizes so that the longer side
 * <= maxSide; throws InvalidImageError for corrupt/unsupported bytes.
 */
export async function decodeImage(bytes: Uint8Array, opts: { maxSide?: number } = {}): Promise<RgbImage> {
  if (bytes.byteLength === 0) throw new InvalidImageError('image is empty');
  const maxSide = opts.maxSide;
  if (maxSide !== undefined && (!Number.isInteger(maxSide) || maxSide < 1)) {
    throw new RangeError(`maxSide must be a positive integer, got ${maxSide}`);
  }
  try {
    const input = sharp(bytes, { failOn: 'error' });
    const meta = await input.metadata();
    if (!meta.format || !SUPPORTED_FORMATS.has(meta.format)) {
      throw new InvalidImageError(`unsupported image format: ${meta.format ?? 'unknown'}`);
    }
    let pipeline = input.rotate().removeAlpha().toColourspace('srgb');
    if (maxSide !== undefined) {
      pipeline = pipeline.resize({
        width: maxSide,
        height: maxSide,
        fit: 'inside',
        withoutEnlargement: true,
      });
    }
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new InvalidImageError(`unexpected channel count ${info.channels}`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
      channels: 3,
    };
  } catch (err) {
    if (err instanceof InvalidImageError) throw err;
    throw new InvalidImageError(`cannot decode image: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
