/**
 * Data aggregation: records of one thing and stream are grouped into gzip NDJSON objects, closed by a
 * maximum number of records, a maximum size or a maximum age, and uploaded to
 * `raw/{thing}/{stream}/dt=YYYY-MM-DD/hour=HH/{batchId}.ndjson.gz`.
 *
 * A batch is cut from the spool's entries in sequence order, and its id is made of the first and last
 * sequence numbers it holds: after a crash or a retry the same entries give the same batch, the same key
 * and the same bytes, so an upload with `If-None-Match: *` can never duplicate data.
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { z } from 'zod';
import { EdgeError } from './errors.js';

export class BatchingError extends EdgeError {}

function int(min: number, max: number) {
  const range = `must be an integer from ${min} to ${max}`;
  return z
    .number({ error: (i) => (i.input === undefined ? 'is required' : 'must be a number') })
    .int(range)
    .min(min, range)
    .max(max, range);
}

export const BatchLimitsSchema = z.strictObject(
  {
    maxRecords: int(1, 1_000_000).default(10_000),
    /** Uncompressed NDJSON bytes. */
    maxBytes: int(1024, 512 * 1024 * 1024).default(8 * 1024 * 1024),
    maxAgeMs: int(100, 86_400_000).default(60_000),
    /**
     * zlib level of the objects. 3 takes about half the CPU of zlib's default 6 for objects about 9%
     * larger (NDJSON telemetry): a gateway's two cores have more to do.
     */
    gzipLevel: int(1, 9).default(3),
  },
  { error: (i) => (i.input === undefined ? 'is required' : 'must be an object') },
);

export type BatchLimits = z.output<typeof BatchLimitsSchema>;

/** One spooled record: its sequence number in the stream, its time, and its JSON text. */
export interface BatchEntry {
  seq: number;
  /** Epoch milliseconds the record was accepted. */
  ts: number;
  /**
   * The record as one line of JSON (no newline), as text or as its UTF-8 bytes; or, when `records` is
   * more than 1, that many records separated by newlines (no newline at the end).
   */
  json: string | Uint8Array;
  /** Records in `json`; default 1. */
  records?: number;
}

export interface Batch {
  thingName: string;
  stream: string;
  batchId: string;
  key: string;
  firstSeq: number;
  lastSeq: number;
  records: number;
  uncompressedBytes: number;
  /** The NDJSON bytes (one record per line, a newline after each); {@link gzipBatch} makes the body. */
  ndjson: Buffer;
}

export type CloseReason = 'records' | 'bytes' | 'age' | 'shutdown';

const NEWLINE = 0x0a;
const LF = Buffer.from('\n');

/** Sequence numbers are zero-padded so that batch keys sort in stream order. */
const pad = (n: number) => String(n).padStart(12, '0');

export function batchId(firstSeq: number, lastSeq: number): string {
  return `${pad(firstSeq)}-${pad(lastSeq)}`;
}

export function batchKey(thingName: string, stream: string, firstTs: number, id: string): string {
  const iso = new Date(firstTs).toISOString();
  return `raw/${thingName}/${stream}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/${id}.ndjson.gz`;
}

/**
 * Decides whether the entries at the head of a stream make a closed batch now, and which. `entries`
 * are the unacknowledged entries in sequence order. Returns undefined while the head batch is still open.
 */
export function cutBatch(
  thingName: string,
  stream: string,
  entries: readonly BatchEntry[],
  limits: BatchLimits,
  now: number,
  shuttingDown = false,
): { batch: Batch; reason: CloseReason } | undefined {
  if (entries.length === 0) return undefined;
  let bytes = 0;
  let count = 0;
  let taken = 0;
  let reason: CloseReason | undefined;
  for (const e of entries) {
    const n = e.records ?? 1;
    if (n === 1) {
      const newline = typeof e.json === 'string' ? e.json.includes('\n') : e.json.includes(NEWLINE);
      if (newline) throw new BatchingError(`record ${e.seq} of ${stream} holds a newline`);
    }
    const size = (typeof e.json === 'string' ? Buffer.byteLength(e.json) : e.json.byteLength) + 1;
    if (count > 0 && (bytes + size > limits.maxBytes || count + n > limits.maxRecords)) {
      reason = bytes + size > limits.maxBytes ? 'bytes' : 'records';
      break;
    }
    bytes += size;
    count += n;
    taken += 1;
    if (count >= limits.maxRecords) {
      reason = 'records';
      break;
    }
    if (bytes >= limits.maxBytes) {
      reason = 'bytes';
      break;
    }
  }
  const first = entries[0]!;
  if (!reason) {
    if (now - first.ts >= limits.maxAgeMs) reason = 'age';
    else if (shuttingDown) reason = 'shutdown';
    else return undefined;
  }
  const chosen = entries.slice(0, taken);
  const last = chosen[chosen.length - 1]!;
  const parts: Uint8Array[] = [];
  for (const e of chosen) parts.push(typeof e.json === 'string' ? Buffer.from(e.json) : e.json, LF);
  const ndjson = Buffer.concat(parts, bytes);
  const id = batchId(first.seq, last.seq);
  return {
    reason,
    batch: {
      thingName,
      stream,
      batchId: id,
      key: batchKey(thingName, stream, first.ts, id),
      firstSeq: first.seq,
      lastSeq: last.seq,
      records: count,
      uncompressedBytes: ndjson.length,
      ndjson,
    },
  };
}

const gzipAsync = promisify(gzip);

/**
 * The object body of a batch: gzip of its text at `level`, on the thread pool (not the event loop).
 * No name and mtime 0 (zlib's defaults), so the same text always gives the same bytes.
 */
export function gzipBatch(batch: Pick<Batch, 'ndjson'>, level: number): Promise<Buffer> {
  return gzipAsync(batch.ndjson, { level });
}
