/**
 * Privacy masking on packed RGB pixels, in place: each face box (padded) and each privacy zone
 * (rectangle or polygon, in ratios of the frame) is blurred or pixelated.
 *
 * - `blur`: the means of a grid of about 6 cells across the region's shorter side, interpolated
 *   bilinearly: nothing finer than a sixth of the region survives, whatever its size, at a cost that
 *   does not grow with the blur radius.
 * - `pixelate`: block means, with blocks of an eighth of the region's shorter side (at least 8 px).
 * Polygons are filled by scanline (pixel centres inside the polygon, even-odd rule).
 */
import type { PrivacyZone } from '../config.js';
import { MaskingError } from './errors.js';
import type { FaceRegion } from './ports.js';

/** Packed RGB pixels that masking changes in place. */
export interface RawRgb {
  data: Buffer;
  width: number;
  height: number;
}

export interface MaskRegion {
  kind: 'face' | 'zone';
  /** Bounding box in pixels (integers, inside the image, non-empty). */
  left: number;
  top: number;
  width: number;
  height: number;
  /** For polygon zones: the vertices in pixels. */
  polygon?: { x: number; y: number }[];
}

export type MaskStyle = 'blur' | 'pixelate';

function clipRect(
  left: number,
  top: number,
  right: number,
  bottom: number,
  width: number,
  height: number,
): { left: number; top: number; width: number; height: number } | undefined {
  const l = Math.max(0, Math.floor(left));
  const t = Math.max(0, Math.floor(top));
  const r = Math.min(width, Math.ceil(right));
  const b = Math.min(height, Math.ceil(bottom));
  if (r <= l || b <= t) return undefined;
  return { left: l, top: t, width: r - l, height: b - t };
}

/** Face boxes grown by `padding` of their size on every side, clipped to the image. */
export function faceRegions(
  faces: FaceRegion[],
  width: number,
  height: number,
  padding: number,
): MaskRegion[] {
  const out: MaskRegion[] = [];
  for (const f of faces) {
    const px = f.width * padding;
    const py = f.height * padding;
    const r = clipRect(f.left - px, f.top - py, f.left + f.width + px, f.top + f.height + py, width, height);
    if (r) out.push({ kind: 'face', ...r });
  }
  return out;
}

/** The configured privacy zones in pixels of a `width` x `height` frame. */
export function zoneRegions(zones: PrivacyZone[], width: number, height: number): MaskRegion[] {
  const out: MaskRegion[] = [];
  for (const z of zones) {
    if (z.rect) {
      const { left, top, width: w, height: h } = z.rect;
      const r = clipRect(left * width, top * height, (left + w) * width, (top + h) * height, width, height);
      if (r) out.push({ kind: 'zone', ...r });
    } else if (z.polygon) {
      const pts = z.polygon.map((p) => ({ x: p.x * width, y: p.y * height }));
      const xs = pts.map((p) => p.x);
      const ys = pts.map((p) => p.y);
      const r = clipRect(Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys), width, height);
      if (r) out.push({ kind: 'zone', ...r, polygon: pts });
    }
  }
  return out;
}

/** For row `y` of the image: the [from, to) pixel spans inside the polygon (pixel centres). */
function polygonSpans(
  poly: { x: number; y: number }[],
  y: number,
  left: number,
  right: number,
): [number, number][] {
  const yc = y + 0.5;
  const xs: number[] = [];
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const a = poly[i]!;
    const b = poly[j]!;
    if ((a.y <= yc && yc < b.y) || (b.y <= yc && yc < a.y))
      xs.push(a.x + ((yc - a.y) * (b.x - a.x)) / (b.y - a.y));
  }
  xs.sort((p, q) => p - q);
  const spans: [number, number][] = [];
  for (let k = 0; k + 1 < xs.length; k += 2) {
    const from = Math.max(left, Math.ceil(xs[k]! - 0.5));
    const to = Math.min(right, Math.floor(xs[k + 1]! - 0.5) + 1);
    if (to > from) spans.push([from, to]);
  }
  return spans;
}

/** Copies `src` (the region's pixels, packed) into the image: the whole box, or the polygon's spans. */
function writeBack(img: RawRgb, r: MaskRegion, src: Buffer): void {
  const stride = img.width * 3;
  const rowBytes = r.width * 3;
  for (let y = 0; y < r.height; y++) {
    const iy = r.top + y;
    const srcRow = y * rowBytes;
    if (!r.polygon) {
      src.copy(img.data, iy * stride + r.left * 3, srcRow, srcRow + rowBytes);
      continue;
    }
    for (const [from, to] of polygonSpans(r.polygon, iy, r.left, r.left + r.width)) {
      const s = srcRow + (from - r.left) * 3;
      src.copy(img.data, iy * stride + from * 3, s, s + (to - from) * 3);
    }
  }
}

function extract(img: RawRgb, r: MaskRegion): Buffer {
  const out = Buffer.allocUnsafe(r.width * r.height * 3);
  const stride = img.width * 3;
  for (let y = 0; y < r.height; y++) {
    const s = (r.top + y) * stride + r.left * 3;
    img.data.copy(out, y * r.width * 3, s, s + r.width * 3);
  }
  return out;
}

function pixelate(src: Buffer, w: number, h: number): Buffer {
  const block = Math.max(8, Math.ceil(Math.min(w, h) / 8));
  const out = Buffer.allocUnsafe(src.length);
  for (let by = 0; by < h; by += block) {
    for (let bx = 0; bx < w; bx += block) {
      const ye = Math.min(h, by + block);
      const xe = Math.min(w, bx + block);
      let r = 0;
      let g = 0;
      let b = 0;
      for (let y = by; y < ye; y++) {
        for (let x = bx; x < xe; x++) {
          const i = (y * w + x) * 3;
          r += src[i]!;
          g += src[i + 1]!;
          b += src[i + 2]!;
        }
      }
      const n = (ye - by) * (xe - bx);
      r = Math.round(r / n);
      g = Math.round(g / n);
      b = Math.round(b / n);
      for (let y = by; y < ye; y++) {
        for (let x = bx; x < xe; x++) {
          const i = (y * w + x) * 3;
          out[i] = r;
          out[i + 1] = g;
          out[i + 2] = b;
        }
      }
    }
  }
  return out;
}

/** Means of a `gw` x `gh` grid of cells over the region (each channel). */
function cellMeans(src: Buffer, w: number, h: number, gw: number, gh: number): Float32Array {
  const sums = new Float32Array(gw * gh * 3);
  const counts = new Uint32Array(gw * gh);
  for (let y = 0; y < h; y++) {
    const cy = Math.min(gh - 1, Math.floor((y * gh) / h));
    for (let x = 0; x < w; x++) {
      const c = cy * gw + Math.min(gw - 1, Math.floor((x * gw) / w));
      const i = (y * w + x) * 3;
      sums[c * 3]! += src[i]!;
      sums[c * 3 + 1]! += src[i + 1]!;
      sums[c * 3 + 2]! += src[i + 2]!;
      counts[c]!++;
    }
  }
  for (let c = 0; c < counts.length; c++) {
    const n = counts[c]! || 1;
    sums[c * 3]! /= n;
    sums[c * 3 + 1]! /= n;
    sums[c * 3 + 2]! /= n;
  }
  return sums;
}

/**
 * A strong blur: the means of a grid of about 6 cells across the region's shorter side, interpolated
 * bilinearly between the cell centres. Nothing finer than a cell survives, at a cost that does not
 * grow with the blur radius.
 */
function blur(src: Buffer, w: number, h: number): Buffer {
  const cell = Math.max(2, Math.min(w, h) / 6);
  const gw = Math.max(1, Math.round(w / cell));
  const gh = Math.max(1, Math.round(h / cell));
  const means = cellMeans(src, w, h, gw, gh);
  const out = Buffer.allocUnsafe(src.length);
  for (let y = 0; y < h; y++) {
    const v = Math.min(gh - 1, Math.max(0, ((y + 0.5) * gh) / h - 0.5));
    const y0 = Math.floor(v);
    const y1 = Math.min(gh - 1, y0 + 1);
    const fy = v - y0;
    for (let x = 0; x < w; x++) {
      const u = Math.min(gw - 1, Math.max(0, ((x + 0.5) * gw) / w - 0.5));
      const x0 = Math.floor(u);
      const x1 = Math.min(gw - 1, x0 + 1);
      const fx = u - x0;
      const a = (y0 * gw + x0) * 3;
      const b = (y0 * gw + x1) * 3;
      const c = (y1 * gw + x0) * 3;
      const d = (y1 * gw + x1) * 3;
      const i = (y * w + x) * 3;
      for (let k = 0; k < 3; k++) {
        const top = means[a + k]! + (means[b + k]! - means[a + k]!) * fx;
        const bottom = means[c + k]! + (means[d + k]! - means[c + k]!) * fx;
        out[i + k] = Math.round(top + (bottom - top) * fy);
      }
    }
  }
  return out;
}

/** Masks every region of `img` in place (in order; overlapping regions are masked again). */
export async function maskRegions(img: RawRgb, regions: MaskRegion[], style: MaskStyle): Promise<void> {
  if (img.data.length !== img.width * img.height * 3) {
    throw new MaskingError(`image data does not match ${img.width}x${img.height}x3`);
  }
  for (const r of regions) {
    const src = extract(img, r);
    const masked =
      style === 'pixelate' || r.width < 4 || r.height < 4
        ? pixelate(src, r.width, r.height)
        : blur(src, r.width, r.height);
    writeBack(img, r, masked);
  }
}
