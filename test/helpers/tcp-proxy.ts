// A TCP proxy between a program and a server on loopback, for faults: it can slow the
// server-to-client direction (a download that takes seconds), count what passed, and cut
// every connection (a partition, or a server gone).

import { createServer, connect, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import type { Test } from 'tap';

export interface TcpProxy {
  port: number;
  url(scheme: string): string;
  /** Bytes sent from the server to clients so far. */
  readonly downBytes: number;
  /** Server-to-client bytes per second from now on (0: as fast as they come). */
  throttle(bytesPerSec: number): void;
  /** Destroys every connection and refuses new ones until `restore()`. */
  cut(): void;
  restore(): void;
}

export async function startProxy(t: Test, targetPort: number): Promise<TcpProxy> {
  let rate = 0;
  let down = 0;
  let refusing = false;
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    if (refusing) return client.destroy();
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const slow = new Transform({
      transform(chunk: Buffer, _e, done) {
        down += chunk.length;
        if (rate <= 0) return done(null, chunk);
        setTimeout(() => done(null, chunk), (chunk.length / rate) * 1000);
      },
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(slow).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const cut = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  t.teardown(() => {
    cut();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    get downBytes() {
      return down;
    },
    throttle(bytesPerSec) {
      rate = bytesPerSec;
    },
    cut() {
      refusing = true;
      cut();
    },
    restore() {
      refusing = false;
    },
  };
}
