import { readFileSync } from 'node:fs';
import { create, type DescMethod, getOption, hasOption, setExtension } from '@bufbuild/protobuf';
import {
  CodeGeneratorRequestSchema,
  type DescriptorProto,
  DescriptorProtoSchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_descriptor,
  MethodOptionsSchema,
} from '@bufbuild/protobuf/wkt';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { file_google_api_annotations, http } from '../../gen/google/api/annotations_pb.js';
import { file_google_api_http, HttpRuleSchema } from '../../gen/google/api/http_pb.js';
import { ProviderSchema } from '../../gen/video/v1/consultation_pb.js';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';
import { plugin } from '../../scripts/protoc-gen-openapi.js';

/** The parts of an OpenAPI document these tests read. */
type Schema = { [key: string]: unknown; properties?: Record<string, Schema>; required?: string[] };
interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  style?: string;
  explode?: boolean;
  schema: Schema;
}
interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { $ref?: string }>;
}
interface Document {
  [key: string]: unknown;
  security: unknown;
  paths: Record<string, Record<string, Operation>>;
  components: {
    securitySchemes: Record<string, unknown>;
    responses: Record<string, { headers?: Record<string, unknown>; content: unknown }>;
    schemas: Record<string, Schema>;
  };
}

/** A route as the google.api.http annotation declares it, in OpenAPI path form. */
interface Route {
  verb: string;
  path: string;
  operationId: string;
}

const doc = JSON.parse(
  readFileSync(new URL('../../gen/openapi.json', import.meta.url), 'utf8'),
) as Document;

function annotatedRoutes(methods: readonly DescMethod[]): Route[] {
  return methods.filter((method) => hasOption(method, http)).map(toRoute);
}

function toRoute(method: DescMethod): Route {
  const { pattern } = getOption(method, http);
  if (pattern.case === undefined || pattern.case === 'custom') {
    throw new Error(`${method.name}: no standard verb`);
  }
  const path = pattern.value.replace(/\{([^}=]+)(?:=\*)?\}/g, (_, name: string) => {
    const field = method.input.fields.find((f) => f.name === name);
    return `{${field?.jsonName ?? name}}`;
  });
  return { verb: pattern.case, path, operationId: method.name };
}

/** The routes the document lacks, or has under another operationId. */
function missingRoutes(document: Document, routes: Route[]): string[] {
  return routes
    .filter((route) => document.paths[route.path]?.[route.verb]?.operationId !== route.operationId)
    .map((route) => `${route.verb.toUpperCase()} ${route.path} (${route.operationId})`);
}

function operations(document: Document): Operation[] {
  return Object.values(document.paths).flatMap((item) => Object.values(item));
}

function operation(operationId: string): Operation {
  const found = operations(doc).find((op) => op.operationId === operationId);
  if (!found) throw new Error(`no operation ${operationId}`);
  return found;
}

const routes = annotatedRoutes(VideoService.methods);

describe('gen/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers).toEqual([{ url: '/' }]);
  });

  it('has every annotated RPC at its path and method, and nothing else', () => {
    expect(routes.length).toBe(VideoService.methods.filter((m) => m.methodKind === 'unary').length);
    expect(missingRoutes(doc, routes)).toEqual([]);
    expect(operations(doc)).toHaveLength(routes.length);
  });

  it('reports a route the document lacks', () => {
    const [dropped] = routes;
    if (!dropped) throw new Error('no annotated route');
    const broken = structuredClone(doc);
    delete broken.paths[dropped.path]?.[dropped.verb];
    expect(missingRoutes(broken, routes)).toEqual([
      `${dropped.verb.toUpperCase()} ${dropped.path} (${dropped.operationId})`,
    ]);
  });

  it('requires a bearer JWT on every operation', () => {
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
  });

  it('answers errors with the Connect error body', () => {
    const { responses, schemas } = doc.components;
    expect(schemas.ConnectError?.properties?.code?.enum).toContain('invalid_argument');
    expect(schemas.ConnectError?.properties?.code?.enum).toHaveLength(16);
    expect(responses.RateLimited?.headers).toHaveProperty('Retry-After');
    for (const op of operations(doc)) {
      for (const status of ['400', '401', '403', '404', '409', '429', '503', 'default']) {
        const name = op.responses[status]?.$ref?.replace('#/components/responses/', '') ?? '';
        expect(responses[name]?.content, `${op.operationId} ${status}`).toEqual({
          'application/json': { schema: { $ref: '#/components/schemas/ConnectError' } },
        });
      }
    }
  });

  it('maps fields by the proto3 JSON mapping', () => {
    const { schemas } = doc.components;
    const token = schemas['video.v1.GenerateTokenResponse']?.properties;
    expect(token?.expiresAt).toMatchObject({ type: 'string', format: 'date-time' });
    expect(token?.joinUrl).toMatchObject({ type: 'string' });
    expect(token?.provider).toMatchObject({ $ref: '#/components/schemas/video.v1.Provider' });
    expect(schemas['video.v1.Provider']).toMatchObject({
      type: 'string',
      enum: ProviderSchema.values.map((value) => value.name),
    });
    expect(schemas['video.v1.CheckInResponse']?.properties?.queuePosition).toMatchObject({
      type: 'integer',
    });
    expect(schemas['video.v1.ShareMedicalImageRequest']?.properties?.content).toMatchObject({
      type: 'string',
      contentEncoding: 'base64',
    });
    const messages = Object.entries(schemas).filter(([name]) => name.startsWith('video.v1.'));
    expect(messages.filter(([, schema]) => schema.required !== undefined)).toEqual([]);
  });

  it('binds path and query parameters by JSON name', () => {
    expect(operation('GetConsultationStatus').parameters).toEqual([
      expect.objectContaining({ name: 'consultationId', in: 'path', required: true }),
    ]);
    expect(operation('ListConsultationHistory').parameters).toContainEqual(
      expect.objectContaining({ name: 'statuses', in: 'query', style: 'form', explode: true }),
    );
    const body = operation('CheckIn').requestBody?.content['application/json']?.schema;
    expect(body?.properties).toEqual({});
  });

  it('takes a medical image as multipart/form-data too', () => {
    const form = operation('ShareMedicalImage').requestBody?.content['multipart/form-data']?.schema;
    expect(form?.required).toEqual(['image', 'consultationId']);
    expect(form?.properties?.image).toMatchObject({ type: 'string', format: 'binary' });
    expect(form?.properties?.contentType).toMatchObject({ type: 'string' });
  });
});

describe('protoc-gen-openapi', () => {
  /** A message of singular fields: [name, number, type, type name of a message]. */
  function message(name: string, fields: [string, number, FieldDescriptorProto_Type, string?][]) {
    return create(DescriptorProtoSchema, {
      name,
      field: fields.map(([fieldName, number, type, typeName]) => ({
        name: fieldName,
        // protoc sets every field's json_name; so does this request.
        jsonName: fieldName.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase()),
        number,
        type,
        typeName,
        label: FieldDescriptorProto_Label.OPTIONAL,
      })),
    });
  }

  function generate(messages: DescriptorProto[], path: string): Document {
    const options = create(MethodOptionsSchema);
    setExtension(options, http, create(HttpRuleSchema, { pattern: { case: 'get', value: path } }));
    const file = create(FileDescriptorProtoSchema, {
      name: 'test/v1/things.proto',
      package: 'test.v1',
      syntax: 'proto3',
      dependency: ['google/api/annotations.proto'],
      messageType: messages,
      service: [
        {
          name: 'ThingService',
          method: [
            {
              name: 'GetThing',
              inputType: '.test.v1.GetThingRequest',
              outputType: '.test.v1.Thing',
              options,
            },
          ],
        },
      ],
    });
    const request = create(CodeGeneratorRequestSchema, {
      fileToGenerate: [file.name],
      protoFile: [
        file_google_protobuf_descriptor.proto,
        file_google_api_http.proto,
        file_google_api_annotations.proto,
        file,
      ],
    });
    return JSON.parse(plugin.run(request).file[0]?.content ?? '{}') as Document;
  }

  const { INT64, STRING, MESSAGE } = FieldDescriptorProto_Type;
  const generated = generate(
    [
      message('GetThingRequest', [
        ['thing_id', 1, STRING],
        ['filter', 2, MESSAGE, '.test.v1.Filter'],
      ]),
      message('Filter', [['min_size', 1, INT64]]),
      message('Thing', [['size_bytes', 1, INT64]]),
    ],
    '/v1/things/{thing_id=*}',
  );

  it('writes 64-bit integers as strings', () => {
    expect(generated.components.schemas['test.v1.Thing']?.properties?.sizeBytes).toEqual({
      type: 'string',
      format: 'int64',
    });
  });

  it('flattens a nested request message into `parent.child` query parameters', () => {
    expect(generated.paths['/v1/things/{thingId}']?.get?.parameters).toEqual([
      { name: 'thingId', in: 'path', required: true, schema: { type: 'string' } },
      { name: 'filter.minSize', in: 'query', schema: { type: 'string', format: 'int64' } },
    ]);
  });

  it('names the document after the service and its package version', () => {
    expect(generated.info).toMatchObject({ title: 'thing-service API', version: 'v1' });
  });
});
