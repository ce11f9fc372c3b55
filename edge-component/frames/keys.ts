/**
 * Where a frame goes in the data bucket, and the metadata the pipeline spools with it (and the
 * uploader writes beside it as a JSON sidecar):
 * `frames/{thing}/{camera}/dt=YYYY-MM-DD/hour=HH/{capturedAt-ms}-{seq}.{jpg|webp}` (+ `.json`), or under
 * `frames-identify/` for cameras configured for identification (unmasked frames).
 */
import { z } from 'zod';
import { CAMERA_ID_PATTERN } from '../config.js';

export const FrameMetadataSchema = z.object({
  thing: z.string().min(1),
  camera: z.string().regex(CAMERA_ID_PATTERN),
  capturedAt: z.number().int().nonnegative(),
  /** Faces found (and masked, unless identification). */
  faces: z.number().int().nonnegative(),
  /** Their boxes in pixels of the uploaded frame (before padding). */
  boxes: z.array(
    z.object({
      left: z.number(),
      top: z.number(),
      width: z.number(),
      height: z.number(),
      confidence: z.number(),
    }),
  ),
  /** Privacy zones masked. */
  zones: z.number().int().nonnegative(),
  masking: z.enum(['blur', 'pixelate', 'identification']),
  format: z.enum(['jpeg', 'webp']),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});
export type FrameMetadata = z.output<typeof FrameMetadataSchema>;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** The object key of a frame and of its metadata sidecar. */
export function frameObjectKeys(meta: FrameMetadata, seq: number): { key: string; sidecarKey: string } {
  const d = new Date(meta.capturedAt);
  const root = meta.masking === 'identification' ? 'frames-identify' : 'frames';
  const dt = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const base = `${root}/${meta.thing}/${meta.camera}/dt=${dt}/hour=${pad(d.getUTCHours())}/${meta.capturedAt}-${seq}`;
  return { key: `${base}.${meta.format === 'webp' ? 'webp' : 'jpg'}`, sidecarKey: `${base}.json` };
}
