// The program a scoring job runs on the device (`jobs score`): the agent's own onnxruntime over
// every record of a local dataset, predictions written to OUTPOST_OUTPUT_DIR (uploaded as the
// run's outputs like any job's), and records, failures and throughput reported as metrics.
// It runs as a job process, so the agent's limits, timeout and cancel apply, and a model that
// crashes onnxruntime takes only this process down. One thread: the device keeps serving.

import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import * as ort from 'onnxruntime-node';
import { datatypeFromOrtType, halfToFloat, signatureFromSession, toOrtTensor } from '@outpost/shared';
import { datasetRecords } from './score-records.js';

const PROGRESS_MS = 2_000;

/** An output tensor's values as JSON numbers (int64 as numbers, float16 widened). */
function jsonValues(t: ort.Tensor): Array<number | string | boolean> {
  if (t.type === 'float16') return Array.from(t.data as Uint16Array, halfToFloat);
  if (t.type === 'bool') return Array.from(t.data as Uint8Array, (v) => v !== 0);
  if (t.type === 'string') return t.data as string[];
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

const csvCell = (v: unknown) => {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

async function main(): Promise<void> {
  const model = process.env.OUTPOST_SCORE_MODEL;
  const format = process.env.OUTPOST_SCORE_FORMAT === 'csv' ? 'csv' : 'jsonl';
  const dataDir = process.env.OUTPOST_DATA_DIR;
  const outDir = process.env.OUTPOST_OUTPUT_DIR;
  if (!model || !dataDir || !outDir) throw new Error('OUTPOST_SCORE_MODEL, OUTPOST_DATA_DIR and OUTPOST_OUTPUT_DIR must be set (this runs as a scoring job)');
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const signature = signatureFromSession(session);
  const out = createWriteStream(join(outDir, `predictions.${format}`), { mode: 0o600 });
  const write = async (line: string) => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  // CSV columns from the signature when its outputs' sizes are fixed (a batch of one), else from
  // the first good record (failures before it are written after it).
  const fixed = signature.outputs.every((o) => o.shape.slice(1).every((d) => d >= 0) && (o.shape[0] ?? 1) !== 0);
  let csvColumns: Array<{ name: string; size: number }> | undefined = fixed ? signature.outputs.map((o) => ({ name: o.name, size: o.shape.slice(1).reduce((n, d) => n * d, 1) })) : undefined;
  const pendingCsv: string[][] = [];
  const csvHeader = (cols: Array<{ name: string; size: number }>) => ['record', 'error', ...cols.flatMap((c) => Array.from({ length: c.size }, (_, i) => `${c.name}_${i}`))].map(csvCell).join(',');
  if (format === 'csv' && csvColumns) await write(csvHeader(csvColumns));
  let records = 0;
  let failures = 0;
  const started = Date.now();
  let said = started;
  const skipped: string[] = [];
  for await (const r of datasetRecords(dataDir, signature, skipped)) {
    records++;
    let outputs: Array<{ name: string; datatype: string; shape: number[]; data: Array<number | string | boolean> }> | undefined;
    let error = r.error;
    if (r.inputs) {
      try {
        const feeds = Object.fromEntries(r.inputs.map((t) => {
          const o = toOrtTensor(t);
          return [t.name, new ort.Tensor(o.type as ort.Tensor.Type, o.data as never, o.dims)];
        }));
        const result = await session.run(feeds);
        outputs = signature.outputs.map((s) => {
          const t = result[s.name]!;
          return { name: s.name, datatype: datatypeFromOrtType(t.type) ?? s.datatype, shape: [...t.dims], data: jsonValues(t) };
        });
      } catch (err) {
        error = `onnxruntime: ${(err as Error).message.replace(/\s+/g, ' ').slice(0, 500)}`;
      }
    }
    if (format === 'jsonl') await write(JSON.stringify(outputs ? { record: r.id, outputs } : { record: r.id, error }));
    else {
      // One row per record, one column per output element; the first good record sets the columns.
      if (outputs && !csvColumns) {
        csvColumns = outputs.map((o) => ({ name: o.name, size: o.data.length }));
        await write(csvHeader(csvColumns));
      }
      if (outputs && csvColumns && outputs.some((o, i) => o.data.length !== csvColumns![i]!.size)) {
        outputs = undefined;
        error = 'its outputs differ in size from the first record\'s: score with --output-format jsonl';
      }
      if (!csvColumns) {
        // Failures before the first good record: kept until the header is known.
        pendingCsv.push([r.id, error ?? '']);
      } else await write([r.id, error ?? '', ...(outputs ? outputs.flatMap((o) => o.data) : [])].map(csvCell).join(','));
    }
    if (error) failures++;
    if (Date.now() - said > PROGRESS_MS) {
      said = Date.now();
      console.log(`scored ${records} records (${failures} failed)`);
    }
  }
  if (format === 'csv') {
    if (!csvColumns) await write('record,error');
    for (const row of pendingCsv) await write(row.map(csvCell).join(','));
  }
  out.end();
  await once(out, 'finish');
  await session.release();
  const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
  if (skipped.length) console.log(`skipped ${skipped.length} file(s) that are not records (.npy, .bin, .raw, .jsonl): ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', …' : ''}`);
  console.log(`outpost:metric records=${records} failures=${failures} records_per_s=${(records / seconds).toFixed(2)}`);
  if (records === 0) throw new Error('the dataset holds no records (.npy, .bin or .raw files, or .jsonl lines of KServe requests)');
  if (failures === records) throw new Error(`every one of the ${records} records failed; see predictions.${format}`);
}


main().catch((err: unknown) => {
  console.error(`scoring failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
