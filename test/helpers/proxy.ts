/** A TCP proxy in front of a local cloud port, for tests that cut or refuse a gateway's connections. */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private accepting = true;
  /** Bytes forwarded in both directions since the last cut. */
  bytesSinceCut = 0;
  cuts = 0;

  private constructor(private readonly server: Server) {}

  /** Listens on a free port of 127.0.0.1 and relays each connection to `targetHost:targetPort`. */
  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => {
      if (!proxy.accepting) {
        client.destroy();
        return;
      }
      const upstream = tcpConnect(targetPort, targetHost);
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        a.on('data', (d: Buffer) => {
          proxy.bytesSinceCut += d.length;
          b.write(d);
        });
        a.on('error', () => b.destroy());
        a.on('close', () => b.destroy());
        proxy.sockets.add(a);
        a.on('close', () => proxy.sockets.delete(a));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Cuts every open connection (new ones are relayed). */
  cutAll(): void {
    this.cuts++;
    this.bytesSinceCut = 0;
    for (const s of this.sockets) s.destroy();
  }

  /** Cuts every open connection and refuses new ones until up(). */
  down(): void {
    this.accepting = false;
    this.cutAll();
  }

  up(): void {
    this.accepting = true;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
