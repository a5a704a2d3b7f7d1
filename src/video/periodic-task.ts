import type { Logger } from 'pino';

/** A pass that runs every interval, one at a time, until stopped. */
export interface PeriodicTask {
  start(): void;
  /** Stops the timer and waits for a pass in flight. */
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs` after the previous pass ended (passes never overlap). A
 * failed pass is logged as `<name> failed; next pass retries` and the next one runs as
 * planned.
 */
export function periodicTask(
  name: string,
  intervalMs: number,
  logger: Logger,
  pass: () => Promise<unknown>,
): PeriodicTask {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const tick = () => {
    running = pass()
      .catch((error: unknown) => logger.warn({ err: error }, `${name} failed; next pass retries`))
      .finally(() => {
        if (timer) timer = setTimeout(tick, intervalMs);
      });
  };
  return {
    start() {
      timer = setTimeout(tick, intervalMs);
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
