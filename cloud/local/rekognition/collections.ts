/**
 * Face collections of the local Rekognition: one JSON file per collection under
 * `{dataDir}/rekognition/collections/{CollectionId}.json`, written atomically (temporary file, fsync,
 * rename) after every change, so a collection survives a restart and is never seen half-written.
 * Descriptors are stored as base64 of their little-endian float32 bytes.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { StateCorruptError } from '../errors.js';
import { readJsonFile, removeFile, writeJsonFile } from '../store.js';

/** A bounding box as Rekognition gives it: ratios of the image's width and height. */
export interface RatioBox {
  Width: number;
  Height: number;
  Left: number;
  Top: number;
}

export interface StoredFace {
  faceId: string;
  imageId: string;
  externalImageId?: string;
  boundingBox: RatioBox;
  /** 0..100 */
  confidence: number;
  indexedAt: string;
  descriptor: Float32Array;
}

export interface Collection {
  collectionId: string;
  createdAt: string;
  faceModelVersion: string;
  faces: StoredFace[];
}

const BoxSchema = z.object({ Width: z.number(), Height: z.number(), Left: z.number(), Top: z.number() });
const FileSchema = z.object({
  collectionId: z.string(),
  createdAt: z.string(),
  faceModelVersion: z.string(),
  faces: z.array(
    z.object({
      faceId: z.string(),
      imageId: z.string(),
      externalImageId: z.string().optional(),
      boundingBox: BoxSchema,
      confidence: z.number(),
      indexedAt: z.string(),
      descriptor: z.string(),
    }),
  ),
});

function encodeDescriptor(d: Float32Array): string {
  const bytes = Buffer.alloc(d.length * 4);
  for (let i = 0; i < d.length; i++) bytes.writeFloatLE(d[i]!, i * 4);
  return bytes.toString('base64');
}

function decodeDescriptor(s: string): Float32Array {
  const bytes = Buffer.from(s, 'base64');
  const d = new Float32Array(bytes.length / 4);
  for (let i = 0; i < d.length; i++) d[i] = bytes.readFloatLE(i * 4);
  return d;
}

export class CollectionStore {
  private readonly dir: string;
  private readonly collections = new Map<string, Collection>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'rekognition', 'collections');
    let files: string[] = [];
    try {
      files = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const f of files) {
      if (!f.endsWith('.json')) continue; // left-over temporary files of an interrupted write
      const path = join(this.dir, f);
      const parsed = FileSchema.safeParse(readJsonFile(path));
      if (!parsed.success) throw new StateCorruptError(`collection file ${path} is not valid`);
      const c = parsed.data;
      this.collections.set(c.collectionId, {
        ...c,
        faces: c.faces.map((face) => ({ ...face, descriptor: decodeDescriptor(face.descriptor) })),
      });
    }
  }

  get(collectionId: string): Collection | undefined {
    return this.collections.get(collectionId);
  }

  /** Collection ids in ascending order. */
  ids(): string[] {
    return [...this.collections.keys()].sort();
  }

  /** Creates an empty collection; false if it exists already. */
  create(collectionId: string, faceModelVersion: string): Collection | undefined {
    if (this.collections.has(collectionId)) return undefined;
    const c: Collection = {
      collectionId,
      createdAt: new Date().toISOString(),
      faceModelVersion,
      faces: [],
    };
    this.save(c);
    this.collections.set(collectionId, c);
    return c;
  }

  delete(collectionId: string): boolean {
    if (!this.collections.delete(collectionId)) return false;
    removeFile(this.path(collectionId));
    return true;
  }

  addFaces(c: Collection, faces: StoredFace[]): void {
    this.save({ ...c, faces: [...c.faces, ...faces] });
    c.faces.push(...faces);
  }

  /** Removes the faces with these ids; returns the ids that were there. */
  deleteFaces(c: Collection, faceIds: readonly string[]): string[] {
    const remove = new Set(faceIds);
    const deleted = c.faces.filter((f) => remove.has(f.faceId)).map((f) => f.faceId);
    if (deleted.length === 0) return [];
    const kept = c.faces.filter((f) => !remove.has(f.faceId));
    this.save({ ...c, faces: kept });
    c.faces = kept;
    return deleted;
  }

  private path(collectionId: string): string {
    // Collection ids match [a-zA-Z0-9_.\-]+: no path separators.
    return join(this.dir, `${collectionId}.json`);
  }

  private save(c: Collection): void {
    writeJsonFile(this.path(c.collectionId), {
      collectionId: c.collectionId,
      createdAt: c.createdAt,
      faceModelVersion: c.faceModelVersion,
      faces: c.faces.map((f) => ({ ...f, descriptor: encodeDescriptor(f.descriptor) })),
    } satisfies z.input<typeof FileSchema>);
  }
}
