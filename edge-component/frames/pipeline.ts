/**
 * One camera's frame pipeline: decode, auto-orient and resize (sharp) → change detector → face
 * detection → masking (faces and privacy zones) → encode → the `frames` spool stream (a blob file with
 * its metadata). Fail closed: a frame whose decoding, detection or masking fails is dropped and
 * counted, never spooled; only a camera configured for identification spools unmasked frames (to the
 * restricted prefix).
 */
import pino, { type Logger } from 'pino';
import sharp from 'sharp';
import type { RgbImage } from '../../analytics/vision/image.js';
import type { CameraConfig } from '../config.js';
import type { AppendResult, JsonValue } from '../spool/index.js';
import { ChangeDetector, THUMBNAIL_SIDE, type Thumbnail } from './change.js';
import { FaceDetectionError, FrameDecodeError, FrameError, MaskingError } from './errors.js';
import type { FrameMetadata } from './keys.js';
import { faceRegions, maskRegions, type RawRgb, zoneRegions } from './masking.js';
import type { FaceDetector, FaceRegion, Frame } from './ports.js';

/** The spool stream of frames. */
export const FRAMES_STREAM = 'frames';

/** Where kept frames go (the gateway's spool). */
export interface FrameSink {
  appendFile(stream: string, bytes: Uint8Array, metadata?: JsonValue): Promise<AppendResult>;
}

export type RejectReason = 'decode' | 'detection' | 'masking' | 'encode' | 'spool';

export type FrameOutcome =
  | { result: 'kept'; seq: number; metadata: FrameMetadata; bytes: number }
  | { result: 'skipped'; difference: number }
  | { result: 'rejected'; reason: RejectReason; error: Error };

export interface FramePipelineDeps {
  thing: string;
  sink: FrameSink;
  /** Needed when the camera detects faces (masking.faces or identification). */
  detector?: FaceDetector;
  logger?: Logger;
}

const INPUT = { failOn: 'truncated', limitInputPixels: 100_000_000 } as const;

function decodeError(err: unknown): FrameDecodeError {
  if (err instanceof FrameDecodeError) return err;
  return new FrameDecodeError(`not a decodable image: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}

/**
 * The change detector's grayscale thumbnail (64 px across), decoded straight from the compressed
 * frame: JPEG shrink-on-load decodes at 1/8 scale, so a frame that is skipped costs a few ms.
 */
async function thumbnail(bytes: Uint8Array): Promise<Thumbnail> {
  try {
    const { data, info } = await sharp(bytes, INPUT)
      .rotate()
      .resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'inside' })
      .greyscale()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1)
      throw new FrameDecodeError(`thumbnail has ${info.channels} channels, expected 1`);
    return { width: info.width, height: info.height, data: Float32Array.from(data) };
  } catch (err) {
    throw decodeError(err);
  }
}

/** The frame decoded, auto-oriented, resized, encoded: one sharp pipeline (nothing to mask). */
async function transcode(
  bytes: Uint8Array,
  cam: CameraConfig,
): Promise<{ data: Buffer; width: number; height: number }> {
  try {
    const s = sharp(bytes, INPUT)
      .rotate()
      .resize({ width: cam.maxWidth, height: cam.maxHeight, fit: 'inside', withoutEnlargement: true })
      .removeAlpha()
      .toColourspace('srgb');
    const { data, info } = await (cam.format === 'webp'
      ? s.webp({ quality: cam.quality })
      : s.jpeg({ quality: cam.quality })
    ).toBuffer({
      resolveWithObject: true,
    });
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw decodeError(err);
  }
}

/** Pixels decoded from a frame, auto-oriented and resized. */
async function decode(bytes: Uint8Array, maxWidth: number, maxHeight: number): Promise<RawRgb> {
  try {
    const { data, info } = await sharp(bytes, INPUT)
      .rotate()
      .resize({ width: maxWidth, height: maxHeight, fit: 'inside', withoutEnlargement: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new FrameDecodeError(`decoded ${info.channels} channels, expected 3`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw decodeError(err);
  }
}

export class FramePipeline {
  private readonly change: ChangeDetector;
  private readonly log: Logger;
  private readonly detects: boolean;
  /** Nothing to detect or mask: decode, resize and encode in one sharp pipeline. */
  private readonly transcodes: boolean;

  constructor(
    readonly camera: CameraConfig,
    private readonly deps: FramePipelineDeps,
  ) {
    this.change = new ChangeDetector(camera.changeThreshold);
    this.log = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'frames', camera: camera.id });
    this.detects = camera.identification || camera.masking.faces;
    this.transcodes = !this.detects && (camera.identification || camera.masking.zones.length === 0);
  }

  /** Runs one frame through the pipeline; never throws (the outcome says what happened). */
  async process(frame: Frame): Promise<FrameOutcome> {
    const cam = this.camera;
    // changeThreshold 0 keeps every frame: no thumbnail needed.
    let thumb: Thumbnail | undefined;
    if (cam.changeThreshold > 0) {
      try {
        thumb = await thumbnail(frame.bytes);
      } catch (err) {
        return this.reject('decode', err);
      }
      const { changed, difference } = this.change.check(thumb);
      if (!changed) return { result: 'skipped', difference };
    }
    if (this.transcodes) {
      let out: { data: Buffer; width: number; height: number };
      try {
        out = await transcode(frame.bytes, cam);
      } catch (err) {
        return this.reject('decode', err);
      }
      return this.spool(frame, thumb, out.data, out.width, out.height, [], 0);
    }
    let img: RawRgb;
    try {
      img = await decode(frame.bytes, cam.maxWidth, cam.maxHeight);
    } catch (err) {
      return this.reject('decode', err);
    }

    let faces: FaceRegion[] = [];
    if (this.detects) {
      try {
        faces = await this.detectFaces(img);
      } catch (err) {
        return this.reject('detection', err);
      }
    }
    const identification = cam.identification;
    let zones = 0;
    if (!identification) {
      try {
        const zoneRegs = zoneRegions(cam.masking.zones, img.width, img.height);
        zones = zoneRegs.length;
        await maskRegions(
          img,
          [...faceRegions(faces, img.width, img.height, cam.masking.padding), ...zoneRegs],
          cam.masking.style,
        );
      } catch (err) {
        return this.reject('masking', err);
      }
    }
    let encoded: Buffer;
    try {
      const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
      encoded = await (cam.format === 'webp'
        ? s.webp({ quality: cam.quality })
        : s.jpeg({ quality: cam.quality })
      ).toBuffer();
    } catch (err) {
      return this.reject('encode', err);
    }
    return this.spool(frame, thumb, encoded, img.width, img.height, faces, zones);
  }

  private async spool(
    frame: Frame,
    thumb: Thumbnail | undefined,
    encoded: Buffer,
    width: number,
    height: number,
    faces: FaceRegion[],
    zones: number,
  ): Promise<FrameOutcome> {
    const cam = this.camera;
    const identification = cam.identification;
    const metadata: FrameMetadata = {
      thing: this.deps.thing,
      camera: cam.id,
      capturedAt: Math.round(frame.capturedAt),
      faces: faces.length,
      boxes: faces.map((f) => ({
        left: Math.round(f.left),
        top: Math.round(f.top),
        width: Math.round(f.width),
        height: Math.round(f.height),
        confidence: Math.round(f.confidence * 1000) / 1000,
      })),
      zones,
      masking: identification ? 'identification' : cam.masking.style,
      format: cam.format,
      width,
      height,
    };
    let seq: number;
    try {
      ({ seq } = await this.deps.sink.appendFile(FRAMES_STREAM, encoded, metadata as unknown as JsonValue));
    } catch (err) {
      return this.reject('spool', err);
    }
    if (thumb) this.change.keep(thumb);
    return { result: 'kept', seq, metadata, bytes: encoded.length };
  }

  /** Faces in pixels of `img`, found on a copy at most `detectionMaxSide` on its longer side. */
  private async detectFaces(img: RawRgb): Promise<FaceRegion[]> {
    const detector = this.deps.detector;
    if (!detector) throw new FaceDetectionError('no face detector available');
    const m = this.camera.masking;
    const maxSide = m.detectionMaxSide;
    let small: RgbImage;
    if (Math.max(img.width, img.height) <= maxSide) {
      small = { data: img.data, width: img.width, height: img.height, channels: 3 };
    } else {
      const { data, info } = await sharp(img.data, {
        raw: { width: img.width, height: img.height, channels: 3 },
      })
        .resize(maxSide, maxSide, { fit: 'inside' })
        .raw()
        .toBuffer({ resolveWithObject: true });
      small = { data, width: info.width, height: info.height, channels: 3 };
    }
    const found = await detector.detect(small, { detector: m.detector, minConfidence: m.minConfidence });
    if (!Array.isArray(found)) throw new FaceDetectionError('the face detector returned no list');
    const sx = img.width / small.width;
    const sy = img.height / small.height;
    return found.map((f) => {
      if (![f.left, f.top, f.width, f.height].every(Number.isFinite)) {
        throw new FaceDetectionError('the face detector returned a box that is not a number');
      }
      return {
        left: f.left * sx,
        top: f.top * sy,
        width: f.width * sx,
        height: f.height * sy,
        confidence: f.confidence,
      };
    });
  }

  private reject(reason: RejectReason, err: unknown): FrameOutcome {
    const error =
      err instanceof FrameError
        ? err
        : reason === 'detection'
          ? new FaceDetectionError(`face detection failed: ${describe(err)}`, { cause: err })
          : reason === 'masking'
            ? new MaskingError(`masking failed: ${describe(err)}`, { cause: err })
            : err instanceof Error
              ? err
              : new FrameError(describe(err));
    this.log.warn({ reason, err: error.message }, 'frame rejected');
    return { result: 'rejected', reason, error };
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
