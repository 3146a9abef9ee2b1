// Registering a model version, one way for every source: a push (POST /v1/models/{name}/versions),
// a job's output (--register-model), and later a federated job's rounds. The file is loaded and
// run once by onnxruntime in a child process (its sample, or a synthetic input from its
// signature), a signature that would break callers of the previous version is refused unless
// allowed, and the version is recorded with where it came from.

import { OutpostError, probeAndSelfTest, signatureChanges, type SelfTestResult } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { ModelLineage, ModelVersionRecord } from '../store/records.js';

export interface NewModelVersion {
  name: string;
  /** The file on disk (staged or already an artifact), its hash and size. */
  file: string;
  sha256: string;
  size: number;
  /** A sample request the self-test runs on, and its file. */
  sample?: { sha256: string; size: number; file: string };
  lineage?: ModelLineage;
  /** A new signature is accepted (a push with --allow-signature-change; jobs decide their own outputs). */
  allowSignatureChange: boolean;
  /** Runs after every check and before the version is recorded (a push commits its staged file here). */
  beforeRecord?: () => Promise<void>;
}

export async function registerModelVersion(ctx: FleetContext, v: NewModelVersion): Promise<{ record: ModelVersionRecord; created: boolean; selfTest: SelfTestResult }> {
  if (v.size === 0) throw new OutpostError('OUTPOST_ERR_MODEL_INVALID', 'the file is empty');
  const { signature, selfTest } = await probeAndSelfTest(v.file, v.name, v.sample?.file);
  // A new version that breaks callers is a decision, not an accident.
  const previous = await ctx.store.models.get(v.name);
  const changes = previous && previous.sha256 !== v.sha256 ? signatureChanges(previous.signature, signature) : [];
  if (changes.length > 0 && !v.allowSignatureChange) {
    throw new OutpostError('OUTPOST_ERR_SIGNATURE_CHANGED', `the new version's signature differs from ${v.name}:${previous!.version}'s: ${changes.join('; ')}; push with --allow-signature-change if that is meant`);
  }
  await v.beforeRecord?.();
  const sample = v.sample ? { sha256: v.sample.sha256, size: v.sample.size } : undefined;
  const { record, created } = await ctx.store.models.addVersion(v.name, v.sha256, v.size, signature, { selfTest, ...(sample ? { sample } : {}), ...(v.lineage ? { lineage: v.lineage } : {}) });
  return { record, created, selfTest };
}
