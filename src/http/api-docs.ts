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

const referencePage = (): StaticFile => ({
  contentType: 'text/html; charset=utf-8',
  body: Buffer.from(PAGE),
});

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
  // Made on first request, not at start: writing the document as YAML takes tens of
  // milliseconds, which every start would pay.
  const documents = new Map<string, () => StaticFile>([
    [
      '/openapi.json',
      () => ({
        contentType: 'application/json',
        body: Buffer.from(`${JSON.stringify(openApiDocument, null, 2)}\n`),
      }),
    ],
    [
      '/openapi.yaml',
      () => ({ contentType: 'application/yaml', body: Buffer.from(stringify(openApiDocument)) }),
    ],
    ['/docs', referencePage],
    ['/docs/', referencePage],
    [
      '/docs/init.js',
      () => ({ contentType: 'text/javascript; charset=utf-8', body: Buffer.from(INIT) }),
    ],
  ]);
  const cache = new Map<string, Promise<StaticFile>>();
  return {
    file(path) {
      const cached = cache.get(path);
      if (cached) return cached;
      const document = documents.get(path);
      if (document) {
        const made = Promise.resolve(document());
        cache.set(path, made);
        return made;
      }
      const name = path.startsWith('/docs/') ? path.slice('/docs/'.length) : '';
      const contentType = SWAGGER_UI_FILES[name];
      if (!contentType) return undefined;
      const loaded = readFile(join(swaggerUi, name)).then((body) => ({ contentType, body }));
      cache.set(path, loaded);
      return loaded;
    },
  };
}
