// Runs a model with onnxruntime in this process: the reference the agent's answers must equal.

import * as ort from 'onnxruntime-node';

export interface JsonTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: number[];
}

const TYPE: Record<string, ort.Tensor.Type> = { FP32: 'float32', INT64: 'int64' };

export async function referenceInfer(file: string, inputs: JsonTensor[]): Promise<JsonTensor[]> {
  const session = await ort.InferenceSession.create(file);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) {
      const data = t.datatype === 'INT64' ? BigInt64Array.from(t.data, (v) => BigInt(v)) : Float32Array.from(t.data);
      feeds[t.name] = new ort.Tensor(TYPE[t.datatype]!, data, t.shape);
    }
    const out = await session.run(feeds);
    return session.outputNames.map((name) => {
      const tensor = out[name]!;
      const datatype = tensor.type === 'int64' ? 'INT64' : 'FP32';
      return { name, shape: [...tensor.dims], datatype, data: Array.from(tensor.data as Float32Array | BigInt64Array, Number) };
    });
  } finally {
    await session.release();
  }
}
