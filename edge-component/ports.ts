/**
 * The edge component's ports: how it talks to the world. Adapters implement them: direct MQTT over
 * mTLS with mqtt.js (adapters/mqtt-channel.ts, standalone runs), the Greengrass IPC client of
 * aws-iot-device-sdk-v2 (adapters/greengrass-ipc.ts, under a Greengrass nucleus), and in-memory doubles
 * for tests.
 */

/** MQTT QoS levels AWS IoT Core supports (no QoS 2). */
export type Qos = 0 | 1;

/**
 * Connection state of a channel:
 * - `connecting`: created, first connection not yet up;
 * - `connected`: up, and every registered subscription is active again;
 * - `disconnected`: lost, reconnecting with backoff;
 * - `closed`: closed by its owner, for good.
 */
export type ChannelState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export type MessageHandler = (topic: string, payload: Buffer) => void;

/** Removes a subscription handler; the last handler of a filter unsubscribes at the broker. */
export type Unsubscribe = () => Promise<void>;

/** Publish/subscribe to AWS IoT Core, as the thing the gateway is. */
export interface IotChannel {
  readonly state: ChannelState;
  /** `state === 'connected'`. */
  readonly connected: boolean;
  /** Calls `listener` on every state change; returns a function that removes it. */
  onStateChange(listener: (state: ChannelState) => void): () => void;
  /**
   * Publishes. Resolves when the broker acknowledged it (QoS 1) or it was written (QoS 0). Rejects with
   * ChannelNotConnectedError when not connected (callers own their retries) and ChannelClosedError
   * after close().
   */
  publish(topic: string, payload: string | Uint8Array, qos: Qos): Promise<void>;
  /**
   * Registers `handler` for messages matching `filter` (MQTT wildcards `+` and `#`). When connected,
   * resolves once the broker granted the subscription (SubscribeRefusedError if it refused,
   * ChannelNotConnectedError if the connection dropped first); when not connected, resolves at once,
   * and the subscription is made before the next `connected` state, as are all subscriptions after
   * every reconnect.
   */
  subscribe(filter: string, handler: MessageHandler, qos?: Qos): Promise<Unsubscribe>;
  /** Disconnects and stops reconnecting; idempotent. */
  close(): Promise<void>;
}

/**
 * The gateway's own device shadows (classic or named). Standalone: shadow topics over the IotChannel;
 * under Greengrass: the shadow manager's IPC operations.
 */
export interface ShadowClient {
  /**
   * Sends an update document (`{ state: { reported: ... } }`) to the named shadow. Resolves once it was
   * sent (MQTT) or accepted (Greengrass shadow manager); rejects when it could not be.
   */
  update(shadowName: string, document: Record<string, unknown>): Promise<void>;
}

/** A message of the local publish/subscribe bus: JSON already parsed, or raw bytes. */
export type LocalMessage = { json: unknown } | { bytes: Buffer };

/**
 * Local publish/subscribe on the gateway (Greengrass IPC PublishToTopic/SubscribeToTopic), where sensor
 * components publish their readings.
 */
export interface LocalPubSub {
  /** Calls `handler` for every message on topics matching `filter` (`+`/`#` wildcards). */
  subscribe(filter: string, handler: (topic: string, message: LocalMessage) => void): Promise<Unsubscribe>;
}

/** Time, injectable so that tests drive timeouts and expiries without waiting. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** One record for a data stream: its bytes and its partition key. */
export interface StreamRecord {
  data: Uint8Array;
  partitionKey: string;
}

/** What became of one record of a put: in the stream, or refused with the service's error code. */
export type StreamPutOutcome = { ok: true } | { ok: false; code: string; message: string };

/**
 * A data stream the gateway puts records into (Kinesis PutRecords; adapters/kinesis-log-stream.ts).
 */
export interface DataStreamClient {
  /**
   * Puts the records (one request). Resolves with one outcome per record, in order, when the service
   * answered: some may have failed (throttling), the others are in. Rejects when the request as a whole
   * failed (network, credentials, access denied, ...): then none is known to be in.
   */
  putRecords(records: readonly StreamRecord[], signal?: AbortSignal): Promise<StreamPutOutcome[]>;
  /** Releases connections. */
  destroy(): void;
}
