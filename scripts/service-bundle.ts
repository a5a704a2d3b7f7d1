/**
 * The service as it runs in production: `src/main.ts` and its dependencies in one ES
 * module, `dist/service.mjs` (`npm run build:service`, part of `npm run build`).
 *
 * Why one file: Node loads an ES module graph file by file (resolve, read, compile,
 * link), and the service's graph is about a thousand files, MikroORM's and kysely's
 * mostly. That was 600 ms of every start on a 2-core machine; the one file loads in
 * about 250 ms (bench/README.md, "Start-up, bundled").
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** What `npm run serve` and the Docker image run. */
export const SERVICE_BUNDLE = join(ROOT, 'dist', 'service.mjs');

export async function bundleService(outfile: string = SERVICE_BUNDLE): Promise<void> {
  await build({
    entryPoints: [join(ROOT, 'src', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    sourcemap: 'linked',
    // MikroORM loads its Migrator package itself unless it is given an extension of that
    // class name: renamed by the bundler, a second copy of the ORM would load from
    // node_modules at start (and the embedded template's name is made of class names).
    keepNames: true,
    // The embedded engine reads its WebAssembly and data files from beside its module.
    // The OpenTelemetry SDK is loaded only when tracing is on (tracing.ts): inside the
    // bundle, its 2.3 MB would be read at every start (about 0.1 s here).
    external: ['@electric-sql/pglite', '@electric-sql/pglite-socket', '@opentelemetry/sdk-node'],
    // CommonJS dependencies (kafkajs, openvidu-node-client's axios, pg) `require` Node's
    // built-in modules, which an ES module has no `require` for.
    banner: {
      js: "import { createRequire as createRequireOfBundle } from 'node:module'; const require = createRequireOfBundle(import.meta.url);",
    },
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await bundleService();
  process.stdout.write(`service bundled into ${SERVICE_BUNDLE}; npm run serve runs it\n`);
}
