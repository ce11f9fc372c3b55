/** Shared by the firmware agent tests: signing keys, signed desired documents and an artifact server. */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type FirmwareDesired, signManifest } from '../../protocol/firmware.js';

export interface SigningKey {
  privateKey: KeyObject;
  publicPem: string;
}

export function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Deterministic artifact bytes of a version. */
export function artifactOf(version: string, size = 64 * 1024): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + version.length * 7 + version.charCodeAt(0)) & 0xff;
  return b;
}

export function desired(opts: {
  key: SigningKey;
  keyId?: string;
  version: string;
  artifact: Buffer;
  url: string;
  target?: string;
  size?: number;
  sha256?: string;
  issuedAt?: number;
  expiresAt?: number;
  rolloutId?: string;
}): FirmwareDesired {
  const now = Date.now();
  const manifest = signManifest(
    {
      target: opts.target ?? 'gateway',
      version: opts.version,
      url: `s3://firmware/${opts.version}.bin`,
      size: opts.size ?? opts.artifact.length,
      sha256: opts.sha256 ?? sha256(opts.artifact),
      issuedAt: new Date(opts.issuedAt ?? now - 1000).toISOString(),
      expiresAt: new Date(opts.expiresAt ?? now + 3_600_000).toISOString(),
      keyId: opts.keyId ?? 'k1',
    },
    opts.key.privateKey,
  );
  return { manifest, downloadUrl: opts.url, rolloutId: opts.rolloutId ?? 'rollout-1' };
}

export type Fault =
  /** Serves the artifact with extra bytes appended. */
  | { kind: 'extra'; bytes: number }
  /** Sends this many bytes of the body, then holds the connection open without sending more. */
  | { kind: 'stall'; after: number }
  /** Flips a byte of the body. */
  | { kind: 'tamper' };

/** Serves artifacts (path -> bytes) with Range support, and the faults tests inject. */
export class ArtifactServer {
  readonly files = new Map<string, Buffer>();
  /** The Range header of every request (undefined: none). */
  readonly ranges: (string | undefined)[] = [];
  fault: Fault | undefined;
  private server: Server | undefined;
  private readonly stalledWaiters: (() => void)[] = [];
  stalled = false;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const body = this.files.get(req.url ?? '');
      this.ranges.push(req.headers.range);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      let data = body;
      if (this.fault?.kind === 'extra') data = Buffer.concat([body, Buffer.alloc(this.fault.bytes, 7)]);
      if (this.fault?.kind === 'tamper') {
        data = Buffer.from(body);
        data[0] = (data[0]! + 1) & 0xff;
      }
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      if (m) {
        res.writeHead(206, {
          'content-length': String(data.length - start),
          'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
        });
      } else {
        res.writeHead(200, { 'content-length': String(data.length) });
      }
      const rest = data.subarray(start);
      if (this.fault?.kind === 'stall') {
        res.write(rest.subarray(0, this.fault.after), () => {
          this.stalled = true;
          for (const w of this.stalledWaiters.splice(0)) w();
        });
        return;
      }
      res.end(rest);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
  }

  url(path: string): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}${path}`;
  }

  whenStalled(): Promise<void> {
    if (this.stalled) return Promise.resolve();
    return new Promise((r) => this.stalledWaiters.push(r));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
