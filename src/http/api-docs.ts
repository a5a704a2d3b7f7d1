import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import openApiDocument from '../../gen/openapi.json' with { type: 'json' };

/** A static answer: status 200, its type and bytes. */
export interface StaticFile {
  readonly contentType: string;
  readonly body: Buffer;
}

/** The files of Swagger UI the reference page needs, served from the package itself. */
const SWAGGER_UI_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>video-service API reference</title>
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" />
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;

/** No inline script, so the page also works under a strict Content-Security-Policy. */
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  tryItOutEnabled: true,
  displayRequestDuration: true,
});
`;

export interface ApiDocs {
  /** The file at this path, or undefined when the path is not one of the documents'. */
  file(path: string): Promise<StaticFile> | undefined;
}

/**
 * The API's description for people and tools: the OpenAPI 3.1 document generated from
 * the proto (`gen/openapi.json`) at `/openapi.json` and `/openapi.yaml`, and an
 * interactive reference (Swagger UI, from the `swagger-ui-dist` package's own files:
 * nothing is fetched from elsewhere) at `/docs`, whose "Try it out" calls this origin.
 */
export function createApiDocs(): ApiDocs {
  const swaggerUi = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const json = Buffer.from(`${JSON.stringify(openApiDocument, null, 2)}\n`);
  const cache = new Map<string, Promise<StaticFile>>([
    ['/openapi.json', Promise.resolve({ contentType: 'application/json', body: json })],
    [
      '/openapi.yaml',
      Promise.resolve({
        contentType: 'application/yaml',
        body: Buffer.from(stringify(openApiDocument)),
      }),
    ],
    [
      '/docs',
      Promise.resolve({ contentType: 'text/html; charset=utf-8', body: Buffer.from(PAGE) }),
    ],
    [
      '/docs/init.js',
      Promise.resolve({ contentType: 'text/javascript; charset=utf-8', body: Buffer.from(INIT) }),
    ],
  ]);
  cache.set('/docs/', cache.get('/docs') as Promise<StaticFile>);
  return {
    file(path) {
      const cached = cache.get(path);
      if (cached) return cached;
      const name = path.startsWith('/docs/') ? path.slice('/docs/'.length) : '';
      const contentType = SWAGGER_UI_FILES[name];
      if (!contentType) return undefined;
      const loaded = readFile(join(swaggerUi, name)).then((body) => ({ contentType, body }));
      cache.set(path, loaded);
      return loaded;
    },
  };
}
