// A device's desired state and job list over HTTP(S): the same documents as the retained
// `desired` and `jobs` messages, derived from the store (the source of truth) on each call, so
// a broker that lost its retained messages, or one without any, never leaves a device behind.
// The agent asks on every connect and now and then; an ETag over the content (not the
// revision, which is the time of reading) answers an unchanged state with 304.

import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest, FastifyInstance } from 'fastify';
import { OutpostError } from '@outpost/shared';
import { desiredStateFor } from '../fleet/desired-state.js';
import { FloodGuard } from '../broker/flood-guard.js';
import type { ApiDeps } from './server.js';
import { spreadNodes } from './enroll.js';

/**
 * Reads a device may make: twenty at once, then one every two seconds. An agent reads on each
 * connect and every few minutes; a device asking in a loop must not cost the store a read each time.
 */
const READS = { ratePerSec: 0.5, burst: 20 };

/** A strong validator of what the document says, whatever time it was read at. */
export function stateEtag(doc: { revision: number }): string {
  const { revision: _revision, ...content } = doc;
  return `"${createHash('sha256').update(JSON.stringify(content)).digest('base64url').slice(0, 27)}"`;
}

export async function deviceStateRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx, scheduler } = deps;
  const reads = new FloodGuard(READS);
  /** The calling device, once it is a device and within its read budget. */
  const deviceReading = (request: FastifyRequest, reply: FastifyReply, what: string): string => {
    const caller = request.caller;
    if (caller?.kind !== 'device') throw new OutpostError('OUTPOST_ERR_FORBIDDEN', `only a device reads its own ${what} (with its certificate or secret)`);
    if (!reads.allow(caller.deviceId)) {
      reply.header('retry-after', String(Math.ceil(1 / READS.ratePerSec)));
      throw new OutpostError('OUTPOST_ERR_RATE_LIMITED', `this device reads its ${what} too often: ${READS.burst} at once, then at most one read every ${1 / READS.ratePerSec} s`);
    }
    return caller.deviceId;
  };
  const answer = async (request: FastifyRequest, reply: FastifyReply, what: string, read: (deviceId: string) => Promise<{ revision: number }>) => {
    const doc = await read(deviceReading(request, reply, what));
    const etag = stateEtag(doc);
    reply.header('etag', etag).header('cache-control', 'private, no-cache');
    if (request.headers['if-none-match'] === etag) return reply.status(304).send();
    return doc;
  };
  app.get('/v1/devices/me/desired', { config: { access: 'device' } }, (request, reply) => answer(request, reply, 'desired state', (id) => desiredStateFor(ctx, id)));
  app.get('/v1/devices/me/jobs', { config: { access: 'device' } }, (request, reply) => answer(request, reply, 'job list', (id) => scheduler.desiredJobsFor(id)));

  // A device enrolled before the broker had logins of its own (a workspace moved from Mosquitto
  // to NATS) or whose login the broker refuses asks for one here, with its certificate or secret.
  app.get('/v1/devices/me/mqtt-login', { config: { access: 'device' } }, async (request, reply) => {
    const deviceId = deviceReading(request, reply, 'MQTT login');
    const login = await ctx.brokerAccounts?.login?.(deviceId);
    if (!login) throw new OutpostError('OUTPOST_ERR_NOT_FOUND', "this relay's broker takes the device's own secret or certificate: there is no other MQTT login");
    reply.header('cache-control', 'no-store');
    return { username: deviceId, password: login.password, ...(login.subscribeQos !== undefined ? { subscribeQos: login.subscribeQos } : {}), urls: spreadNodes(deps.mqttUrlsFor(request.hostname), deviceId) };
  });
}
