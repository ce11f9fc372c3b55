/**
 * The agent's durable state: `{dir}/state.json`, written atomically (temp file, fsync, rename, fsync of
 * the directory) before each step's side effects, so that a restart knows where an update stopped.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { FirmwareReportSchema, ManifestSchema } from '../../protocol/firmware.js';
import { FirmwareStateError } from './errors.js';

/** Steps of an update in progress, in order. */
export const UPDATE_STEPS = ['downloading', 'verifying', 'applying', 'testing'] as const;
export type UpdateStep = (typeof UPDATE_STEPS)[number];

export const InProgressSchema = z.object({
  manifest: ManifestSchema,
  downloadUrl: z.string().url(),
  rolloutId: z.string().optional(),
  step: z.enum(UPDATE_STEPS),
});
export type InProgress = z.infer<typeof InProgressSchema>;

export const AgentStateSchema = z.object({
  /** The anti-rollback floor: the highest version ever committed (initially `currentVersion`). */
  floor: z.string(),
  /** The version running now. */
  current: z.string(),
  /** The version that ran before `current` was committed. */
  previous: z.string().optional(),
  inProgress: InProgressSchema.optional(),
  /** The last report, sent again on every connect. */
  last: FirmwareReportSchema.optional(),
  /** Signature of the last manifest that ended in failed or rolled_back for good: not tried again. */
  lastRefused: z.string().optional(),
});
export type AgentState = z.infer<typeof AgentStateSchema>;

/** Reads the state file; undefined when there is none yet. */
export async function loadState(file: string): Promise<AgentState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FirmwareStateError(`cannot read firmware state ${file}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FirmwareStateError(`firmware state ${file} is not valid JSON`, { cause: err });
  }
  const r = AgentStateSchema.safeParse(json);
  if (!r.success) throw new FirmwareStateError(`firmware state ${file} is invalid: ${r.error.message}`);
  return r.data;
}

/** fsync of a directory, so that a rename in it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** Writes the state file atomically and durably. */
export async function saveState(file: string, state: AgentState): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true });
    const fd = await open(tmp, 'w');
    try {
      await fd.writeFile(`${JSON.stringify(AgentStateSchema.parse(state), null, 2)}\n`);
      await fd.sync();
    } finally {
      await fd.close();
    }
    await rename(tmp, file);
    await syncDir(dirname(file));
  } catch (err) {
    throw new FirmwareStateError(`cannot write firmware state ${file}`, { cause: err });
  }
}

/** Where the agent keeps things under `dir`. */
export function firmwarePaths(dir: string) {
  return {
    state: join(dir, 'state.json'),
    downloads: join(dir, 'downloads'),
    part: (version: string) => join(dir, 'downloads', `${version}.part`),
    versions: join(dir, 'versions'),
    versionDir: (version: string) => join(dir, 'versions', version),
    artifact: (version: string) => join(dir, 'versions', version, 'firmware.bin'),
    current: join(dir, 'current'),
  };
}
