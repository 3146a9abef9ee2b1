// A minimal ONNX writer (protobuf by hand), so this example needs nothing but Node.js.
// It writes the few message types a small model needs: ModelProto, GraphProto, NodeProto,
// TensorProto, ValueInfoProto. Field numbers are from onnx/onnx.proto.

function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const tag = (field, wire) => varint((field << 3) | wire);
const int = (field, n) => Buffer.concat([tag(field, 0), varint(n)]);
const bytes = (field, buf) => Buffer.concat([tag(field, 2), varint(buf.length), buf]);
const str = (field, s) => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field, parts) => bytes(field, Buffer.concat(parts));

const FLOAT = 1;
const INT64 = 7;

function shape(dims) {
  return dims.map((d) => msg(1, [typeof d === 'number' ? int(1, d) : str(2, d)]));
}

function valueInfo(field, name, elemType, dims) {
  return msg(field, [str(1, name), msg(2, [msg(1, [int(1, elemType), msg(2, shape(dims))])])]);
}

function floatTensor(name, dims, values) {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return msg(5, [...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, raw)]);
}

function node(op, inputs, outputs, attrs = {}) {
  return msg(1, [
    ...inputs.map((i) => str(1, i)),
    ...outputs.map((o) => str(2, o)),
    str(3, `${op.toLowerCase()}_${outputs[0]}`),
    str(4, op),
    ...Object.entries(attrs).map(([k, v]) => msg(5, [str(1, k), int(3, v), int(20, 2 /* INT */)])),
  ]);
}

/**
 * A softmax classifier: x [batch, features] → probabilities [batch, classes] and
 * label [batch] (INT64, the most likely class).
 */
export function classifierModel(W, b, features, classes) {
  const graph = [
    node('MatMul', ['x', 'W'], ['logits_raw']),
    node('Add', ['logits_raw', 'b'], ['logits']),
    node('Softmax', ['logits'], ['probabilities'], { axis: 1 }),
    node('ArgMax', ['logits'], ['label'], { axis: 1, keepdims: 0 }),
    str(2, 'classifier'),
    floatTensor('W', [features, classes], W),
    floatTensor('b', [classes], b),
    valueInfo(11, 'x', FLOAT, ['batch', features]),
    valueInfo(12, 'probabilities', FLOAT, ['batch', classes]),
    valueInfo(12, 'label', INT64, ['batch']),
  ];
  return Buffer.concat([int(1, 8), str(2, 'outpost-example'), msg(7, graph), msg(8, [str(1, ''), int(2, 13)])]);
}
