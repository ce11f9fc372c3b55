/**
 * Amazon SNS (`@aws-sdk/client-sns`, awsQuery protocol, API version 2010-03-31, signing name `sns`) on
 * the local cloud's shared HTTP port: CreateTopic, ListTopics and Publish, answered in SNS's XML.
 *
 * Documented behaviour this follows (SNS API Reference):
 * - CreateTopic: Name of 1-256 ASCII letters, digits, `_` and `-`; idempotent (the same name answers the
 *   existing topic's ARN), and InvalidParameter when the topic exists with different attributes.
 *   FIFO topics (`.fifo`) are not emulated.
 * - ListTopics: up to 100 topics per page, with NextToken.
 * - Publish: TopicArn (or TargetArn) and a non-empty Message of at most 256 KB (message and attributes
 *   together); Subject of ASCII without line breaks, shorter than 100 characters; MessageStructure
 *   `json` needs a JSON object with a `default` string; MessageAttributes of type String, Number, Binary
 *   or String.Array (optionally with a custom `.suffix`), at most 10. NotFound for a topic that does not
 *   exist, AuthorizationError when the caller may not publish.
 * - Every action is authorized like SNS's IAM actions: `sns:CreateTopic` and `sns:Publish` on the topic
 *   ARN, `sns:ListTopics` on `arn:aws:sns:{region}:{account}:*`.
 */
import type { Logger } from 'pino';
import type { Authorizer } from '../authz.js';
import { type QueryParams, queryErrorResponse, readQueryAction } from '../http/query.js';
import {
  ServiceError,
  type ServiceRequest,
  type ServiceResponse,
  type ServiceRoute,
} from '../http/server.js';
import type { MessageAttribute, SnsTopics } from './topics.js';

export const SNS_VERSION = '2010-03-31';
const XMLNS = `http://sns.amazonaws.com/doc/${SNS_VERSION}/`;
/** Largest message (body plus attributes), bytes. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
export const MAX_MESSAGE_ATTRIBUTES = 10;
const LIST_PAGE = 100;
const TOPIC_NAME = /^[A-Za-z0-9_-]{1,256}$/;
const ATTRIBUTE_NAME = /^[A-Za-z0-9_.-]{1,256}$/;
const DATA_TYPE = /^(String|Number|Binary|String\.Array)(\.[A-Za-z0-9_.-]+)?$/;

export interface SnsRouteDeps {
  topics: SnsTopics;
  authorizer: Authorizer;
  region: string;
  logger?: Logger;
}

type Params = QueryParams;

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function xmlResponse(operation: string, result: string, requestId: string): ServiceResponse {
  return {
    status: 200,
    headers: { 'content-type': 'text/xml' },
    body: `<${operation}Response xmlns="${XMLNS}"><${operation}Result>${result}</${operation}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${operation}Response>`,
  };
}

const invalidParameter = (message: string) =>
  new ServiceError(400, 'InvalidParameter', `Invalid parameter: ${message}`);
const invalidAttribute = (message: string) => new ServiceError(400, 'ParameterValueInvalid', message);

/** `Name.entry.N.{keyField}` / `Name.entry.N.{valueField}...` of a query-protocol map, by N. */
function mapEntries(params: Params, name: string): Map<number, Map<string, string>> {
  const out = new Map<number, Map<string, string>>();
  const prefix = `${name}.entry.`;
  for (const [k, v] of params) {
    if (!k.startsWith(prefix)) continue;
    const rest = k.slice(prefix.length);
    const dot = rest.indexOf('.');
    const n = Number(rest.slice(0, dot));
    if (dot < 0 || !Number.isInteger(n) || n < 1) continue;
    let entry = out.get(n);
    if (!entry) {
      entry = new Map();
      out.set(n, entry);
    }
    entry.set(rest.slice(dot + 1), v);
  }
  return out;
}

function stringMap(params: Params, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of mapEntries(params, name).values()) {
    const key = entry.get('key');
    if (key !== undefined) out[key] = entry.get('value') ?? '';
  }
  return out;
}

function tagList(params: Params): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 1; ; i++) {
    const key = params.get(`Tags.member.${i}.Key`);
    if (key === undefined) return out;
    out[key] = params.get(`Tags.member.${i}.Value`) ?? '';
  }
}

function messageAttributes(params: Params): Record<string, MessageAttribute> {
  const out: Record<string, MessageAttribute> = {};
  const entries = [...mapEntries(params, 'MessageAttributes').entries()].sort((a, b) => a[0] - b[0]);
  if (entries.length > MAX_MESSAGE_ATTRIBUTES) {
    throw invalidAttribute(
      `Number of message attributes [${entries.length}] exceeds the allowed maximum [${MAX_MESSAGE_ATTRIBUTES}].`,
    );
  }
  for (const [, entry] of entries) {
    const name = entry.get('Name');
    if (name === undefined) throw invalidAttribute('The message attribute name must not be empty.');
    if (
      !ATTRIBUTE_NAME.test(name) ||
      name.startsWith('.') ||
      name.endsWith('.') ||
      name.includes('..') ||
      /^(aws\.|amazon\.)/i.test(name)
    ) {
      throw invalidAttribute(`The message attribute name '${name}' is invalid.`);
    }
    const dataType = entry.get('Value.DataType');
    if (dataType === undefined) {
      throw invalidAttribute(
        `The message attribute '${name}' must contain non-empty message attribute type.`,
      );
    }
    if (!DATA_TYPE.test(dataType)) {
      throw invalidAttribute(
        `The message attribute '${name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.`,
      );
    }
    const stringValue = entry.get('Value.StringValue');
    const binaryValue = entry.get('Value.BinaryValue');
    if (dataType.startsWith('Binary')) {
      if (binaryValue === undefined || binaryValue === '') {
        throw invalidAttribute(
          `The message attribute '${name}' must contain non-empty message attribute value.`,
        );
      }
      out[name] = { DataType: dataType, BinaryValue: binaryValue };
      continue;
    }
    if (stringValue === undefined || stringValue === '') {
      throw invalidAttribute(
        `The message attribute '${name}' must contain non-empty message attribute value.`,
      );
    }
    if (dataType.startsWith('Number') && !/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(stringValue)) {
      throw invalidAttribute(`The message attribute '${name}' with type 'Number' must be a valid number.`);
    }
    if (dataType.startsWith('String.Array')) {
      let ok = false;
      try {
        ok = Array.isArray(JSON.parse(stringValue));
      } catch {
        ok = false;
      }
      if (!ok)
        throw invalidAttribute(
          `The message attribute '${name}' with type 'String.Array' must be a JSON array.`,
        );
    }
    out[name] = { DataType: dataType, StringValue: stringValue };
  }
  return out;
}

export function snsRoute(deps: SnsRouteDeps): ServiceRoute {
  const { topics, authorizer } = deps;
  const partitionArn = topics.topicArn('*');

  function authorize(req: ServiceRequest, action: string, resource: string): void {
    const decision = authorizer.authorize(req.caller, { action, resource });
    if (!decision.allowed) {
      deps.logger?.info(
        { caller: req.caller.principalArn, action, resource, reason: decision.reason },
        'denied',
      );
      throw new ServiceError(
        403,
        'AuthorizationError',
        `User: ${req.caller.principalArn} is not authorized to perform: ${action.replace(/^sns:/, 'SNS:')} on resource: ${resource} because no identity-based policy allows the ${action.replace(/^sns:/, 'SNS:')} action`,
      );
    }
  }

  function createTopic(req: ServiceRequest, params: Params): ServiceResponse {
    const name = params.get('Name');
    if (name === undefined || name === '') throw invalidParameter('Topic Name');
    if (name.endsWith('.fifo')) {
      throw invalidParameter('FIFO topics are not emulated by the local cloud (standard topics only)');
    }
    if (!TOPIC_NAME.test(name)) throw invalidParameter('Topic Name');
    const arn = topics.topicArn(name);
    authorize(req, 'sns:CreateTopic', arn);
    const made = topics.create(name, stringMap(params, 'Attributes'), tagList(params));
    if (!made) throw invalidParameter('Attributes Reason: Topic already exists with different attributes');
    return xmlResponse('CreateTopic', `<TopicArn>${xmlEscape(made.topic.arn)}</TopicArn>`, req.requestId);
  }

  function listTopics(req: ServiceRequest, params: Params): ServiceResponse {
    authorize(req, 'sns:ListTopics', partitionArn);
    const all = topics.list();
    const token = params.get('NextToken');
    let start = 0;
    if (token !== undefined && token !== '') {
      const after = Buffer.from(token, 'base64').toString('utf8');
      if (!after.startsWith('arn:')) throw invalidParameter('NextToken');
      const i = all.findIndex((t) => t.arn > after);
      start = i < 0 ? all.length : i;
    }
    const page = all.slice(start, start + LIST_PAGE);
    const more = start + LIST_PAGE < all.length;
    const members = page.map((t) => `<member><TopicArn>${xmlEscape(t.arn)}</TopicArn></member>`).join('');
    const next = more ? `<NextToken>${Buffer.from(page.at(-1)!.arn).toString('base64')}</NextToken>` : '';
    return xmlResponse('ListTopics', `<Topics>${members}</Topics>${next}`, req.requestId);
  }

  function publish(req: ServiceRequest, params: Params): ServiceResponse {
    if (params.has('PhoneNumber')) {
      throw invalidParameter('PhoneNumber Reason: SMS is not emulated by the local cloud');
    }
    const topicArn = params.get('TopicArn') ?? params.get('TargetArn');
    if (topicArn === undefined || topicArn === '') {
      throw invalidParameter('TopicArn or TargetArn Reason: no value for required parameter');
    }
    const arnParts = topicArn.split(':');
    if (arnParts.length !== 6 || arnParts[0] !== 'arn' || arnParts[2] !== 'sns') {
      throw invalidParameter('TopicArn');
    }
    const message = params.get('Message');
    if (message === undefined || message === '') throw invalidParameter('Empty message');
    const subject = params.get('Subject');
    if (subject !== undefined && (subject === '' || subject.length >= 100 || /[^\x20-\x7e]/.test(subject))) {
      throw invalidParameter('Subject');
    }
    const structure = params.get('MessageStructure');
    if (structure !== undefined) {
      if (structure !== 'json') throw invalidParameter('MessageStructure');
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch {
        throw invalidParameter('Message Structure - JSON message body failed to parse');
      }
      const d = (parsed as { default?: unknown } | null)?.default;
      if (typeof d !== 'string') {
        throw invalidParameter('Message Structure - No default entry in JSON message body');
      }
    }
    if (params.has('MessageGroupId') || params.has('MessageDeduplicationId')) {
      throw invalidParameter(
        'MessageGroupId Reason: The request includes a FIFO parameter for a standard topic',
      );
    }
    const attributes = messageAttributes(params);
    const size =
      Buffer.byteLength(message) +
      Object.entries(attributes).reduce(
        (n, [k, v]) =>
          n +
          Buffer.byteLength(k) +
          Buffer.byteLength(v.DataType) +
          Buffer.byteLength(v.StringValue ?? v.BinaryValue ?? ''),
        0,
      );
    if (size > MAX_MESSAGE_BYTES) throw invalidParameter('Message too long');
    authorize(req, 'sns:Publish', topicArn);
    if (!topics.get(topicArn)) throw new ServiceError(404, 'NotFound', 'Topic does not exist');
    const recorded = topics.publish({
      topicArn,
      message,
      ...(subject !== undefined ? { subject } : {}),
      ...(structure !== undefined ? { messageStructure: structure } : {}),
      messageAttributes: attributes,
      publisher: req.caller.principalArn,
    });
    return xmlResponse('Publish', `<MessageId>${recorded.messageId}</MessageId>`, req.requestId);
  }

  return {
    signingName: 'sns',
    protocol: 'query',
    uriEscapePath: true,
    errorResponse: queryErrorResponse,
    async handle(req) {
      const { params, action } = readQueryAction(req, 'SNS', SNS_VERSION);
      if (req.region !== deps.region) {
        throw new ServiceError(
          403,
          'InvalidClientTokenId',
          `SNS in the local cloud serves ${deps.region} only`,
        );
      }
      switch (action) {
        case 'CreateTopic':
          return createTopic(req, params);
        case 'ListTopics':
          return listTopics(req, params);
        case 'Publish':
          return publish(req, params);
        default:
          throw new ServiceError(
            400,
            'InvalidAction',
            `${action} is not implemented by the local cloud's SNS (it implements CreateTopic, ListTopics and Publish)`,
          );
      }
    },
  };
}
