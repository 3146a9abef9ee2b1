// Device labels (`key=value`): checked, parsed and printed alike by the relay, both CLIs and the
// dashboard. Browser-safe.

export type Labels = Record<string, string>;

const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$/;
const LABEL_VALUE = /^[A-Za-z0-9._:/-]{0,128}$/;

export function checkLabel(key: string, value: string): void {
  if (!LABEL_KEY.test(key)) throw new Error(`invalid label key "${key}": use letters, digits, '.', '_', '-', '/' (at most 63)`);
  if (!LABEL_VALUE.test(value)) throw new Error(`invalid label value "${value}" for "${key}": use letters, digits, '.', '_', '-', ':', '/'`);
}

/** Parses `k=v,k2=v2` (also accepts several arguments) into labels. */
export function parseLabels(...parts: string[]): Labels {
  const labels: Labels = {};
  for (const part of parts.flatMap((p) => p.split(','))) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label "${item}": use key=value`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    checkLabel(key, value);
    labels[key] = value;
  }
  return labels;
}

export function formatLabels(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
