/**
 * The local Rekognition through the unchanged `@aws-sdk/client-rekognition`: collections, IndexFaces,
 * SearchFacesByImage, ListFaces/DeleteFaces, DetectFaces, DetectLabels, S3Object images, the documented
 * errors, and collections surviving a restart.
 *
 * The people (picked by inspecting face-api's demo photos): the dark-haired woman in the middle of
 * sample1 is the woman on the right of sample2 (the largest face there); nobody in sample5 is her.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  AccessDeniedException,
  CreateCollectionCommand,
  DeleteCollectionCommand,
  DeleteFacesCommand,
  DetectFacesCommand,
  DetectLabelsCommand,
  ImageTooLargeException,
  IndexFacesCommand,
  InvalidImageFormatException,
  InvalidParameterException,
  InvalidS3ObjectException,
  ListCollectionsCommand,
  ListFacesCommand,
  RekognitionClient,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  SearchFacesByImageCommand,
} from '@aws-sdk/client-rekognition';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import sharp from 'sharp';
import { facesIndex, facesSearch } from '../../cli/faces.js';
import { FACE_COLLECTION_ID, UPLOAD_ROLE_NAME } from '../../cloud/rules/resources.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const require = createRequire(import.meta.url);
const DEMO = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
const sample = (n: number): Promise<Buffer> => readFile(join(DEMO, `sample${n}.jpg`));

const dir = tempDir();
let tc: TestCloud;
let rek: RekognitionClient;
/** sample1 cropped to the woman in the middle. */
let enrolled: Buffer;
let two: Buffer;
let five: Buffer;

beforeAll(async () => {
  tc = await startTestCloud(dir);
  rek = new RekognitionClient(tc.cloud.sdkConfig());
  enrolled = await sharp(await sample(1))
    .extract({ left: 700, top: 250, width: 460, height: 560 })
    .jpeg()
    .toBuffer();
  two = await sample(2);
  five = await sample(5);
}, 60_000);

afterAll(async () => {
  rek?.destroy();
  await tc?.stop();
  removeDir(dir);
});

const inUnit = (b: { Left?: number; Top?: number; Width?: number; Height?: number } | undefined) => {
  expect(b).toBeDefined();
  for (const v of [b!.Left, b!.Top, b!.Width, b!.Height]) {
    expect(v).toBeGreaterThanOrEqual(0);
    expect(v).toBeLessThanOrEqual(1);
  }
  expect(b!.Left! + b!.Width!).toBeLessThanOrEqual(1.000001);
  expect(b!.Top! + b!.Height!).toBeLessThanOrEqual(1.000001);
};

describe('collections and faces', () => {
  let faceId = '';

  it('creates, lists and refuses a duplicate collection', async () => {
    const created = await rek.send(new CreateCollectionCommand({ CollectionId: 'staff' }));
    expect(created.StatusCode).toBe(200);
    expect(created.CollectionArn).toMatch(/:rekognition:[a-z0-9-]+:\d{12}:collection\/staff$/);
    expect(created.FaceModelVersion).toBeTruthy();
    await expect(rek.send(new CreateCollectionCommand({ CollectionId: 'staff' }))).rejects.toBeInstanceOf(
      ResourceAlreadyExistsException,
    );
    await rek.send(new CreateCollectionCommand({ CollectionId: 'visitors' }));
    const listed = await rek.send(new ListCollectionsCommand({}));
    // The gateway's face collection exists from the start (the stack creates it on AWS).
    expect(listed.CollectionIds).toEqual([FACE_COLLECTION_ID, 'staff', 'visitors']);
    const first = await rek.send(new ListCollectionsCommand({ MaxResults: 2 }));
    expect(first.CollectionIds).toEqual([FACE_COLLECTION_ID, 'staff']);
    const rest = await rek.send(new ListCollectionsCommand({ MaxResults: 2, NextToken: first.NextToken }));
    expect(rest.CollectionIds).toEqual(['visitors']);
    expect(rest.NextToken).toBeUndefined();
  });

  it('indexes a face with its external image id', async () => {
    const out = await rek.send(
      new IndexFacesCommand({
        CollectionId: 'staff',
        Image: { Bytes: enrolled },
        ExternalImageId: 'alice',
        MaxFaces: 1,
        QualityFilter: 'AUTO',
      }),
    );
    expect(out.FaceRecords).toHaveLength(1);
    const face = out.FaceRecords![0]!.Face!;
    expect(face.FaceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(face.ImageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(face.ExternalImageId).toBe('alice');
    expect(face.Confidence).toBeGreaterThan(50);
    inUnit(face.BoundingBox);
    const detail = out.FaceRecords![0]!.FaceDetail!;
    inUnit(detail.BoundingBox);
    expect(detail.Landmarks?.map((l) => l.Type)).toEqual(
      expect.arrayContaining(['eyeLeft', 'eyeRight', 'nose', 'mouthLeft', 'mouthRight']),
    );
    faceId = face.FaceId!;
  });

  it('finds the enrolled person in another photo', async () => {
    const out = await rek.send(
      new SearchFacesByImageCommand({ CollectionId: 'staff', Image: { Bytes: two }, MaxFaces: 5 }),
    );
    // The largest face of sample2 is the woman on the right.
    expect(out.SearchedFaceBoundingBox!.Left).toBeGreaterThan(0.7);
    expect(out.SearchedFaceConfidence).toBeGreaterThan(50);
    expect(out.FaceMatches).toHaveLength(1);
    const match = out.FaceMatches![0]!;
    expect(match.Similarity).toBeGreaterThanOrEqual(80);
    expect(match.Face).toMatchObject({ FaceId: faceId, ExternalImageId: 'alice' });
  });

  it('does not find someone who is not enrolled', async () => {
    const out = await rek.send(
      new SearchFacesByImageCommand({ CollectionId: 'staff', Image: { Bytes: five } }),
    );
    expect(out.SearchedFaceBoundingBox).toBeDefined();
    expect(out.FaceMatches).toEqual([]);
    // With no threshold the same face is returned, with a low similarity.
    const all = await rek.send(
      new SearchFacesByImageCommand({ CollectionId: 'staff', Image: { Bytes: five }, FaceMatchThreshold: 0 }),
    );
    expect(all.FaceMatches).toHaveLength(1);
    expect(all.FaceMatches![0]!.Similarity).toBeLessThan(80);
  });

  it('lists faces page by page and deletes them', async () => {
    // Three more faces (all of sample5's largest), for pagination.
    const more = await rek.send(
      new IndexFacesCommand({ CollectionId: 'visitors', Image: { Bytes: five }, MaxFaces: 3 }),
    );
    expect(more.FaceRecords).toHaveLength(3);
    expect(more.UnindexedFaces?.some((u) => u.Reasons?.includes('EXCEEDS_MAX_FACES'))).toBe(true);
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await rek.send(
        new ListFacesCommand({ CollectionId: 'visitors', MaxResults: 2, NextToken: token }),
      );
      expect(page.Faces!.length).toBeLessThanOrEqual(2);
      ids.push(...page.Faces!.map((f) => f.FaceId!));
      token = page.NextToken;
    } while (token);
    expect(ids.sort()).toEqual(more.FaceRecords!.map((r) => r.Face!.FaceId!).sort());
    const missing = '00000000-0000-4000-8000-000000000000';
    const del = await rek.send(
      new DeleteFacesCommand({ CollectionId: 'visitors', FaceIds: [ids[0]!, missing] }),
    );
    expect(del.DeletedFaces).toEqual([ids[0]]);
    expect(del.UnsuccessfulFaceDeletions).toEqual([{ FaceId: missing, Reasons: ['FACE_NOT_FOUND'] }]);
    const after = await rek.send(new ListFacesCommand({ CollectionId: 'visitors' }));
    expect(after.Faces).toHaveLength(2);
    await rek.send(new DeleteCollectionCommand({ CollectionId: 'visitors' }));
    expect((await rek.send(new ListCollectionsCommand({}))).CollectionIds).toEqual([
      FACE_COLLECTION_ID,
      'staff',
    ]);
  });
});

describe('detection', () => {
  it('DetectFaces gives a box, confidence and landmarks for each face', async () => {
    const out = await rek.send(new DetectFacesCommand({ Image: { Bytes: await sample(1) } }));
    expect(out.FaceDetails).toHaveLength(3);
    for (const d of out.FaceDetails!) {
      inUnit(d.BoundingBox);
      expect(d.Confidence).toBeGreaterThan(50);
      const nose = d.Landmarks!.find((l) => l.Type === 'nose')!;
      expect(nose.X).toBeGreaterThan(d.BoundingBox!.Left!);
      expect(nose.X).toBeLessThan(d.BoundingBox!.Left! + d.BoundingBox!.Width!);
      expect(d.Pose).toBeDefined();
      expect(d.Quality?.Brightness).toBeGreaterThan(0);
    }
    // sample1's faces are ~180-200 px of 1920 wide.
    const widths = out.FaceDetails!.map((d) => d.BoundingBox!.Width!);
    for (const w of widths) expect(w).toBeGreaterThan(0.07);
  });

  it('DetectLabels gives Person and Face with instances', async () => {
    const out = await rek.send(
      new DetectLabelsCommand({ Image: { Bytes: await sample(1) }, MinConfidence: 60 }),
    );
    expect(out.LabelModelVersion).toBeTruthy();
    const person = out.Labels!.find((l) => l.Name === 'Person')!;
    const face = out.Labels!.find((l) => l.Name === 'Face')!;
    expect(person.Instances).toHaveLength(3);
    expect(face.Instances).toHaveLength(3);
    expect(face.Parents).toEqual(expect.arrayContaining([{ Name: 'Person' }, { Name: 'Head' }]));
    expect(person.Categories).toEqual([{ Name: 'Person Description' }]);
    for (const i of [...person.Instances!, ...face.Instances!]) {
      inUnit(i.BoundingBox);
      expect(i.Confidence).toBeGreaterThanOrEqual(60);
    }
    // Each person's box contains that person's face box.
    const faceBoxes = face.Instances!.map((i) => i.BoundingBox!);
    for (const fb of faceBoxes) {
      const holder = person.Instances!.find(
        (p) =>
          p.BoundingBox!.Left! <= fb.Left! &&
          p.BoundingBox!.Left! + p.BoundingBox!.Width! >= fb.Left! + fb.Width! &&
          p.BoundingBox!.Top! <= fb.Top!,
      );
      expect(holder).toBeDefined();
    }
    const limited = await rek.send(
      new DetectLabelsCommand({ Image: { Bytes: await sample(1) }, MaxLabels: 1 }),
    );
    expect(limited.Labels).toHaveLength(1);
  });

  it('reads images from the local S3 with the caller’s permissions', async () => {
    const bucket = tc.cloud.options.buckets[0]!;
    const s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'frames/cam-1/two.jpg', Body: two }));
    s3.destroy();
    const out = await rek.send(
      new SearchFacesByImageCommand({
        CollectionId: 'staff',
        Image: { S3Object: { Bucket: bucket, Name: 'frames/cam-1/two.jpg' } },
      }),
    );
    expect(out.FaceMatches?.[0]?.Face?.ExternalImageId).toBe('alice');
    await expect(
      rek.send(new DetectFacesCommand({ Image: { S3Object: { Bucket: bucket, Name: 'frames/none.jpg' } } })),
    ).rejects.toBeInstanceOf(InvalidS3ObjectException);
    await expect(
      rek.send(new DetectFacesCommand({ Image: { S3Object: { Bucket: 'no-such-bucket', Name: 'a.jpg' } } })),
    ).rejects.toBeInstanceOf(InvalidS3ObjectException);

    // A role session that may read frames/ but has no Rekognition permission.
    const session = tc.cloud.iam.issueRoleSession(UPLOAD_ROLE_NAME, 'rekognition-test');
    const limited = new RekognitionClient({
      ...tc.cloud.sdkConfig(),
      credentials: {
        accessKeyId: session.accessKeyId,
        secretAccessKey: session.secretAccessKey,
        sessionToken: session.sessionToken!,
      },
    });
    try {
      const denied = await limited
        .send(
          new DetectFacesCommand({ Image: { S3Object: { Bucket: bucket, Name: 'frames/cam-1/two.jpg' } } }),
        )
        .catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(AccessDeniedException);
      expect((denied as AccessDeniedException).message).toMatch(/rekognition:DetectFaces/);
      expect((denied as AccessDeniedException).$metadata.httpStatusCode).toBe(400);
    } finally {
      limited.destroy();
    }
  });
});

describe('documented errors', () => {
  it('ResourceNotFoundException for a missing collection', async () => {
    const err = await rek
      .send(new SearchFacesByImageCommand({ CollectionId: 'nobody', Image: { Bytes: enrolled } }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceNotFoundException);
    expect((err as ResourceNotFoundException).message).toMatch(/nobody/);
    await expect(rek.send(new ListFacesCommand({ CollectionId: 'nobody' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    await expect(rek.send(new DeleteCollectionCommand({ CollectionId: 'nobody' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  it('InvalidImageFormatException for bytes that are not a JPEG or PNG image', async () => {
    await expect(
      rek.send(
        new DetectFacesCommand({ Image: { Bytes: new TextEncoder().encode('definitely not a jpeg') } }),
      ),
    ).rejects.toBeInstanceOf(InvalidImageFormatException);
    const truncated = two.subarray(0, 3000);
    await expect(
      rek.send(new IndexFacesCommand({ CollectionId: 'staff', Image: { Bytes: truncated } })),
    ).rejects.toBeInstanceOf(InvalidImageFormatException);
  });

  it('ImageTooLargeException above 5 MB of image bytes', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 1, 0);
    big.set([0xff, 0xd8, 0xff], 0);
    await expect(rek.send(new DetectFacesCommand({ Image: { Bytes: big } }))).rejects.toBeInstanceOf(
      ImageTooLargeException,
    );
  });

  it('InvalidParameterException for bad parameters and for an image without faces', async () => {
    const err = await rek
      .send(new CreateCollectionCommand({ CollectionId: 'bad/id' }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidParameterException);
    expect((err as Error).message).toMatch(/CollectionId/);
    const blank = await sharp({ create: { width: 200, height: 200, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
    await expect(
      rek.send(new SearchFacesByImageCommand({ CollectionId: 'staff', Image: { Bytes: blank } })),
    ).rejects.toBeInstanceOf(InvalidParameterException);
    const tiny = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
    await expect(rek.send(new DetectFacesCommand({ Image: { Bytes: tiny } }))).rejects.toBeInstanceOf(
      InvalidParameterException,
    );
  });
});

describe('CLI faces index / search', () => {
  it('enrols a name and finds it, exiting 1 when nobody matches', async () => {
    const run = async (fn: typeof facesIndex, flags: Record<string, unknown>) => {
      const out = new PassThrough();
      let text = '';
      out.on('data', (c: Buffer) => {
        text += c.toString();
      });
      const error = await fn(flags, { out, client: rek }).then(
        () => undefined,
        (e: unknown) => e as Error & { exitCode?: number },
      );
      return { text, error };
    };
    const alice = join(dir, 'alice.jpg');
    const group = join(dir, 'group.jpg');
    await writeFile(alice, enrolled);
    await writeFile(group, two);
    const indexed = await run(facesIndex, { collection: 'cli', image: alice, name: 'alice' });
    expect(indexed.error).toBeUndefined();
    expect(indexed.text).toMatch(/created collection cli/);
    expect(indexed.text).toMatch(/indexed 1 face\(s\)/);
    expect(indexed.text).toMatch(/face [0-9a-f-]{36} {2}left=0\.\d{3} top=/);
    const found = await run(facesSearch, { collection: 'cli', image: group });
    expect(found.error).toBeUndefined();
    expect(found.text).toMatch(/match alice {2}similarity \d+\.\d/);
    const strict = await run(facesSearch, { collection: 'cli', image: group, threshold: '99.9' });
    expect(strict.error?.exitCode).toBe(1);
    const bad = await run(facesIndex, { collection: 'cli', image: alice, name: 'two words' });
    expect(bad.error?.message).toMatch(/--name/);
    expect(bad.error?.exitCode).toBe(2);
    await rek.send(new DeleteCollectionCommand({ CollectionId: 'cli' }));
  });
});

describe('persistence', () => {
  it('keeps collections and their faces across a restart', async () => {
    rek.destroy();
    await tc.stop();
    tc = await startTestCloud(dir);
    rek = new RekognitionClient(tc.cloud.sdkConfig());
    expect((await rek.send(new ListCollectionsCommand({}))).CollectionIds).toEqual([
      FACE_COLLECTION_ID,
      'staff',
    ]);
    const faces = await rek.send(new ListFacesCommand({ CollectionId: 'staff' }));
    expect(faces.Faces?.map((f) => f.ExternalImageId)).toEqual(['alice']);
    const out = await rek.send(
      new SearchFacesByImageCommand({ CollectionId: 'staff', Image: { Bytes: two } }),
    );
    expect(out.FaceMatches?.[0]?.Face?.ExternalImageId).toBe('alice');
  });
});
