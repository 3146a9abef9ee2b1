// Which way a training metric improves: the relay's job summaries, the CLI and the dashboard
// all pick "best" by this one rule.

/** Lower is better for losses and errors; higher for everything else (accuracy, …). */
export function lowerIsBetter(name: string): boolean {
  return /loss|error|err|mse|mae|rmse|perplexity/i.test(name);
}

/** The better of two values of the metric `name`. */
export function betterOf(name: string, a: number, b: number): number {
  return lowerIsBetter(name) ? Math.min(a, b) : Math.max(a, b);
}
