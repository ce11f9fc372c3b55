/**
 * The local Kinesis's wire protocol, as `@aws-sdk/client-kinesis` speaks it: AWS JSON 1.1 (POST `/`,
 * `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target: Kinesis_20131202.<Operation>`), signing
 * name `kinesis`; blobs are base64 strings and timestamps epoch seconds. Errors are HTTP 400 (service
 * faults 5xx) with `{"__type": "<Exception>", "message": "..."}`.
 *
 * Operations: CreateStream, DescribeStreamSummary, ListStreams, ListShards, DeleteStream,
 * IncreaseStreamRetentionPeriod, DecreaseStreamRetentionPeriod, PutRecord, PutRecords,
 * GetShardIterator, GetRecords. Each is authorized with the IAM action `kinesis:<Operation>` on the
 * stream's ARN (`arn:aws:kinesis:{region}:{account}:stream/{name}`; ListStreams on `*`, as its action
 * has no resource type); GetRecords on the stream its iterator names.
 */
import type { Logger } from 'pino';
import type { Authorizer } from '../authz.js';
import type { ServiceError, ServiceRequest, ServiceResponse, ServiceRoute } from '../http/server.js';
import { accessDenied, serializationError, unknownOperation } from './errors.js';
import type { LocalKinesis } from './index.js';
import { type Operation, parseRequest, type Request, Schemas } from './schemas.js';

const TARGET_PREFIX = 'Kinesis_20131202.';
const JSON_11 = 'application/x-amz-json-1.1';

function errorBody(err: ServiceError): ServiceResponse {
  return {
    status: err.status,
    headers: { 'content-type': JSON_11 },
    body: JSON.stringify({ __type: err.code, message: err.message }),
  };
}

export function kinesisRoute(
  kinesis: LocalKinesis,
  opts: { authorizer: Authorizer; logger: Logger },
): ServiceRoute {
  const authorize = (req: ServiceRequest, op: Operation, resource: string) => {
    const action = `kinesis:${op}`;
    const d = opts.authorizer.authorize(req.caller, { action, resource });
    if (!d.allowed) {
      opts.logger.debug(
        { caller: req.caller.principalArn, action, resource, reason: d.reason },
        'access denied',
      );
      throw accessDenied(
        `User: ${req.caller.principalArn} is not authorized to perform: ${action} on resource: ${resource} because no identity-based policy allows the ${action} action`,
      );
    }
  };
  /** Resolves the stream a request names and authorizes the operation on it. */
  const stream = (
    req: ServiceRequest,
    op: Operation,
    input: { StreamName?: string | undefined; StreamARN?: string | undefined },
  ) => {
    const name = kinesis.resolveName(input);
    authorize(req, op, kinesis.streamArn(name));
    return name;
  };

  const ops: { [K in Operation]: (req: ServiceRequest, input: Request<K>) => Promise<unknown> } = {
    async CreateStream(req, input) {
      authorize(req, 'CreateStream', kinesis.streamArn(input.StreamName));
      await kinesis.createStream(input);
      return {};
    },
    async DescribeStreamSummary(req, input) {
      return kinesis.describeStreamSummary(stream(req, 'DescribeStreamSummary', input));
    },
    async ListStreams(req, input) {
      authorize(req, 'ListStreams', '*');
      return kinesis.listStreams(input);
    },
    async ListShards(req, input) {
      const name = kinesis.listShardsStream(input);
      authorize(req, 'ListShards', kinesis.streamArn(name));
      return kinesis.listShards(name, input);
    },
    async DeleteStream(req, input) {
      await kinesis.deleteStream(stream(req, 'DeleteStream', input));
      return {};
    },
    async IncreaseStreamRetentionPeriod(req, input) {
      const name = stream(req, 'IncreaseStreamRetentionPeriod', input);
      await kinesis.changeRetention(name, input.RetentionPeriodHours, 'increase');
      return {};
    },
    async DecreaseStreamRetentionPeriod(req, input) {
      const name = stream(req, 'DecreaseStreamRetentionPeriod', input);
      await kinesis.changeRetention(name, input.RetentionPeriodHours, 'decrease');
      return {};
    },
    async PutRecord(req, input) {
      const name = stream(req, 'PutRecord', input);
      const [outcome] = await kinesis.put(name, [input], 'single');
      return { ...outcome, EncryptionType: 'NONE' };
    },
    async PutRecords(req, input) {
      const name = stream(req, 'PutRecords', input);
      const outcomes = await kinesis.put(name, input.Records, 'batch');
      return {
        FailedRecordCount: outcomes.filter((o) => 'ErrorCode' in o).length,
        Records: outcomes,
        EncryptionType: 'NONE',
      };
    },
    async GetShardIterator(req, input) {
      const name = stream(req, 'GetShardIterator', input);
      return { ShardIterator: kinesis.getShardIterator(name, input) };
    },
    async GetRecords(req, input) {
      const it = kinesis.decodeIterator(input.ShardIterator);
      if (input.StreamARN !== undefined)
        kinesis.resolveName({ StreamName: it.s, StreamARN: input.StreamARN });
      authorize(req, 'GetRecords', kinesis.streamArn(it.s));
      return kinesis.getRecords(it, input.Limit);
    },
  };

  return {
    signingName: 'kinesis',
    protocol: 'json',
    uriEscapePath: true,
    errorResponse: (err) => errorBody(err),
    async handle(req) {
      if (req.method !== 'POST') throw serializationError('Kinesis requests are POST requests');
      const target = req.headers['x-amz-target'];
      const name =
        typeof target === 'string' && target.startsWith(TARGET_PREFIX)
          ? target.slice(TARGET_PREFIX.length)
          : '';
      if (!Object.hasOwn(Schemas, name)) {
        throw unknownOperation(`Operation ${String(target)} is not served by the local Kinesis`);
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
