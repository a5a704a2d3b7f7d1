import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, context } from 'esbuild';

/** The web app's sources (this folder). */
const WEB = dirname(fileURLToPath(import.meta.url));
/** Where `npm run build:web` puts the app, and where the service looks for it by default. */
export const WEB_APP_OUT = join(WEB, 'dist');
/** Files served as they are, next to the bundle. */
const STATIC_FILES = ['index.html', 'app.css'];

const options = (outdir: string): BuildOptions => ({
  entryPoints: { app: join(WEB, 'src/main.ts') },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outdir,
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
});

async function copyStatic(outdir: string): Promise<void> {
  await mkdir(outdir, { recursive: true });
  for (const file of STATIC_FILES) await copyFile(join(WEB, file), join(outdir, file));
}

/** Builds the app into `outdir`: index.html, app.css, app.js (and its source map). */
export async function buildWebApp(outdir: string = WEB_APP_OUT): Promise<void> {
  await copyStatic(outdir);
  await build(options(outdir));
}

/**
 * Builds the app and serves it on its own development server (port 0: any free port),
 * rebuilding on every change of its sources (reload the page to see it).
 */
export async function serveWebApp(
  port: number,
  outdir: string = WEB_APP_OUT,
): Promise<{ readonly url: string; stop(): Promise<void> }> {
  await copyStatic(outdir);
  const ctx = await context(options(outdir));
  await ctx.watch();
  const served = await ctx.serve({ host: '127.0.0.1', port, servedir: outdir });
  return { url: `http://127.0.0.1:${served.port}/`, stop: () => ctx.dispose() };
}
