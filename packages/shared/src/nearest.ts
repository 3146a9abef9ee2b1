// "Did you mean …?": the known names nearest to one that was not found, by edit distance
// (insertions, deletions, substitutions and swaps of two neighbours, ignoring case), so a typo
// such as `devce1` or `modle` is answered with the name that was meant.

/** Edits a name may be off by and still count as a typo: 1 up to 5 characters, a third of it beyond, at most 3. */
export function typoBudget(name: string): number {
  return Math.max(1, Math.min(3, Math.floor(name.length / 3)));
}

/**
 * The optimal string alignment distance between `a` and `b`, or `limit + 1` once it is known
 * to exceed `limit`. Only cells within `limit` of the diagonal are computed, so comparing one
 * name against thousands stays cheap whatever their length.
 */
export function editDistance(a: string, b: string, limit = Math.max(a.length, b.length)): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const over = limit + 1;
  // Three rows: two back (for swaps), the previous one, and the one being filled.
  let back2 = new Array<number>(b.length + 1).fill(over);
  let back1 = Array.from({ length: b.length + 1 }, (_, j) => (j <= limit ? j : over));
  for (let i = 1; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1).fill(over);
    if (i <= limit) row[0] = i;
    let best = row[0]!;
    for (let j = Math.max(1, i - limit); j <= Math.min(b.length, i + limit); j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(back1[j]! + 1, row[j - 1]! + 1, back1[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, back2[j - 2]! + 1);
      row[j] = Math.min(d, over);
      best = Math.min(best, row[j]!);
    }
    if (best > limit) return over;
    back2 = back1;
    back1 = row;
  }
  return Math.min(back1[b.length]!, over);
}

/** The candidates nearest to `name` within its typo budget (at most `max`, nearest first, ties in order given). */
export function nearest(name: string, candidates: Iterable<string>, max = 3): string[] {
  const wanted = name.toLowerCase();
  const budget = typoBudget(name);
  const found: Array<{ candidate: string; distance: number }> = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (seen.has(candidate) || candidate === name) continue;
    seen.add(candidate);
    const distance = editDistance(wanted, candidate.toLowerCase(), budget);
    if (distance <= budget) found.push({ candidate, distance });
  }
  const closest = Math.min(...found.map((f) => f.distance));
  return found.filter((f) => f.distance === closest).slice(0, max).map((f) => f.candidate);
}

/** `; did you mean a or b?`, or nothing when no candidate is near. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const near = nearest(name, candidates);
  if (near.length === 0) return '';
  const quoted = near.map((n) => (/^[\w.-]+$/.test(n) ? n : JSON.stringify(n)));
  return `; did you mean ${quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`}?`;
}
