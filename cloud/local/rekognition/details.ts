/**
 * Rekognition's output shapes from face-api detections: `BoundingBox` ratios, `FaceDetail` (the DEFAULT
 * attribute set: BoundingBox, Confidence, Landmarks, Pose, Quality) and the DetectLabels labels the local
 * Rekognition knows (Person, Face, Head).
 *
 * What is approximated, and how:
 * - Landmarks: five of Rekognition's types, from face-api's 68 iBUG 300-W points: `eyeLeft`/`eyeRight`
 *   (centre of the eye on the image's left/right, points 36-41 / 42-47), `nose` (tip, 30), `mouthLeft`
 *   (48) and `mouthRight` (54).
 * - Pose: Roll from the angle of the line between the eyes; Yaw from the nose tip's offset from the eyes'
 *   midpoint relative to the eye distance; Pitch from the nose tip's height between the eye line and the
 *   mouth line. Degrees, rough (±15°).
 * - Quality: Brightness is the mean luma of the face box (0..100); Sharpness is the mean absolute
 *   horizontal+vertical gradient of the face box's luma, scaled to 0..100.
 */
import type { DetectedFace, FaceBox } from '../../../analytics/vision/faces.js';
import type { RgbImage } from '../../../analytics/vision/image.js';
import type { RatioBox } from './collections.js';

const round = (v: number, digits = 6) => Number(v.toFixed(digits));

export function ratioBox(box: FaceBox, image: { width: number; height: number }): RatioBox {
  return {
    Width: round(box.width / image.width),
    Height: round(box.height / image.height),
    Left: round(box.left / image.width),
    Top: round(box.top / image.height),
  };
}

/** Detector score 0..1 as Rekognition's Confidence 0..100. */
export const confidence = (score: number): number => round(Math.min(1, Math.max(0, score)) * 100, 4);

function mean(points: readonly { x: number; y: number }[], from: number, to: number) {
  let x = 0;
  let y = 0;
  let n = 0;
  for (let i = from; i <= to; i++) {
    const p = points[i];
    if (!p) continue;
    x += p.x;
    y += p.y;
    n++;
  }
  return n === 0 ? undefined : { x: x / n, y: y / n };
}

export interface Landmark {
  Type: string;
  X: number;
  Y: number;
}

function landmarks(face: DetectedFace, image: RgbImage): Landmark[] {
  const pts = face.landmarks;
  if (!pts || pts.length < 68) return [];
  const picks: [string, { x: number; y: number } | undefined][] = [
    ['eyeLeft', mean(pts, 36, 41)],
    ['eyeRight', mean(pts, 42, 47)],
    ['nose', pts[30]],
    ['mouthLeft', pts[48]],
    ['mouthRight', pts[54]],
  ];
  const out: Landmark[] = [];
  for (const [Type, p] of picks) {
    if (p) out.push({ Type, X: round(p.x / image.width), Y: round(p.y / image.height) });
  }
  return out;
}

const DEG = 180 / Math.PI;

function pose(face: DetectedFace): { Roll: number; Yaw: number; Pitch: number } {
  const pts = face.landmarks;
  const l = pts && mean(pts, 36, 41);
  const r = pts && mean(pts, 42, 47);
  const nose = pts?.[30];
  const ml = pts?.[48];
  const mr = pts?.[54];
  if (!l || !r || !nose || !ml || !mr) return { Roll: 0, Yaw: 0, Pitch: 0 };
  const roll = Math.atan2(r.y - l.y, r.x - l.x);
  const eyeDist = Math.hypot(r.x - l.x, r.y - l.y) || 1;
  const mid = { x: (l.x + r.x) / 2, y: (l.y + r.y) / 2 };
  // Rotate the nose into the eye line's frame.
  const dx = (nose.x - mid.x) * Math.cos(-roll) - (nose.y - mid.y) * Math.sin(-roll);
  const dy = (nose.x - mid.x) * Math.sin(-roll) + (nose.y - mid.y) * Math.cos(-roll);
  const yaw = Math.asin(Math.max(-1, Math.min(1, (dx / eyeDist) * 1.6)));
  const mouthY = ((ml.y + mr.y) / 2 - mid.y) * Math.cos(-roll);
  // A frontal face has its nose tip ~60% of the way from the eye line to the mouth line.
  const t = mouthY > 0 ? dy / mouthY : 0.6;
  const pitch = Math.asin(Math.max(-1, Math.min(1, (0.6 - t) * 2.5)));
  return { Roll: round(roll * DEG, 4), Yaw: round(yaw * DEG, 4), Pitch: round(pitch * DEG, 4) };
}

function quality(face: DetectedFace, image: RgbImage): { Brightness: number; Sharpness: number } {
  const x0 = Math.max(0, Math.floor(face.box.left));
  const y0 = Math.max(0, Math.floor(face.box.top));
  const x1 = Math.min(image.width, Math.ceil(face.box.left + face.box.width));
  const y1 = Math.min(image.height, Math.ceil(face.box.top + face.box.height));
  if (x1 - x0 < 2 || y1 - y0 < 2) return { Brightness: 0, Sharpness: 0 };
  const luma = (x: number, y: number) => {
    const i = (y * image.width + x) * 3;
    return 0.299 * image.data[i]! + 0.587 * image.data[i + 1]! + 0.114 * image.data[i + 2]!;
  };
  let sum = 0;
  let grad = 0;
  let n = 0;
  for (let y = y0; y < y1 - 1; y++) {
    for (let x = x0; x < x1 - 1; x++) {
      const v = luma(x, y);
      sum += v;
      grad += Math.abs(luma(x + 1, y) - v) + Math.abs(luma(x, y + 1) - v);
      n++;
    }
  }
  return {
    Brightness: round((sum / n / 255) * 100, 4),
    Sharpness: round(Math.min(100, (grad / n / 20) * 100), 4),
  };
}

/** A FaceDetail with the DEFAULT attributes. */
export function faceDetail(face: DetectedFace, image: RgbImage) {
  return {
    BoundingBox: ratioBox(face.box, image),
    Landmarks: landmarks(face, image),
    Pose: pose(face),
    Quality: quality(face, image),
    Confidence: confidence(face.confidence),
  };
}

/** Faces sorted by box area, largest first (Rekognition keeps the largest faces when it limits). */
export function largestFirst<T extends { box: FaceBox }>(faces: readonly T[]): T[] {
  return [...faces].sort((a, b) => b.box.width * b.box.height - a.box.width * a.box.height);
}

function clipRatioBox(left: number, top: number, right: number, bottom: number): RatioBox {
  const l = Math.max(0, left);
  const t = Math.max(0, top);
  const r = Math.min(1, right);
  const b = Math.min(1, bottom);
  return { Width: round(r - l), Height: round(b - t), Left: round(l), Top: round(t) };
}

export interface Label {
  Name: string;
  Confidence: number;
  Instances: { BoundingBox: RatioBox; Confidence: number }[];
  Parents: { Name: string }[];
  Aliases: { Name: string }[];
  Categories: { Name: string }[];
}

/**
 * DetectLabels' labels from the detected faces. The local Rekognition has no general object model: it
 * knows only people, through their faces.
 *
 * - `Face` (parents Head and Person, category "Person Description"): one instance per face, its box.
 *   (AWS may return this label without instances; the local one always gives the face boxes.)
 * - `Head` (parent Person, category "Person Description"): the face box grown by 25% each side and 40% up.
 * - `Person` (no parents, alias Human, category "Person Description"): derived from each face, as a body
 *   box 3 face-widths wide centred on the face, from half a face-height above it down 7 face-heights,
 *   clipped to the image. Confidence is the face's.
 *
 * Each label's Confidence is its best instance's. Parents list all ancestors, as documented.
 */
export function personLabels(faces: readonly DetectedFace[], image: RgbImage): Label[] {
  if (faces.length === 0) return [];
  const category = [{ Name: 'Person Description' }];
  const faceInstances = faces.map((f) => ({
    BoundingBox: ratioBox(f.box, image),
    Confidence: confidence(f.confidence),
  }));
  const headInstances = faces.map((f) => {
    const { left, top, width, height } = f.box;
    return {
      BoundingBox: clipRatioBox(
        (left - width * 0.25) / image.width,
        (top - height * 0.4) / image.height,
        (left + width * 1.25) / image.width,
        (top + height) / image.height,
      ),
      Confidence: confidence(f.confidence),
    };
  });
  const personInstances = faces.map((f) => {
    const { left, top, width, height } = f.box;
    const cx = left + width / 2;
    return {
      BoundingBox: clipRatioBox(
        (cx - width * 1.5) / image.width,
        (top - height * 0.5) / image.height,
        (cx + width * 1.5) / image.width,
        (top + height * 7) / image.height,
      ),
      Confidence: confidence(f.confidence),
    };
  });
  const best = (xs: { Confidence: number }[]) => Math.max(...xs.map((x) => x.Confidence));
  return [
    {
      Name: 'Person',
      Confidence: best(personInstances),
      Instances: personInstances,
      Parents: [],
      Aliases: [{ Name: 'Human' }],
      Categories: category,
    },
    {
      Name: 'Face',
      Confidence: best(faceInstances),
      Instances: faceInstances,
      Parents: [{ Name: 'Head' }, { Name: 'Person' }],
      Aliases: [],
      Categories: category,
    },
    {
      Name: 'Head',
      Confidence: best(headInstances),
      Instances: headInstances,
      Parents: [{ Name: 'Person' }],
      Aliases: [],
      Categories: category,
    },
  ];
}
