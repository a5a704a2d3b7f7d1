/**
 * Peak resident memory: samples `process.memoryUsage.rss()` every 50 ms while a
 * measurement runs (the service, the load generator and the baseline server share the
 * process, so this is an upper bound for the service alone).
 */
export interface RssSampler {
  /** Stops sampling; answers the peak in MiB. */
  stop(): number;
}

export function sampleRss(intervalMs = 50): RssSampler {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return Math.round(peak / 2 ** 20);
    },
  };
}
