/**
 * Decoding of `Content-Encoding: aws-chunked` request bodies, as the Amazon S3 API Reference describes
 * them in "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks
 * (Chunked Upload)" and "Signature calculations for trailing headers (chunked uploads)":
 *
 * ```
 * hex(size)[;chunk-signature=SIG] CRLF data CRLF   ...repeated...
 * 0[;chunk-signature=SIG] CRLF
 * [trailer-name:value CRLF ...] [x-amz-trailer-signature:SIG CRLF]
 * CRLF
 * ```
 *
 * A push parser: `push()` takes bytes as they arrive and returns the decoded data; `end()` checks that
 * the body was complete and returns the trailing headers. With `signed`, every chunk's signature is
 * verified as it completes (chained on the previous one, the first on the request's seed signature),
 * and so is the trailer's, so a tampered chunk fails before anything after it is accepted.
 */
import { createHash, type Hash } from 'node:crypto';
import { chunkSignature, type SigV4Scope, signaturesEqual, trailerSignature } from '../http/sigv4.js';
import { S3Error } from './errors.js';

export interface ChunkSigning {
  signingKey: Uint8Array;
  amzDate: string;
  scope: SigV4Scope;
  /** The request's signature, which the first chunk's signature chains on. */
  seedSignature: string;
}

export interface AwsChunkedOptions {
  /** Set for `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: chunks carry signatures to verify. */
  signed?: ChunkSigning;
  /** Whether trailing headers are expected (`x-amz-trailer`). */
  trailer: boolean;
  /** Smallest size of a data chunk other than the last; S3 requires 8 KiB for signed chunks. */
  minChunkSize?: number;
}

/** Longest chunk header or trailer line accepted. */
const MAX_LINE = 4096;
const CR = 13;
const LF = 10;

const incomplete = (why: string) =>
  new S3Error(400, 'IncompleteBody', `The request body is not a complete aws-chunked body: ${why}`);

const signatureMismatch = (what: string) =>
  new S3Error(
    403,
    'SignatureDoesNotMatch',
    `The request signature we calculated does not match the signature you provided (${what}). Check your key and signing method.`,
  );

type State = 'header' | 'data' | 'dataEnd' | 'trailer' | 'done';

export class AwsChunkedDecoder {
  private state: State = 'header';
  private line: number[] = [];
  private remaining = 0;
  private chunkSignature = '';
  private chunkHash: Hash | undefined;
  private previousSignature: string;
  private crlfSeen = 0;
  private chunkIndex = 0;
  private previousChunkSize = -1;
  private readonly trailerLines: string[] = [];
  private trailerSig: string | undefined;
  /** Decoded bytes so far. */
  decodedLength = 0;

  constructor(private readonly opts: AwsChunkedOptions) {
    this.previousSignature = opts.signed?.seedSignature ?? '';
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** Feeds bytes; returns the decoded data in them (views into `input`). */
  push(input: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < input.length) {
      switch (this.state) {
        case 'header':
        case 'trailer': {
          const b = input[i++]!;
          if (b === LF && this.line.at(-1) === CR) {
            this.line.pop();
            const text = Buffer.from(this.line).toString('latin1');
            this.line = [];
            if (this.state === 'header') this.onHeader(text);
            else this.onTrailerLine(text);
          } else {
            this.line.push(b);
            if (this.line.length > MAX_LINE) throw incomplete('a chunk header or trailer line is too long');
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, input.length - i);
          const slice = input.subarray(i, i + n);
          this.chunkHash?.update(slice);
          out.push(slice);
          this.decodedLength += n;
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) {
            this.state = 'dataEnd';
            this.crlfSeen = 0;
          }
          break;
        }
        case 'dataEnd': {
          const b = input[i++]!;
          if ((this.crlfSeen === 0 && b !== CR) || (this.crlfSeen === 1 && b !== LF)) {
            throw incomplete(`chunk ${this.chunkIndex} is longer than its declared size`);
          }
          this.crlfSeen++;
          if (this.crlfSeen === 2) {
            this.verifyChunk();
            this.state = 'header';
          }
          break;
        }
        case 'done': {
          // Tolerate stray line ends after the body; anything else is not aws-chunked.
          const b = input[i++]!;
          if (b !== CR && b !== LF) throw incomplete('data after the final chunk');
          break;
        }
      }
    }
    return out;
  }

  /** Called when the body ends; returns the trailing headers (lower-case names). */
  end(): Record<string, string> {
    if (this.state !== 'done') throw incomplete('the body ended before the final chunk');
    const trailers: Record<string, string> = {};
    for (const line of this.trailerLines) {
      const colon = line.indexOf(':');
      trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return trailers;
  }

  private onHeader(text: string): void {
    const m = /^([0-9a-fA-F]{1,16})((?:;[^;]*)*)$/.exec(text);
    if (!m) throw incomplete(`malformed chunk header '${text.slice(0, 100)}'`);
    const size = Number.parseInt(m[1]!, 16);
    if (!Number.isSafeInteger(size)) throw incomplete('chunk size out of range');
    const signature = /;chunk-signature=([0-9a-f]{64})(?:;|$)/.exec(m[2] ?? '')?.[1];
    if (this.opts.signed && signature === undefined) {
      throw incomplete(`chunk ${this.chunkIndex + 1} has no chunk-signature`);
    }
    this.chunkIndex++;
    const min = this.opts.minChunkSize ?? 0;
    if (size > 0 && this.previousChunkSize >= 0 && this.previousChunkSize < min) {
      throw new S3Error(
        403,
        'InvalidChunkSizeError',
        `Only the last chunk is allowed to have a size less than ${min} bytes`,
        {
          Chunk: String(this.chunkIndex - 1),
          BadChunkSize: String(this.previousChunkSize),
        },
      );
    }
    this.chunkSignature = signature ?? '';
    this.chunkHash = this.opts.signed ? createHash('sha256') : undefined;
    if (size === 0) {
      this.verifyChunk();
      this.state = 'trailer';
      return;
    }
    this.previousChunkSize = size;
    this.remaining = size;
    this.state = 'data';
  }

  private verifyChunk(): void {
    const signed = this.opts.signed;
    if (!signed || !this.chunkHash) return;
    const expected = chunkSignature(
      signed.signingKey,
      signed.amzDate,
      signed.scope,
      this.previousSignature,
      this.chunkHash.digest('hex'),
    );
    if (!signaturesEqual(expected, this.chunkSignature)) throw signatureMismatch(`chunk ${this.chunkIndex}`);
    this.previousSignature = this.chunkSignature;
    this.chunkHash = undefined;
  }

  private onTrailerLine(text: string): void {
    if (text === '') {
      this.finishTrailer();
      this.state = 'done';
      return;
    }
    if (!this.opts.trailer)
      throw incomplete('trailing headers were sent but none were declared in x-amz-trailer');
    const colon = text.indexOf(':');
    if (colon <= 0) {
      throw new S3Error(
        400,
        'MalformedTrailerError',
        'The request contained trailing data that was not well-formed',
      );
    }
    const name = text.slice(0, colon).trim().toLowerCase();
    if (name === 'x-amz-trailer-signature') this.trailerSig = text.slice(colon + 1).trim();
    else this.trailerLines.push(`${name}:${text.slice(colon + 1).trim()}`);
  }

  private finishTrailer(): void {
    const signed = this.opts.signed;
    if (!signed || !this.opts.trailer) return;
    if (this.trailerSig === undefined) {
      throw new S3Error(400, 'MalformedTrailerError', 'The signed trailer has no x-amz-trailer-signature');
    }
    const canonical = this.trailerLines.map((l) => `${l}\n`).join('');
    const expected = trailerSignature(
      signed.signingKey,
      signed.amzDate,
      signed.scope,
      this.previousSignature,
      canonical,
    );
    if (!signaturesEqual(expected, this.trailerSig)) throw signatureMismatch('trailer');
  }
}
