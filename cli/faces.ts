/**
 * `edgefleet faces index|search`: enrol a person's face into a Rekognition collection and look people up,
 * against the local cloud running on the data dir (found through its runtime.json, called with the
 * account's root credentials) or, with `--aws`, against AWS with the default credential chain.
 */
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import {
  type BoundingBox,
  CreateCollectionCommand,
  IndexFacesCommand,
  RekognitionClient,
  RekognitionServiceException,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  SearchFacesByImageCommand,
} from '@aws-sdk/client-rekognition';
import type { Command } from 'commander';
import { z } from 'zod';
import { CliError } from './errors.js';
import { parseFlags } from './options.js';
import { clientConfigFor } from './target.js';

const TargetFlags = z.object({
  collection: z
    .string()
    .min(1, 'is required')
    .max(255)
    .regex(/^[a-zA-Z0-9_.-]+$/, 'must be letters, digits, _ . -'),
  image: z.string().min(1, 'is required'),
  dataDir: z.string().min(1).default('.edgefleet'),
  region: z.string().min(1).optional(),
  aws: z.boolean().default(false),
});

const IndexFlags = TargetFlags.extend({
  name: z
    .string()
    .min(1, 'is required')
    .max(255)
    .regex(/^[a-zA-Z0-9_.\-:]+$/, 'must be letters, digits, _ . - : (a Rekognition ExternalImageId)'),
});

const SearchFlags = TargetFlags.extend({
  threshold: z.coerce.number().min(0, 'must be 0..100').max(100, 'must be 0..100').default(80),
  maxFaces: z.coerce.number().int().min(1).max(4096).default(10),
});

export interface FacesIo {
  out: Writable;
  /** A client to use instead of the one the flags describe (tests). */
  client?: RekognitionClient;
}

/** The Rekognition client the flags ask for: AWS (default chain) or the running local cloud. */
function clientFor(flags: z.output<typeof TargetFlags>): RekognitionClient {
  return new RekognitionClient(clientConfigFor(flags));
}

async function readImage(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new CliError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 2, {
      cause: err,
    });
  }
}

/** Service errors become exit 1 with the exception's name and message. */
async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RekognitionServiceException) {
      throw new CliError(`${what} failed: ${err.name}: ${err.message}`, 1, { cause: err });
    }
    throw err;
  }
}

const pct = (v: number | undefined) => (v ?? 0).toFixed(1);
function box(b: BoundingBox | undefined): string {
  const f = (v: number | undefined) => (v ?? 0).toFixed(3);
  return `left=${f(b?.Left)} top=${f(b?.Top)} width=${f(b?.Width)} height=${f(b?.Height)}`;
}

async function withClient<T>(
  flags: z.output<typeof TargetFlags>,
  io: FacesIo,
  fn: (c: RekognitionClient) => Promise<T>,
) {
  const client = io.client ?? clientFor(flags);
  try {
    return await fn(client);
  } finally {
    if (!io.client) client.destroy();
  }
}

/** `faces index --collection C --image FILE --name NAME`: indexes the faces of the image (creating C if missing). */
export async function facesIndex(raw: Record<string, unknown>, io: FacesIo = { out: process.stdout }) {
  const flags = parseFlags(IndexFlags, raw);
  const bytes = await readImage(flags.image);
  await withClient(flags, io, async (client) => {
    const index = () =>
      client.send(
        new IndexFacesCommand({
          CollectionId: flags.collection,
          Image: { Bytes: bytes },
          ExternalImageId: flags.name,
          QualityFilter: 'AUTO',
        }),
      );
    const out = await call('IndexFaces', async () => {
      try {
        return await index();
      } catch (err) {
        if (!(err instanceof ResourceNotFoundException)) throw err;
        await client
          .send(new CreateCollectionCommand({ CollectionId: flags.collection }))
          .catch((e: unknown) => {
            if (!(e instanceof ResourceAlreadyExistsException)) throw e;
          });
        io.out.write(`created collection ${flags.collection}\n`);
        return index();
      }
    });
    const records = out.FaceRecords ?? [];
    io.out.write(
      `indexed ${records.length} face(s) of ${flags.image} as ${flags.name} into ${flags.collection}\n`,
    );
    for (const r of records) {
      io.out.write(
        `  face ${r.Face?.FaceId}  ${box(r.Face?.BoundingBox)}  confidence ${pct(r.Face?.Confidence)}\n`,
      );
    }
    for (const u of out.UnindexedFaces ?? []) {
      io.out.write(`  not indexed (${(u.Reasons ?? []).join(', ')})  ${box(u.FaceDetail?.BoundingBox)}\n`);
    }
    if (records.length === 0) throw new CliError(`no face of ${flags.image} was indexed`, 1);
  });
}

/**
 * `faces search --collection C --image FILE [--threshold N]`: the largest face of the image against the
 * collection. Exits 1 when nobody matches (like grep).
 */
export async function facesSearch(raw: Record<string, unknown>, io: FacesIo = { out: process.stdout }) {
  const flags = parseFlags(SearchFlags, raw);
  const bytes = await readImage(flags.image);
  await withClient(flags, io, async (client) => {
    const out = await call('SearchFacesByImage', () =>
      client.send(
        new SearchFacesByImageCommand({
          CollectionId: flags.collection,
          Image: { Bytes: bytes },
          FaceMatchThreshold: flags.threshold,
          MaxFaces: flags.maxFaces,
        }),
      ),
    );
    io.out.write(
      `searched face  ${box(out.SearchedFaceBoundingBox)}  confidence ${pct(out.SearchedFaceConfidence)}\n`,
    );
    const matches = out.FaceMatches ?? [];
    for (const m of matches) {
      io.out.write(
        `  match ${m.Face?.ExternalImageId ?? '(no name)'}  similarity ${pct(m.Similarity)}  face ${m.Face?.FaceId}  ${box(m.Face?.BoundingBox)}\n`,
      );
    }
    if (matches.length === 0) {
      throw new CliError(`no face in ${flags.collection} matches with similarity >= ${flags.threshold}`, 1);
    }
  });
}

export function registerFacesCommands(program: Command): void {
  const faces = program
    .command('faces')
    .description('face collections (Rekognition) of the running local cloud, or of AWS with --aws');
  const common = (c: Command) =>
    c
      .requiredOption('--collection <id>', 'collection id')
      .requiredOption('--image <file>', 'JPEG or PNG image (at most 5 MB)')
      .option('--data-dir <dir>', 'state directory of the running local cloud', '.edgefleet')
      .option('--region <region>', 'AWS region (local cloud: us-east-1)')
      .option('--aws', 'call AWS with the default credential chain instead of the local cloud', false);
  common(faces.command('index'))
    .description('index the faces of an image under a name, creating the collection if missing')
    .requiredOption('--name <name>', 'the person (ExternalImageId: letters, digits, _ . - :)')
    .action((o: Record<string, unknown>) => facesIndex(o));
  common(faces.command('search'))
    .description('search the collection for the largest face of an image; exits 1 when nobody matches')
    .option('--threshold <similarity>', 'minimum similarity, 0..100', '80')
    .option('--max-faces <n>', 'most matches to print', '10')
    .action((o: Record<string, unknown>) => facesSearch(o));
}
