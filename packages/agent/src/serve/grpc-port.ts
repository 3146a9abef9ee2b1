// The gRPC port (`outpost-agent start --grpc-port`, 8001 as Triton's): a plain TCP listener
// that loads the service (grpc-server.ts, with grpc-js and the parsed proto: ~4 MiB of RSS) at
// the first connection and hands it every connection from then on, so an agent nobody calls
// over gRPC keeps its idle memory. Connections are bounded in number, and one that sends
// nothing is closed (grpc-js itself would keep a silent plaintext connection for its idle
// timeout, minutes).

import { createServer, type Socket } from 'node:net';
import type { Logger } from '@outpost/shared';
import type { GrpcServeOptions, GrpcService } from './grpc-server.js';

/** Triton's default gRPC port. */
export const DEFAULT_GRPC_PORT = 8001;

/** Connections the port holds at once; more are closed as they come. */
export const MAX_GRPC_CONNECTIONS = 256;
/** A connection must send its first bytes (the TLS hello, or HTTP/2's preface) within this. */
const FIRST_BYTES_MS = 10_000;

export interface GrpcPort {
  /** The bound port. */
  port: number;
  /** Serves a renewed certificate to new connections (TLS only). */
  renew(pair: { cert: string; key: string }): void;
  /** Stops listening; calls in flight finish for up to `graceMs`, then end. */
  close(graceMs?: number): Promise<void>;
}

/** Listens on `host:port` (0 picks a free port); the service starts with the first connection. */
export async function openGrpcPort(opts: GrpcServeOptions & { host: string; port: number; log: Logger }): Promise<GrpcPort> {
  let tls = opts.tls;
  let service: Promise<GrpcService> | undefined;
  const load = () =>
    (service ??= import('./grpc-server.js').then((m) => {
      opts.log.debug('gRPC service loaded (first connection)');
      return m.createGrpcService({ ...opts, tls });
    }));

  const sockets = new Set<Socket>();
  const listener = createServer({ pauseOnConnect: true, noDelay: true }, (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const silent = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, FIRST_BYTES_MS);
    silent.unref();
    socket.once('close', () => {
      clearTimeout(silent);
      sockets.delete(socket);
    });
    load().then(
      (s) => {
        if (socket.destroyed) return;
        s.inject(socket);
        socket.resume();
      },
      (err: unknown) => {
        opts.log.error({ err }, 'the gRPC service cannot start');
        socket.destroy();
      },
    );
  });
  listener.maxConnections = MAX_GRPC_CONNECTIONS;
  const host = opts.host;
  await new Promise<void>((resolve, reject) => {
    listener.once('error', (err) => reject(new Error(`the gRPC port ${host}:${opts.port} cannot be opened: ${err.message}`)));
    listener.listen(opts.port, host, () => resolve());
  });
  listener.on('error', (err) => opts.log.error({ err }, 'gRPC listener error'));

  return {
    port: (listener.address() as { port: number }).port,
    renew(pair) {
      tls = pair;
      void service?.then((s) => s.renew(pair));
    },
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      if (service) await (await service.catch(() => undefined))?.close(graceMs);
      // Connections the service never took (it failed to load, or they were still waiting).
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
