// The agent's recent log lines, kept in memory for `outpost-relay devices logs`: pino writes
// every line here as well as to stdout (shared/log.ts `tee`). Bounded in lines and bytes, each
// line cut to MAX_LOG_LINE_BYTES, secrets redacted a second time (pino redacts by known paths;
// this catches them at any depth, and credentials written into a message).

import { LOG_LEVELS, MAX_LOG_LINE_BYTES, type AgentLogLine, type LogLevel, type LogsAnswer, type LogsRequest } from '@outpost/shared';

export interface LogRingLimits {
  maxLines: number;
  /** Bytes of all lines together (as JSON). */
  maxBytes: number;
}

export const DEFAULT_LOG_RING_LIMITS: LogRingLimits = { maxLines: 1000, maxBytes: 1024 * 1024 };

/** Bytes of lines one MQTT answer part carries: well under the broker's 256 KiB per payload. */
export const LOGS_PART_BYTES = 128 * 1024;

const MAX_MSG_BYTES = 1024;
const MAX_FIELDS = 32;
const MAX_FIELD_CHARS = 512;
/** pino's own keys, or ones every line has: not worth sending. */
const SKIPPED_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'v']);
const SECRET_KEY = /secret|token|password|authorization|cookie/i;
/** Outpost credentials (`ods_…`, `opa_…`, `ope_…`) and bearer headers written into text. */
const SECRET_TEXT = /\b(ods|opa|ope)_[0-9a-f]{12}_[A-Za-z0-9_-]+|\b(Bearer)\s+[A-Za-z0-9._~+/=-]+/g;
const REDACTED = '[redacted]';

const levelName = (n: unknown): LogLevel => LOG_LEVELS[Math.min(5, Math.max(0, Math.floor((Number(n) || 30) / 10) - 1))]!;

function scrubText(text: string): string {
  return text.replace(SECRET_TEXT, (_m, kind: string | undefined, bearer: string | undefined) => (kind ? `${kind}_${REDACTED}` : `${bearer} ${REDACTED}`));
}

/** A copy with every secret-named key redacted, at any depth (bounded: deeper is dropped). */
function scrubValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 6) return '…';
  if (Array.isArray(value)) return value.slice(0, 64).map((v) => scrubValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value).slice(0, 64)) out[k] = SECRET_KEY.test(k) ? REDACTED : scrubValue(v, depth + 1);
  return out;
}

/** Cut to at most `max` UTF-8 bytes, never in the middle of a character. */
export function cutUtf8(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let cut = Buffer.from(text).subarray(0, Math.max(0, max - 3)).toString('utf8');
  if (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
  return `${cut}…`;
}

function fieldValue(key: string, value: unknown): string | number | boolean | null {
  if (SECRET_KEY.test(key)) return REDACTED;
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER ? value : String(value);
  // An error keeps its message (the stack would fill the line on its own).
  const shown = typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string' && key === 'err' ? (value as { message: string }).message : value;
  const text = typeof shown === 'string' ? scrubText(shown) : JSON.stringify(scrubValue(shown)) ?? String(shown);
  return text.length > MAX_FIELD_CHARS ? `${text.slice(0, MAX_FIELD_CHARS - 1)}…` : text;
}

const fieldKey = (key: string): string => key.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || '_';

/** One pino JSON line as the ring keeps it, or null when it is not one. */
export function toLogLine(text: string, seq: number, now: number): AgentLogLine | null {
  let entry: unknown;
  try {
    entry = JSON.parse(text);
  } catch {
    return null;
  }
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return null;
  const e = entry as Record<string, unknown>;
  const ts = typeof e.time === 'number' && e.time >= 0 && e.time <= 8.64e15 ? e.time : now;
  const line: AgentLogLine = { seq, ts, level: levelName(e.level), msg: cutUtf8(scrubText(typeof e.msg === 'string' ? e.msg : ''), MAX_MSG_BYTES) };
  const fields: Record<string, string | number | boolean | null> = {};
  let count = 0;
  for (const [key, value] of Object.entries(e)) {
    if (SKIPPED_KEYS.has(key) || value === undefined) continue;
    if (count++ >= MAX_FIELDS) break;
    fields[fieldKey(key)] = fieldValue(key, value);
  }
  if (count > 0) line.fields = fields;
  // The whole line within its bound: fields go last to first, then the message is cut further.
  // (JSON escapes can make a short message long: a control character takes six bytes.)
  const keys = Object.keys(fields);
  while (Buffer.byteLength(JSON.stringify(line)) > MAX_LOG_LINE_BYTES) {
    const key = keys.pop();
    if (key !== undefined) {
      delete fields[key];
      if (keys.length === 0) delete line.fields;
    } else line.msg = cutUtf8(line.msg, Math.floor(Buffer.byteLength(line.msg) / 2));
  }
  return line;
}

interface Kept {
  line: AgentLogLine;
  bytes: number;
}

export class LogRing {
  readonly limits: LogRingLimits;
  readonly #kept: Kept[] = [];
  readonly #now: () => number;
  #bytes = 0;
  #seq: number;
  #partial = '';

  constructor(limits: Partial<LogRingLimits> = {}, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_LOG_RING_LIMITS, ...limits };
    this.#now = now;
    // Seqs start at the start time, so a restarted agent's lines come after the last one seen.
    this.#seq = now();
  }

  /** pino's destination: one or more JSON lines per call. */
  write(chunk: string): void {
    const text = this.#partial + chunk;
    const lines = text.split('\n');
    this.#partial = cutUtf8(lines.pop() ?? '', 64 * 1024);
    for (const l of lines) if (l) this.#add(l);
  }

  #add(text: string): void {
    const line = toLogLine(text, this.#seq + 1, this.#now());
    if (!line) return;
    this.#seq++;
    const bytes = Buffer.byteLength(JSON.stringify(line));
    this.#kept.push({ line, bytes });
    this.#bytes += bytes;
    while (this.#kept.length > this.limits.maxLines || this.#bytes > this.limits.maxBytes) this.#bytes -= this.#kept.shift()!.bytes;
  }

  get size(): number {
    return this.#kept.length;
  }

  /** The first `limit` lines after `after`, or without it the newest `limit` lines; oldest first. */
  lines(query: { after?: number; limit: number }): AgentLogLine[] {
    const first = this.#kept[0]?.line.seq ?? 0;
    const start = query.after === undefined ? Math.max(0, this.#kept.length - query.limit) : Math.min(this.#kept.length, Math.max(0, query.after + 1 - first));
    return this.#kept.slice(start, start + query.limit).map((k) => k.line);
  }

  /** The answer to a request, in parts of at most LOGS_PART_BYTES of lines (always at least one part). */
  answer(request: LogsRequest, partBytes = LOGS_PART_BYTES): LogsAnswer[] {
    const parts: LogsAnswer[] = [];
    let lines: AgentLogLine[] = [];
    let bytes = 0;
    for (const line of this.lines(request)) {
      const size = Buffer.byteLength(JSON.stringify(line)) + 1;
      if (lines.length > 0 && bytes + size > partBytes) {
        parts.push({ requestId: request.requestId, part: parts.length, done: false, lines });
        lines = [];
        bytes = 0;
      }
      lines.push(line);
      bytes += size;
    }
    parts.push({ requestId: request.requestId, part: parts.length, done: true, lines });
    return parts;
  }
}
