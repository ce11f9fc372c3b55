/**
 * The local Firehose's wire protocol, as `@aws-sdk/client-firehose` speaks it: AWS JSON 1.1 (POST `/`,
 * `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target: Firehose_20150804.<Operation>`), signing
 * name `firehose`; blobs are base64 strings and timestamps epoch seconds. Errors are HTTP 400 (service
 * faults 5xx) with `{"__type": "<Exception>", "message": "..."}`.
 *
 * Operations: CreateDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams, DeleteDeliveryStream,
 * PutRecord, PutRecordBatch. Each is authorized with the IAM action `firehose:<Operation>` on the
 * stream's ARN (`arn:aws:firehose:{region}:{account}:deliverystream/{name}`; ListDeliveryStreams on
 * `*`, as its action has no resource type); CreateDeliveryStream with Tags also needs
 * `firehose:TagDeliveryStream`.
 */
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Authorizer } from '../authz.js';
import type { ServiceError, ServiceRequest, ServiceResponse, ServiceRoute } from '../http/server.js';
import {
  accessDenied,
  FirehoseError,
  invalidArgument,
  serializationError,
  unknownOperation,
} from './errors.js';
import {
  type CreateDeliveryStreamRequest,
  MAX_BATCH_BYTES,
  type Operation,
  parseRequest,
  Schemas,
} from './schemas.js';

const TARGET_PREFIX = 'Firehose_20150804.';
const JSON_11 = 'application/x-amz-json-1.1';
const DEFAULT_LIST_LIMIT = 10;

export type PutOutcome =
  | { ok: true; recordId: string }
  | { ok: false; errorCode: string; errorMessage: string };

/** What the route needs of the Firehose. */
export interface FirehoseBackend {
  region: string;
  accountId: string;
  authorizer: Authorizer;
  logger: Logger;
  streamArn(name: string): string;
  /** Creates a stream; resolves with its ARN. */
  create(input: CreateDeliveryStreamRequest): Promise<string>;
  describe(name: string, opts: { exclusiveStartDestinationId?: string }): Record<string, unknown>;
  list(opts: { limit: number; type?: string; exclusiveStart?: string }): {
    names: string[];
    hasMore: boolean;
  };
  remove(name: string): Promise<void>;
  /** Journals records (durably) and buffers them; one outcome per record, in order. */
  put(name: string, records: readonly Buffer[], mode: 'single' | 'batch'): Promise<PutOutcome[]>;
  encrypted(name: string): boolean;
}

function errorBody(err: ServiceError): ServiceResponse {
  return {
    status: err.status,
    headers: { 'content-type': JSON_11 },
    body: JSON.stringify({ __type: err.code, message: err.message }),
  };
}

export function firehoseRoute(backend: FirehoseBackend): ServiceRoute {
  const authorize = (req: ServiceRequest, action: string, resource: string) => {
    const d = backend.authorizer.authorize(req.caller, { action, resource });
    if (!d.allowed) {
      backend.logger.debug(
        { caller: req.caller.principalArn, action, resource, reason: d.reason },
        'access denied',
      );
      throw accessDenied(
        `User: ${req.caller.principalArn} is not authorized to perform: ${action} on resource: ${resource}`,
      );
    }
  };

  const ops: {
    [K in Operation]: (req: ServiceRequest, input: z.output<(typeof Schemas)[K]>) => Promise<unknown>;
  } = {
    async CreateDeliveryStream(req, input) {
      const arn = backend.streamArn(input.DeliveryStreamName);
      authorize(req, 'firehose:CreateDeliveryStream', arn);
      if (input.Tags !== undefined) authorize(req, 'firehose:TagDeliveryStream', arn);
      return { DeliveryStreamARN: await backend.create(input) };
    },
    async DescribeDeliveryStream(req, input) {
      authorize(req, 'firehose:DescribeDeliveryStream', backend.streamArn(input.DeliveryStreamName));
      return {
        DeliveryStreamDescription: backend.describe(input.DeliveryStreamName, {
          ...(input.ExclusiveStartDestinationId !== undefined
            ? { exclusiveStartDestinationId: input.ExclusiveStartDestinationId }
            : {}),
        }),
      };
    },
    async ListDeliveryStreams(req, input) {
      authorize(req, 'firehose:ListDeliveryStreams', '*');
      const { names, hasMore } = backend.list({
        limit: input.Limit ?? DEFAULT_LIST_LIMIT,
        ...(input.DeliveryStreamType !== undefined ? { type: input.DeliveryStreamType } : {}),
        ...(input.ExclusiveStartDeliveryStreamName !== undefined
          ? { exclusiveStart: input.ExclusiveStartDeliveryStreamName }
          : {}),
      });
      return { DeliveryStreamNames: names, HasMoreDeliveryStreams: hasMore };
    },
    async DeleteDeliveryStream(req, input) {
      authorize(req, 'firehose:DeleteDeliveryStream', backend.streamArn(input.DeliveryStreamName));
      await backend.remove(input.DeliveryStreamName);
      return {};
    },
    async PutRecord(req, input) {
      authorize(req, 'firehose:PutRecord', backend.streamArn(input.DeliveryStreamName));
      const [outcome] = await backend.put(input.DeliveryStreamName, [input.Record.Data], 'single');
      if (!outcome?.ok) throw new FirehoseError('ServiceUnavailableException', 'Slow down.', { status: 503 });
      return { RecordId: outcome.recordId, Encrypted: backend.encrypted(input.DeliveryStreamName) };
    },
    async PutRecordBatch(req, input) {
      authorize(req, 'firehose:PutRecordBatch', backend.streamArn(input.DeliveryStreamName));
      const total = input.Records.reduce((n, r) => n + r.Data.length, 0);
      if (total > MAX_BATCH_BYTES) {
        throw invalidArgument(
          `Records: the batch holds ${total} bytes of data; a PutRecordBatch request may hold at most ${MAX_BATCH_BYTES} bytes (4 MiB)`,
        );
      }
      const outcomes = await backend.put(
        input.DeliveryStreamName,
        input.Records.map((r) => r.Data),
        'batch',
      );
      return {
        FailedPutCount: outcomes.filter((o) => !o.ok).length,
        Encrypted: backend.encrypted(input.DeliveryStreamName),
        RequestResponses: outcomes.map((o) =>
          o.ok ? { RecordId: o.recordId } : { ErrorCode: o.errorCode, ErrorMessage: o.errorMessage },
        ),
      };
    },
  };

  return {
    signingName: 'firehose',
    protocol: 'json',
    uriEscapePath: true,
    errorResponse: (err) => errorBody(err),
    async handle(req) {
      if (req.method !== 'POST') throw serializationError('Firehose requests are POST requests');
      const target = req.headers['x-amz-target'];
      const name =
        typeof target === 'string' && target.startsWith(TARGET_PREFIX)
          ? target.slice(TARGET_PREFIX.length)
          : '';
      if (!Object.hasOwn(Schemas, name)) {
        throw unknownOperation(`Operation ${String(target)} is not served by the local Firehose`);
      }
      const op = name as Operation;
      let raw: unknown = {};
      if (req.body.length > 0) {
        try {
          raw = JSON.parse(req.body.toString('utf8'));
        } catch {
          throw serializationError('The request body is not valid JSON');
        }
      }
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw serializationError('The request body must be a JSON object');
      }
      const input = parseRequest(Schemas[op], raw);
      const out = await (ops[op] as (req: ServiceRequest, input: unknown) => Promise<unknown>)(req, input);
      return { status: 200, headers: { 'content-type': JSON_11 }, body: JSON.stringify(out) };
    },
  };
}
