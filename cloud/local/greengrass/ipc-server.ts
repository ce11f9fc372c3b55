/**
 * An eventstream RPC server on a Unix domain socket, speaking the protocol that the aws-crt
 * eventstream RPC client (and so the unchanged `greengrasscoreipc` client of aws-iot-device-sdk-v2)
 * speaks to the Greengrass nucleus:
 *
 * - every frame is an AWS eventstream message (prelude with total/header length + CRCs, headers,
 *   payload, message CRC); frames are reassembled across socket chunks by their total length and
 *   encoded/decoded with `@smithy/eventstream-codec`;
 * - every frame carries int32 headers `:message-type`, `:message-flags` and `:stream-id`;
 * - the first client frame must be `Connect` (stream 0) with `:version` = `0.1.0` and a JSON payload
 *   `{"authToken": ...}`; the server answers `ConnectAck` with the `ConnectionAccepted` flag, or
 *   without it (then closes) when the token or version is refused;
 * - `Ping` is answered with `PingResponse` (payload echoed);
 * - a new stream id (> all earlier ones) with an `operation` header starts an operation; its first
 *   `ApplicationMessage` is the JSON request; a request-response operation is answered with one
 *   `ApplicationMessage` (headers `:content-type: application/json`, `service-model-type:
 *   <Operation>Response`) flagged `TerminateStream`; a streaming operation gets its response without
 *   the flag, then events (`service-model-type` = the event shape) until either side sends
 *   `TerminateStream`;
 * - modeled errors are `ApplicationError` + `TerminateStream` with `service-model-type` = the error
 *   shape and a JSON body `{message, ...}`; an unknown operation gets the nucleus's
 *   "Unsupported Operation" JSON error; an unexpected failure gets a `text/plain` "InternalServerError";
 * - anything else before/after the handshake is answered with `ProtocolError` and the connection is closed.
 */
import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import pino, { type Logger } from 'pino';
import { IpcModeledError, IpcServerStartError } from './errors.js';

export const MessageType = {
  ApplicationMessage: 0,
  ApplicationError: 1,
  Ping: 2,
  PingResponse: 3,
  Connect: 4,
  ConnectAck: 5,
  ProtocolError: 6,
  InternalError: 7,
} as const;

export const MessageFlags = { None: 0, ConnectionAccepted: 1, TerminateStream: 2 } as const;

const RPC_VERSION = '0.1.0';
const MAX_FRAME = 16 * 1024 * 1024 + 1024;
const codec = new EventStreamCodec(toUtf8, fromUtf8);

/** What an operation handler sees of its stream. */
export interface IpcStreamContext {
  /** The authenticated component name. */
  readonly principal: string;
  /** Operation name, e.g. `aws.greengrass#SubscribeToTopic`. */
  readonly operation: string;
  /** Sends one stream event (streaming operations, after the response). */
  sendEvent(shape: string, body: unknown): void;
  /** Closes the stream from the server side (`TerminateStream`). */
  close(): void;
  /** Registers a callback run once when the stream ends (either side, or connection loss). */
  onClose(fn: () => void): void;
  readonly closed: boolean;
}

export interface IpcOperation {
  /** Streaming operations keep the stream open after the response. */
  streaming: boolean;
  /** Returns the response body (JSON object); throws IpcModeledError for modeled errors. */
  handle(ctx: IpcStreamContext, request: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export interface IpcServerOptions {
  socketPath: string;
  /** Returns the component name for a valid token, else undefined. */
  authenticate(authToken: string): string | undefined;
  operations: ReadonlyMap<string, IpcOperation>;
  logger?: Logger;
}

interface StreamState {
  id: number;
  operation: string;
  ctx: IpcStreamContext;
  closed: boolean;
  closers: (() => void)[];
  requestSeen: boolean;
  /** Events raised before the response went out wait here, so the response is always first. */
  pendingEvents: { shape: string; body: unknown }[] | undefined;
}

class IpcConnection {
  private buf: Buffer = Buffer.alloc(0);
  private principal: string | undefined;
  private lastStreamId = 0;
  private readonly streams = new Map<number, StreamState>();
  private ended = false;
  private refused = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly opts: IpcServerOptions,
    private readonly log: Logger,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err }, 'ipc socket error'));
    socket.on('close', () => this.onClosed());
  }

  destroy(): void {
    this.ended = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 4 && !this.ended) {
      const total = this.buf.readUInt32BE(0);
      if (total < 16 || total > MAX_FRAME) {
        this.protocolError(`invalid frame length ${total}`);
        return;
      }
      if (this.buf.length < total) return;
      const frame = this.buf.subarray(0, total);
      this.buf = this.buf.subarray(total);
      let msg: { headers: MessageHeaders; body: Uint8Array };
      try {
        msg = codec.decode(frame);
      } catch (err) {
        this.protocolError(`undecodable frame: ${(err as Error).message}`);
        return;
      }
      this.onMessage(msg.headers, msg.body);
    }
  }

  private onMessage(headers: MessageHeaders, body: Uint8Array): void {
    const type = intHeader(headers, ':message-type');
    const flags = intHeader(headers, ':message-flags') ?? 0;
    const streamId = intHeader(headers, ':stream-id') ?? 0;
    if (type === undefined) {
      this.protocolError('missing :message-type');
      return;
    }
    if (this.principal === undefined) {
      if (this.refused) return;
      if (type !== MessageType.Connect) {
        this.protocolError('first message must be Connect');
        return;
      }
      this.onConnect(headers, body);
      return;
    }
    switch (type) {
      case MessageType.Ping:
        this.send({ type: MessageType.PingResponse, flags: 0, streamId: 0, payload: body });
        return;
      case MessageType.PingResponse:
        return;
      case MessageType.ApplicationMessage:
      case MessageType.ApplicationError:
        if (streamId <= 0) {
          this.protocolError('application message on stream 0');
          return;
        }
        this.onStreamMessage(headers, body, flags, streamId);
        return;
      default:
        this.protocolError(`unexpected message type ${type}`);
    }
  }

  private onConnect(headers: MessageHeaders, body: Uint8Array): void {
    const version = strHeader(headers, ':version');
    let token: string | undefined;
    try {
      const parsed = JSON.parse(toUtf8(body)) as unknown;
      if (
        parsed &&
        typeof parsed === 'object' &&
        typeof (parsed as { authToken?: unknown }).authToken === 'string'
      ) {
        token = (parsed as { authToken: string }).authToken;
      }
    } catch {
      token = undefined;
    }
    const principal =
      version === RPC_VERSION && token !== undefined ? this.opts.authenticate(token) : undefined;
    if (principal === undefined) {
      this.log.warn({ version, hasToken: token !== undefined }, 'ipc connect refused');
      this.send({ type: MessageType.ConnectAck, flags: 0, streamId: 0 });
      // The client closes on a refused ConnectAck; close ourselves if it does not.
      this.refused = true;
      setTimeout(() => this.end(), 1000).unref();
      return;
    }
    this.principal = principal;
    this.log.debug({ principal }, 'ipc client connected');
    this.send({ type: MessageType.ConnectAck, flags: MessageFlags.ConnectionAccepted, streamId: 0 });
  }

  private onStreamMessage(headers: MessageHeaders, body: Uint8Array, flags: number, streamId: number): void {
    let st = this.streams.get(streamId);
    if (!st) {
      // A late message on a stream that already ended (e.g. the client's TerminateStream after ours).
      if (streamId <= this.lastStreamId) return;
      const operation = strHeader(headers, 'operation');
      if (operation === undefined) {
        this.protocolError(`new stream ${streamId} without an operation header`);
        return;
      }
      this.lastStreamId = streamId;
      st = this.newStream(streamId, operation);
    }
    if (flags & MessageFlags.TerminateStream) {
      this.closeStream(st, false);
      return;
    }
    if (st.requestSeen) return; // no Greengrass operation accepts client stream events
    st.requestSeen = true;
    void this.dispatch(st, body);
  }

  private newStream(id: number, operation: string): StreamState {
    const principal = this.principal ?? '';
    const st: StreamState = {
      id,
      operation,
      closed: false,
      closers: [],
      requestSeen: false,
      pendingEvents: [],
      ctx: {
        principal,
        operation,
        sendEvent: (shape, body) => {
          if (st.closed) return;
          if (st.pendingEvents) st.pendingEvents.push({ shape, body });
          else this.sendApp(st.id, MessageType.ApplicationMessage, 0, shape, body);
        },
        close: () => this.closeStream(st, true),
        onClose: (fn) => {
          if (st.closed) fn();
          else st.closers.push(fn);
        },
        get closed() {
          return st.closed;
        },
      },
    };
    this.streams.set(id, st);
    return st;
  }

  private async dispatch(st: StreamState, body: Uint8Array): Promise<void> {
    const op = this.opts.operations.get(st.operation);
    if (!op) {
      const payload = JSON.stringify({
        error: 'Unsupported Operation',
        message: `${st.operation} is an unsupported operation.`,
      });
      this.send({
        type: MessageType.ApplicationError,
        flags: MessageFlags.TerminateStream,
        streamId: st.id,
        extra: { ':content-type': { type: 'string', value: 'application/json' } },
        payload: fromUtf8(payload),
      });
      this.closeStream(st, false);
      return;
    }
    try {
      let request: unknown = {};
      const text = toUtf8(body);
      if (text.trim() !== '') {
        try {
          request = JSON.parse(text);
        } catch (err) {
          throw new IpcModeledError(
            'aws.greengrass#ServiceError',
            'Request payload is not valid JSON',
            {},
            { cause: err },
          );
        }
      }
      if (!request || typeof request !== 'object' || Array.isArray(request)) {
        throw new IpcModeledError('aws.greengrass#ServiceError', 'Request payload must be a JSON object');
      }
      const response = await op.handle(st.ctx, request as Record<string, unknown>);
      if (st.closed) return;
      const shape = `${st.operation}Response`;
      if (op.streaming) {
        this.sendApp(st.id, MessageType.ApplicationMessage, 0, shape, response);
        const queued = st.pendingEvents ?? [];
        st.pendingEvents = undefined;
        for (const e of queued) this.sendApp(st.id, MessageType.ApplicationMessage, 0, e.shape, e.body);
      } else {
        this.sendApp(st.id, MessageType.ApplicationMessage, MessageFlags.TerminateStream, shape, response);
        this.closeStream(st, false);
      }
    } catch (err) {
      if (st.closed) return;
      if (err instanceof IpcModeledError) {
        this.log.debug(
          { operation: st.operation, shape: err.shape, message: err.message },
          'ipc modeled error',
        );
        this.sendApp(st.id, MessageType.ApplicationError, MessageFlags.TerminateStream, err.shape, {
          message: err.message,
          ...err.fields,
        });
      } else {
        this.log.error({ err, operation: st.operation }, 'ipc operation failed');
        this.send({
          type: MessageType.ApplicationError,
          flags: MessageFlags.TerminateStream,
          streamId: st.id,
          extra: { ':content-type': { type: 'string', value: 'text/plain' } },
          payload: fromUtf8('InternalServerError'),
        });
      }
      this.closeStream(st, false);
    }
  }

  private closeStream(st: StreamState, sendTerminate: boolean): void {
    if (st.closed) return;
    if (sendTerminate) {
      this.send({
        type: MessageType.ApplicationMessage,
        flags: MessageFlags.TerminateStream,
        streamId: st.id,
      });
    }
    st.closed = true;
    this.streams.delete(st.id);
    for (const fn of st.closers.splice(0)) {
      try {
        fn();
      } catch (err) {
        this.log.warn({ err }, 'ipc stream close handler failed');
      }
    }
  }

  private sendApp(streamId: number, type: number, flags: number, shape: string, body: unknown): void {
    this.send({
      type,
      flags,
      streamId,
      extra: {
        ':content-type': { type: 'string', value: 'application/json' },
        'service-model-type': { type: 'string', value: shape },
      },
      payload: fromUtf8(JSON.stringify(body)),
    });
  }

  private send(m: {
    type: number;
    flags: number;
    streamId: number;
    extra?: MessageHeaders;
    payload?: Uint8Array;
  }): void {
    if (this.ended || this.socket.destroyed) return;
    const headers: MessageHeaders = {
      ':message-type': { type: 'integer', value: m.type },
      ':message-flags': { type: 'integer', value: m.flags },
      ':stream-id': { type: 'integer', value: m.streamId },
      ...m.extra,
    };
    this.socket.write(codec.encode({ headers, body: m.payload ?? new Uint8Array(0) }));
  }

  private protocolError(reason: string): void {
    this.log.warn({ reason }, 'ipc protocol error');
    this.send({ type: MessageType.ProtocolError, flags: 0, streamId: 0 });
    this.end();
  }

  private end(): void {
    this.ended = true;
    this.socket.end();
  }

  private onClosed(): void {
    this.ended = true;
    for (const st of [...this.streams.values()]) this.closeStream(st, false);
    this.opts.logger?.debug({ principal: this.principal }, 'ipc connection closed');
  }
}

function intHeader(h: MessageHeaders, name: string): number | undefined {
  const v = h[name];
  if (!v) return undefined;
  if (v.type === 'integer' || v.type === 'short' || v.type === 'byte') return v.value;
  return undefined;
}

function strHeader(h: MessageHeaders, name: string): string | undefined {
  const v = h[name];
  return v && v.type === 'string' ? v.value : undefined;
}

/** The listening socket with its live connections. */
export class IpcServer {
  private readonly connections = new Set<IpcConnection>();

  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
  ) {}

  static async start(opts: IpcServerOptions): Promise<IpcServer> {
    const log = opts.logger ?? pino({ level: 'silent' });
    if (existsSync(opts.socketPath)) unlinkSync(opts.socketPath);
    const server = net.createServer();
    const ipc = new IpcServer(server, opts.socketPath);
    server.on('connection', (socket) => {
      const conn = new IpcConnection(socket, opts, log);
      ipc.connections.add(conn);
      socket.on('close', () => ipc.connections.delete(conn));
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new IpcServerStartError(`cannot listen on ${opts.socketPath}: ${err.message}`, { cause: err }),
        );
      server.once('error', onError);
      server.listen(opts.socketPath, () => {
        server.off('error', onError);
        resolve();
      });
    });
    return ipc;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
  }
}
