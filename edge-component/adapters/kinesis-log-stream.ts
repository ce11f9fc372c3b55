/**
 * The DataStreamClient of log shipping: Kinesis Data Streams PutRecords through `@aws-sdk/client-kinesis`,
 * signed with the gateway's temporary credentials (the provider is called for every request, so a
 * request after a refresh is signed with the new ones). The only operation it calls is PutRecords (no
 * describe or list calls): the session policy allows exactly kinesis:PutRecord(s) on the stream.
 *
 * When Kinesis refuses the credentials themselves (expired, unknown to it), the provider is told to fetch
 * new ones before the error goes back to the caller, which retries with backoff.
 *
 * The SDK's Kinesis client is loaded when the first stream client is created: a gateway without log
 * shipping does not load it.
 */
import type { KinesisClient, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { GatewayConfig } from '../config.js';
import { EdgeError } from '../errors.js';
import type { DataStreamClient, StreamPutOutcome, StreamRecord } from '../ports.js';

/** A credential provider that can be told to fetch new credentials (credentials.ts). */
export type RefreshableCredentials = AwsCredentialIdentityProvider &
  ((options?: { forceRefresh?: boolean }) => Promise<unknown>);

export interface KinesisDataStreamOptions {
  streamName: string;
  region: string;
  /** The local cloud's HTTP endpoint; unset on AWS. */
  endpoint?: string;
  credentials: RefreshableCredentials;
  /** Time one request may take (connection, request and response). */
  requestTimeoutMs?: number;
}

/** Kinesis answered a PutRecords with a result that does not match the request. */
export class DataStreamResponseError extends EdgeError {}

const CREDENTIAL_REJECTIONS = new Set([
  'ExpiredTokenException',
  'ExpiredToken',
  'UnrecognizedClientException',
  'InvalidSignatureException',
]);

/** Whether the service refused the request's credentials (so new ones may help). */
export function isCredentialRejection(err: unknown): boolean {
  return typeof err === 'object' && err !== null && CREDENTIAL_REJECTIONS.has((err as Error).name);
}

type KinesisSdk = typeof import('@aws-sdk/client-kinesis');

export class KinesisDataStream implements DataStreamClient {
  private constructor(
    private readonly sdk: KinesisSdk,
    private readonly client: KinesisClient,
    private readonly opts: KinesisDataStreamOptions,
  ) {}

  static async create(opts: KinesisDataStreamOptions): Promise<KinesisDataStream> {
    const sdk = await import('@aws-sdk/client-kinesis');
    const client = new sdk.KinesisClient({
      region: opts.region,
      credentials: opts.credentials,
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      // Options given here replace the client's defaults, so its one-connection-per-request setting is
      // restated: a shared HTTP/2 session that died with the network would hold every later call.
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 30_000, disableConcurrentStreams: true },
    });
    return new KinesisDataStream(sdk, client, opts);
  }

  /** The client of `config.logs` (endpoint: `aws.kinesisEndpoint`, else `aws.s3Endpoint`), or undefined. */
  static async fromConfig(
    config: GatewayConfig,
    credentials: RefreshableCredentials,
  ): Promise<KinesisDataStream | undefined> {
    if (!config.logs) return undefined;
    const endpoint = config.aws.kinesisEndpoint ?? config.aws.s3Endpoint;
    return KinesisDataStream.create({
      streamName: config.logs.streamName,
      region: config.aws.region,
      ...(endpoint ? { endpoint } : {}),
      credentials,
    });
  }

  async putRecords(records: readonly StreamRecord[], signal?: AbortSignal): Promise<StreamPutOutcome[]> {
    let out: PutRecordsCommandOutput;
    try {
      out = await this.client.send(
        new this.sdk.PutRecordsCommand({
          StreamName: this.opts.streamName,
          Records: records.map((r) => ({ Data: r.data, PartitionKey: r.partitionKey })),
        }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (err) {
      if (isCredentialRejection(err)) await this.opts.credentials({ forceRefresh: true }).catch(() => {});
      throw err;
    }
    const results = out.Records ?? [];
    if (results.length !== records.length) {
      throw new DataStreamResponseError(
        `PutRecords answered ${results.length} results for ${records.length} records`,
      );
    }
    return results.map((r) =>
      r.ErrorCode ? { ok: false, code: r.ErrorCode, message: r.ErrorMessage ?? '' } : { ok: true },
    );
  }

  destroy(): void {
    this.client.destroy();
  }
}
