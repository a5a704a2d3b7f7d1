import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's `chromium` package puts it here; CHROMIUM_PATH names another. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/lib/chromium/chromium';

/**
 * A headless Chromium driven by Playwright (Playwright's own browser download is not
 * used). Fails, never skips, when there is none: the browser tests are part of the suite.
 */
export async function launchChromium(timeoutMs = 20_000): Promise<Browser> {
  const hint =
    'This test drives a real Chromium. Install it (Debian/Ubuntu: `apt-get install chromium`) ' +
    'or set CHROMIUM_PATH to a Chromium or Chrome executable.';
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH}. ${hint}`);
  }
  try {
    return await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
      timeout: timeoutMs,
    });
  } catch (e) {
    throw new Error(`Chromium at ${CHROMIUM_PATH} did not start. ${hint}`, { cause: e });
  }
}
