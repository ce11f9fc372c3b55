/**
 * The local SNS's state: topics (`{dataDir}/sns/topics.json`) and every published message, recorded
 * append-only as one JSON line per message in `{dataDir}/sns/messages/{topicName}.jsonl`.
 *
 * Standard topics only. Deliveries go to in-process subscribers (the local cloud wires the alerts topic
 * to MQTT): asynchronously, after Publish has answered, as SNS delivers; a failing subscriber is logged
 * and does not fail the Publish.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readJsonFile, writeJsonFile } from '../store.js';

export interface TopicRecord {
  name: string;
  arn: string;
  /** ISO 8601. */
  createdAt: string;
  attributes: Record<string, string>;
  tags: Record<string, string>;
}

export interface MessageAttribute {
  DataType: string;
  StringValue?: string;
  /** Base64. */
  BinaryValue?: string;
}

export interface PublishedMessage {
  messageId: string;
  topicArn: string;
  subject?: string;
  message: string;
  messageStructure?: string;
  messageAttributes: Record<string, MessageAttribute>;
  /** ISO 8601. */
  timestamp: string;
  /** Principal ARN of the publisher. */
  publisher: string;
}

/**
 * The JSON an HTTP/S or SQS subscriber of a standard topic receives for a message ("Amazon SNS message
 * and JSON formats"), without the signature fields (the local cloud signs nothing).
 */
export interface SnsNotification {
  Type: 'Notification';
  MessageId: string;
  TopicArn: string;
  Subject?: string;
  Message: string;
  Timestamp: string;
  MessageAttributes?: Record<string, { Type: string; Value: string }>;
}

export function toNotification(m: PublishedMessage): SnsNotification {
  const attrs = Object.entries(m.messageAttributes);
  return {
    Type: 'Notification',
    MessageId: m.messageId,
    TopicArn: m.topicArn,
    ...(m.subject !== undefined ? { Subject: m.subject } : {}),
    Message: m.message,
    Timestamp: m.timestamp,
    ...(attrs.length > 0
      ? {
          MessageAttributes: Object.fromEntries(
            attrs.map(([k, v]) => [k, { Type: v.DataType, Value: v.StringValue ?? v.BinaryValue ?? '' }]),
          ),
        }
      : {}),
  };
}

export type TopicSubscriber = (message: PublishedMessage) => void | Promise<void>;

export class SnsTopics {
  private readonly dir: string;
  private readonly file: string;
  private readonly topics = new Map<string, TopicRecord>();
  private readonly subscribers = new Map<string, Set<TopicSubscriber>>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    dataDir: string,
    readonly region: string,
    readonly accountId: string,
    private readonly log?: Logger,
  ) {
    this.dir = join(dataDir, 'sns');
    this.file = join(this.dir, 'topics.json');
    mkdirSync(join(this.dir, 'messages'), { recursive: true });
    const saved = readJsonFile<{ topics: TopicRecord[] }>(this.file);
    for (const t of saved?.topics ?? []) this.topics.set(t.arn, t);
  }

  topicArn(name: string): string {
    const partition = this.region.startsWith('cn-')
      ? 'aws-cn'
      : this.region.startsWith('us-gov-')
        ? 'aws-us-gov'
        : 'aws';
    return `arn:${partition}:sns:${this.region}:${this.accountId}:${name}`;
  }

  get(arn: string): TopicRecord | undefined {
    return this.topics.get(arn);
  }

  /** All topics, ordered by ARN (the order ListTopics pages through). */
  list(): TopicRecord[] {
    return [...this.topics.values()].sort((a, b) => (a.arn < b.arn ? -1 : a.arn > b.arn ? 1 : 0));
  }

  /**
   * Creates a topic, or returns the existing one of that name (CreateTopic is idempotent). Returns
   * undefined when a topic of that name exists with different attributes.
   */
  create(
    name: string,
    attributes: Record<string, string> = {},
    tags: Record<string, string> = {},
  ): { topic: TopicRecord; created: boolean } | undefined {
    const arn = this.topicArn(name);
    const existing = this.topics.get(arn);
    if (existing) {
      const same = Object.entries(attributes).every(([k, v]) => existing.attributes[k] === v);
      return same ? { topic: existing, created: false } : undefined;
    }
    const topic: TopicRecord = { name, arn, createdAt: new Date().toISOString(), attributes, tags };
    this.topics.set(arn, topic);
    writeJsonFile(this.file, { topics: this.list() });
    return { topic, created: true };
  }

  /** Delivers every message published on the topic to `subscriber`; returns the unsubscribe function. */
  subscribe(topicArn: string, subscriber: TopicSubscriber): () => void {
    let set = this.subscribers.get(topicArn);
    if (!set) {
      set = new Set();
      this.subscribers.set(topicArn, set);
    }
    set.add(subscriber);
    return () => set.delete(subscriber);
  }

  /** Records a message on an existing topic and schedules its deliveries. */
  publish(input: Omit<PublishedMessage, 'messageId' | 'timestamp'>): PublishedMessage {
    const topic = this.topics.get(input.topicArn);
    if (!topic) throw new Error(`topic ${input.topicArn} does not exist`);
    const message: PublishedMessage = {
      messageId: randomUUID(),
      timestamp: new Date().toISOString(),
      ...input,
    };
    appendFileSync(this.messagesFile(topic.name), `${JSON.stringify(message)}\n`);
    for (const subscriber of this.subscribers.get(topic.arn) ?? []) {
      const delivery = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => subscriber(message))
        .catch((err: unknown) =>
          this.log?.warn({ err, topicArn: topic.arn, messageId: message.messageId }, 'SNS delivery failed'),
        )
        .finally(() => this.pending.delete(delivery));
      this.pending.add(delivery);
    }
    return message;
  }

  /** The file a topic's messages are recorded in. */
  messagesFile(topicName: string): string {
    return join(this.dir, 'messages', `${topicName}.jsonl`);
  }

  /** Waits for the deliveries under way. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
