// How a client (agent, CLI, tests) trusts the relay and proves who it is: the relay's CA beside
// the system's roots (a relay with --tls-cert from a public CA verifies too), and the device's
// own certificate when it has one. One dispatcher per set of options, for fetch.

import { rootCertificates } from 'node:tls';
import { Agent } from 'undici';

export interface ClientTls {
  /** The relay CA's PEM (from the agent's data dir, the relay's, or --ca). */
  ca?: string;
  /** The device's certificate and key (PEM), for mutual TLS. */
  cert?: string;
  key?: string;
}

/** The CAs to trust: the relay's, then the system's; undefined leaves node's defaults. */
export function trustedCas(ca: string | undefined): string[] | undefined {
  return ca ? [ca, ...rootCertificates] : undefined;
}

/** Options for node's tls/https/ws/mqtt clients. */
export function tlsConnectOptions(t: ClientTls | undefined): { ca?: string[]; cert?: string; key?: string } {
  if (!t) return {};
  return { ca: trustedCas(t.ca), ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}) };
}

const dispatchers = new WeakMap<ClientTls, Agent>();

/** fetch, trusting the relay's CA and presenting the device's certificate when given. */
export function tlsFetch(t: ClientTls | undefined): typeof fetch {
  if (!t || (!t.ca && !t.cert)) return fetch;
  let dispatcher = dispatchers.get(t);
  if (!dispatcher) {
    dispatcher = new Agent({ connect: tlsConnectOptions(t) });
    dispatchers.set(t, dispatcher);
  }
  const d = dispatcher;
  // Node's fetch is undici: it takes a dispatcher of the same major version.
  return ((input: string | URL | Request, init?: RequestInit) => fetch(input, { ...init, dispatcher: d } as RequestInit)) as typeof fetch;
}
