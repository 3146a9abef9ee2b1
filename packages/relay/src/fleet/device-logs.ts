// Asking a device for its agent's recent log lines: a request on the device's `logs-request`
// topic, the answer in parts on its `logs` topic, held here for the HTTP caller waiting on it
// and for nobody else (never stored). Bounded: requests waiting at once (in all and per
// device), the lines and bytes of one answer, and the time a caller waits.

import { randomBytes } from 'node:crypto';
import { MAX_LOG_LINE_BYTES, OutpostError, deviceTopic, type AgentLogLine, type FleetEvent, type LogsAnswer, type LogsRequest } from '@outpost/shared';

export interface DeviceLogLimits {
  /** How long a caller waits for the whole answer. */
  timeoutMs: number;
  /** Requests waiting for devices at once, in all and per device. */
  maxWaiting: number;
  maxWaitingPerDevice: number;
  /** Payload bytes of one answer, all its parts together. */
  maxAnswerBytes: number;
}

export const DEFAULT_DEVICE_LOG_LIMITS: DeviceLogLimits = { timeoutMs: 10_000, maxWaiting: 32, maxWaitingPerDevice: 4, maxAnswerBytes: 4 * 1024 * 1024 };

export interface DeviceLogDeps {
  /** Publishes the request (QoS 1, not retained). */
  publish(topic: string, body: LogsRequest): Promise<void>;
  /** Whether the relay believes the device connected. */
  online(deviceId: string): Promise<boolean>;
}

interface Waiting {
  deviceId: string;
  limit: number;
  after: number | undefined;
  lines: AgentLogLine[];
  bytes: number;
  nextPart: number;
  timer: NodeJS.Timeout;
  settle(result: AgentLogLine[] | OutpostError): void;
}

const ON_THE_DEVICE = 'its logs are on the device (journalctl -u outpost-agent or its stdout)';

export function deviceOffline(deviceId: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_DEVICE_OFFLINE', `device ${deviceId} is offline: ${ON_THE_DEVICE}`);
}

const shuttingDown = () => new OutpostError('OUTPOST_ERR_BUSY', 'the relay is shutting down; retry once it is back');

export class DeviceLogRequests {
  readonly limits: DeviceLogLimits;
  readonly #deps: DeviceLogDeps;
  readonly #waiting = new Map<string, Waiting>();

  #closed = false;

  constructor(deps: DeviceLogDeps, limits: Partial<DeviceLogLimits> = {}) {
    this.#deps = deps;
    this.limits = { ...DEFAULT_DEVICE_LOG_LIMITS, ...limits };
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  /** The device's lines after `after` (or its newest), at most `limit`; rejects with an OutpostError. */
  async fetch(deviceId: string, query: { after?: number; limit: number }): Promise<AgentLogLine[]> {
    if (!(await this.#deps.online(deviceId))) return Promise.reject(deviceOffline(deviceId));
    // Closed while the store said whether the device is online.
    if (this.#closed) return Promise.reject(shuttingDown());
    const mine = [...this.#waiting.values()].filter((w) => w.deviceId === deviceId).length;
    if (this.#waiting.size >= this.limits.maxWaiting || mine >= this.limits.maxWaitingPerDevice) {
      return Promise.reject(new OutpostError('OUTPOST_ERR_BUSY', `${mine >= this.limits.maxWaitingPerDevice ? `${mine} log requests wait for device ${deviceId}` : `${this.#waiting.size} log requests wait for devices`} already (at most ${this.limits.maxWaitingPerDevice} per device, ${this.limits.maxWaiting} in all); retry in a second`));
    }
    const requestId = randomBytes(8).toString('hex');
    const request: LogsRequest = { requestId, limit: query.limit, ...(query.after !== undefined ? { after: query.after } : {}) };
    return new Promise<AgentLogLine[]>((resolve, reject) => {
      const waiting: Waiting = {
        deviceId,
        limit: query.limit,
        after: query.after,
        lines: [],
        bytes: 0,
        nextPart: 0,
        timer: setTimeout(() => {
          waiting.settle(new OutpostError('OUTPOST_ERR_DEVICE_TIMEOUT', `device ${deviceId} did not answer within ${this.limits.timeoutMs / 1000} s: it may be busy or cut off, or run an agent too old to send its logs; ${ON_THE_DEVICE}`));
        }, this.limits.timeoutMs),
        settle: (result) => {
          if (this.#waiting.get(requestId) !== waiting) return;
          this.#waiting.delete(requestId);
          clearTimeout(waiting.timer);
          if (result instanceof OutpostError) reject(result);
          else resolve(result);
        },
      };
      this.#waiting.set(requestId, waiting);
      this.#deps.publish(deviceTopic(deviceId, 'logs-request'), request).catch((err: Error) => {
        waiting.settle(new OutpostError('OUTPOST_ERR_INTERNAL', `the relay could not send the request to device ${deviceId}: ${err.message}`));
      });
    });
  }

  /**
   * One part of an answer from `deviceId` (already schema-checked; `bytes` is its payload size).
   * Returns why it was refused, or null. A refused part costs itself: the request still takes
   * the right part, or times out.
   */
  onAnswer(deviceId: string, answer: LogsAnswer, bytes: number): string | null {
    const w = this.#waiting.get(answer.requestId);
    if (!w || w.deviceId !== deviceId) return 'no request of this device waits for this answer (it timed out, or was never made)';
    if (answer.part !== w.nextPart) return `part ${answer.part} of the answer arrived, part ${w.nextPart} was next`;
    if (w.lines.length + answer.lines.length > w.limit) return `more lines than the ${w.limit} asked for`;
    if (w.bytes + bytes > this.limits.maxAnswerBytes) return `the answer is over ${this.limits.maxAnswerBytes} bytes`;
    let last = w.lines.at(-1)?.seq ?? w.after ?? -1;
    for (const line of answer.lines) {
      if (line.seq <= last) return `line seq ${line.seq} does not come after ${last}`;
      if (Buffer.byteLength(JSON.stringify(line)) > MAX_LOG_LINE_BYTES) return `line seq ${line.seq} is over ${MAX_LOG_LINE_BYTES} bytes`;
      last = line.seq;
    }
    w.lines.push(...answer.lines);
    w.bytes += bytes;
    w.nextPart++;
    if (answer.done) w.settle(w.lines);
    return null;
  }

  /** A device that goes offline or is removed cannot answer: its callers are told at once. */
  onFleetEvent(event: FleetEvent): void {
    if (event.type === 'device.status' && !event.online) this.#fail(event.deviceId, deviceOffline(event.deviceId));
    if (event.type === 'device.removed') this.#fail(event.deviceId, new OutpostError('OUTPOST_ERR_DEVICE_NOT_FOUND', `device ${event.deviceId} was removed`));
  }

  #fail(deviceId: string, err: OutpostError): void {
    for (const w of [...this.#waiting.values()]) if (w.deviceId === deviceId) w.settle(err);
  }

  /** The relay is stopping: nobody waits through it. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#waiting.values()]) w.settle(shuttingDown());
  }
}
