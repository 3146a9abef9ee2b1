// The job metrics format: language-neutral, no SDK. A job reports metrics by printing a line
//
//   outpost:metric loss=0.42 accuracy=0.91 step=10
//
// on stdout (from a shell, Python, Node, anything), or by writing JSON lines such as
// {"step": 10, "loss": 0.42} to $OUTPOST_OUTPUT_DIR/metrics.jsonl. `step` is optional.

export interface MetricPoint {
  name: string;
  value: number;
  step: number | null;
}

const PREFIX = 'outpost:metric ';
const NAME = /^[A-Za-z_][A-Za-z0-9_./-]{0,63}$/;

export function parseMetricLine(line: string): MetricPoint[] | null {
  if (!line.startsWith(PREFIX)) return null;
  const pairs = line.slice(PREFIX.length).trim().split(/\s+/);
  let step: number | null = null;
  const values: Array<[string, number]> = [];
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return null;
    const name = pair.slice(0, eq);
    const value = Number(pair.slice(eq + 1));
    if (!NAME.test(name) || !Number.isFinite(value)) return null;
    if (name === 'step') step = value;
    else values.push([name, value]);
  }
  return values.length ? values.map(([name, value]) => ({ name, value, step })) : null;
}

/** One line of metrics.jsonl: every numeric field but `step` is a metric. */
export function parseMetricJson(line: string): MetricPoint[] | null {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return null;
  const record = obj as Record<string, unknown>;
  const step = typeof record.step === 'number' && Number.isFinite(record.step) ? record.step : null;
  const points = Object.entries(record)
    .filter(([k, v]) => k !== 'step' && NAME.test(k) && typeof v === 'number' && Number.isFinite(v))
    .map(([name, value]) => ({ name, value: value as number, step }));
  return points.length ? points : null;
}
