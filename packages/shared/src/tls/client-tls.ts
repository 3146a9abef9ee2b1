// How a client (agent, CLI, tests) trusts the relay and proves who it is: the relay's CA beside
// the system's roots (a relay with --tls-cert from a public CA verifies too), and the device's
// own certificate when it has one. One dispatcher per set of options, for fetch.

import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Agent } from 'undici';

export interface ClientTls {
  /** The relay CA's PEM (from the agent's data dir, the relay's, or --ca). */
  ca?: string;
  /** The device's certificate and key (PEM), for mutual TLS. */
  cert?: string;
  key?: string;
  /**
   * Trust the system's roots beside the relay's CA (default true: a relay with --tls-cert from a
   * public CA). False pins the relay's CA alone, as the agent does for MQTT: the embedded
   * broker's certificate always comes from that CA.
   */
  systemRoots?: boolean;
}

/** The CAs to trust: the relay's, then the system's; undefined leaves node's defaults. */
export function trustedCas(ca: string | undefined, systemRoots = true): string[] | undefined {
  if (!ca) return undefined;
  return systemRoots ? [ca, ...rootCertificates] : [ca];
}

/** What node's TLS clients take to trust the relay (and show the device's certificate). */
export interface TlsClientOptions {
  secureContext?: SecureContext;
}

const contexts = new WeakMap<ClientTls, SecureContext>();

/**
 * Options for node's tls/https/ws/mqtt clients. One secure context per set of options: built
 * from the relay's CA and the system's ~140 roots, it costs tens of milliseconds of CPU, which
 * each connection would otherwise pay again.
 */
export function tlsConnectOptions(t: ClientTls | undefined): TlsClientOptions {
  if (!t || (!t.ca && !t.cert)) return {};
  let secureContext = contexts.get(t);
  if (!secureContext) {
    secureContext = createSecureContext({ ca: trustedCas(t.ca, t.systemRoots ?? true), ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}) });
    contexts.set(t, secureContext);
  }
  return { secureContext };
}

const dispatchers = new WeakMap<ClientTls, Promise<Agent>>();

/**
 * fetch, trusting the relay's CA and presenting the device's certificate when given. undici is
 * loaded on the first such fetch, not with this module: a process that never fetches over TLS
 * (an idle agent on a plain relay, most CLI commands) does not carry it (~2.5 MiB).
 */
export function tlsFetch(t: ClientTls | undefined): typeof fetch {
  if (!t || (!t.ca && !t.cert)) return fetch;
  let dispatcher = dispatchers.get(t);
  if (!dispatcher) {
    dispatcher = import('undici').then(({ Agent }) => new Agent({ connect: tlsConnectOptions(t) as object }));
    dispatchers.set(t, dispatcher);
  }
  const d = dispatcher;
  // Node's fetch is undici: it takes a dispatcher of the same major version.
  return (async (input: string | URL | Request, init?: RequestInit) => fetch(input, { ...init, dispatcher: await d } as RequestInit)) as typeof fetch;
}
