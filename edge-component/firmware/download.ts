/**
 * Resumable artifact download: bytes are appended to a `.part` file; a retry (or a restart) asks for
 * the rest with an HTTP Range request and starts over only if the server ignores it. More bytes than the
 * manifest declares stop the download at once; the size and hash are the manifest's, never the server's.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Backoff, backoffDelay } from '../backoff.js';
import type { Clock } from '../ports.js';
import { FirmwareAgentStoppedError, FirmwareDownloadError } from './errors.js';

export interface HttpGetResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  body: AsyncIterable<Uint8Array>;
}

/** The HTTP GET the agent downloads with; injectable for tests. */
export type HttpGet = (
  url: string,
  opts: { headers: Record<string, string>; signal: AbortSignal },
) => Promise<HttpGetResponse>;

/** The default HttpGet: the platform's fetch. */
export const fetchHttpGet: HttpGet = async (url, opts) => {
  const res = await fetch(url, { headers: opts.headers, signal: opts.signal });
  const headers: Record<string, string | undefined> = {};
  res.headers.forEach((v, k) => {
    headers[k.toLowerCase()] = v;
  });
  const empty: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };
  return {
    status: res.status,
    headers,
    body: (res.body as AsyncIterable<Uint8Array> | null) ?? empty,
  };
};

export interface DownloadOptions {
  url: string;
  part: string;
  size: number;
  get: HttpGet;
  clock: Clock;
  timeoutMs: number;
  maxAttempts: number;
  backoff: Backoff;
  signal: AbortSignal;
  /** Called with the bytes on disk after each chunk. */
  onProgress: (bytes: number) => void;
  /** Called before each retry, with the error that caused it. */
  onRetry?: (attempt: number, err: FirmwareDownloadError) => void;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** Downloads into `part` until it holds exactly `size` bytes; throws FirmwareDownloadError. */
export async function downloadArtifact(o: DownloadOptions): Promise<void> {
  await mkdir(dirname(o.part), { recursive: true });
  for (let attempt = 1; ; attempt++) {
    try {
      await attemptDownload(o);
      return;
    } catch (err) {
      if (o.signal.aborted) throw new FirmwareAgentStoppedError('stopped during download', { cause: err });
      const e =
        err instanceof FirmwareDownloadError
          ? err
          : new FirmwareDownloadError(`download failed: ${(err as Error).message}`, true, { cause: err });
      if (!e.retryable || attempt >= o.maxAttempts) throw e;
      o.onRetry?.(attempt, e);
      await o.clock.sleep(backoffDelay(attempt, o.backoff), o.signal).catch(() => {});
      if (o.signal.aborted) throw new FirmwareAgentStoppedError('stopped during download', { cause: err });
    }
  }
}

async function attemptDownload(o: DownloadOptions): Promise<void> {
  let offset = await fileSize(o.part);
  if (offset > o.size) {
    await unlink(o.part);
    offset = 0;
  }
  if (offset === o.size) return;
  const ctrl = new AbortController();
  const timer = new AbortController();
  const signal = AbortSignal.any([ctrl.signal, o.signal]);
  void o.clock.sleep(o.timeoutMs, AbortSignal.any([timer.signal, o.signal])).then(
    () => ctrl.abort(new FirmwareDownloadError(`download timed out after ${o.timeoutMs} ms`, true)),
    () => {},
  );
  try {
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const res = await o.get(o.url, { headers, signal });
    if (res.status === 200) {
      offset = 0;
    } else if (res.status === 206) {
      const m = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
      if (!m || Number(m[1]) !== offset) {
        throw new FirmwareDownloadError('server answered the range request with another range', true);
      }
    } else if (res.status === 416) {
      await unlink(o.part).catch(() => {});
      throw new FirmwareDownloadError('server refused the range; starting over', true);
    } else {
      throw new FirmwareDownloadError(
        `download failed: HTTP ${res.status}`,
        res.status >= 500 || res.status === 429,
      );
    }
    const fd = await open(o.part, offset === 0 ? 'w' : 'a');
    let have = offset;
    try {
      for await (const chunk of res.body) {
        if (have + chunk.length > o.size) {
          throw new FirmwareDownloadError(`size larger than declared (${o.size} bytes)`, false);
        }
        await fd.write(chunk);
        have += chunk.length;
        o.onProgress(have);
      }
      await fd.sync();
    } catch (err) {
      if (err instanceof FirmwareDownloadError && !err.retryable) {
        await fd.close().catch(() => {});
        await unlink(o.part).catch(() => {});
        throw err;
      }
      if (ctrl.signal.aborted && ctrl.signal.reason instanceof FirmwareDownloadError)
        throw ctrl.signal.reason;
      throw err;
    } finally {
      await fd.close().catch(() => {});
    }
    if (have < o.size) {
      throw new FirmwareDownloadError(`connection ended after ${have} of ${o.size} bytes`, true);
    }
  } catch (err) {
    if (ctrl.signal.aborted && ctrl.signal.reason instanceof FirmwareDownloadError) throw ctrl.signal.reason;
    throw err;
  } finally {
    timer.abort();
  }
}

/** SHA-256 of a file, lower-case hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
