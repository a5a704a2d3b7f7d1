/**
 * Builds the web app (web/) for the service to serve at /app/, or runs it on a
 * development server of its own that rebuilds on change:
 *
 *   npm run build:web
 *   npm run dev:web [-- --port 5173]
 *
 * The development page calls the service at http://127.0.0.1:8080 (or `?service=<url>`),
 * from another origin: start the service with that origin allowed, e.g.
 * `CORS_ALLOWED_ORIGINS=http://127.0.0.1:5173 npm start`.
 */
import { parseArgs } from 'node:util';
import { buildWebApp, serveWebApp, WEB_APP_OUT } from '../web/bundle.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { port: { type: 'string', default: '5173' } },
});

if (positionals[0] === 'serve') {
  const { url } = await serveWebApp(Number(values.port));
  process.stdout.write(
    `web app: ${url} (rebuilds on change)\n` +
      `start the service with CORS_ALLOWED_ORIGINS=${url.replace(/\/$/, '')}\n`,
  );
} else {
  await buildWebApp();
  process.stdout.write(`web app built in ${WEB_APP_OUT}; npm start serves it at /app/\n`);
}
