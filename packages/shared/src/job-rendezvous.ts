// The rendezvous of an N-node job, as a cluster gives one: rank 0 reserves a port on its
// advertised address (MASTER_ADDR/MASTER_PORT for torch.distributed, Horovod, …) and holds it as
// a barrier until every other rank has connected to it with the job's secret; only then do the
// ranks start their processes (rank 0's binds the port). A rank that cannot reach rank 0 fails
// saying so, and rank 0 fails naming the ranks that never came, instead of a job hanging until its
// timeout inside the framework's own connect loop.

import { createSocket } from 'node:dgram';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { timingSafeEqual } from 'node:crypto';

/** Rank and secret: one short line a joining rank sends; rank 0 answers `ok`. */
const MAX_LINE = 256;

export interface RendezvousPoint {
  addr: string;
  port: number;
}

/** The local address this host uses toward `host` (no packet is sent: a UDP socket's route lookup). */
export async function localAddressToward(host: string): Promise<string> {
  const family = host.includes(':') ? 'udp6' : 'udp4';
  const socket = createSocket(family);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, host.replace(/^\[|\]$/g, ''), () => resolve());
    });
    return socket.address().address;
  } finally {
    socket.close();
  }
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Reads one line (bounded) from a socket. */
function readLine(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        done();
        resolve(buf.slice(0, nl));
      } else if (buf.length > MAX_LINE) {
        done();
        reject(new Error('line too long'));
      }
    };
    const onEnd = () => {
      done();
      reject(new Error('closed before a line'));
    };
    const done = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
  });
}

export interface HostedRendezvous extends RendezvousPoint {
  /** Settles once every other rank has checked in; rejects at the timeout naming who is missing. */
  ready: Promise<void>;
  /** Frees the port (before rank 0's process binds it). */
  close(): Promise<void>;
}

/**
 * Rank 0's side: listens on a free port of every interface and waits for ranks 1..worldSize-1.
 * `addr` is the address the others are told (the advertised one).
 */
export async function hostRendezvous(o: { addr: string; secret: string; worldSize: number; timeoutMs: number; signal?: AbortSignal }): Promise<HostedRendezvous> {
  const arrived = new Set<number>();
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  ready.catch(() => undefined);
  const server: Server = createServer((socket) => {
    // A check-in is one short line: a connection that says nothing soon is dropped.
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on('error', () => undefined);
    readLine(socket)
      .then((line) => {
        const m = /^outpost-rendezvous (\d{1,4}) (\S{1,128})$/.exec(line);
        const rank = m ? Number(m[1]) : -1;
        if (!m || !sameSecret(m[2]!, o.secret) || rank < 1 || rank >= o.worldSize) {
          socket.end('refused\n');
          return;
        }
        arrived.add(rank);
        socket.end('ok\n');
        if (arrived.size === o.worldSize - 1) settle.resolve();
      })
      .catch(() => socket.destroy());
  });
  // Every rank once, with room for retries: a flood of connections cannot hold the device's descriptors.
  server.maxConnections = 2 * o.worldSize + 4;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const missing = () =>
    Array.from({ length: o.worldSize - 1 }, (_, i) => i + 1)
      .filter((r) => !arrived.has(r))
      .join(', ');
  const timer = setTimeout(() => settle.reject(new Error(`rank${o.worldSize - 1 - arrived.size === 1 ? '' : 's'} ${missing()} did not reach rank 0 at ${o.addr}:${port} within ${Math.round(o.timeoutMs / 1000)} s: the nodes must reach each other directly (a firewall, another network, or the wrong address: outpost-agent start --advertise-address)`)), o.timeoutMs);
  timer.unref();
  const onAbort = () => settle.reject(new Error('canceled while waiting for the other ranks'));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.worldSize <= 1) settle.resolve();
  void ready.finally(() => {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }).catch(() => undefined);
  return {
    addr: o.addr,
    port,
    ready,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A joining rank's side: connects to rank 0's point and checks in, trying again (rank 0 may not
 * listen yet, a route may come up) until the timeout; throws a one-line reason when it cannot.
 */
export async function joinRendezvous(o: { point: RendezvousPoint; rank: number; secret: string; timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  let last = 'no answer';
  for (let attempt = 0; ; attempt++) {
    if (o.signal?.aborted) throw new Error('canceled while reaching rank 0');
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: o.point.addr, port: o.point.port, timeout: Math.min(5_000, Math.max(100, deadline - Date.now())) });
        socket.once('timeout', () => {
          socket.destroy();
          reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
        });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.write(`outpost-rendezvous ${o.rank} ${o.secret}\n`);
          // Settles `answer` either way; the socket goes once the line (or its failure) is in.
          void readLine(socket)
            .then(resolve, reject)
            .finally(() => socket.destroy());
        });
      });
      if (answer === 'ok') return;
      throw new Error(`rank 0 at ${o.point.addr}:${o.point.port} refused this rank (${answer}): is it another job's port?`);
    } catch (err) {
      if ((err as Error).message.startsWith('rank 0 at')) throw err;
      last = (err as { code?: string }).code ?? (err as Error).message;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** attempt)));
  }
  throw new Error(`cannot reach rank 0 at ${o.point.addr}:${o.point.port} (${last}) within ${Math.round(o.timeoutMs / 1000)} s: the nodes must reach each other directly (a firewall, another network, or the wrong address: outpost-agent start --advertise-address on rank 0's device)`);
}
