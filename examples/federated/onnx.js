// A minimal ONNX writer and reader (protobuf by hand), so this example needs nothing but Node.js.
// The writer is examples/classifier's (copied, not imported: each example stands alone). Every
// client writes its update with it, so an update's graph is byte for byte the global model's and
// only the initializers' values differ: what the relay checks before it averages. Field numbers
// are from onnx/onnx.proto.

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
 * label [batch] (INT64, the most likely class). W is row-major [features, classes].
 * `wDims` (default [features, classes]) only exists for train.js's FAULT=shape test hook:
 * the same graph with W stored under another shape.
 */
export function classifierModel(W, b, features, classes, wDims = [features, classes]) {
  const graph = [
    node('MatMul', ['x', 'W'], ['logits_raw']),
    node('Add', ['logits_raw', 'b'], ['logits']),
    node('Softmax', ['logits'], ['probabilities'], { axis: 1 }),
    node('ArgMax', ['logits'], ['label'], { axis: 1, keepdims: 0 }),
    str(2, 'classifier'),
    floatTensor('W', wDims, W),
    floatTensor('b', [classes], b),
    valueInfo(11, 'x', FLOAT, ['batch', features]),
    valueInfo(12, 'probabilities', FLOAT, ['batch', classes]),
    valueInfo(12, 'label', INT64, ['batch']),
  ];
  return Buffer.concat([int(1, 8), str(2, 'outpost-example'), msg(7, graph), msg(8, [str(1, ''), int(2, 13)])]);
}

// The reader: just enough to get the float initializers back out of a model file.
// ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto dims = 1, data_type = 2,
// name = 8, raw_data = 9. Unknown fields are skipped by wire type.

/** A varint at buf[pos]: [value, position after it]. */
function varintAt(buf, pos, end) {
  let n = 0;
  let mul = 1;
  for (;;) {
    if (pos >= end) throw new Error('truncated model file');
    const byte = buf[pos++];
    n += (byte & 0x7f) * mul;
    if (byte < 0x80) return [n, pos];
    mul *= 128;
  }
}

/** The fields of one message in buf[start, end): varints with their value, others with their bytes' span. */
function* fields(buf, start, end) {
  let pos = start;
  while (pos < end) {
    let key, value, len;
    [key, pos] = varintAt(buf, pos, end);
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      [value, pos] = varintAt(buf, pos, end);
      yield { no, wire, value };
    } else if (wire === 2) {
      [len, pos] = varintAt(buf, pos, end);
      if (pos + len > end) throw new Error('truncated model file');
      yield { no, wire, start: pos, end: pos + len };
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`not an ONNX model (wire type ${wire})`);
  }
}

/**
 * The float initializers W and b of a model file: { W: { dims, values }, b: { dims, values } },
 * values as plain numbers. Throws when one is missing or not FLOAT with raw_data.
 */
export function readWeights(file) {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength); // a Uint8Array works too
  const out = {};
  for (const top of fields(buf, 0, buf.length)) {
    if (top.no !== 7 || top.wire !== 2) continue;
    for (const g of fields(buf, top.start, top.end)) {
      if (g.no !== 5 || g.wire !== 2) continue;
      const t = { dims: [], dataType: 0, name: '', raw: null };
      for (const f of fields(buf, g.start, g.end)) {
        if (f.no === 1 && f.wire === 0) t.dims.push(f.value);
        else if (f.no === 1 && f.wire === 2) {
          // Other writers may pack dims: one length-delimited run of varints.
          for (let pos = f.start; pos < f.end; ) {
            const [d, next] = varintAt(buf, pos, f.end);
            t.dims.push(d);
            pos = next;
          }
        } else if (f.no === 2 && f.wire === 0) t.dataType = f.value;
        else if (f.no === 8 && f.wire === 2) t.name = buf.toString('utf8', f.start, f.end);
        else if (f.no === 9 && f.wire === 2) t.raw = buf.subarray(f.start, f.end);
      }
      if (t.name !== 'W' && t.name !== 'b') continue;
      if (t.dataType !== FLOAT || !t.raw) throw new Error(`initializer ${t.name}: only FLOAT values in raw_data are read (as classifierModel writes them)`);
      const values = [];
      for (let i = 0; i + 4 <= t.raw.length; i += 4) values.push(t.raw.readFloatLE(i));
      out[t.name] = { dims: t.dims, values };
    }
  }
  for (const name of ['W', 'b']) if (!out[name]) throw new Error(`no initializer ${name} in the model`);
  return out;
}
