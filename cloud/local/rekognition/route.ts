/**
 * The local Amazon Rekognition (`@aws-sdk/client-rekognition`): the JSON 1.1 protocol
 * (`X-Amz-Target: RekognitionService.<Operation>`, `application/x-amz-json-1.1`), signing name
 * `rekognition`. Operations: CreateCollection, ListCollections, DeleteCollection, IndexFaces, ListFaces,
 * DeleteFaces, SearchFacesByImage, DetectFaces and DetectLabels (people only; see details.ts).
 *
 * Faces are found and described by face-api (analytics/vision) on the tfjs wasm backend; the models are
 * loaded on the first image operation. Similarity is `similarityFromDistance` of the descriptors'
 * euclidean distance, so the default FaceMatchThreshold of 80 is face-api's same-person distance 0.6.
 *
 * Every request is authorized with the IAM action `rekognition:<Operation>` on the collection ARN
 * (`arn:aws:rekognition:{region}:{account}:collection/{id}`) or, for DetectFaces and DetectLabels, `*`;
 * an `S3Object` image is read with the caller's own `s3:GetObject` permission.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  type DetectedFace,
  descriptorDistance,
  FaceEngine,
  similarityFromDistance,
} from '../../../analytics/vision/faces.js';
import type { RgbImage } from '../../../analytics/vision/image.js';
import type { Authorizer } from '../authz.js';
import {
  AuthError,
  type ServiceError,
  type ServiceRequest,
  type ServiceResponse,
  type ServiceRoute,
} from '../http/server.js';
import { ObjectStore } from '../s3/object-store.js';
import { type Collection, CollectionStore, type StoredFace } from './collections.js';
import { confidence, faceDetail, largestFirst, personLabels, ratioBox } from './details.js';
import {
  accessDenied,
  invalidPaginationToken,
  invalidParameter,
  RekognitionError,
  resourceAlreadyExists,
  resourceNotFound,
} from './errors.js';
import { analysisImage, type ImageDeps, type ImageInput, ImageSchema, imageBytes } from './images.js';

/** The face model version the local collections report (Rekognition's current one). */
export const FACE_MODEL_VERSION = '7.0';
const LABEL_MODEL_VERSION = '3.0';
/** Rekognition indexes and detects at most the 100 largest faces of an image. */
const MAX_FACES_PER_IMAGE = 100;
const DEFAULT_LIST_FACES = 1000;
const TARGET_PREFIX = 'RekognitionService.';

export interface RekognitionDeps {
  dataDir: string;
  region: string;
  accountId: string;
  authorizer: Authorizer;
  logger?: Logger;
  /** The face engine; loaded on first use by default. */
  engine?: () => Promise<FaceEngine>;
  /** Collections that exist from the start, as the CDK stack creates them on AWS. */
  collections?: readonly string[];
}

const CollectionId = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-zA-Z0-9_.-]+$/, 'must match [a-zA-Z0-9_.\\-]+');
const ExternalImageId = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-zA-Z0-9_.\-:]+$/, 'must match [a-zA-Z0-9_.\\-:]+');
const FaceId = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a face id (UUID)');
const QualityFilter = z.enum(['NONE', 'AUTO', 'LOW', 'MEDIUM', 'HIGH']);
const NextToken = z.string().max(255);
const MaxResults = z.number().int().min(0).max(4096);

const Schemas = {
  CreateCollection: z.object({ CollectionId, Tags: z.record(z.string(), z.string()).optional() }),
  ListCollections: z.object({ NextToken: NextToken.optional(), MaxResults: MaxResults.optional() }),
  DeleteCollection: z.object({ CollectionId }),
  IndexFaces: z.object({
    CollectionId,
    Image: ImageSchema,
    ExternalImageId: ExternalImageId.optional(),
    DetectionAttributes: z.array(z.string()).optional(),
    MaxFaces: z.number().int().min(1).optional(),
    QualityFilter: QualityFilter.optional(),
  }),
  ListFaces: z.object({
    CollectionId,
    NextToken: NextToken.optional(),
    MaxResults: MaxResults.optional(),
    UserId: z.string().optional(),
    FaceIds: z.array(FaceId).min(1).max(4096).optional(),
  }),
  DeleteFaces: z.object({ CollectionId, FaceIds: z.array(FaceId).min(1).max(4096) }),
  SearchFacesByImage: z.object({
    CollectionId,
    Image: ImageSchema,
    MaxFaces: z.number().int().min(1).max(4096).optional(),
    FaceMatchThreshold: z.number().min(0).max(100).optional(),
    QualityFilter: QualityFilter.optional(),
  }),
  DetectFaces: z.object({ Image: ImageSchema, Attributes: z.array(z.string()).optional() }),
  DetectLabels: z.object({
    Image: ImageSchema,
    MaxLabels: z.number().int().min(0).optional(),
    MinConfidence: z.number().min(0).max(100).optional(),
    Features: z.array(z.enum(['GENERAL_LABELS', 'IMAGE_PROPERTIES'])).optional(),
    Settings: z.unknown().optional(),
  }),
} as const;
type Operation = keyof typeof Schemas;

function parseInput<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue?.path.map(String).join('.') || '(request)';
  const message =
    issue?.code === 'invalid_type' && issue.input === undefined ? 'is required' : (issue?.message ?? '');
  throw invalidParameter(`${field}: ${message}`);
}

/** Smallest face Rekognition's quality filter keeps: 40x40 pixels in a 1920x1080 image, scaled. */
function tooSmall(face: DetectedFace, image: RgbImage): boolean {
  const long = Math.max(image.width, image.height);
  const short = Math.min(image.width, image.height);
  const min = 40 * Math.max(1, long / 1920, short / 1080);
  return face.box.width < min || face.box.height < min;
}

/** Minimum detector score of each QualityFilter level (AUTO is MEDIUM). */
const MIN_SCORE: Record<z.output<typeof QualityFilter>, number> = {
  NONE: 0,
  LOW: 0.5,
  AUTO: 0.7,
  MEDIUM: 0.7,
  HIGH: 0.9,
};

function faceOut(f: StoredFace) {
  return {
    FaceId: f.faceId,
    BoundingBox: f.boundingBox,
    ImageId: f.imageId,
    ...(f.externalImageId !== undefined ? { ExternalImageId: f.externalImageId } : {}),
    Confidence: f.confidence,
    IndexFacesModelVersion: FACE_MODEL_VERSION,
  };
}

function encodeToken(after: string): string {
  return Buffer.from(JSON.stringify({ after })).toString('base64url');
}

function decodeToken(token: string): string {
  try {
    const parsed = z
      .object({ after: z.string() })
      .parse(JSON.parse(Buffer.from(token, 'base64url').toString()));
    return parsed.after;
  } catch {
    throw invalidPaginationToken();
  }
}

/** One page of `items` (sorted by `key`) after the token's key. */
function page<T>(items: readonly T[], key: (t: T) => string, token: string | undefined, max: number) {
  const after = token === undefined ? undefined : decodeToken(token);
  const rest = after === undefined ? items : items.filter((t) => key(t) > after);
  const out = rest.slice(0, max);
  const last = out[out.length - 1];
  return {
    items: out,
    next: rest.length > out.length && last !== undefined ? encodeToken(key(last)) : undefined,
  };
}

function errorBody(err: ServiceError, requestId: string): ServiceResponse {
  return {
    status: err.status,
    headers: { 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify({
      __type: err.code,
      Code: err.code,
      Message: err.message,
      // Authentication failures carry `message` as the other JSON services do; the SDK reads either.
      ...(err instanceof AuthError ? { message: err.message } : {}),
      Logref: requestId,
    }),
  };
}

export function rekognitionRoute(deps: RekognitionDeps): ServiceRoute {
  const collections = new CollectionStore(deps.dataDir);
  for (const id of deps.collections ?? []) collections.create(id, FACE_MODEL_VERSION);
  // Constructed with the route, before the HTTP endpoint listens (the store cleans its temp dir on start).
  const imageDeps: ImageDeps = {
    store: new ObjectStore(deps.dataDir),
    authorizer: deps.authorizer,
    region: deps.region,
  };
  const loadEngine = deps.engine ?? (() => FaceEngine.load());
  const collectionArn = (id: string) =>
    `arn:aws:rekognition:${deps.region}:${deps.accountId}:collection/${id}`;

  const authorize = (req: ServiceRequest, op: Operation, resource: string) => {
    const action = `rekognition:${op}`;
    const d = deps.authorizer.authorize(req.caller, { action, resource });
    if (!d.allowed) {
      throw accessDenied(
        `User: ${req.caller.principalArn} is not authorized to perform: ${action} on resource: ${resource} (${d.reason})`,
      );
    }
  };
  const requireCollection = (id: string): Collection => {
    const c = collections.get(id);
    if (!c) throw resourceNotFound(`The collection id: ${id} does not exist`);
    return c;
  };
  const describeImage = async (req: ServiceRequest, image: ImageInput) => {
    const rgb = await analysisImage(await imageBytes(imageDeps, req, image));
    const engine = await loadEngine();
    return { rgb, engine };
  };

  const ops: {
    [K in Operation]: (req: ServiceRequest, input: z.output<(typeof Schemas)[K]>) => Promise<unknown>;
  } = {
    async CreateCollection(req, input) {
      authorize(req, 'CreateCollection', collectionArn(input.CollectionId));
      const c = collections.create(input.CollectionId, FACE_MODEL_VERSION);
      if (!c) throw resourceAlreadyExists(`The collection id: ${input.CollectionId} already exists`);
      // The ARN as Rekognition's documented example shows it (without the `arn:` prefix).
      return {
        StatusCode: 200,
        CollectionArn: `aws:rekognition:${deps.region}:${deps.accountId}:collection/${input.CollectionId}`,
        FaceModelVersion: c.faceModelVersion,
      };
    },
    async ListCollections(req, input) {
      authorize(req, 'ListCollections', collectionArn('*'));
      const p = page(collections.ids(), (id) => id, input.NextToken, input.MaxResults ?? 4096);
      return {
        CollectionIds: p.items,
        FaceModelVersions: p.items.map((id) => collections.get(id)?.faceModelVersion ?? FACE_MODEL_VERSION),
        ...(p.next ? { NextToken: p.next } : {}),
      };
    },
    async DeleteCollection(req, input) {
      authorize(req, 'DeleteCollection', collectionArn(input.CollectionId));
      if (!collections.delete(input.CollectionId)) requireCollection(input.CollectionId);
      return { StatusCode: 200 };
    },
    async IndexFaces(req, input) {
      authorize(req, 'IndexFaces', collectionArn(input.CollectionId));
      requireCollection(input.CollectionId);
      const { rgb, engine } = await describeImage(req, input.Image);
      const faces = largestFirst(await engine.describe(rgb)).slice(0, MAX_FACES_PER_IMAGE);
      const filter = input.QualityFilter ?? 'AUTO';
      const maxFaces = input.MaxFaces ?? MAX_FACES_PER_IMAGE;
      const imageId = randomUUID();
      const indexedAt = new Date().toISOString();
      const records: { Face: ReturnType<typeof faceOut>; FaceDetail: ReturnType<typeof faceDetail> }[] = [];
      const stored: StoredFace[] = [];
      const unindexed: { Reasons: string[]; FaceDetail: ReturnType<typeof faceDetail> }[] = [];
      for (const f of faces) {
        const detail = faceDetail(f, rgb);
        const reasons: string[] = [];
        if (filter !== 'NONE') {
          if (f.confidence < MIN_SCORE[filter]) reasons.push('LOW_CONFIDENCE');
          if (tooSmall(f, rgb)) reasons.push('SMALL_BOUNDING_BOX');
        }
        if (reasons.length === 0 && stored.length >= maxFaces) reasons.push('EXCEEDS_MAX_FACES');
        if (reasons.length > 0 || !f.descriptor) {
          unindexed.push({
            Reasons: reasons.length > 0 ? reasons : ['LOW_FACE_QUALITY'],
            FaceDetail: detail,
          });
          continue;
        }
        const face: StoredFace = {
          faceId: randomUUID(),
          imageId,
          ...(input.ExternalImageId !== undefined ? { externalImageId: input.ExternalImageId } : {}),
          boundingBox: ratioBox(f.box, rgb),
          confidence: confidence(f.confidence),
          indexedAt,
          descriptor: f.descriptor,
        };
        stored.push(face);
        records.push({ Face: faceOut(face), FaceDetail: detail });
      }
      // The collection may have been deleted while the image was analysed.
      const c = requireCollection(input.CollectionId);
      if (stored.length > 0) collections.addFaces(c, stored);
      deps.logger?.debug({ collection: c.collectionId, indexed: stored.length }, 'IndexFaces');
      return { FaceRecords: records, FaceModelVersion: c.faceModelVersion, UnindexedFaces: unindexed };
    },
    async ListFaces(req, input) {
      authorize(req, 'ListFaces', collectionArn(input.CollectionId));
      const c = requireCollection(input.CollectionId);
      const only = input.FaceIds ? new Set(input.FaceIds) : undefined;
      const faces = c.faces
        .filter((f) => !only || only.has(f.faceId))
        .sort((a, b) => (a.faceId < b.faceId ? -1 : a.faceId > b.faceId ? 1 : 0));
      const p = page(faces, (f) => f.faceId, input.NextToken, input.MaxResults ?? DEFAULT_LIST_FACES);
      return {
        Faces: p.items.map(faceOut),
        FaceModelVersion: c.faceModelVersion,
        ...(p.next ? { NextToken: p.next } : {}),
      };
    },
    async DeleteFaces(req, input) {
      authorize(req, 'DeleteFaces', collectionArn(input.CollectionId));
      const c = requireCollection(input.CollectionId);
      const deleted = collections.deleteFaces(c, input.FaceIds);
      const gone = new Set(deleted);
      const missing = [...new Set(input.FaceIds)].filter((id) => !gone.has(id));
      return {
        DeletedFaces: deleted,
        ...(missing.length > 0
          ? { UnsuccessfulFaceDeletions: missing.map((FaceId) => ({ FaceId, Reasons: ['FACE_NOT_FOUND'] })) }
          : {}),
      };
    },
    async SearchFacesByImage(req, input) {
      authorize(req, 'SearchFacesByImage', collectionArn(input.CollectionId));
      requireCollection(input.CollectionId);
      const { rgb, engine } = await describeImage(req, input.Image);
      const filter = input.QualityFilter ?? 'NONE';
      const candidates = largestFirst(await engine.describe(rgb)).filter(
        (f) => filter === 'NONE' || (f.confidence >= MIN_SCORE[filter] && !tooSmall(f, rgb)),
      );
      const searched = candidates[0];
      if (!searched?.descriptor)
        throw invalidParameter('There are no faces in the image. Should be at least 1.');
      const c = requireCollection(input.CollectionId);
      const threshold = input.FaceMatchThreshold ?? 80;
      const matches = c.faces
        .map((f) => ({
          f,
          similarity: similarityFromDistance(descriptorDistance(searched.descriptor!, f.descriptor)),
        }))
        .filter((m) => m.similarity >= threshold)
        .sort((a, b) => b.similarity - a.similarity)
        .slice(0, input.MaxFaces ?? 4096);
      return {
        SearchedFaceBoundingBox: ratioBox(searched.box, rgb),
        SearchedFaceConfidence: confidence(searched.confidence),
        FaceMatches: matches.map((m) => ({
          Similarity: Number(m.similarity.toFixed(4)),
          Face: faceOut(m.f),
        })),
        FaceModelVersion: c.faceModelVersion,
      };
    },
    async DetectFaces(req, input) {
      authorize(req, 'DetectFaces', '*');
      const { rgb, engine } = await describeImage(req, input.Image);
      const faces = largestFirst(await engine.describe(rgb)).slice(0, MAX_FACES_PER_IMAGE);
      return { FaceDetails: faces.map((f) => faceDetail(f, rgb)) };
    },
    async DetectLabels(req, input) {
      authorize(req, 'DetectLabels', '*');
      const { rgb, engine } = await describeImage(req, input.Image);
      const minConfidence = input.MinConfidence ?? 55;
      const faces = (await engine.detect(rgb)).filter((f) => f.confidence * 100 >= minConfidence);
      const labels = personLabels(largestFirst(faces), rgb)
        .filter((l) => l.Confidence >= minConfidence)
        .sort((a, b) => b.Confidence - a.Confidence)
        .slice(0, input.MaxLabels ?? 1000);
      return { Labels: labels, LabelModelVersion: LABEL_MODEL_VERSION };
    },
  };

  return {
    signingName: 'rekognition',
    protocol: 'json',
    uriEscapePath: true,
    errorResponse: (err, r) => errorBody(err, r.requestId),
    async handle(req) {
      if (req.method !== 'POST') throw invalidParameter('Rekognition requests are POST requests');
      const target = req.headers['x-amz-target'];
      const name =
        typeof target === 'string' && target.startsWith(TARGET_PREFIX)
          ? target.slice(TARGET_PREFIX.length)
          : '';
      if (!Object.hasOwn(Schemas, name)) {
        throw new RekognitionError('UnknownOperationException', `Unknown operation ${String(target)}`);
      }
      const op = name as Operation;
      let raw: unknown = {};
      if (req.body.length > 0) {
        try {
          raw = JSON.parse(req.body.toString('utf8'));
        } catch {
          throw new RekognitionError('SerializationException', 'the request body is not valid JSON');
        }
      }
      const input = parseInput(Schemas[op], raw);
      const out = await (ops[op] as (req: ServiceRequest, input: unknown) => Promise<unknown>)(req, input);
      return {
        status: 200,
        headers: { 'content-type': 'application/x-amz-json-1.1' },
        body: JSON.stringify(out),
      };
    },
  };
}
