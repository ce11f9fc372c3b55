/**
 * What the frame analysis function reads: S3 event notifications (the documented event message
 * structure, version 2.x), the frame keys gateways upload, and the JSON sidecar next to each frame.
 */
import { z } from 'zod';
import { FRAME_PREFIXES, FRAME_SUFFIXES, RESULTS_PREFIX } from '../../rules/resources.js';

/** One record of an S3 event notification; only what the function needs is required. */
export const S3EventRecordSchema = z.object({
  eventSource: z.literal('aws:s3'),
  eventName: z.string().min(1),
  eventTime: z.string().optional(),
  s3: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      /** URL-encoded as in a form (`+` for a space). */
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      eTag: z.string().optional(),
      sequencer: z.string().optional(),
    }),
  }),
});
export type S3EventRecord = z.infer<typeof S3EventRecordSchema>;

export const S3EventSchema = z.object({ Records: z.array(z.unknown()) });

/** The object key of an event record: S3 form-encodes it (spaces as `+`). */
export function decodeEventKey(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

export type FrameKind = 'frames' | 'frames-identify';

export interface FrameKey {
  kind: FrameKind;
  thing: string;
  camera: string;
  /** `YYYY-MM-DD` of the `dt=` partition. */
  date: string;
  /** File name without its extension: `{capturedAtMs}-{seq}`. */
  frameId: string;
  /** Capture time from the file name, epoch ms. */
  capturedAtMs: number;
  /** Lower-case extension with the dot. */
  extension: string;
  /** The sidecar's key: the same name with `.json`. */
  sidecarKey: string;
}

const FRAME_KEY =
  /^(frames|frames-identify)\/([a-zA-Z0-9:_-]{1,128})\/([^/]{1,128})\/dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/((\d{1,15})-(\d{1,10}))(\.[a-zA-Z]+)$/;

/** Whether the key is a frame image by prefix and suffix (the S3 notification's filter). */
export function isFrameObject(key: string): boolean {
  const lower = key.toLowerCase();
  return FRAME_PREFIXES.some((p) => key.startsWith(p)) && FRAME_SUFFIXES.some((s) => lower.endsWith(s));
}

/** `frames[-identify]/{thing}/{camera}/dt=YYYY-MM-DD/hour=HH/{capturedAtMs}-{seq}.{jpg|jpeg|webp}`. */
export function parseFrameKey(key: string): FrameKey | undefined {
  if (!isFrameObject(key)) return undefined;
  const m = FRAME_KEY.exec(key);
  if (!m) return undefined;
  const extension = m[9]!.toLowerCase();
  return {
    kind: m[1] as FrameKind,
    thing: m[2]!,
    camera: m[3]!,
    date: m[4]!,
    frameId: m[6]!,
    capturedAtMs: Number(m[7]),
    extension,
    sidecarKey: `${key.slice(0, key.length - extension.length)}.json`,
  };
}

/** Where the result of a frame goes in the results bucket (deterministic: the same frame, the same key). */
export function resultKey(frame: Pick<FrameKey, 'thing' | 'camera' | 'date' | 'frameId' | 'kind'>): string {
  const id = frame.kind === 'frames-identify' ? `${frame.frameId}-identify` : frame.frameId;
  return `${RESULTS_PREFIX}${frame.thing}/${frame.camera}/dt=${frame.date}/${id}.json`;
}

/** The gateway's sidecar, `{same name}.json`; unknown fields are kept out, bad ones make it unusable. */
export const SidecarSchema = z.object({
  thing: z.string().min(1),
  camera: z.string().min(1),
  capturedAt: z.union([z.string().min(1), z.number()]),
  faces: z.number().int().nonnegative().optional(),
  boxes: z.array(z.unknown()).optional(),
  masking: z.enum(['blur', 'pixelate', 'identification']).optional(),
  format: z.string().optional(),
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
});
export type Sidecar = z.infer<typeof SidecarSchema>;
