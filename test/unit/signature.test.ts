import t from 'tap';
import { OutpostError, validateInputs, elementCount, formatSignature, sampleInputs, toTensorBytes, fromTensorBytes, encodeBinaryBody, parseBinaryBody, type ModelSignature } from '@outpost/shared';

const sig: ModelSignature = {
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 2] },
    { name: 'k', datatype: 'INT64', shape: [] },
    { name: 'flag', datatype: 'BOOL', shape: [1] },
    { name: 's', datatype: 'BYTES', shape: [-1] },
    { name: 'u', datatype: 'UINT8', shape: [2] },
  ],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
};
const good = () => [
  { name: 's', shape: [2], datatype: 'BYTES', data: ['a', 'b'] },
  { name: 'x', shape: [3, 2], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] },
  { name: 'k', shape: [], datatype: 'INT64', data: [9] },
  { name: 'flag', shape: [1], datatype: 'BOOL', data: [true] },
  { name: 'u', shape: [2], datatype: 'UINT8', data: [0, 255] },
];

t.test('valid inputs come back in signature order', async (t) => {
  t.same(validateInputs(sig, good()).map((x) => x.name), ['x', 'k', 'flag', 's', 'u']);
  t.equal(elementCount([]), 1, 'a scalar has one element');
  t.equal(elementCount([3, 0]), 0);
  t.equal(formatSignature({ inputs: [sig.inputs[0]!], outputs: sig.outputs }), 'inputs x: FP32[-1,2] -> outputs y: FP32[-1]');
});

t.test('each problem is named', async (t) => {
  const bad = (mutate: (inputs: ReturnType<typeof good>) => unknown, message: RegExp) => {
    const inputs = good();
    const arg = mutate(inputs) ?? inputs;
    t.throws(() => validateInputs(sig, arg), { code: 'OUTPOST_ERR_TENSOR_INVALID', message });
  };
  bad(() => 'nope', /"inputs" must be an array/);
  bad((i) => void i.push(null as never), /every input needs a "name"/);
  bad((i) => void i.push({ ...i[1]! }), /input "x" is given twice/);
  bad((i) => void (i[3]!.data = [1]), /element 0 is 1, BOOL data must be true or false/);
  bad((i) => void (i[0]!.data = ['a', 2] as never), /element 1 is 2, BYTES data must be strings/);
  bad((i) => void (i[4]!.data = [0, 256]), /element 1 is 256, not an integer in the UINT8 range/);
  bad((i) => void (i[2]!.data = [2 ** 60]), /not an integer in the INT64 range/);
  bad((i) => void (i[1]!.data = 'abc' as never), /"data" must be a flat, row-major array/);
  bad((i) => void (i[1]!.shape = [1.5, 2]), /non-negative integers/);
  bad((i) => i.slice(1), /missing input "s" \(BYTES \[-1\]\)/);
});

t.test('OutpostError instanceof works across copies and serializes', async (t) => {
  const err = new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', 'gone');
  t.equal(err.status, 404);
  t.same(err.toJSON(), { error: { code: 'OUTPOST_ERR_MODEL_NOT_FOUND', message: 'gone' } });
  const lookalike = Object.assign(new Error('x'), { [Symbol.for('outpost.error')]: true });
  t.ok(lookalike instanceof OutpostError, 'a copy from another install is recognised');
  t.notOk(new Error('x') instanceof OutpostError);
});

t.test('binary tensor data: round trips, alignment, BYTES, errors', async (t) => {
  const f = Float32Array.from([1.5, -2, 3.25]);
  const bytes = toTensorBytes(f);
  t.same(Array.from(fromTensorBytes('x', 'FP32', bytes, 3) as Float32Array), [1.5, -2, 3.25]);
  const unaligned = Buffer.concat([Buffer.alloc(1), Buffer.from(bytes)]).subarray(1);
  t.same(Array.from(fromTensorBytes('x', 'FP32', unaligned, 3) as Float32Array), [1.5, -2, 3.25], 'unaligned bytes are copied, not misread');
  const strings = ['', 'héllo', 'a'];
  t.same(fromTensorBytes('s', 'BYTES', toTensorBytes(strings), 3), strings, 'BYTES: a 4-byte length before each element');
  t.throws(() => fromTensorBytes('s', 'BYTES', toTensorBytes(strings), 2), /needs 2 BYTES elements, the binary data has 3/);
  t.throws(() => fromTensorBytes('s', 'BYTES', Buffer.from([9, 0, 0, 0, 1]), 1), /claims 9 bytes/);
  t.throws(() => fromTensorBytes('s', 'BYTES', Buffer.from([1, 0]), 1), /cut off/);
  t.throws(() => fromTensorBytes('x', 'INT64', Buffer.alloc(12), 2), /needs 16 bytes of INT64, binary_data_size is 12/);

  const { chunks, headerLength } = encodeBinaryBody({ outputs: [{ name: 'y', parameters: { binary_data_size: 12 } }, { name: 'z' }] }, [bytes]);
  const parsed = parseBinaryBody(Buffer.concat(chunks), headerLength, 'outputs') as { outputs: Array<{ raw?: Uint8Array }> };
  t.same(Buffer.from(parsed.outputs[0]!.raw!), Buffer.from(bytes));
  t.equal(parsed.outputs[1]!.raw, undefined, 'a tensor without binary_data_size has no raw bytes');

  // Checked against a signature: binary inputs arrive as typed arrays; "data" and binary together are refused.
  const sig = { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 3] }], outputs: [] };
  const [x] = validateInputs(sig, [{ name: 'x', datatype: 'FP32', shape: [1, 3], raw: bytes }]);
  t.ok(x!.data instanceof Float32Array);
  t.throws(() => validateInputs(sig, [{ name: 'x', datatype: 'FP32', shape: [1, 3], raw: bytes, data: [1, 2, 3] }]), /give "data" or binary_data_size, not both/);
  t.same(sampleInputs(sig, 4)[0]!.shape, [4, 3], 'warm-up inputs at a batch size');
});
