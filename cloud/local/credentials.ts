/**
 * The AWS credentials the local cloud accepts on its HTTP endpoints.
 *
 * - The account's root access key is created with the data dir and kept in `{dataDir}/credentials.json`
 *   (mode 0600).
 * - Temporary credentials of role sessions (issued by STS AssumeRole, or by the local Lambda runtime for
 *   an execution role) are kept in `{dataDir}/sessions.json` (mode 0600), so they keep working across
 *   restarts until they expire. A session stays on record for a day after it expires, so that a late
 *   caller is told its token expired (`ExpiredToken`) rather than that it is unknown; then it is pruned.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { StateCorruptError } from './errors.js';
import { readJsonFile, writeJsonFile } from './store.js';

/** What a role session's credentials stand for. */
export interface RoleSessionInfo {
  /** The role the session is of (its source role). */
  roleName: string;
  roleArn: string;
  /** The role's unique id (`AROA...`) when the session was issued; a re-created role has another. */
  roleId: string;
  /** RoleSessionName. */
  sessionName: string;
  /** The inline session policy (JSON text) passed to AssumeRole, if any. */
  sessionPolicy?: string;
  /** Who asked for the session: the caller's ARN, or the service (e.g. `lambda.amazonaws.com`). */
  issuedBy: string;
  /** ISO 8601. */
  issuedAt: string;
}

export interface CredentialRecord {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** ISO 8601; absent for long-term keys. */
  expiration?: string;
  /**
   * The identity the key belongs to, e.g. `arn:aws:iam::000000000000:root`, or
   * `arn:aws:sts::000000000000:assumed-role/ROLE/SESSION` for a role session.
   */
  principalArn: string;
  /** Set for the temporary credentials of a role session. */
  session?: RoleSessionInfo;
}

const RootFileSchema = z.object({
  accessKeyId: z.string().min(16),
  secretAccessKey: z.string().min(16),
});

const SessionRecordSchema = z.object({
  accessKeyId: z.string().regex(/^ASIA[A-Z2-7]{16}$/),
  secretAccessKey: z.string().min(16),
  sessionToken: z.string().min(16),
  expiration: z.iso.datetime(),
  principalArn: z.string().startsWith('arn:'),
  session: z.object({
    roleName: z.string().min(1),
    roleArn: z.string().startsWith('arn:'),
    roleId: z.string().min(1),
    sessionName: z.string().min(2),
    sessionPolicy: z.string().optional(),
    issuedBy: z.string().min(1),
    issuedAt: z.iso.datetime(),
  }),
});

const SessionsFileSchema = z.object({ sessions: z.array(SessionRecordSchema) });

/** How long a session stays on record after it expires (to answer ExpiredToken), in ms. */
export const EXPIRED_SESSION_RETENTION_MS = 24 * 60 * 60 * 1000;

const KEY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** `prefix` followed by `length` random characters of A-Z and 2-7, as AWS access key ids and unique ids. */
export function randomIdentifier(prefix: string, length = 16): string {
  const bytes = randomBytes(length);
  let id = prefix;
  for (const b of bytes) id += KEY_ALPHABET[b % KEY_ALPHABET.length];
  return id;
}

/** An ISO 8601 timestamp with whole seconds, as STS writes `Expiration`. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface IssueSessionInput {
  principalArn: string;
  session: Omit<RoleSessionInfo, 'issuedAt'>;
  durationSeconds: number;
  /** Pads the session token to at least this many characters (AssumeRole MinimumSessionTokenSize). */
  minimumTokenSize?: number;
}

export class CredentialStore {
  readonly root: CredentialRecord;
  private readonly extra = new Map<string, CredentialRecord>();
  private readonly sessionsFile: string;

  constructor(dataDir: string, accountId: string) {
    const file = join(dataDir, 'credentials.json');
    const loaded = readJsonFile<unknown>(file);
    let root: z.infer<typeof RootFileSchema>;
    if (loaded === undefined) {
      root = { accessKeyId: randomIdentifier('AKIA'), secretAccessKey: randomBytes(30).toString('base64') };
      writeJsonFile(file, root, 0o600);
    } else {
      const parsed = RootFileSchema.safeParse(loaded);
      if (!parsed.success) throw new StateCorruptError(`${file}: ${parsed.error.issues[0]?.message}`);
      root = parsed.data;
    }
    this.root = { ...root, principalArn: `arn:aws:iam::${accountId}:root` };
    this.sessionsFile = join(dataDir, 'sessions.json');
    this.loadSessions();
  }

  /** Adds credentials issued at run time; those with an expiration are persisted in the data dir. */
  add(record: CredentialRecord): void {
    this.extra.set(record.accessKeyId, record);
    if (record.expiration !== undefined) this.saveSessions();
  }

  /** Creates, stores and returns the temporary credentials of a role session. */
  issueSession(input: IssueSessionInput): CredentialRecord {
    const now = Date.now();
    let sessionToken = randomBytes(288).toString('base64');
    const minimum = input.minimumTokenSize ?? 0;
    while (sessionToken.length < minimum) sessionToken += randomBytes(96).toString('base64');
    const record: CredentialRecord = {
      accessKeyId: randomIdentifier('ASIA'),
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken,
      expiration: isoSeconds(now + input.durationSeconds * 1000),
      principalArn: input.principalArn,
      session: { ...input.session, issuedAt: isoSeconds(now) },
    };
    this.pruneExpired(now);
    this.add(record);
    return record;
  }

  /** The record of an access key, including an expired session still on record; undefined if unknown. */
  lookup(accessKeyId: string): CredentialRecord | undefined {
    if (accessKeyId === this.root.accessKeyId) return this.root;
    return this.extra.get(accessKeyId);
  }

  /** The role sessions on record (unexpired and recently expired). */
  sessions(): CredentialRecord[] {
    return [...this.extra.values()].filter((r) => r.session !== undefined);
  }

  /** Drops sessions that expired more than {@link EXPIRED_SESSION_RETENTION_MS} ago; returns how many. */
  pruneExpired(now = Date.now()): number {
    let pruned = 0;
    for (const [id, r] of this.extra) {
      if (r.expiration !== undefined && Date.parse(r.expiration) + EXPIRED_SESSION_RETENTION_MS <= now) {
        this.extra.delete(id);
        pruned++;
      }
    }
    if (pruned > 0) this.saveSessions();
    return pruned;
  }

  private loadSessions(): void {
    const loaded = readJsonFile<unknown>(this.sessionsFile);
    if (loaded === undefined) return;
    const parsed = SessionsFileSchema.safeParse(loaded);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new StateCorruptError(`${this.sessionsFile}: ${issue?.path.join('.')}: ${issue?.message}`);
    }
    for (const s of parsed.data.sessions) this.extra.set(s.accessKeyId, s);
    this.pruneExpired();
  }

  private saveSessions(): void {
    const sessions = [...this.extra.values()].filter((r) => r.expiration !== undefined && r.session);
    writeJsonFile(this.sessionsFile, { sessions }, 0o600);
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
