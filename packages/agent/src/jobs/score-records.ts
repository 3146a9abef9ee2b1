// The records of a local dataset as model inputs, for batch scoring (`jobs score`): a folder of
// `.npy` files or raw tensor files (`.bin`, `.raw`: one record each, for a model of one input),
// and JSON-lines files (`.jsonl`, `.ndjson`) whose every line is a KServe v2 request body. Every
// record is checked against the model's signature as an inference request is; a bad record costs
// that record (named with why), never the job.

import { createReadStream, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { validateInputs, type Datatype, type ModelSignature, type RequestTensor } from '@outpost/shared';

export interface ScoreRecord {
  /** `file` or `file:line`, relative to the dataset folder. */
  id: string;
  inputs?: RequestTensor[];
  error?: string;
}

/** A record file larger than this is refused (a record is one request, not a dataset). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** A JSON line longer than this is refused without parsing it, or holding more of it than this. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * The lines of a file (split at \n, a trailing \r dropped), numbered from 1. A line past
 * `maxBytes` is skipped to its end as it streams, and yielded as its size alone: readline
 * would hold the whole of it, however long, before anyone could look at its length.
 */
export async function* boundedLines(file: string, maxBytes: number): AsyncGenerator<{ n: number; line?: string; tooLong?: number }> {
  let n = 0;
  let parts: Buffer[] = [];
  let held = 0;
  let skipped = -1; // bytes of the line being skipped, or -1 when keeping it
  const end = () => {
    n++;
    const out = skipped >= 0 ? { n, tooLong: skipped } : { n, line: Buffer.concat(parts, held).toString('utf8').replace(/\r$/, '') };
    parts = [];
    held = 0;
    skipped = -1;
    return out;
  };
  const take = (piece: Buffer) => {
    if (skipped >= 0) skipped += piece.length;
    else if (held + piece.length > maxBytes) {
      skipped = held + piece.length;
      parts = [];
      held = 0;
    } else {
      parts.push(piece);
      held += piece.length;
    }
  };
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let from = 0;
    for (let nl = chunk.indexOf(10, from); nl !== -1; nl = chunk.indexOf(10, from)) {
      take(chunk.subarray(from, nl));
      yield end();
      from = nl + 1;
    }
    if (from < chunk.length) take(chunk.subarray(from));
  }
  if (held > 0 || skipped >= 0) yield end();
}

const NPY_DTYPES: Record<string, Datatype> = {
  '<f4': 'FP32',
  '<f8': 'FP64',
  '<f2': 'FP16',
  '<i8': 'INT64',
  '<i4': 'INT32',
  '<i2': 'INT16',
  '|i1': 'INT8',
  '|u1': 'UINT8',
  '<u2': 'UINT16',
  '<u4': 'UINT32',
  '<u8': 'UINT64',
  '|b1': 'BOOL',
};

/** A `.npy` file's dtype, shape and data bytes (format versions 1–3, little-endian, C order). */
export function parseNpy(buf: Buffer): { datatype: Datatype; shape: number[]; data: Uint8Array } {
  if (buf.length < 10 || buf.readUInt32BE(0) !== 0x934e554d || buf.toString('latin1', 4, 6) !== 'PY') throw new Error('not a .npy file (no \\x93NUMPY magic)');
  const major = buf[6]!;
  const start = major === 1 ? 10 : 12;
  if (![1, 2, 3].includes(major) || buf.length < start) throw new Error(`a .npy file of version ${major}, or a cut one`);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  if (start + headerLen > buf.length) throw new Error(`a .npy file of version ${major}, or a cut one`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error('a .npy header without descr, fortran_order and shape');
  if (fortran === 'True') throw new Error('a .npy file in Fortran order: save it in C order (np.ascontiguousarray)');
  const datatype = NPY_DTYPES[descr];
  if (!datatype) throw new Error(`.npy dtype ${descr} is not one this reads (little-endian numbers or bool)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`a .npy shape (${shapeText}) that is not whole numbers`);
  return { datatype, shape, data: buf.subarray(start + headerLen) };
}

/** A one-record tensor for the model's single input: the file's shape, with a batch of one added when the model has one. */
function fileRecord(id: string, signature: ModelSignature, datatype: Datatype | undefined, shape: number[] | undefined, data: Uint8Array): ScoreRecord {
  if (signature.inputs.length !== 1) return { id, error: `the model takes ${signature.inputs.length} inputs (${signature.inputs.map((i) => i.name).join(', ')}): a file holds one; use a .jsonl file of KServe requests` };
  const spec = signature.inputs[0]!;
  if (datatype && datatype !== spec.datatype) return { id, error: `the file holds ${datatype}, the model's input ${spec.name} takes ${spec.datatype}` };
  let dims = shape;
  if (!dims) {
    // A raw file says nothing of its shape: the model's, with a batch of one.
    const fixed = spec.shape.map((d, i) => (d === -1 && i === 0 ? 1 : d));
    if (fixed.includes(-1)) return { id, error: `a raw file cannot say its shape for input ${spec.name} [${spec.shape.join(', ')}]: use a .npy file` };
    dims = fixed;
  } else if (dims.length === spec.shape.length - 1) dims = [1, ...dims];
  try {
    return { id, inputs: validateInputs(signature, [{ name: spec.name, datatype: spec.datatype, shape: dims, raw: data }]) };
  } catch (err) {
    return { id, error: (err as Error).message };
  }
}

/** The dataset's files, links followed (datasets kept by DVC or git-annex are links), each folder once. */
function files(dir: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (d: string) => {
    const real = realpathSync(d);
    if (seen.has(real)) return;
    seen.add(real);
    for (const name of readdirSync(d).sort((a, b) => a.localeCompare(b))) {
      const p = join(d, name);
      const s = statSync(p, { throwIfNoEntry: false });
      if (s?.isDirectory()) walk(p);
      else if (s?.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Every record of the dataset, in file and line order; files of other kinds are reported in `skipped`. */
export async function* datasetRecords(dir: string, signature: ModelSignature, skipped: string[] = [], limits = { lineBytes: MAX_LINE_BYTES }): AsyncGenerator<ScoreRecord> {
  for (const file of files(dir)) {
    const id = relative(dir, file);
    const ext = file.slice(file.lastIndexOf('.')).toLowerCase();
    if (ext === '.jsonl' || ext === '.ndjson') {
      for await (const { n, line, tooLong } of boundedLines(file, limits.lineBytes)) {
        const rid = `${id}:${n}`;
        if (tooLong !== undefined) {
          yield { id: rid, error: `a line of ${tooLong} bytes, over ${limits.lineBytes}` };
          continue;
        }
        if (!line!.trim()) continue;
        try {
          const body = JSON.parse(line!) as { inputs?: unknown };
          yield { id: rid, inputs: validateInputs(signature, body?.inputs) };
        } catch (err) {
          yield { id: rid, error: err instanceof SyntaxError ? `not JSON: ${err.message}` : (err as Error).message };
        }
      }
    } else if (ext === '.npy' || ext === '.bin' || ext === '.raw') {
      const size = statSync(file).size;
      if (size > MAX_RECORD_BYTES) {
        yield { id, error: `${size} bytes, over ${MAX_RECORD_BYTES} for one record` };
        continue;
      }
      const buf = readFileSync(file);
      if (ext === '.npy') {
        try {
          const npy = parseNpy(buf);
          yield fileRecord(id, signature, npy.datatype, npy.shape, npy.data);
        } catch (err) {
          yield { id, error: (err as Error).message };
        }
      } else yield fileRecord(id, signature, undefined, undefined, buf);
    } else skipped.push(id);
  }
}
