// JSON schemas shared by several routes.

import { OutpostError, checkLabel, type Labels } from '@outpost/shared';
import { RESERVED_SELECTOR_KEYS } from '../fleet/deployments.js';

export const MODEL_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

export const labelsSchema = {
  type: 'object',
  additionalProperties: { type: 'string', maxLength: 128 },
  maxProperties: 64,
} as const;

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', maxLength: 64 } },
} as const;

/** A device by id or by name (names are up to 128 characters). */
export const DEVICE_REF = { type: 'string', minLength: 1, maxLength: 128 } as const;
export const deviceParams = {
  type: 'object',
  required: ['id'],
  properties: { id: DEVICE_REF },
} as const;

/** Checks label keys and values, as a 400 naming the bad one. */
export function checkLabels(labels: Labels | undefined): Labels {
  for (const [k, v] of Object.entries(labels ?? {})) {
    try {
      checkLabel(k, v);
    } catch (err) {
      throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', (err as Error).message);
    }
  }
  return labels ?? {};
}

/**
 * Checks labels a device is to carry: also refuses the selector keys the relay fills itself
 * (`accelerator` matches what the agent reports), so what a selector of that key means stays one thing.
 */
export function checkDeviceLabels(labels: Labels | undefined): Labels {
  for (const k of Object.keys(labels ?? {})) {
    if (RESERVED_SELECTOR_KEYS.includes(k)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `"${k}" is reserved: selectors match ${k}=NAME against the accelerators the device's agent reports (outpost-agent start --accelerator NAME), not labels`);
  }
  return checkLabels(labels);
}
