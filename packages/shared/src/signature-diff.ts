// What changed between two versions' signatures, in the terms that break a caller: a tensor
// added or gone, a datatype, a rank. (A dynamic dimension that became fixed, or the reverse, is
// not listed: requests that fit both still work.) `models push` shows this and asks for
// --allow-signature-change before a new version may differ from the one before it.

import type { ModelSignature, TensorSpec } from './signature.js';

const describe = (t: TensorSpec) => `${t.datatype}[${t.shape.map((d) => (d === -1 ? '?' : d)).join(',')}]`;

export function signatureChanges(before: ModelSignature, after: ModelSignature): string[] {
  const changes: string[] = [];
  for (const side of ['inputs', 'outputs'] as const) {
    const kind = side === 'inputs' ? 'input' : 'output';
    const old = new Map(before[side].map((t) => [t.name, t]));
    const now = new Map(after[side].map((t) => [t.name, t]));
    for (const [name, t] of old) if (!now.has(name)) changes.push(`${kind} ${name} (${describe(t)}) is gone`);
    for (const [name, t] of now) {
      const o = old.get(name);
      if (!o) changes.push(`${kind} ${name} (${describe(t)}) is new`);
      else if (o.datatype !== t.datatype) changes.push(`${kind} ${name}: ${o.datatype} became ${t.datatype}`);
      else if (o.shape.length !== t.shape.length) changes.push(`${kind} ${name}: rank ${o.shape.length} (${describe(o)}) became ${t.shape.length} (${describe(t)})`);
    }
  }
  return changes;
}
