/**
 * The change detector: a frame is kept only if it differs enough from the last kept one, to save
 * bandwidth on a still scene. The measure is the mean absolute difference of small grayscale
 * thumbnails (64 px on the longer side; the pipeline gets them from sharp with JPEG shrink-on-load,
 * `grayThumbnail` computes one from packed RGB), as a ratio of full scale (0..1): robust to sensor
 * noise, cheap, and blind to changes smaller than a thumbnail cell.
 */

/** Thumbnails are this many pixels on their longer side. */
export const THUMBNAIL_SIDE = 64;

export interface Thumbnail {
  width: number;
  height: number;
  /** Grayscale 0..255, row-major. */
  data: Float32Array;
}

/** The grayscale thumbnail of packed RGB pixels: `cols` wide, the height keeping the aspect ratio. */
export function grayThumbnail(rgb: Uint8Array, width: number, height: number, cols = 64): Thumbnail {
  const tw = Math.max(1, Math.min(cols, width));
  const th = Math.max(1, Math.min(height, Math.round((tw * height) / width)));
  const sums = new Float32Array(tw * th);
  const counts = new Uint32Array(tw * th);
  const step = width * height > 4096 ? 2 : 1;
  for (let y = 0; y < height; y += step) {
    const ty = Math.min(th - 1, Math.floor((y * th) / height));
    const row = y * width * 3;
    const cellRow = ty * tw;
    for (let x = 0; x < width; x += step) {
      const i = row + x * 3;
      // ITU-R BT.601 luma.
      const g = 0.299 * rgb[i]! + 0.587 * rgb[i + 1]! + 0.114 * rgb[i + 2]!;
      const c = cellRow + Math.min(tw - 1, Math.floor((x * tw) / width));
      sums[c]! += g;
      counts[c]!++;
    }
  }
  for (let c = 0; c < sums.length; c++) sums[c] = counts[c]! > 0 ? sums[c]! / counts[c]! : 0;
  return { width: tw, height: th, data: sums };
}

/** Mean absolute difference of two thumbnails, 0..1; 1 if their sizes differ. */
export function thumbnailDifference(a: Thumbnail, b: Thumbnail): number {
  if (a.width !== b.width || a.height !== b.height) return 1;
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i]! - b.data[i]!);
  return sum / a.data.length / 255;
}

export class ChangeDetector {
  private last: Thumbnail | undefined;

  /** `threshold` 0 keeps every frame. */
  constructor(private readonly threshold: number) {}

  /** Whether the frame differs enough from the last kept one (the first frame always does). */
  check(thumb: Thumbnail): { changed: boolean; difference: number } {
    if (!this.last) return { changed: true, difference: 1 };
    const difference = thumbnailDifference(thumb, this.last);
    return { changed: this.threshold === 0 || difference >= this.threshold, difference };
  }

  /** Records the thumbnail of a kept frame. */
  keep(thumb: Thumbnail): void {
    this.last = thumb;
  }
}
