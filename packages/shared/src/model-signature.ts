// Reads a loaded onnxruntime session's inputs and outputs as an Outpost signature.

import type { InferenceSession } from 'onnxruntime-node';
import { datatypeFromOrtType, type ModelSignature, type TensorSpec } from './signature.js';

function tensorSpec(meta: InferenceSession.ValueMetadata, role: string): TensorSpec {
  if (!meta.isTensor) throw new Error(`${role} "${meta.name}" is not a tensor; Outpost serves tensor inputs and outputs only`);
  const datatype = datatypeFromOrtType(meta.type);
  if (!datatype) throw new Error(`${role} "${meta.name}" has type ${meta.type}, which Outpost cannot serve`);
  // Symbolic dimensions ("batch") and unknown ones are dynamic: -1.
  const shape = meta.shape.map((d) => (typeof d === 'number' && d > 0 ? d : -1));
  return { name: meta.name, datatype, shape };
}

export function signatureFromSession(session: InferenceSession): ModelSignature {
  return {
    inputs: session.inputMetadata.map((m) => tensorSpec(m, 'input')),
    outputs: session.outputMetadata.map((m) => tensorSpec(m, 'output')),
  };
}
