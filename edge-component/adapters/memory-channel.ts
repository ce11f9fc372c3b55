/**
 * An in-memory IotChannel: the device side of a tiny broker without a network. Messages the gateway
 * publishes go to `onPublish` listeners (the "cloud"); `deliver()` sends a message to the gateway's
 * matching subscriptions. Used by unit tests and for wiring the component without a broker.
 */
import { ChannelClosedError, ChannelNotConnectedError } from '../errors.js';
import type { ChannelState, IotChannel, MessageHandler, Qos, Unsubscribe } from '../ports.js';
import { topicMatches } from '../topic-filter.js';

export interface PublishedMessage {
  topic: string;
  payload: Buffer;
  qos: Qos;
}

export class MemoryIotChannel implements IotChannel {
  private current: ChannelState;
  private readonly stateListeners = new Set<(s: ChannelState) => void>();
  private readonly subs: { filter: string; handler: MessageHandler }[] = [];
  private readonly publishListeners = new Set<(m: PublishedMessage) => void>();
  /** Every message the gateway published, in order. */
  readonly published: PublishedMessage[] = [];
  /** Number of subscribe() calls that reached the "broker". */
  subscribeCalls = 0;

  constructor(opts: { connected?: boolean } = {}) {
    this.current = opts.connected === false ? 'connecting' : 'connected';
  }

  get state(): ChannelState {
    return this.current;
  }

  get connected(): boolean {
    return this.current === 'connected';
  }

  /** Filters with at least one handler. */
  get filters(): string[] {
    return [...new Set(this.subs.map((s) => s.filter))];
  }

  /** Simulates the connection going up or down. */
  setConnected(connected: boolean): void {
    if (this.current === 'closed') return;
    this.setState(connected ? 'connected' : 'disconnected');
  }

  private setState(s: ChannelState): void {
    if (s === this.current) return;
    this.current = s;
    for (const l of [...this.stateListeners]) l(s);
  }

  onStateChange(listener: (state: ChannelState) => void): () => void {
    this.stateListeners.add(listener);
    return () => {
      this.stateListeners.delete(listener);
    };
  }

  /** Calls `listener` with every message the gateway publishes; returns a function that removes it. */
  onPublish(listener: (m: PublishedMessage) => void): () => void {
    this.publishListeners.add(listener);
    return () => {
      this.publishListeners.delete(listener);
    };
  }

  async publish(topic: string, payload: string | Uint8Array, qos: Qos): Promise<void> {
    if (this.current === 'closed') throw new ChannelClosedError('channel closed');
    if (!this.connected) throw new ChannelNotConnectedError(`not connected: cannot publish to ${topic}`);
    const m = { topic, payload: Buffer.from(payload), qos };
    this.published.push(m);
    for (const l of [...this.publishListeners]) l(m);
  }

  async subscribe(filter: string, handler: MessageHandler): Promise<Unsubscribe> {
    if (this.current === 'closed') throw new ChannelClosedError('channel closed');
    this.subscribeCalls++;
    const sub = { filter, handler };
    this.subs.push(sub);
    return async () => {
      const i = this.subs.indexOf(sub);
      if (i >= 0) this.subs.splice(i, 1);
    };
  }

  /**
   * Delivers a message to the gateway's matching subscriptions, asynchronously (as a broker would);
   * resolves after the handlers ran. Nothing is delivered while not connected.
   */
  async deliver(topic: string, payload: string | Uint8Array | object): Promise<void> {
    await Promise.resolve();
    if (!this.connected) return;
    const body =
      typeof payload === 'string' || payload instanceof Uint8Array
        ? Buffer.from(payload)
        : Buffer.from(JSON.stringify(payload));
    for (const s of [...this.subs]) if (topicMatches(s.filter, topic)) s.handler(topic, body);
  }

  async close(): Promise<void> {
    this.subs.length = 0;
    this.setState('closed');
  }
}
