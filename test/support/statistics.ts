/**
 * Rank statistics for comparing two samples of timings. Latencies are skewed and
 * heavy-tailed (a GC pause, the scheduler, another process on the machine), so nothing
 * here assumes a distribution: the Mann–Whitney U test asks whether one sample tends to be
 * larger, and the Hodges–Lehmann estimate with its confidence interval says by how much.
 * Both use the normal approximation of U, which is accurate from a few dozen samples.
 */

export interface MannWhitneyResult {
  /** U of the first sample: the pairs (x, y) with x > y, ties counting one half. */
  readonly u: number;
  /** The standardized U (tie- and continuity-corrected); positive when xs tend to be larger. */
  readonly z: number;
  /** Two-sided p-value. */
  readonly p: number;
}

/** The Mann–Whitney U test (Wilcoxon rank-sum test) of two independent samples. */
export function mannWhitneyU(xs: readonly number[], ys: readonly number[]): MannWhitneyResult {
  const n = xs.length;
  const m = ys.length;
  if (n === 0 || m === 0) throw new Error('mannWhitneyU needs two non-empty samples');
  const pooled = [
    ...xs.map((value) => ({ value, first: true })),
    ...ys.map((value) => ({ value, first: false })),
  ].sort((a, b) => a.value - b.value);
  // Midranks: tied values share the mean of the ranks they span.
  let rankSumX = 0;
  let tieTerm = 0;
  for (let i = 0; i < pooled.length; ) {
    let j = i;
    while (j + 1 < pooled.length && pooled[j + 1]!.value === pooled[i]!.value) j++;
    const rank = (i + j) / 2 + 1;
    const tied = j - i + 1;
    tieTerm += tied ** 3 - tied;
    for (let k = i; k <= j; k++) if (pooled[k]!.first) rankSumX += rank;
    i = j + 1;
  }
  const u = rankSumX - (n * (n + 1)) / 2;
  const mean = (n * m) / 2;
  const total = n + m;
  const variance = ((n * m) / 12) * (total + 1 - tieTerm / (total * (total - 1)));
  if (variance === 0) return { u, z: 0, p: 1 };
  const deviation = u - mean;
  const corrected = Math.sign(deviation) * Math.max(0, Math.abs(deviation) - 0.5);
  const z = corrected / Math.sqrt(variance);
  return { u, z, p: Math.min(1, 2 * normalCdf(-Math.abs(z))) };
}

export interface ShiftEstimate {
  /** Hodges–Lehmann estimate of the shift: the median of all differences x − y. */
  readonly estimate: number;
  /** The distribution-free confidence interval of the shift (Moses), from U. */
  readonly lower: number;
  readonly upper: number;
}

/**
 * How much larger xs are than ys, with a confidence interval (e.g. 0.99): the interval
 * between the k-th smallest and k-th largest of the n·m differences x − y, k chosen from
 * the distribution of U. It covers the true shift with the given confidence whatever the
 * (common) shape of the two distributions.
 */
export function shiftConfidenceInterval(
  xs: readonly number[],
  ys: readonly number[],
  confidence: number,
): ShiftEstimate {
  const n = xs.length;
  const m = ys.length;
  if (n === 0 || m === 0) throw new Error('shiftConfidenceInterval needs two non-empty samples');
  if (!(confidence > 0 && confidence < 1)) throw new Error('confidence must be in (0, 1)');
  const count = n * m;
  const differences = new Float64Array(count);
  let at = 0;
  for (const x of xs) for (const y of ys) differences[at++] = x - y;
  differences.sort();
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const k = Math.max(1, Math.floor(count / 2 - z * Math.sqrt((count * (n + m + 1)) / 12)));
  return {
    estimate: median(differences),
    lower: differences[k - 1]!,
    upper: differences[count - k]!,
  };
}

/** The median of a sample (the mean of the two middle values of an even one). */
export function median(values: ArrayLike<number>): number {
  if (values.length === 0) throw new Error('the median of nothing');
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The standard normal distribution function, Φ(x), accurate to about 1e-7. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** The complementary error function (Numerical Recipes' erfcc, relative error < 1.2e-7). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + z / 2);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error('normalQuantile needs 0 < p < 1');
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
    4.374664141464968, 2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = 0.02425;
  const poly = (coefficients: number[], x: number) =>
    coefficients.reduce((sum, coefficient) => sum * x + coefficient, 0);
  if (p < tail) {
    const q = Math.sqrt(-2 * Math.log(p));
    return poly(c, q) / (poly(d, q) * q + 1);
  }
  if (p > 1 - tail) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (poly(a, r) * q) / (poly(b, r) * r + 1);
}
