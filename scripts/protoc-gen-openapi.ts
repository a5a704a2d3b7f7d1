/**
 * protoc-gen-openapi: a protoc plugin (run by `buf generate`) that writes ONE file,
 * `openapi.json`, an OpenAPI 3.1 document of the REST routes declared with the
 * `google.api.http` option on the RPCs of the files to generate. RPCs without the option
 * (e.g. the vendored gRPC health and reflection services) add nothing.
 *
 * Mapping it follows:
 * - Routes: google/api/http.proto. A path variable `{field}` or `{field=*}` becomes the
 *   OpenAPI path parameter `{jsonName}`. With `body: "*"` the JSON body is the request
 *   minus the path fields; with `body: "<field>"` it is that field, the other fields are
 *   query parameters; without a body every field not in the path is a query parameter
 *   (nested messages flattened as `parent.child`). `response_body` picks the answered field.
 *   Not supported (generation fails): `custom` verbs, `additional_bindings`, variables with
 *   a path pattern other than `*` or naming a nested field.
 * - Schemas: the proto3 JSON mapping (https://protobuf.dev/programming-guides/json/).
 *   Properties are JSON names and never required; 64-bit integers are strings; bytes are
 *   base64 strings; enums are strings of value names; well-known types map to their JSON
 *   form (Timestamp is a date-time string). Messages and enums are components keyed by
 *   their full name.
 * - Errors: the Connect protocol's error body (https://connectrpc.com/docs/protocol/), the
 *   schema `ConnectError`, listed for 400, 401, 403, 404, 409, 429, 503 and default.
 * - Multipart rule: a route with `body: "*"` whose request has exactly one singular
 *   `bytes` field also accepts `multipart/form-data`. The bytes travel as a binary file part
 *   (named by the plugin option `multipart_file_part`, else by the field's JSON name), every
 *   other field as a text part named by its JSON name. The file part and the identifier
 *   parts (string fields named `*_id`) are required. A string field named `<bytes field>_type`
 *   declares the file's media type and defaults to the file part's own Content-Type.
 *
 * Comments on services, RPCs, messages, fields and enums become summaries and descriptions.
 * The document is deterministic: paths in declaration order, components sorted by name.
 *
 * Run by buf.gen.yaml (`local: ["tsx", "scripts/protoc-gen-openapi.ts"]`, `strategy: all`,
 * so that one invocation sees every file). Imported, it only exports `plugin`, which tests
 * run on an in-memory CodeGeneratorRequest.
 */
import { pathToFileURL } from 'node:url';
import {
  type AnyDesc,
  create,
  createFileRegistry,
  type DescEnum,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
  getOption,
  hasOption,
  isMessage,
  maximumEdition,
  minimumEdition,
  protoInt64,
  ScalarType,
  toJson,
} from '@bufbuild/protobuf';
import {
  type CodeGeneratorRequest,
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { getComments, type Plugin, runNodeJs } from '@bufbuild/protoplugin';

/** A JSON object of the document (OpenAPI objects and JSON Schemas alike). */
type JsonObject = { [key: string]: unknown };

type Verb = 'get' | 'put' | 'post' | 'delete' | 'patch';

/** The JSON form of a google.api.HttpRule, as far as this plugin reads it. */
interface HttpRuleJson {
  get?: string;
  put?: string;
  post?: string;
  delete?: string;
  patch?: string;
  custom?: unknown;
  body?: string;
  responseBody?: string;
  additionalBindings?: unknown[];
}

/** One REST route: an RPC bound to a verb and a path template. */
interface Route {
  service: DescService;
  method: DescMethod;
  verb: Verb;
  template: string;
  body: string;
  responseBody: string;
}

interface Options {
  multipartFilePart: string | undefined;
}

const OUTPUT_FILE = 'openapi.json';
const VERBS: readonly Verb[] = ['get', 'put', 'post', 'delete', 'patch'];
const SCHEMA_PREFIX = '#/components/schemas/';
const ERROR_SCHEMA = 'ConnectError';
const CONNECT_CODES = [
  'canceled',
  'unknown',
  'invalid_argument',
  'deadline_exceeded',
  'not_found',
  'already_exists',
  'permission_denied',
  'resource_exhausted',
  'failed_precondition',
  'aborted',
  'out_of_range',
  'unimplemented',
  'internal',
  'unavailable',
  'data_loss',
  'unauthenticated',
];

export const plugin: Plugin = {
  name: 'protoc-gen-openapi',
  version: 'v1',
  run(request) {
    const content = `${JSON.stringify(buildDocument(request), null, 2)}\n`;
    return create(CodeGeneratorResponseSchema, {
      supportedFeatures: protoInt64.parse(
        CodeGeneratorResponse_Feature.PROTO3_OPTIONAL |
          CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS,
      ),
      minimumEdition,
      maximumEdition,
      file: [{ name: OUTPUT_FILE, content }],
    });
  },
};

function buildDocument(request: CodeGeneratorRequest): JsonObject {
  const options = parseOptions(request.parameter);
  const routes = readRoutes(request);
  const first = routes[0];
  if (first === undefined) {
    throw new Error('no RPC of the files to generate carries the google.api.http option');
  }
  const components = new Components();
  const paths: Record<string, Partial<Record<Verb, JsonObject>>> = {};
  for (const route of routes) {
    const { path, operation } = buildOperation(route, components, options);
    paths[path] ??= {};
    const item = paths[path];
    if (item[route.verb] !== undefined) {
      throw new Error(`${route.verb.toUpperCase()} ${path} is bound by two RPCs`);
    }
    item[route.verb] = operation;
  }
  const services = [...new Set(routes.map((route) => route.service))];
  return {
    openapi: '3.1.0',
    info: {
      title: `${kebabCase(first.service.name)} API`,
      version: first.service.file.proto.package.split('.').pop() || '0',
      ...describe(first.service),
    },
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }],
    tags: services.map((service) => ({ name: service.name, ...describe(service) })),
    paths,
    components: components.toJson(),
  };
}

function parseOptions(parameter: string): Options {
  const options: Options = { multipartFilePart: undefined };
  for (const pair of parameter.split(',').filter((p) => p !== '')) {
    const [key, value] = pair.split('=', 2);
    if (key !== 'multipart_file_part' || !value) {
      throw new Error(`unknown option "${pair}" (known: multipart_file_part=<part name>)`);
    }
    options.multipartFilePart = value;
  }
  return options;
}

// ---------------------------------------------------------------------------------------
// Routes

function readRoutes(request: CodeGeneratorRequest): Route[] {
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
  const http = registry.getExtension('google.api.http');
  const ruleSchema = registry.getMessage('google.api.HttpRule');
  if (http === undefined || ruleSchema === undefined) {
    return [];
  }
  const services = request.fileToGenerate.flatMap((name) => registry.getFile(name)?.services ?? []);
  return services.flatMap((service) =>
    service.methods
      .filter((method) => hasOption(method, http))
      .map((method) => {
        const rule = getOption(method, http);
        if (!isMessage(rule, ruleSchema)) {
          throw new Error(`${method.toString()}: google.api.http is not a google.api.HttpRule`);
        }
        return toRoute(service, method, toJson(ruleSchema, rule) as HttpRuleJson);
      }),
  );
}

function toRoute(service: DescService, method: DescMethod, rule: HttpRuleJson): Route {
  const where = `${service.typeName}.${method.name}`;
  if (rule.custom !== undefined || (rule.additionalBindings ?? []).length > 0) {
    throw new Error(`${where}: custom verbs and additional_bindings are not supported`);
  }
  const verb = VERBS.find((v) => rule[v] !== undefined);
  const template = verb === undefined ? undefined : rule[verb];
  if (verb === undefined || template === undefined) {
    throw new Error(`${where}: google.api.http has no path`);
  }
  return {
    service,
    method,
    verb,
    template,
    body: rule.body ?? '',
    responseBody: rule.responseBody ?? '',
  };
}

// ---------------------------------------------------------------------------------------
// Operations

function buildOperation(
  route: Route,
  components: Components,
  options: Options,
): { path: string; operation: JsonObject } {
  const { method } = route;
  const where = `${route.service.typeName}.${method.name}`;
  const { path, pathFields } = toOpenApiPath(route.template, method.input, where);
  const unbound = method.input.fields.filter((field) => !pathFields.includes(field));
  const bodyField = route.body === '' || route.body === '*' ? undefined : findField(route, where);
  const queryFields = route.body === '*' ? [] : unbound.filter((field) => field !== bodyField);
  const parameters = [
    ...pathFields.map((field) => pathParameter(field, components)),
    ...queryFields.flatMap((field) => queryParameters(field, '', [method.input], components)),
  ];
  const comment = commentText(method);
  const operation: JsonObject = {
    operationId: method.name,
    tags: [route.service.name],
    ...(comment === undefined ? {} : { summary: firstSentence(comment), description: comment }),
    ...(parameters.length > 0 ? { parameters } : {}),
  };
  if (route.body === '*') {
    operation.requestBody = wholeRequestBody(route, unbound, components, options);
  } else if (bodyField !== undefined) {
    operation.requestBody = fieldRequestBody(bodyField, components);
  }
  operation.responses = {
    '200': successResponse(route, components, where),
    ...errorResponses(),
  };
  return { path, operation };
}

/** `/a/{consultation_id}` → `/a/{consultationId}` and the fields bound in the path. */
function toOpenApiPath(
  template: string,
  input: DescMessage,
  where: string,
): { path: string; pathFields: DescField[] } {
  const pathFields: DescField[] = [];
  const path = template.replace(/\{([^}=]+)(?:=([^}]*))?\}/g, (variable, name: string, pattern) => {
    const field = input.fields.find((f) => f.name === name);
    const singular = field?.fieldKind === 'scalar' || field?.fieldKind === 'enum';
    if (field === undefined || !singular || (pattern !== undefined && pattern !== '*')) {
      throw new Error(`${where}: path variable ${variable} is not supported`);
    }
    pathFields.push(field);
    return `{${field.jsonName}}`;
  });
  return { path, pathFields };
}

function findField(route: Route, where: string): DescField {
  const field = route.method.input.fields.find((f) => f.name === route.body);
  if (field === undefined) {
    throw new Error(`${where}: body field "${route.body}" does not exist`);
  }
  return field;
}

function pathParameter(field: DescField, components: Components): JsonObject {
  return {
    name: field.jsonName,
    in: 'path',
    required: true,
    ...describe(field),
    schema: valueSchema(field, components),
  };
}

/**
 * The query parameters of one request field: itself, or for a singular message that has
 * no scalar JSON form, its fields flattened as `parent.child`. A message already on the
 * way down (a recursive message) is not flattened again.
 */
function queryParameters(
  field: DescField,
  prefix: string,
  enclosing: DescMessage[],
  components: Components,
): JsonObject[] {
  const name = `${prefix}${field.jsonName}`;
  if (field.fieldKind === 'message' && wellKnownSchema(field.message) === undefined) {
    const message = field.message;
    return enclosing.includes(message)
      ? []
      : message.fields.flatMap((child) =>
          queryParameters(child, `${name}.`, [...enclosing, message], components),
        );
  }
  if (field.fieldKind === 'map' || (field.fieldKind === 'list' && field.listKind === 'message')) {
    throw new Error(`${field.toString()}: maps and repeated messages cannot be query parameters`);
  }
  return [
    {
      name,
      in: 'query',
      ...describe(field),
      schema: valueSchema(field, components),
      ...(field.fieldKind === 'list' ? { style: 'form', explode: true } : {}),
    },
  ];
}

/** `body: "*"`: the request minus its path fields, plus the multipart form if the rule holds. */
function wholeRequestBody(
  route: Route,
  unbound: DescField[],
  components: Components,
  options: Options,
): JsonObject {
  const input = route.method.input;
  const json =
    unbound.length === input.fields.length
      ? components.messageRef(input)
      : {
          type: 'object',
          ...describe(input),
          properties: properties(unbound, components),
        };
  const [fileField, ...moreBytes] = unbound.filter(
    (f) => f.fieldKind === 'scalar' && f.scalar === ScalarType.BYTES,
  );
  const multipart =
    fileField !== undefined && moreBytes.length === 0
      ? {
          'multipart/form-data': {
            schema: multipartSchema(fileField, unbound, components, options),
          },
        }
      : {};
  return { required: true, content: { 'application/json': { schema: json }, ...multipart } };
}

/** The multipart form of the multipart rule (see the header). */
function multipartSchema(
  fileField: DescField,
  fields: DescField[],
  components: Components,
  options: Options,
): JsonObject {
  const filePart = options.multipartFilePart ?? fileField.jsonName;
  const isId = (f: DescField) =>
    f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING && f.name.endsWith('_id');
  const textParts = fields.filter((f) => f !== fileField);
  const parts: JsonObject = {
    [filePart]: {
      type: 'string',
      format: 'binary',
      contentMediaType: 'application/octet-stream',
      ...describe(fileField),
    },
  };
  for (const field of textParts) {
    const declaresType = field.name === `${fileField.name}_type`;
    const note = declaresType
      ? `In a multipart request it defaults to the Content-Type of the \`${filePart}\` part.`
      : undefined;
    parts[field.jsonName] = withDescription(
      valueSchema(field, components),
      joinText(commentText(field), note),
    );
  }
  return {
    type: 'object',
    required: [filePart, ...textParts.filter(isId).map((f) => f.jsonName)],
    properties: parts,
  };
}

/** `body: "<field>"`: that field's JSON. */
function fieldRequestBody(field: DescField, components: Components): JsonObject {
  return {
    required: true,
    ...describe(field),
    content: { 'application/json': { schema: valueSchema(field, components) } },
  };
}

function successResponse(route: Route, components: Components, where: string): JsonObject {
  const output = route.method.output;
  if (route.responseBody === '') {
    return {
      description: commentText(output) ?? 'OK',
      content: { 'application/json': { schema: components.messageRef(output) } },
    };
  }
  const field = output.fields.find((f) => f.name === route.responseBody);
  if (field === undefined) {
    throw new Error(`${where}: response_body field "${route.responseBody}" does not exist`);
  }
  return {
    description: commentText(field) ?? 'OK',
    content: { 'application/json': { schema: valueSchema(field, components) } },
  };
}

/** The error statuses every operation lists, with the Connect codes each carries. */
function errorResponses(): JsonObject {
  const ref = (name: string, description: string) => ({
    $ref: `#/components/responses/${name}`,
    description,
  });
  return {
    '400': ref(
      'Error',
      '`invalid_argument`, `failed_precondition` or `out_of_range`: the request cannot be served as it is.',
    ),
    '401': ref('Error', '`unauthenticated`: no valid bearer token.'),
    '403': ref('Error', '`permission_denied`: the caller may not do this.'),
    '404': ref(
      'Error',
      "`not_found`: the resource does not exist or is out of the caller's reach.",
    ),
    '409': ref(
      'Error',
      '`already_exists` or `aborted`: the request conflicts with the current state.',
    ),
    '429': ref(
      'RateLimited',
      '`resource_exhausted`: too many requests; retry after `Retry-After` seconds.',
    ),
    '503': ref('Error', '`unavailable`: a dependency is unavailable; retry later.'),
    default: ref(
      'Error',
      'Any other Connect code (`internal`, `unknown`, `deadline_exceeded`, `unimplemented`, `data_loss`, `canceled`).',
    ),
  };
}

// ---------------------------------------------------------------------------------------
// Schemas (proto3 JSON mapping)

/** The components of the document; messages and enums are added as they are referenced. */
class Components {
  private readonly schemas = new Map<string, JsonObject>();

  messageRef(message: DescMessage): JsonObject {
    const wellKnown = wellKnownSchema(message);
    if (wellKnown !== undefined) {
      return wellKnown;
    }
    if (!this.schemas.has(message.typeName)) {
      const schema: JsonObject = { type: 'object', ...describe(message) };
      this.schemas.set(message.typeName, schema); // before the fields: messages may recurse
      if (message.fields.length > 0) {
        schema.properties = properties(message.fields, this);
      }
    }
    return { $ref: `${SCHEMA_PREFIX}${message.typeName}` };
  }

  enumRef(enumeration: DescEnum): JsonObject {
    if (enumeration.typeName === 'google.protobuf.NullValue') {
      return { type: 'null' };
    }
    if (!this.schemas.has(enumeration.typeName)) {
      this.schemas.set(enumeration.typeName, enumSchema(enumeration));
    }
    return { $ref: `${SCHEMA_PREFIX}${enumeration.typeName}` };
  }

  toJson(): JsonObject {
    const names = [...this.schemas.keys()].sort();
    return {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'Send `Authorization: Bearer <JWT>` on every request.',
        },
      },
      responses: {
        Error: errorResponse('An error, as the Connect protocol answers it.'),
        RateLimited: errorResponse('Too many requests (`resource_exhausted`).', {
          'Retry-After': {
            description: 'Seconds to wait before trying again.',
            schema: { type: 'integer', minimum: 0 },
          },
        }),
      },
      schemas: {
        ...Object.fromEntries(names.map((name) => [name, this.schemas.get(name)])),
        [ERROR_SCHEMA]: connectErrorSchema(),
      },
    };
  }
}

function errorResponse(description: string, headers?: JsonObject): JsonObject {
  return {
    description,
    ...(headers === undefined ? {} : { headers }),
    content: { 'application/json': { schema: { $ref: `${SCHEMA_PREFIX}${ERROR_SCHEMA}` } } },
  };
}

function connectErrorSchema(): JsonObject {
  return {
    type: 'object',
    description:
      'The body of an error answer (Connect protocol, https://connectrpc.com/docs/protocol/#error-end-stream).',
    required: ['code'],
    properties: {
      code: { type: 'string', enum: CONNECT_CODES, description: 'The Connect error code.' },
      message: { type: 'string', description: 'A developer-facing description of the error.' },
      details: {
        type: 'array',
        description: 'Further error details, each a protobuf message.',
        items: {
          type: 'object',
          required: ['type', 'value'],
          properties: {
            type: {
              type: 'string',
              description: "The message's full name, e.g. `google.rpc.RetryInfo`.",
            },
            value: {
              type: 'string',
              contentEncoding: 'base64',
              description: 'The message in the protobuf binary format.',
            },
            debug: { description: 'The message in JSON, when the server adds it.' },
          },
        },
      },
    },
  };
}

function properties(fields: DescField[], components: Components): JsonObject {
  return Object.fromEntries(
    fields.map((field) => [field.jsonName, fieldSchema(field, components)]),
  );
}

/** A field's schema with its comment and, for a oneof member, the oneof as description. */
function fieldSchema(field: DescField, components: Components): JsonObject {
  const oneof = field.oneof;
  const note =
    oneof === undefined
      ? undefined
      : `Part of the oneof \`${oneof.name}\`: at most one of ${oneof.fields.map((f) => `\`${f.jsonName}\``).join(', ')} is set.`;
  return withDescription(valueSchema(field, components), joinText(commentText(field), note));
}

/** A field's JSON value, without its description. */
function valueSchema(field: DescField, components: Components): JsonObject {
  switch (field.fieldKind) {
    case 'list':
      return { type: 'array', items: elementSchema(field, components) };
    case 'map':
      return { type: 'object', additionalProperties: elementSchema(field, components) };
    default:
      return elementSchema(field, components);
  }
}

/** The schema of a singular field, a list element or a map value. */
function elementSchema(field: DescField, components: Components): JsonObject {
  if (field.message !== undefined) {
    return components.messageRef(field.message);
  }
  if (field.enum !== undefined) {
    return components.enumRef(field.enum);
  }
  return scalarSchema(field.scalar);
}

function scalarSchema(scalar: ScalarType): JsonObject {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: 'string' };
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.BYTES:
      return { type: 'string', contentEncoding: 'base64' };
    case ScalarType.DOUBLE:
      return { type: 'number', format: 'double' };
    case ScalarType.FLOAT:
      return { type: 'number', format: 'float' };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: 'integer', format: 'int32' };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: 'integer', format: 'uint32', minimum: 0 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: 'string', format: 'int64' };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: 'string', format: 'uint64' };
  }
}

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (kind) => `google.protobuf.${kind}Value`,
  ),
);

/** The JSON form of a well-known type that is not an object of its fields. */
function wellKnownSchema(message: DescMessage): JsonObject | undefined {
  const wrapped = message.fields[0];
  if (WRAPPERS.has(message.typeName) && wrapped?.fieldKind === 'scalar') {
    return scalarSchema(wrapped.scalar);
  }
  switch (message.typeName) {
    case 'google.protobuf.Timestamp':
      return { type: 'string', format: 'date-time' };
    case 'google.protobuf.Duration':
      return { type: 'string', pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$' };
    case 'google.protobuf.FieldMask':
      return { type: 'string' };
    case 'google.protobuf.Empty':
      return { type: 'object' };
    case 'google.protobuf.Struct':
      return { type: 'object', additionalProperties: true };
    case 'google.protobuf.Value':
      return {};
    case 'google.protobuf.ListValue':
      return { type: 'array' };
    case 'google.protobuf.Any':
      return { type: 'object', required: ['@type'], properties: { '@type': { type: 'string' } } };
    default:
      return undefined;
  }
}

function enumSchema(enumeration: DescEnum): JsonObject {
  const values = enumeration.values.map((value) => {
    const comment = commentText(value);
    return `- \`${value.name}\`${comment === undefined ? '' : `: ${comment.replace(/\s*\n\s*/g, ' ')}`}`;
  });
  return {
    type: 'string',
    enum: enumeration.values.map((value) => value.name),
    description: joinText(commentText(enumeration), values.join('\n')),
  };
}

// ---------------------------------------------------------------------------------------
// Comments

type Commented = Exclude<AnyDesc, DescFile>;

/**
 * The leading comment as Markdown: the one space after `//` removed from each line, and
 * indented lines after a blank line (an ASCII diagram, say) fenced as a code block.
 */
function commentText(desc: Commented): string | undefined {
  const text = getComments(desc)
    .leading?.split('\n')
    .map((line) => (line.startsWith(' ') ? line.slice(1) : line))
    .join('\n')
    .replace(/^\n+/, '')
    .trimEnd()
    .replace(
      /(^|\n\n)((?: {2,}\S.*(?:\n|$))+)/g,
      (_, before: string, block: string) => `${before}\`\`\`text\n${block.trimEnd()}\n\`\`\`\n`,
    )
    .trimEnd();
  return text || undefined;
}

function describe(desc: Commented): { description?: string } {
  const text = commentText(desc);
  return text === undefined ? {} : { description: text };
}

function withDescription(schema: JsonObject, description: string | undefined): JsonObject {
  return description === undefined ? schema : { ...schema, description };
}

function joinText(...parts: (string | undefined)[]): string | undefined {
  const text = parts.filter((part) => part !== undefined).join('\n\n');
  return text || undefined;
}

/** The first sentence of the first paragraph (a period followed by a capital ends it). */
function firstSentence(text: string): string {
  const paragraph = (text.split(/\n\s*\n/)[0] ?? text).replace(/\s*\n\s*/g, ' ');
  return paragraph.match(/^.+?[.!?](?=\s+[A-Z]|$)/)?.[0] ?? paragraph;
}

function kebabCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runNodeJs(plugin);
}
