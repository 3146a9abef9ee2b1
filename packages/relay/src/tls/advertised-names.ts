// The names and addresses the relay's server certificate covers: what a device or a person
// may type to reach it. The host's name, every interface address, loopback, the listen host
// when it is a specific one, and what the operator adds with --advertise-host.

import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

export function advertisedNames(listenHost: string, extra: string[] = []): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1', '::1']);
  const host = hostname();
  if (host) names.add(host.toLowerCase());
  if (listenHost !== '0.0.0.0' && listenHost !== '::') names.add(listenHost.toLowerCase());
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.address.startsWith('fe80')) names.add(a.address);
  }
  for (const n of extra) names.add(n.toLowerCase());
  return [...names];
}

/** A --advertise-host value: a DNS name or an IP address, nothing else. */
export function checkAdvertiseHost(value: string): string {
  const v = value.trim().toLowerCase();
  if (isIP(v)) return v;
  if (v.length > 253 || !/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(v)) {
    throw new Error(`--advertise-host ${JSON.stringify(value)} is not a host name or an IP address`);
  }
  return v;
}
