/**
 * The local AWS IoT rules engine. Each enabled rule's SQL statement is compiled once; the engine
 * subscribes to the rule's FROM topic filter on the broker (and to its Basic Ingest topic,
 * `$aws/rules/{ruleName}/...`), evaluates every matching message off the broker's publish path, and runs
 * the rule's actions with the SELECT output:
 *
 * - republish: `broker.publish` to the topic rendered from its substitution template (`$$` for
 *   reserved topics; reserved job topics are refused, as "Republish" documents);
 * - lambda: the handler of that name in cloud/functions, called in-process with the output as its
 *   event. AWS IoT invokes Lambda asynchronously, so a handler that throws is a function error (logged
 *   and counted), not a failed action; a missing handler or a binary output is a failed action;
 * - firehose: PutRecord, or PutRecordBatch when `batchMode` is on and the output is an Array (one
 *   record per element, at most 500), each record followed by the separator, through
 *   `@aws-sdk/client-firehose` pointed at the local cloud;
 * - s3: PutObject of the output under the rendered key, through `@aws-sdk/client-s3`.
 *
 * When actions fail, the rule's error action runs once per message with the document of "Error handling
 * (error action)": `{ruleName, topic, cloudwatchTraceId, clientId, base64OriginalPayload, failures:
 * [{failedAction, failedResource, errorMessage}]}`. Substitution templates (in actions and the error
 * action alike) are evaluated against the original message. SQL evaluation errors are logged and
 * counted; as on AWS they do not trigger the error action.
 */
import { randomUUID } from 'node:crypto';
import {
  FirehoseClient,
  PutRecordBatchCommand,
  type PutRecordBatchCommandOutput,
  PutRecordCommand,
} from '@aws-sdk/client-firehose';
import { KinesisClient, PutRecordCommand as KinesisPutRecordCommand } from '@aws-sdk/client-kinesis';
import { type ObjectCannedACL, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import type { HandlerRegistry, LambdaContext } from '../functions/index.js';
import {
  actionTemplates,
  FAILED_ACTION_NAMES,
  FIREHOSE_MAX_BATCH_RECORDS,
  type FirehoseAction,
  isReservedJobTopic,
  type KinesisAction,
  type LambdaAction,
  type RepublishAction,
  type RuleAction,
  type S3Action,
} from '../rules/actions.js';
import type { RuleDefinition } from '../rules/definitions.js';
import {
  type CompiledStatement,
  compile,
  compileTemplate,
  type EvalEnv,
  type MessageContext,
  type SqlServices,
} from '../rules/sql/index.js';
import { fromJs, type SqlValue, toJsonText } from '../rules/sql/values.js';
import { type InternalHandler, MAX_PAYLOAD_BYTES, type PublisherMeta } from './broker.js';
import { LocalCloudError } from './errors.js';
import { checkIotTopicLimits, isValidTopicName } from './policy.js';

/** What the engine needs of the broker. */
export interface RulesBroker {
  subscribe(filter: string, handler: InternalHandler): () => void;
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain?: boolean): Promise<void>;
}

/** Settings of the AWS SDK clients the actions use (the local cloud's `sdkConfig()`). */
export interface AwsClientConfig {
  region: string;
  endpoint?: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per call (default: the SDK's default). */
  maxAttempts?: number;
}

export interface RulesEngineOptions {
  broker: RulesBroker;
  rules: readonly RuleDefinition[];
  handlers: HandlerRegistry;
  /** SDK client settings, or a function that returns them once they are known (the first time an action needs them). */
  aws: AwsClientConfig | (() => AwsClientConfig);
  region: string;
  accountId: string;
  logger: Logger;
  /** Services for SQL functions such as get_thing_shadow. */
  services?: SqlServices;
  now?: () => number;
  uuid?: () => string;
}

export interface RuleStats {
  /** Messages delivered to the rule (its topic filter or its Basic Ingest topic). */
  messages: number;
  /** Messages that passed the topic filter and WHERE clause. */
  matched: number;
  /** Evaluations that failed (logged; no error action). */
  evaluationErrors: number;
  actionsSucceeded: number;
  actionsFailed: number;
  errorActionsSucceeded: number;
  errorActionsFailed: number;
  /** In-process Lambda handler runs that completed / threw. */
  lambdaInvocations: number;
  lambdaErrors: number;
}

export interface RulesEngineStats {
  total: RuleStats;
  rules: Record<string, RuleStats>;
}

/** One failed action, as listed in the error action message. */
export interface ActionFailure {
  failedAction: string;
  failedResource: string;
  errorMessage: string;
}

/** The error action message ("Error handling (error action)"). */
export interface ErrorActionMessage {
  ruleName: string;
  topic: string;
  cloudwatchTraceId: string;
  clientId: string;
  base64OriginalPayload: string;
  failures: ActionFailure[];
}

/** Messages processed at once; further ones wait in arrival order (see RulesEngine.pump). */
const MAX_RUNNING_MESSAGES = 64;
const NOOP_TASK = async (): Promise<void> => {};

export class RulesEngineError extends LocalCloudError {}

/** An action did not complete; `resource` is what the error action message names as failedResource. */
class ActionError extends LocalCloudError {
  constructor(
    readonly resource: string,
    message: string,
  ) {
    super(message);
  }
}

interface Template {
  render(message: MessageContext, env: EvalEnv, variables?: ReadonlyMap<string, SqlValue>): string;
}

interface CompiledAction {
  action: RuleAction;
  /** Compiled substitution templates by parameter path (`topic`, `key`, `headers.contentType`, ...). */
  templates: Map<string, Template>;
}

interface CompiledRule {
  def: RuleDefinition;
  statement: CompiledStatement;
  actions: CompiledAction[];
  errorAction?: CompiledAction;
  stats: RuleStats;
}

const emptyStats = (): RuleStats => ({
  messages: 0,
  matched: 0,
  evaluationErrors: 0,
  actionsSucceeded: 0,
  actionsFailed: 0,
  errorActionsSucceeded: 0,
  errorActionsFailed: 0,
  lambdaInvocations: 0,
  lambdaErrors: 0,
});

/** The nominal timeout behind `context.getRemainingTimeInMillis()` (not enforced). */
export const LAMBDA_TIMEOUT_MS = 30_000;

/** Prefix of Basic Ingest topics ("Reducing messaging costs with Basic Ingest"). */
const BASIC_INGEST_PREFIX = '$aws/rules/';

/** The bytes an action sends: raw bytes for a Binary output, otherwise the output's JSON text. */
export function actionPayload(output: SqlValue): Buffer {
  if (output.type === 'Binary') return Buffer.from(output.value);
  return Buffer.from(toJsonText(output) ?? '');
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Describes an SDK error the way AWS IoT's action errors do: message, then service details. */
function sdkErrorText(service: string, err: unknown): string {
  const e = err as {
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number; requestId?: string };
  };
  const meta = e.$metadata;
  if (!meta?.httpStatusCode) return errorText(err);
  return `${e.message ?? e.name} (Service: ${service}; Status Code: ${meta.httpStatusCode}; Error Code: ${e.name}; Request ID: ${meta.requestId ?? 'unknown'})`;
}

function compileAction(rule: RuleDefinition, action: RuleAction, where: string): CompiledAction {
  const templates = new Map<string, Template>();
  for (const { path, template } of actionTemplates(action)) {
    try {
      templates.set(path, compileTemplate(template, rule.sqlVersion));
    } catch (err) {
      throw new RulesEngineError(`rule '${rule.name}': ${where}.${path}: ${errorText(err)}`, { cause: err });
    }
  }
  return { action, templates };
}

export class RulesEngine {
  private readonly rules: CompiledRule[] = [];
  private readonly unsubscribes: (() => void)[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  /**
   * Messages received and not started yet (from `waitingHead` on). At most MAX_RUNNING_MESSAGES are
   * processed at once: under a burst the rest wait here as their topic and payload, not as requests
   * queued inside the SDK clients.
   */
  private waiting: (() => Promise<void>)[] = [];
  private waitingHead = 0;
  private running = 0;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly uuid: () => string;
  private firehose?: FirehoseClient;
  private kinesis?: KinesisClient;
  private s3?: S3Client;
  private stopped = false;

  private constructor(private readonly opts: RulesEngineOptions) {
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.uuid = opts.uuid ?? randomUUID;
  }

  /** Compiles every rule (throws {@link RulesEngineError} naming the rule and field) and subscribes. */
  static start(opts: RulesEngineOptions): RulesEngine {
    const engine = new RulesEngine(opts);
    for (const def of opts.rules) engine.rules.push(engine.compileRule(def));
    for (const rule of engine.rules) engine.subscribeRule(rule);
    opts.logger.info(
      {
        rules: engine.rules.map((r) => ({
          name: r.def.name,
          from: r.statement.topicFilter,
          disabled: r.def.ruleDisabled,
        })),
      },
      'rules engine started',
    );
    return engine;
  }

  private compileRule(def: RuleDefinition): CompiledRule {
    let statement: CompiledStatement;
    try {
      statement = compile(def.sql, def.sqlVersion);
    } catch (err) {
      throw new RulesEngineError(`rule '${def.name}': sql: ${errorText(err)}`, { cause: err });
    }
    const actions = def.actions.map((a, i) => compileAction(def, a, `actions.${i}`));
    const errorAction = def.errorAction ? compileAction(def, def.errorAction, 'errorAction') : undefined;
    for (const a of [...def.actions, ...(def.errorAction ? [def.errorAction] : [])]) {
      if (a.type === 'lambda' && !this.opts.handlers.has(a.functionName)) {
        this.log.warn(
          { rule: def.name, functionName: a.functionName },
          'lambda action names a function without a handler; its invocations will fail',
        );
      }
      if (a.type === 'republish' && a.headers) {
        this.log.warn(
          { rule: def.name, topic: a.topic },
          'republish headers are MQTT 5 properties; the local broker speaks MQTT 3.1.1 and does not deliver them',
        );
      }
    }
    return { def, statement, actions, ...(errorAction ? { errorAction } : {}), stats: emptyStats() };
  }

  private subscribeRule(rule: CompiledRule): void {
    const name = rule.def.name;
    if (!rule.def.ruleDisabled) {
      this.unsubscribes.push(
        this.opts.broker.subscribe(rule.statement.topicFilter, (topic, payload, meta) =>
          this.receive(rule, topic, payload, meta),
        ),
      );
    }
    const ingest = `${BASIC_INGEST_PREFIX}${name}`;
    this.unsubscribes.push(
      this.opts.broker.subscribe(`${ingest}/#`, (topic, payload, meta) => {
        if (rule.def.ruleDisabled) {
          this.log.warn({ rule: name, topic }, 'Basic Ingest message for a disabled rule');
          return;
        }
        // The Basic Ingest prefix is not part of the topic the rule sees ("Basic Ingest").
        const subtopic = topic.length > ingest.length ? topic.slice(ingest.length + 1) : '';
        this.receive(rule, subtopic, payload, meta);
      }),
    );
  }

  /** Called on the broker's publish path: records the arrival and defers all work. */
  private receive(rule: CompiledRule, topic: string, payload: Buffer, meta: PublisherMeta): void {
    if (this.stopped) return;
    try {
      const message: MessageContext = {
        topic,
        payload,
        ...(meta.clientId !== undefined ? { clientId: meta.clientId } : {}),
        ...(meta.principal !== undefined ? { principal: meta.principal } : {}),
        ...(meta.sourceIp !== undefined ? { sourceIp: meta.sourceIp } : {}),
        timestamp: this.now(),
        traceId: this.uuid(),
      };
      rule.stats.messages += 1;
      this.waiting.push(() => this.process(rule, message));
      this.pump();
    } catch (err) {
      this.log.error({ err, rule: rule.def.name, topic }, 'rule dispatch failed');
    }
  }

  /** Starts waiting messages while fewer than MAX_RUNNING_MESSAGES are processed, oldest first. */
  private pump(): void {
    while (this.running < MAX_RUNNING_MESSAGES && this.waitingHead < this.waiting.length) {
      const task = this.waiting[this.waitingHead]!;
      this.waiting[this.waitingHead++] = NOOP_TASK;
      if (this.waitingHead === this.waiting.length) {
        this.waiting = [];
        this.waitingHead = 0;
      } else if (this.waitingHead >= 4096) {
        this.waiting = this.waiting.slice(this.waitingHead);
        this.waitingHead = 0;
      }
      this.running += 1;
      // Deferred: nothing runs on the broker's publish path.
      this.track(
        new Promise<void>((resolve) => setImmediate(resolve)).then(task).finally(() => {
          this.running -= 1;
          this.pump();
        }),
      );
    }
  }

  private track(p: Promise<unknown>): void {
    const guarded = p.catch((err) => this.log.error({ err }, 'rules engine task failed'));
    this.inflight.add(guarded);
    void guarded.finally(() => this.inflight.delete(guarded));
  }

  private env(): EvalEnv {
    return {
      accountId: this.opts.accountId,
      region: this.opts.region,
      now: this.now,
      uuid: this.uuid,
      ...(this.opts.services ? { services: this.opts.services } : {}),
    };
  }

  private async process(rule: CompiledRule, message: MessageContext): Promise<void> {
    const env = this.env();
    const log = this.log.child({ rule: rule.def.name, topic: message.topic, traceId: message.traceId });
    let output: SqlValue;
    let variables: ReadonlyMap<string, SqlValue> | undefined;
    try {
      const ev = rule.statement.evaluate(message, env);
      if (!ev.matched) return;
      output = ev.output;
      variables = ev.variables;
    } catch (err) {
      rule.stats.evaluationErrors += 1;
      log.warn({ err: errorText(err) }, 'rule evaluation failed');
      return;
    }
    rule.stats.matched += 1;
    const payload = actionPayload(output);
    const outcomes = await Promise.all(
      rule.actions.map((a) =>
        this.runAction(rule, a, message, env, output, payload, variables).then(
          () => undefined,
          (err: unknown): ActionFailure => ({
            failedAction: FAILED_ACTION_NAMES[a.action.type],
            failedResource: err instanceof ActionError ? err.resource : '',
            errorMessage: errorText(err),
          }),
        ),
      ),
    );
    const failures = outcomes.filter((f): f is ActionFailure => f !== undefined);
    rule.stats.actionsSucceeded += outcomes.length - failures.length;
    rule.stats.actionsFailed += failures.length;
    if (failures.length === 0) {
      log.debug({ actions: outcomes.length }, 'rule actions completed');
      return;
    }
    log.warn({ failures }, 'rule actions failed');
    if (!rule.errorAction) return;
    // One error message per rule and message, listing every failed action.
    const doc: ErrorActionMessage = {
      ruleName: rule.def.name,
      topic: message.topic,
      cloudwatchTraceId: message.traceId ?? '',
      clientId: message.clientId ?? '',
      base64OriginalPayload: Buffer.from(message.payload).toString('base64'),
      failures,
    };
    const errorOutput = fromJs(doc);
    try {
      await this.runAction(
        rule,
        rule.errorAction,
        message,
        env,
        errorOutput,
        Buffer.from(JSON.stringify(doc)),
        variables,
      );
      rule.stats.errorActionsSucceeded += 1;
    } catch (err) {
      rule.stats.errorActionsFailed += 1;
      log.error({ err: errorText(err), failures }, 'error action failed');
    }
  }

  private render(
    a: CompiledAction,
    path: string,
    message: MessageContext,
    env: EvalEnv,
    variables: ReadonlyMap<string, SqlValue> | undefined,
    resource: string,
  ): string {
    const t = a.templates.get(path);
    if (!t) throw new ActionError(resource, `no compiled template for ${path}`);
    try {
      return t.render(message, env, variables);
    } catch (err) {
      throw new ActionError(
        resource,
        `Failed to evaluate the substitution template of ${path}: ${errorText(err)}`,
      );
    }
  }

  private runAction(
    rule: CompiledRule,
    a: CompiledAction,
    message: MessageContext,
    env: EvalEnv,
    output: SqlValue,
    payload: Buffer,
    variables: ReadonlyMap<string, SqlValue> | undefined,
  ): Promise<void> {
    const action = a.action;
    switch (action.type) {
      case 'republish':
        return this.republish(action, a, message, env, payload, variables);
      case 'lambda':
        return this.invokeLambda(rule, action, message, output);
      case 'firehose':
        return this.putFirehose(action, message, output, payload);
      case 's3':
        return this.putS3(action, a, message, env, payload, variables);
      case 'kinesis':
        return this.putKinesis(action, a, message, env, payload, variables);
    }
  }

  private async republish(
    action: RepublishAction,
    a: CompiledAction,
    message: MessageContext,
    env: EvalEnv,
    payload: Buffer,
    variables: ReadonlyMap<string, SqlValue> | undefined,
  ): Promise<void> {
    const topic = this.render(a, 'topic', message, env, variables, action.topic);
    const fail = (why: string) =>
      new ActionError(
        topic,
        `Failed to republish to topic ${topic}. The error received was ${why}. Message arrived on: ${message.topic}, Action: republish, Topic: ${topic}`,
      );
    if (!isValidTopicName(topic) || topic.length === 0) throw fail(`'${topic}' is not a valid topic name`);
    const limits = checkIotTopicLimits(topic);
    if (!limits.ok) throw fail(limits.message);
    if (isReservedJobTopic(topic)) throw fail('republishing to reserved job topics is not supported');
    if (payload.length > MAX_PAYLOAD_BYTES) {
      throw fail(`the payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES} bytes`);
    }
    if (action.headers) {
      // Rendered so that template errors surface; MQTT 3.1.1 has no place for them on the wire.
      for (const path of a.templates.keys()) {
        if (path.startsWith('headers.')) this.render(a, path, message, env, variables, topic);
      }
    }
    try {
      await this.opts.broker.publish(topic, payload, action.qos);
    } catch (err) {
      throw fail(errorText(err));
    }
  }

  private functionArn(name: string): string {
    return `arn:aws:lambda:${this.opts.region}:${this.opts.accountId}:function:${name}`;
  }

  /** AWS IoT invokes Lambda asynchronously: the action succeeds once the invocation is accepted. */
  private async invokeLambda(
    rule: CompiledRule,
    action: LambdaAction,
    message: MessageContext,
    output: SqlValue,
  ): Promise<void> {
    const name = action.functionName;
    const arn = this.functionArn(name);
    const fail = (why: string) =>
      new ActionError(
        arn,
        `Failed to invoke lambda function. The error received was ${why}. Message arrived on: ${message.topic}, Action: lambda, Function: ${arn}`,
      );
    if (output.type === 'Binary') {
      throw fail(
        "the Lambda action needs a JSON payload; select binary payloads as base64 text, e.g. encode(*, 'base64')",
      );
    }
    const handler = this.opts.handlers.get(name);
    if (!handler) throw fail(`Function not found: ${arn} (Error Code: ResourceNotFoundException)`);
    const text = toJsonText(output);
    const event: unknown = text === undefined ? null : JSON.parse(text);
    const requestId = this.uuid();
    const started = this.now();
    const context: LambdaContext = {
      functionName: name,
      functionVersion: '$LATEST',
      invokedFunctionArn: arn,
      memoryLimitInMB: '128',
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${name}`,
      logStreamName: `local/${requestId}`,
      getRemainingTimeInMillis: () => Math.max(0, started + LAMBDA_TIMEOUT_MS - this.now()),
    };
    const log = this.log.child({ rule: rule.def.name, functionName: name, awsRequestId: requestId });
    this.track(
      Promise.resolve()
        .then(() => handler(event, context))
        .then(
          () => {
            rule.stats.lambdaInvocations += 1;
            log.debug('lambda handler completed');
          },
          (err: unknown) => {
            rule.stats.lambdaInvocations += 1;
            rule.stats.lambdaErrors += 1;
            log.warn(
              { err: errorText(err) },
              'lambda handler failed (asynchronous invocation; not a rule action failure)',
            );
          },
        ),
    );
  }

  private awsConfig(): AwsClientConfig {
    return typeof this.opts.aws === 'function' ? this.opts.aws() : this.opts.aws;
  }

  private firehoseClient(): FirehoseClient {
    if (!this.firehose) {
      const c = this.awsConfig();
      this.firehose = new FirehoseClient({
        region: c.region,
        credentials: c.credentials,
        ...(c.endpoint ? { endpoint: c.endpoint } : {}),
        ...(c.maxAttempts ? { maxAttempts: c.maxAttempts } : {}),
      });
    }
    return this.firehose;
  }

  private s3Client(): S3Client {
    if (!this.s3) {
      const c = this.awsConfig();
      this.s3 = new S3Client({
        region: c.region,
        credentials: c.credentials,
        // A local endpoint has no per-bucket host names.
        ...(c.endpoint ? { endpoint: c.endpoint, forcePathStyle: true } : {}),
        ...(c.maxAttempts ? { maxAttempts: c.maxAttempts } : {}),
      });
    }
    return this.s3;
  }

  private async putFirehose(
    action: FirehoseAction,
    message: MessageContext,
    output: SqlValue,
    payload: Buffer,
  ): Promise<void> {
    const stream = action.deliveryStreamName;
    const fail = (why: string) =>
      new ActionError(
        stream,
        `Failed to send message to Firehose. The error received was ${why}. Message arrived on: ${message.topic}, Action: firehose, DeliveryStreamName: ${stream}`,
      );
    const separator = Buffer.from(action.separator ?? '');
    const record = (data: Buffer) => ({ Data: separator.length ? Buffer.concat([data, separator]) : data });
    if (action.batchMode && output.type === 'Array') {
      const items = output.value;
      if (items.length > FIREHOSE_MAX_BATCH_RECORDS) {
        throw fail(
          `the batch has ${items.length} records; at most ${FIREHOSE_MAX_BATCH_RECORDS} are allowed`,
        );
      }
      if (items.length === 0) return;
      let res: PutRecordBatchCommandOutput;
      try {
        res = await this.firehoseClient().send(
          new PutRecordBatchCommand({
            DeliveryStreamName: stream,
            Records: items.map((item) => record(actionPayload(item))),
          }),
        );
      } catch (err) {
        throw fail(sdkErrorText('Firehose', err));
      }
      if (res.FailedPutCount) {
        const first = res.RequestResponses?.find((r) => r.ErrorCode);
        throw fail(
          `${res.FailedPutCount} of ${items.length} records were not put${first ? ` (${first.ErrorCode}: ${first.ErrorMessage ?? ''})` : ''}`,
        );
      }
      return;
    }
    try {
      await this.firehoseClient().send(
        new PutRecordCommand({ DeliveryStreamName: stream, Record: record(payload) }),
      );
    } catch (err) {
      throw fail(sdkErrorText('Firehose', err));
    }
  }

  /**
   * "Kinesis Data Streams" action: PutRecord with the message as the record's data and the rendered
   * partition key (a random one when the action has none, as AWS IoT does).
   */
  private async putKinesis(
    action: KinesisAction,
    a: CompiledAction,
    message: MessageContext,
    env: EvalEnv,
    payload: Buffer,
    variables: ReadonlyMap<string, SqlValue> | undefined,
  ): Promise<void> {
    const stream = action.streamName;
    const key =
      action.partitionKey === undefined
        ? this.uuid()
        : this.render(a, 'partitionKey', message, env, variables, stream);
    const fail = (why: string) =>
      new ActionError(
        stream,
        `Failed to send message to Kinesis. The error received was ${why}. Message arrived on: ${message.topic}, Action: kinesis, StreamName: ${stream}, PartitionKey: ${JSON.stringify(key)}`,
      );
    if (key.length === 0 || key.length > 256) {
      throw fail(
        `the partition key rendered from its template has ${key.length} characters (1 to 256 allowed)`,
      );
    }
    try {
      await this.kinesisClient().send(
        new KinesisPutRecordCommand({ StreamName: stream, PartitionKey: key, Data: payload }),
      );
    } catch (err) {
      throw fail(sdkErrorText('Kinesis', err));
    }
  }

  private kinesisClient(): KinesisClient {
    if (!this.kinesis) {
      const c = this.awsConfig();
      this.kinesis = new KinesisClient({
        region: c.region,
        credentials: c.credentials,
        ...(c.endpoint ? { endpoint: c.endpoint } : {}),
        ...(c.maxAttempts ? { maxAttempts: c.maxAttempts } : {}),
      });
    }
    return this.kinesis;
  }

  private async putS3(
    action: S3Action,
    a: CompiledAction,
    message: MessageContext,
    env: EvalEnv,
    payload: Buffer,
    variables: ReadonlyMap<string, SqlValue> | undefined,
  ): Promise<void> {
    const bucket = action.bucketName;
    const key = this.render(a, 'key', message, env, variables, bucket);
    const fail = (why: string) =>
      new ActionError(
        bucket,
        `Failed to put S3 object. The error received was ${why}. Message arrived on: ${message.topic}, Action: s3, Bucket: ${bucket}, Key: ${JSON.stringify(key)}`,
      );
    if (key.length === 0) throw fail('the object key rendered from its template is empty');
    try {
      await this.s3Client().send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: payload,
          // The rule's canned ACL goes to S3 as is; S3 answers for ACLs it does not take on objects
          // (log-delivery-write, which TopicRule accepts, is a bucket ACL).
          ...(action.cannedAcl ? { ACL: action.cannedAcl as ObjectCannedACL } : {}),
        }),
      );
    } catch (err) {
      throw fail(sdkErrorText('Amazon S3', err));
    }
  }

  /** Counters per rule and in total. */
  stats(): RulesEngineStats {
    const total = emptyStats();
    const rules: Record<string, RuleStats> = {};
    for (const r of this.rules) {
      rules[r.def.name] = { ...r.stats };
      for (const k of Object.keys(total) as (keyof RuleStats)[]) total[k] += r.stats[k];
    }
    return { total, rules };
  }

  /** Resolves once every message received so far has been processed and its actions have settled. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Unsubscribes, waits (at most `timeoutMs`) for work in flight, and releases the SDK clients. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const off of this.unsubscribes.splice(0)) off();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.idle().then(() => 'idle' as const), timedOut]);
    clearTimeout(timer);
    if (result === 'timeout')
      this.log.warn({ inflight: this.inflight.size }, 'rules engine stopped with work in flight');
    this.firehose?.destroy();
    this.kinesis?.destroy();
    this.s3?.destroy();
    this.log.info('rules engine stopped');
  }
}
