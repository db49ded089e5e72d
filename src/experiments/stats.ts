// Statistics for experiment results: sample-ratio mismatch (chi-square goodness of fit), nearest-rank
// percentiles, and normal-approximation intervals for means and their differences.

const Z95 = 1.959963984540054;

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9): about 15 significant digits. */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = c[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularised upper incomplete gamma Q(a, x): series below a + 1, continued fraction above (Numerical Recipes). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000 && Math.abs(term) > Math.abs(sum) * 1e-15; n++) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - sum * front;
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

/** P(X² ≥ x) for a chi-square with `df` degrees of freedom. */
export function chiSquareSurvival(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

export const SRM_ALARM_P = 0.001;

/**
 * Sample-ratio mismatch: do observed counts fit the expected shares? Shares need not sum to 1 (they are
 * normalised); categories with share 0 are left out. Null when there is nothing to test.
 */
export function sampleRatioMismatch(
  observed: readonly number[],
  shares: readonly number[],
): { n: number; chiSquare: number; pValue: number; alarm: boolean } | null {
  const pairs = observed.map((o, i) => [o, shares[i] ?? 0] as const).filter(([, s]) => s > 0);
  const n = pairs.reduce((t, [o]) => t + o, 0);
  const total = pairs.reduce((t, [, s]) => t + s, 0);
  if (pairs.length < 2 || n === 0) return null;
  let chiSquare = 0;
  for (const [o, s] of pairs) {
    const expected = (n * s) / total;
    chiSquare += (o - expected) ** 2 / expected;
  }
  const pValue = chiSquareSurvival(chiSquare, pairs.length - 1);
  return { n, chiSquare, pValue, alarm: pValue < SRM_ALARM_P };
}

/** Nearest-rank percentile: the smallest value with at least p of the sample at or below it. */
export function nearestRankIndex(n: number, p: number): number {
  return Math.max(0, Math.ceil(p * n) - 1);
}

export interface Moments {
  n: number;
  sum: number;
  sumSquares: number;
}

function variance(m: Moments): number {
  if (m.n < 2) return 0;
  return Math.max(0, (m.sumSquares - (m.sum * m.sum) / m.n) / (m.n - 1));
}

/** Mean with a 95% normal interval; null without data, a zero-width interval for a single observation. */
export function meanInterval(m: Moments): { mean: number; ci95: [number, number] } | null {
  if (m.n === 0) return null;
  const mean = m.sum / m.n;
  const half = Z95 * Math.sqrt(variance(m) / m.n);
  return { mean, ci95: [mean - half, mean + half] };
}

/** Difference of means (a − b) with a 95% Welch interval; null unless both sides have data. */
export function differenceInterval(a: Moments, b: Moments): { mean: number; ci95: [number, number] } | null {
  if (a.n === 0 || b.n === 0) return null;
  const mean = a.sum / a.n - b.sum / b.n;
  const half = Z95 * Math.sqrt(variance(a) / a.n + variance(b) / b.n);
  return { mean, ci95: [mean - half, mean + half] };
}
