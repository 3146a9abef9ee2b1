// Reading a dataset's records for batch scoring: .npy headers (and the files this refuses),
// raw files for fixed shapes, JSON lines, sizes; every bad record named, never a throw.

import t from 'tap';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { boundedLines, datasetRecords, parseNpy } from '../../packages/agent/dist/jobs/score-records.js';

function npy(header: string, data = Buffer.alloc(0), version = 1): Buffer {
  const padded = header + ' '.repeat(63 - (((version === 1 ? 10 : 12) + header.length) % 64)) + '\n';
  const head = Buffer.alloc(version === 1 ? 10 : 12);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = version;
  if (version === 1) head.writeUInt16LE(padded.length, 8);
  else head.writeUInt32LE(padded.length, 8);
  return Buffer.concat([head, Buffer.from(padded, 'latin1'), data]);
}

t.test('parseNpy reads versions 1-3 and refuses what it cannot read', async (t) => {
  const data = Buffer.from(Float32Array.of(1, 2).buffer);
  t.match(parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data)), { datatype: 'FP32', shape: [2] });
  t.match(parseNpy(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", Buffer.alloc(8), 2)), { datatype: 'INT64', shape: [] });
  t.match(parseNpy(npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3, 1), }", Buffer.alloc(3), 3)), { datatype: 'BOOL', shape: [3, 1] });
  t.throws(() => parseNpy(Buffer.from('not numpy at all')), /not a \.npy file/);
  t.throws(() => parseNpy(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }")), /dtype >f4 is not one this reads/);
  t.throws(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }")), /Fortran order/);
  t.throws(() => parseNpy(npy("{'descr': '<f4', 'shape': (2,), }")), /without descr, fortran_order and shape/);
  t.throws(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }")), /not whole numbers/);
  const cut = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }").subarray(0, 20);
  t.throws(() => parseNpy(cut), /cut one/);
  t.throws(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", Buffer.alloc(0), 2).subarray(0, 10)), /a \.npy file of version 2, or a cut one/, 'a v2 file cut inside its header length');
});

t.test('datasetRecords: fixed shapes from raw files, models of several inputs, data sizes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-records-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '1.raw'), Buffer.from(Float32Array.of(1, 2, 3, 4).buffer));
  writeFileSync(join(dir, '2.raw'), Buffer.from(Float32Array.of(1).buffer));
  writeFileSync(join(dir, '3.npy'), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", Buffer.from(Float32Array.of(1, 2, 3).buffer)));
  writeFileSync(join(dir, 'x.ndjson'), '{"inputs": 5}\n');
  const fixed = { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 4] }], outputs: [] };
  const skipped: string[] = [];
  const records = [];
  for await (const r of datasetRecords(dir, fixed, skipped)) records.push(r);
  t.match(records[0], { id: '1.raw', inputs: [{ name: 'x', shape: [1, 4] }] }, 'a raw file takes the model\'s shape with a batch of one');
  t.match(records[1], { id: '2.raw', error: /input "x": the shape needs 16 bytes of FP32, binary_data_size is 4/ });
  t.match(records[2], { id: '3.npy', error: /input "x": the shape needs 16 bytes of FP32, binary_data_size is 12/ }, 'an .npy whose data is shorter than its shape');
  t.match(records[3], { id: 'x.ndjson:1', error: /"inputs" must be an array/ });
  t.same(skipped, []);
  // A dataset kept as links (DVC, git-annex): followed, each folder once.
  const linked = mkdtempSync(join(tmpdir(), 'outpost-linked-'));
  t.teardown(() => rmSync(linked, { recursive: true, force: true }));
  symlinkSync(join(dir, '1.raw'), join(linked, 'a.raw'));
  symlinkSync(dir, join(linked, 'more'));
  symlinkSync(linked, join(linked, 'loop'));
  const ids = [];
  for await (const r of datasetRecords(linked, fixed)) ids.push(r.id);
  t.same(ids, ['a.raw', 'more/1.raw', 'more/2.raw', 'more/3.npy', 'more/x.ndjson:1'], 'links to files and folders followed; a loop read once');
  const two = { inputs: [{ name: 'a', datatype: 'FP32' as const, shape: [-1] }, { name: 'b', datatype: 'FP32' as const, shape: [-1] }], outputs: [] };
  for await (const r of datasetRecords(dir, two)) if (r.id.endsWith('.raw')) t.match(r.error, /the model takes 2 inputs \(a, b\): a file holds one; use a \.jsonl file/);
});

t.test('boundedLines: the lines readline would give, a long one skipped as it streams and named by its size', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-lines-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'records.jsonl');
  const collect = async (max: number) => {
    const out: Array<{ n: number; line?: string; tooLong?: number }> = [];
    for await (const l of boundedLines(file, max)) out.push(l);
    return out;
  };
  // Lines across the stream's 64 KiB chunks, CRLF and LF, with and without a final newline.
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer({ min: 0, max: 200_000 }).map((n) => 'x'.repeat(n))), { minLength: 1, maxLength: 8 }), fc.boolean(), fc.boolean(), async (lines, crlf, last) => {
      writeFileSync(file, lines.join(crlf ? '\r\n' : '\n') + (last ? '\n' : ''));
      const max = 100_000;
      const expected = lines.map((line, i) => {
        // A CRLF line's \r is part of it until the line is known to be kept.
        const bytes = Buffer.byteLength(line) + (crlf && i < lines.length - 1 ? 1 : 0);
        return Buffer.byteLength(line) > max || bytes > max ? { n: i + 1, tooLong: bytes } : { n: i + 1, line };
      });
      // A file that ends in an empty line without a newline has no last line to give.
      if (!last && lines.length > 0 && lines.at(-1) === '') expected.pop();
      t.strictSame(await collect(max), expected);
    }),
    { numRuns: 60 },
  );
  // A 40 MB line with a 1 MB bound is skipped, and the line after it read.
  writeFileSync(file, `${'7'.repeat(40 * 1024 * 1024)}\n{"inputs":[]}\n`);
  t.strictSame(await collect(1024 * 1024), [{ n: 1, tooLong: 40 * 1024 * 1024 }, { n: 2, line: '{"inputs":[]}' }]);
});

t.test('datasetRecords: a JSON line past the bound costs that line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-lines-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const row = (data: number[]) => JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, data.length], data }] });
  writeFileSync(join(dir, 'r.jsonl'), [row([1, 2]), row(Array.from({ length: 5000 }, () => 1)), row([3])].join('\n'));
  const sig = { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, -1] }], outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1] }] };
  const got = [];
  for await (const r of datasetRecords(dir, sig, [], { lineBytes: 1000 })) got.push(r);
  t.equal(got.length, 3);
  t.ok(got[0]!.inputs && got[2]!.inputs, 'the short lines are records');
  t.match(got[1], { id: 'r.jsonl:2', error: /^a line of \d+ bytes, over 1000$/ });
});
