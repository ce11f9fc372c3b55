/**
 * The AWS credentials the local cloud accepts on its HTTP endpoints. The account's root access key is
 * created with the data dir and kept in `{dataDir}/credentials.json` (mode 0600).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { StateCorruptError } from './errors.js';
import { readJsonFile, writeJsonFile } from './store.js';

export interface CredentialRecord {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** ISO 8601; absent for long-term keys. */
  expiration?: string;
  /** The identity the key belongs to, e.g. `arn:aws:iam::000000000000:root`. */
  principalArn: string;
}

const RootFileSchema = z.object({
  accessKeyId: z.string().min(16),
  secretAccessKey: z.string().min(16),
});

function randomKeyId(prefix: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = randomBytes(16);
  let id = prefix;
  for (const b of bytes) id += alphabet[b % alphabet.length];
  return id;
}

export class CredentialStore {
  readonly root: CredentialRecord;
  private readonly extra = new Map<string, CredentialRecord>();

  constructor(dataDir: string, accountId: string) {
    const file = join(dataDir, 'credentials.json');
    const loaded = readJsonFile<unknown>(file);
    let root: z.infer<typeof RootFileSchema>;
    if (loaded === undefined) {
      root = { accessKeyId: randomKeyId('AKIA'), secretAccessKey: randomBytes(30).toString('base64') };
      writeJsonFile(file, root, 0o600);
    } else {
      const parsed = RootFileSchema.safeParse(loaded);
      if (!parsed.success) throw new StateCorruptError(`${file}: ${parsed.error.issues[0]?.message}`);
      root = parsed.data;
    }
    this.root = { ...root, principalArn: `arn:aws:iam::${accountId}:root` };
  }

  /** Adds credentials issued at run time (for example by STS). */
  add(record: CredentialRecord): void {
    this.extra.set(record.accessKeyId, record);
  }

  lookup(accessKeyId: string): CredentialRecord | undefined {
    if (accessKeyId === this.root.accessKeyId) return this.root;
    return this.extra.get(accessKeyId);
  }
}

/**
 * Reads the account's root access key from `{dataDir}/credentials.json`, for a client in another
 * process than the local cloud; undefined if the data dir has none yet.
 */
export function readRootCredentials(
  dataDir: string,
): { accessKeyId: string; secretAccessKey: string } | undefined {
  const file = join(dataDir, 'credentials.json');
  const loaded = readJsonFile<unknown>(file);
  if (loaded === undefined) return undefined;
  const parsed = RootFileSchema.safeParse(loaded);
  if (!parsed.success) throw new StateCorruptError(`${file}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
