// The four prom-client classes the agent uses, each from its own file. prom-client's index
// also loads its default process metrics, and their CPU metric pulls in @opentelemetry/api:
// about 80 modules and 2-3 MiB of an idle agent's RSS, on a device with little to spare.
// (The relay, on a server, uses the index and the defaults as they are.)

import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof Prom.Registry;
export const Counter = require('prom-client/lib/counter') as typeof Prom.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
export const Histogram = require('prom-client/lib/histogram') as typeof Prom.Histogram;
export type Registry = Prom.Registry;
export type Counter<T extends string> = Prom.Counter<T>;
export type Gauge<T extends string> = Prom.Gauge<T>;
export type Histogram<T extends string> = Prom.Histogram<T>;
