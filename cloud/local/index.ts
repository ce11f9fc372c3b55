/**
 * The embedded local cloud: one MQTT/TLS endpoint (IoT Core) and one HTTP endpoint (all HTTP services,
 * routed by SigV4 credential scope), with all state in one data dir.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import pino, { type Logger } from 'pino';
import { FUNCTIONS, type HandlerRegistry } from '../functions/index.js';
import { FLEET_ERRORS_TOPIC, RULES } from '../rules/definitions.js';
import { JITR_ACTIVATION_ROLE_NAME, jitrActivationRolePolicy } from '../rules/jitr.js';
import {
  FIREHOSE_DELIVERY_ROLE_NAME,
  firehoseDeliveryRolePolicy,
  TELEMETRY_DELIVERY,
} from '../rules/lake.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../rules/policies.js';
import {
  ALERTS_TOPIC_NAME,
  ANOMALY_DETECTION_FUNCTION_NAME,
  ANOMALY_DETECTION_ROLE_NAME,
  alertsTopicArn,
  anomalyDetectionRolePolicy,
  EVENT_ACK_ROLE_NAME,
  eventAckRolePolicy,
  FACE_COLLECTION_ID,
  FRAME_ANALYSIS_FUNCTION_NAME,
  FRAME_ANALYSIS_ROLE_NAME,
  FRAME_PREFIXES,
  frameAnalysisRolePolicy,
  LOCAL_DATA_BUCKET,
  LOCAL_FIRMWARE_BUCKET,
  LOCAL_RESULTS_BUCKET,
  UPLOAD_ROLE_NAME,
  uploadRolePolicy,
  VENDING_ROLE_NAME,
} from '../rules/resources.js';
import {
  GATEWAY_LOGS_SHARDS,
  GATEWAY_LOGS_STREAM,
  kinesisStreamArn,
  TELEMETRY_HR_MAPPING,
  TELEMETRY_HR_SHARDS,
  TELEMETRY_HR_STREAM,
} from '../rules/streams.js';
import { IotBroker, MAX_PAYLOAD_BYTES } from './broker.js';
import { type LocalCloudOptions, type LocalCloudOptionsInput, parseLocalCloudOptions } from './config.js';
import { CredentialStore } from './credentials.js';
import { LocalCloudError } from './errors.js';
import { LocalFirehose } from './firehose/index.js';
import { iotControlRoute } from './http/iot.js';
import { iotDataRoute } from './http/iotdata.js';
import { HttpEndpoint } from './http/server.js';
import { Iam } from './iam.js';
import { EventSourceMapping } from './kinesis/consumer.js';
import { LocalKinesis } from './kinesis/index.js';
import { localFunctionRegistry } from './lambda-runtime.js';
import { type LocalPki, loadOrCreatePki } from './pki.js';
import { checkIotTopicLimits, isValidTopicName } from './policy.js';
import { Registry } from './registry.js';
import { rekognitionRoute } from './rekognition/route.js';
import { RulesEngine } from './rules-engine.js';
import { canonicalUserId, partitionOf } from './s3/context.js';
import { S3Notifier } from './s3/notifications.js';
import { s3Route } from './s3/route.js';
import { ShadowService, shadowSqlServices } from './shadow/service.js';
import { snsRoute } from './sns/route.js';
import { SnsTopics, toNotification } from './sns/topics.js';
import { readJsonFile, removeFile, writeJsonFile } from './store.js';
import { stsRoute } from './sts.js';

export interface LocalCloudEndpoints {
  host: string;
  mqttPort: number;
  httpPort: number;
  /** `mqtts://host:port` */
  mqttUrl: string;
  /** `http://host:port`, the endpoint for every AWS SDK client. */
  httpUrl: string;
}

interface RuntimeFile {
  pid: number;
  host: string;
  mqttPort: number;
  httpPort: number;
  startedAt: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reads the runtime file of a local cloud running on this data dir, if one is. */
export function runningLocalCloud(dataDir: string): RuntimeFile | undefined {
  const rt = readJsonFile<RuntimeFile>(join(dataDir, 'runtime.json'));
  if (!rt || !isAlive(rt.pid) || rt.pid === process.pid) return undefined;
  return rt;
}

/** Ensures the registry holds the local root CA and the default device policy. */
export function seedRegistry(registry: Registry, pki: LocalPki, opts: LocalCloudOptions): void {
  registry.registerCaCertificate(pki.rootCa.certPem);
  registry.putPolicy(DEVICE_POLICY_NAME, devicePolicyDocument(opts.region, opts.accountId));
}

/** The gateway log stream's ARN in the local cloud. */
function gatewayLogsStreamArn(opts: LocalCloudOptions): string {
  return kinesisStreamArn(GATEWAY_LOGS_STREAM, opts.region, opts.accountId, partitionOf(opts.region));
}

/**
 * Ensures the project's IAM roles exist: the credential vending function's execution role (trusted by
 * Lambda; it may assume the upload role and publish the credentials responses) and the upload role
 * (trusted by the vending role; objects under raw/ and frames/ of the data bucket, `opts.buckets[0]`,
 * and records into the gateway log stream).
 */
export function seedIam(iam: Iam, opts: LocalCloudOptions): void {
  const lambdaTrust = {
    Version: '2012-10-17' as const,
    Statement: [
      { Effect: 'Allow' as const, Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
    ],
  };
  iam.putRole({
    roleName: EVENT_ACK_ROLE_NAME,
    description: 'Execution role of the event acknowledgement function',
    trustPolicy: lambdaTrust,
    policies: {
      events: eventAckRolePolicy(opts.buckets[0] ?? LOCAL_DATA_BUCKET, opts.region, opts.accountId),
    },
  });
  const vending = iam.putRole({
    roleName: VENDING_ROLE_NAME,
    description: 'Execution role of the credential vending function',
    trustPolicy: {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
      ],
    },
    policies: {
      vending: {
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 'sts:AssumeRole', Resource: iam.roleArn(UPLOAD_ROLE_NAME) },
          {
            Effect: 'Allow',
            Action: 'iot:Publish',
            Resource: `arn:aws:iot:${opts.region}:${opts.accountId}:topic/things/*/credentials/response`,
          },
        ],
      },
    },
  });
  const bucket = opts.buckets[0];
  // S3 resource ARNs carry the region's partition (as the local S3 endpoint builds them).
  const s3Partition = opts.region.startsWith('cn-')
    ? 'aws-cn'
    : opts.region.startsWith('us-gov-')
      ? 'aws-us-gov'
      : 'aws';
  iam.putRole({
    roleName: UPLOAD_ROLE_NAME,
    description: 'Gateway uploads: sessions are narrowed to one thing by the session policy',
    trustPolicy: {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: vending.arn }, Action: 'sts:AssumeRole' }],
    },
    policies:
      bucket === undefined
        ? {}
        : { uploads: uploadRolePolicy(bucket, s3Partition, gatewayLogsStreamArn(opts)) },
  });
  // The frame analysis function: frames in the data bucket, rules and results in the results bucket.
  iam.putRole({
    roleName: FRAME_ANALYSIS_ROLE_NAME,
    description: 'Execution role of the frame analysis function',
    trustPolicy: lambdaTrust,
    policies: {
      analysis: frameAnalysisRolePolicy({
        dataBucket: bucket ?? LOCAL_DATA_BUCKET,
        resultsBucket: LOCAL_RESULTS_BUCKET,
        topicArn: alertsTopicArn(opts.region, opts.accountId, s3Partition),
        region: opts.region,
        account: opts.accountId,
        partition: s3Partition,
      }),
    },
  });
  // The JITR activation function: certificates, things and the device policy; the installers'
  // allow-list and CRLs in the results bucket.
  iam.putRole({
    roleName: JITR_ACTIVATION_ROLE_NAME,
    description: 'Execution role of the JITR activation function',
    trustPolicy: lambdaTrust,
    policies: {
      activation: jitrActivationRolePolicy({
        resultsBucket: LOCAL_RESULTS_BUCKET,
        region: opts.region,
        account: opts.accountId,
        partition: s3Partition,
        devicePolicyName: DEVICE_POLICY_NAME,
      }),
    },
  });
  // The anomaly detection function: publishes alerts on alerts/{site}.
  iam.putRole({
    roleName: ANOMALY_DETECTION_ROLE_NAME,
    description: 'Execution role of the anomaly detection function',
    trustPolicy: lambdaTrust,
    policies: { alerts: anomalyDetectionRolePolicy(opts.region, opts.accountId, s3Partition) },
  });
  // Firehose's delivery role: writes the lake (lake/ of the data bucket).
  iam.putRole({
    roleName: FIREHOSE_DELIVERY_ROLE_NAME,
    description: 'Firehose delivery into the data lake',
    trustPolicy: {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { Service: 'firehose.amazonaws.com' }, Action: 'sts:AssumeRole' },
      ],
    },
    policies: { lake: firehoseDeliveryRolePolicy(bucket ?? LOCAL_DATA_BUCKET, s3Partition) },
  });
}

/** The S3 destination role sessions last this long; clients are renewed well before (firehose/index.ts). */
const DELIVERY_SESSION_SECONDS = 3600;

/**
 * The telemetry delivery stream as the CDK app deploys it (cloud/rules/lake.ts), in the data bucket,
 * with the local cloud's buffering overrides.
 */
function telemetryDeliveryStream(iam: Iam, opts: LocalCloudOptions) {
  const d = TELEMETRY_DELIVERY;
  const bucket = opts.buckets[0] ?? LOCAL_DATA_BUCKET;
  return {
    DeliveryStreamName: d.name,
    DeliveryStreamType: 'DirectPut' as const,
    ExtendedS3DestinationConfiguration: {
      RoleARN: iam.roleArn(FIREHOSE_DELIVERY_ROLE_NAME),
      BucketARN: `arn:${partitionOf(opts.region)}:s3:::${bucket}`,
      Prefix: d.prefix,
      ErrorOutputPrefix: d.errorOutputPrefix,
      CompressionFormat: d.compression,
      BufferingHints: {
        SizeInMBs: opts.telemetryBuffering?.sizeInMBs ?? d.bufferingHints.sizeInMBs,
        IntervalInSeconds: opts.telemetryBuffering?.intervalInSeconds ?? d.bufferingHints.intervalInSeconds,
      },
      DynamicPartitioningConfiguration: { Enabled: true },
      ProcessingConfiguration: {
        Enabled: true,
        Processors: [
          {
            Type: 'MetadataExtraction' as const,
            Parameters: [
              {
                ParameterName: 'MetadataExtractionQuery' as const,
                ParameterValue: d.metadataExtractionQuery,
              },
              { ParameterName: 'JsonParsingEngine' as const, ParameterValue: d.metadataExtractionJqEngine },
            ],
          },
        ],
      },
    },
  };
}

export class LocalCloud {
  private constructor(
    readonly options: LocalCloudOptions,
    readonly registry: Registry,
    readonly pki: LocalPki,
    readonly credentials: CredentialStore,
    readonly broker: IotBroker,
    readonly shadows: ShadowService,
    readonly http: HttpEndpoint,
    readonly endpoints: LocalCloudEndpoints,
    readonly logger: Logger,
    readonly rules: RulesEngine,
    /** IAM roles, role sessions and the authorizer of the HTTP services. */
    readonly iam: Iam,
    /** The project's Lambda functions as the rules engine invokes them. */
    readonly functions: HandlerRegistry,
    /** The local Firehose: delivery streams into the local S3 (the telemetry stream exists from the start). */
    readonly firehose: LocalFirehose,
    /** The local Kinesis Data Streams: streams and their records under {dataDir}/kinesis. */
    readonly kinesis: LocalKinesis,
  ) {}

  /** The local SNS: topics, recorded messages, in-process subscribers (set by start). */
  sns!: SnsTopics;
  /** The local S3's event notifications to functions (set by start). */
  s3Notifications!: S3Notifier;
  /**
   * The event source mapping from the high-rate telemetry stream to the anomaly detection function (set
   * by start). Its on-failure destination is the MQTT topic `fleet/errors`: each failure record (the
   * documented Kinesis one, with the shard and sequence range) is published there.
   */
  telemetryConsumer?: EventSourceMapping;
  private telemetryKinesisClient?: KinesisClient;

  static async start(
    input: LocalCloudOptionsInput = {},
    logger: Logger = pino({ level: 'silent' }),
  ): Promise<LocalCloud> {
    const opts = parseLocalCloudOptions(input);
    mkdirSync(opts.dataDir, { recursive: true });
    const other = runningLocalCloud(opts.dataDir);
    if (other) {
      throw new LocalCloudError(
        `a local cloud (pid ${other.pid}) is already running on ${opts.dataDir} (mqtt ${other.mqttPort}, http ${other.httpPort})`,
      );
    }
    const pki = await loadOrCreatePki(opts.dataDir, [opts.host]);
    const registry = new Registry(opts.dataDir, { region: opts.region, accountId: opts.accountId });
    seedRegistry(registry, pki, opts);
    const credentials = new CredentialStore(opts.dataDir, opts.accountId);
    const iam = new Iam({
      dataDir: opts.dataDir,
      region: opts.region,
      accountId: opts.accountId,
      credentials,
      logger: logger.child({ component: 'iam' }),
    });
    seedIam(iam, opts);
    const broker = await IotBroker.create({
      registry,
      region: opts.region,
      accountId: opts.accountId,
      logger: logger.child({ component: 'broker' }),
      tls: {
        certPem: pki.server.certPem,
        keyPem: pki.server.keyPem,
        caPems: () =>
          registry
            .listCaCertificates()
            .filter((c) => c.status === 'ACTIVE')
            .map((c) => c.certificatePem),
      },
    });
    const shadows = new ShadowService(
      opts.dataDir,
      (topic, payload) => broker.publish(topic, payload, 0),
      logger.child({ component: 'shadow' }),
    );
    broker.subscribe('$aws/things/+/shadow/#', (topic, payload) => {
      shadows
        .handleMqtt(topic, payload)
        .catch((err) => logger.error({ err, topic }, 'shadow request failed'));
    });
    // The project's IoT rules, subscribed before any client can connect. Their AWS SDK clients are
    // created on first use, when the HTTP endpoint (port 0 = free port) is known.
    let sdk: (() => ReturnType<LocalCloud['sdkConfig']>) | undefined;
    // The project's Lambda functions, run in-process with their execution roles' sessions.
    const functions = localFunctionRegistry({
      functions: FUNCTIONS,
      region: opts.region,
      endpoint: () => {
        if (!sdk) throw new LocalCloudError('the local cloud HTTP endpoint is not listening yet');
        return sdk().endpoint;
      },
      roleSession: (roleName, sessionName) => iam.issueRoleSession(roleName, sessionName),
      environment: () => ({
        UPLOAD_ROLE_ARN: iam.roleArn(UPLOAD_ROLE_NAME),
        DATA_BUCKET: opts.buckets[0] ?? LOCAL_DATA_BUCKET,
        LOG_STREAM_ARN: gatewayLogsStreamArn(opts),
        // The local S3 serves path-style URLs only.
        S3_FORCE_PATH_STYLE: 'true',
        RESULTS_BUCKET: LOCAL_RESULTS_BUCKET,
        ALERT_TOPIC_ARN: alertsTopicArn(opts.region, opts.accountId, partitionOf(opts.region)),
        FACE_COLLECTION_ID,
      }),
      logger: logger.child({ component: 'lambda' }),
    });
    const rules = RulesEngine.start({
      broker,
      rules: RULES,
      handlers: functions,
      aws: () => {
        if (!sdk) throw new LocalCloudError('the local cloud HTTP endpoint is not listening yet');
        return sdk();
      },
      region: opts.region,
      accountId: opts.accountId,
      logger: logger.child({ component: 'rules' }),
      services: shadowSqlServices(shadows),
    });
    const http = new HttpEndpoint({
      credentials,
      logger: logger.child({ component: 'http' }),
      health: () => ({
        status: 'running',
        services: ['iot-core', 'iot', 'iotdata', 'sts', 's3', 'rekognition', 'sns', 'firehose', 'kinesis'],
        region: opts.region,
      }),
    });
    http.register(
      iotControlRoute({
        registry,
        pki,
        region: opts.region,
        accountId: opts.accountId,
        endpointHost: opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host,
        authorizer: iam,
      }),
    );
    http.register(
      iotDataRoute({
        shadows,
        publish: (topic, payload, qos, retain) => broker.publish(topic, payload, qos, retain),
        validateTopic: (topic) => {
          if (!isValidTopicName(topic)) return `invalid topic '${topic}'`;
          const limit = checkIotTopicLimits(topic);
          return limit.ok ? undefined : limit.message;
        },
        maxPayloadBytes: MAX_PAYLOAD_BYTES,
        authorizer: iam,
        region: opts.region,
        accountId: opts.accountId,
      }),
    );
    http.register(stsRoute({ iam, region: opts.region, logger: logger.child({ component: 'sts' }) }));
    // S3 event notifications: new frames in the data bucket go to the frame analysis function.
    const s3Notifications = new S3Notifier({
      region: opts.region,
      accountId: opts.accountId,
      partition: partitionOf(opts.region),
      bucketOwner: canonicalUserId(opts.accountId),
      resolve: (name) => functions.get(name),
      logger: logger.child({ component: 's3-notifications' }),
    });
    for (const prefix of FRAME_PREFIXES) {
      s3Notifications.addLambdaConfiguration({
        id: `frame-analysis-${prefix.replace(/\/$/, '')}`,
        bucket: opts.buckets[0] ?? LOCAL_DATA_BUCKET,
        events: ['s3:ObjectCreated:*'],
        prefix,
        functionName: FRAME_ANALYSIS_FUNCTION_NAME,
      });
    }
    // S3 (path-style; see cloud/local/s3/route.ts): objects are plain files under {dataDir}/s3.
    http.register(
      s3Route({
        dataDir: opts.dataDir,
        buckets: [...new Set([...opts.buckets, LOCAL_RESULTS_BUCKET, LOCAL_FIRMWARE_BUCKET])],
        authorizer: iam,
        region: opts.region,
        notifier: s3Notifications,
      }),
    );
    // SNS (query protocol): the alerts topic exists from the start; its messages are recorded under
    // {dataDir}/sns and delivered on MQTT `alerts/{site}` (site from the message attribute).
    const sns = new SnsTopics(opts.dataDir, opts.region, opts.accountId, logger.child({ component: 'sns' }));
    const alertsTopic = sns.create(ALERTS_TOPIC_NAME)?.topic.arn ?? sns.topicArn(ALERTS_TOPIC_NAME);
    sns.subscribe(alertsTopic, async (message) => {
      const site = message.messageAttributes.site?.StringValue;
      const topic = `alerts/${site}`;
      if (site === undefined || !/^[^/+#]{1,128}$/.test(site) || !isValidTopicName(topic)) {
        logger.warn(
          { messageId: message.messageId, site },
          'alert not published on MQTT: no usable site attribute',
        );
        return;
      }
      await broker.publish(topic, JSON.stringify(toNotification(message)), 1);
    });
    http.register(
      snsRoute({
        topics: sns,
        authorizer: iam,
        region: opts.region,
        logger: logger.child({ component: 'sns' }),
      }),
    );
    // Rekognition (JSON 1.1; see cloud/local/rekognition/route.ts): collections under {dataDir}/rekognition.
    http.register(
      rekognitionRoute({
        dataDir: opts.dataDir,
        collections: [FACE_COLLECTION_ID],
        region: opts.region,
        accountId: opts.accountId,
        authorizer: iam,
        logger: logger.child({ component: 'rekognition' }),
      }),
    );
    let mqttPort: number;
    let httpPort: number;
    try {
      mqttPort = await broker.listen(opts.mqttPort, opts.host);
      httpPort = await http.listen(opts.httpPort, opts.host);
    } catch (err) {
      await rules.stop().catch(() => {});
      await broker.close().catch(() => {});
      await http.close().catch(() => {});
      throw new LocalCloudError(
        `cannot listen on ${opts.host} (mqtt ${opts.mqttPort}, http ${opts.httpPort})`,
        { cause: err },
      );
    }
    const host = opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host;
    // Firehose writes to S3 as its stream's delivery role, through the S3 endpoint (now listening), so
    // IAM and S3 notifications apply as on AWS. Records journaled before a restart are delivered now.
    let firehose: LocalFirehose;
    try {
      firehose = await LocalFirehose.open({
        dataDir: opts.dataDir,
        region: opts.region,
        accountId: opts.accountId,
        authorizer: iam,
        logger: logger.child({ component: 'firehose' }),
        s3ForRole: async (roleArn) => {
          const role = iam.getRoleByArn(roleArn);
          if (!role) throw new LocalCloudError(`no role ${roleArn}`);
          const session = iam.issueRoleSession(role.roleName, 'firehose-delivery', DELIVERY_SESSION_SECONDS);
          return new S3Client({
            region: opts.region,
            endpoint: `http://${host}:${httpPort}`,
            forcePathStyle: true,
            credentials: {
              accessKeyId: session.accessKeyId,
              secretAccessKey: session.secretAccessKey,
              ...(session.sessionToken ? { sessionToken: session.sessionToken } : {}),
            },
          });
        },
      });
      await firehose.ensureDeliveryStream(telemetryDeliveryStream(iam, opts));
    } catch (err) {
      await rules.stop().catch(() => {});
      await broker.close().catch(() => {});
      await http.close().catch(() => {});
      throw err;
    }
    http.register(firehose.route());
    // Kinesis Data Streams with the documented per-shard write quotas; stored streams and records are
    // served again after a restart.
    let kinesis: LocalKinesis;
    try {
      kinesis = await LocalKinesis.open({
        dataDir: opts.dataDir,
        region: opts.region,
        accountId: opts.accountId,
        authorizer: iam,
        logger: logger.child({ component: 'kinesis' }),
      });
    } catch (err) {
      await firehose.close().catch(() => {});
      await rules.stop().catch(() => {});
      await broker.close().catch(() => {});
      await http.close().catch(() => {});
      throw err;
    }
    http.register(kinesis.route());
    try {
      await kinesis.ensureStream(TELEMETRY_HR_STREAM, TELEMETRY_HR_SHARDS);
      // Where gateways' log shippers put their log lines (with their vended credentials).
      await kinesis.ensureStream(GATEWAY_LOGS_STREAM, GATEWAY_LOGS_SHARDS);
    } catch (err) {
      await kinesis.close().catch(() => {});
      await firehose.close().catch(() => {});
      await rules.stop().catch(() => {});
      await broker.close().catch(() => {});
      await http.close().catch(() => {});
      throw err;
    }
    const endpoints: LocalCloudEndpoints = {
      host,
      mqttPort,
      httpPort,
      mqttUrl: `mqtts://${host}:${mqttPort}`,
      httpUrl: `http://${host}:${httpPort}`,
    };
    writeJsonFile(join(opts.dataDir, 'runtime.json'), {
      pid: process.pid,
      host,
      mqttPort,
      httpPort,
      startedAt: new Date().toISOString(),
    } satisfies RuntimeFile);
    const cloud = new LocalCloud(
      opts,
      registry,
      pki,
      credentials,
      broker,
      shadows,
      http,
      endpoints,
      logger,
      rules,
      iam,
      functions,
      firehose,
      kinesis,
    );
    sdk = () => cloud.sdkConfig();
    cloud.sns = sns;
    cloud.s3Notifications = s3Notifications;
    try {
      await cloud.startTelemetryConsumer();
    } catch (err) {
      await cloud.stop().catch(() => {});
      throw err;
    }
    logger.info({ endpoints }, 'local cloud started');
    return cloud;
  }

  /** Settings for any AWS SDK v3 client that should talk to this local cloud. */
  sdkConfig() {
    return {
      region: this.options.region,
      endpoint: this.endpoints.httpUrl,
      credentials: {
        accessKeyId: this.credentials.root.accessKeyId,
        secretAccessKey: this.credentials.root.secretAccessKey,
      },
    };
  }

  /** Starts the event source mapping of the high-rate telemetry stream (checkpoints under {dataDir}). */
  private async startTelemetryConsumer(): Promise<void> {
    const m = TELEMETRY_HR_MAPPING;
    // One HTTP/2 session for every shard's reads: the client's default opens a connection per request.
    this.telemetryKinesisClient = new KinesisClient({
      ...this.sdkConfig(),
      requestHandler: { disableConcurrentStreams: false },
    });
    this.telemetryConsumer = await EventSourceMapping.start({
      kinesis: this.telemetryKinesisClient,
      notifier: this.kinesis,
      streamName: TELEMETRY_HR_STREAM,
      functionName: ANOMALY_DETECTION_FUNCTION_NAME,
      handler: (event, context) => {
        const handler = this.functions.get(ANOMALY_DETECTION_FUNCTION_NAME);
        if (!handler) throw new LocalCloudError(`no function ${ANOMALY_DETECTION_FUNCTION_NAME}`);
        return handler(event, context);
      },
      batchSize: m.batchSize,
      windowMs: m.windowSeconds * 1000,
      startingPosition: m.startingPosition,
      retries: m.retries,
      bisect: m.bisect,
      reportBatchItemFailures: m.reportBatchItemFailures,
      checkpointDir: join(this.options.dataDir, 'kinesis-consumers'),
      region: this.options.region,
      accountId: this.options.accountId,
      roleArn: this.iam.roleArn(ANOMALY_DETECTION_ROLE_NAME),
      onFailure: (record) => this.broker.publish(FLEET_ERRORS_TOPIC, JSON.stringify(record), 0),
      logger: this.logger.child({ component: 'kinesis-consumer' }),
    });
  }

  async stop(): Promise<void> {
    // Event notifications first: their deliveries run functions that use every other service.
    await this.s3Notifications.stop();
    await this.sns.idle();
    // Then the rules: their in-flight actions still publish through the broker and put to Firehose.
    await this.rules.stop();
    // Firehose keeps what it has not delivered in its journal, for the next start.
    await this.firehose.close();
    // The consumer before the stream: its invocation under way finishes (or is read again next start).
    await this.telemetryConsumer?.stop();
    this.telemetryKinesisClient?.destroy();
    await this.kinesis.close();
    await this.broker.close();
    await this.http.close();
    const rt = readJsonFile<RuntimeFile>(join(this.options.dataDir, 'runtime.json'));
    if (rt?.pid === process.pid) removeFile(join(this.options.dataDir, 'runtime.json'));
    this.logger.info('local cloud stopped');
  }
}
