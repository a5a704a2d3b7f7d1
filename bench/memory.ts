/**
 * Peak resident memory of another process (the service's): samples its VmRSS
 * (/proc/<pid>/status; Linux) every 50 ms while the measurements run.
 */
import { rssBytes } from './child.js';

export interface RssSampler {
  /** The peak so far in MiB, sampling on. */
  peak(): number;
  /** Stops sampling; answers the peak in MiB. */
  stop(): number;
}

export const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

export function sampleRss(pid: number, intervalMs = 50): RssSampler {
  let peak = rssBytes(pid);
  const sample = () => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // The process is gone: its calls fail, and the load reports that.
    }
  };
  const timer = setInterval(sample, intervalMs);
  return {
    peak() {
      sample();
      return mib(peak);
    },
    stop() {
      clearInterval(timer);
      sample();
      return mib(peak);
    },
  };
}
