import { describe, expect, it } from 'vitest';
import {
  mannWhitneyU,
  median,
  normalCdf,
  normalQuantile,
  shiftConfidenceInterval,
} from '../support/statistics.js';

/** A small seeded generator (mulberry32), so the simulated samples are the same every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
/** Skewed like latencies: exponential, scale 1. */
const exponential = (next: () => number, count: number) =>
  Array.from({ length: count }, () => -Math.log(1 - next()));

// Reference values from R's wilcox.test documentation and scipy.stats.
const x = [0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
const y = [1.15, 0.88, 0.9, 0.74, 1.21];

describe('normal distribution', () => {
  it('matches scipy.stats.norm', () => {
    expect(normalCdf(-3)).toBeCloseTo(0.0013499, 6);
    expect(normalCdf(-1.96)).toBeCloseTo(0.0249979, 6);
    expect(normalCdf(0)).toBeCloseTo(0.5, 6);
    expect(normalCdf(2.5)).toBeCloseTo(0.99379033, 6);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.09023231, 6);
    expect(normalQuantile(0.025)).toBeCloseTo(-1.95996398, 6);
    expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758293, 6);
  });
});

describe('Mann–Whitney U', () => {
  it('matches scipy.stats.mannwhitneyu (asymptotic, continuity-corrected, two-sided)', () => {
    const result = mannWhitneyU(x, y);
    expect(result.u).toBe(35);
    expect(result.p).toBeCloseTo(0.24462360512698333, 5);
    // With ties (midranks and the tie correction of the variance).
    const tied = mannWhitneyU([1, 2, 2, 3, 3, 3, 4, 5], [3, 4, 4, 5, 5, 6, 7]);
    expect(tied.u).toBe(7.5);
    expect(tied.z).toBeLessThan(0);
    expect(tied.p).toBeCloseTo(0.018530522991017574, 5);
  });

  it('is symmetric, and finds nothing between equal samples', () => {
    const forward = mannWhitneyU(x, y);
    const backward = mannWhitneyU(y, x);
    expect(forward.u + backward.u).toBe(x.length * y.length);
    expect(backward.z).toBeCloseTo(-forward.z, 12);
    expect(backward.p).toBeCloseTo(forward.p, 12);
    expect(mannWhitneyU(x, x).p).toBe(1);
    expect(mannWhitneyU([2, 2, 2], [2, 2])).toEqual({ u: 3, z: 0, p: 1 });
  });

  it('tells a shift of a quarter of the spread apart with 2000 samples a side, and not a null one', () => {
    const next = random(7);
    const same = mannWhitneyU(exponential(next, 2000), exponential(next, 2000));
    expect(same.p).toBeGreaterThan(0.01);
    const shifted = mannWhitneyU(
      exponential(next, 2000).map((v) => v + 0.25),
      exponential(next, 2000),
    );
    expect(shifted.z).toBeGreaterThan(0);
    expect(shifted.p).toBeLessThan(1e-6);
  });
});

describe('Hodges–Lehmann shift and its confidence interval', () => {
  it('estimates the median of the pairwise differences (R: difference in location 0.305)', () => {
    const { estimate, lower, upper } = shiftConfidenceInterval(x, y, 0.95);
    expect(estimate).toBeCloseTo(0.305, 10);
    expect(lower).toBeLessThan(estimate);
    expect(upper).toBeGreaterThan(estimate);
  });

  it('recovers an exact shift', () => {
    const base = exponential(random(3), 101);
    const { estimate, lower, upper } = shiftConfidenceInterval(
      base.map((v) => v + 1),
      base,
      0.99,
    );
    expect(estimate).toBeCloseTo(1, 12);
    expect(lower).toBeLessThan(1);
    expect(upper).toBeGreaterThan(1);
  });

  it('covers the true shift about as often as its confidence says (skewed samples)', () => {
    const next = random(11);
    const runs = 400;
    let covered = 0;
    for (let i = 0; i < runs; i++) {
      const { lower, upper } = shiftConfidenceInterval(
        exponential(next, 40).map((v) => v + 0.5),
        exponential(next, 40),
        0.9,
      );
      if (lower <= 0.5 && 0.5 <= upper) covered++;
    }
    // Binomial(400, 0.9): mean 360, standard deviation 6.
    expect(covered).toBeGreaterThan(340);
    expect(covered).toBeLessThan(380);
  });

  it('narrows as samples grow', () => {
    const next = random(5);
    const width = (count: number) => {
      const { lower, upper } = shiftConfidenceInterval(
        exponential(next, count),
        exponential(next, count),
        0.99,
      );
      return upper - lower;
    };
    expect(width(400)).toBeLessThan(width(25) / 2);
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow();
  });
});
