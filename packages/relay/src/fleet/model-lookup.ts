// The answer to a model name (or version) the relay does not have: a typo gets the nearest
// known names, a version that does not exist gets the latest one there is.

import { OutpostError, didYouMean } from '@outpost/shared';
import type { FleetContext } from './context.js';

/** `hint` says what to do when nothing is near (push it, or list the models). */
export async function modelNotFound(ctx: Pick<FleetContext, 'store'>, name: string, version: number | undefined, hint: string): Promise<OutpostError> {
  const latest = version === undefined ? undefined : await ctx.store.models.get(name);
  if (latest) return new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `no version ${version} of model "${name}": its latest is ${latest.version} (outpost-relay models show ${name})`);
  const what = version === undefined ? `model "${name}"` : `version ${version} of model "${name}"`;
  const suggestion = didYouMean(name, (await ctx.store.models.list()).map((m) => m.name));
  return new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', suggestion ? `no ${what}${suggestion}` : `no ${what}: ${hint}`);
}
