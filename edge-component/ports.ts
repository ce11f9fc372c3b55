/**
 * The edge component's ports: how it talks to the world. Adapters implement them (direct MQTT over
 * mTLS with mqtt.js in adapters/mqtt-channel.ts; Greengrass IPC later; in-memory doubles for tests).
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

/** Time, injectable so that tests drive timeouts and expiries without waiting. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}
