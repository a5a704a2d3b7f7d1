import type { DescField, DescMessage, JsonObject, JsonValue } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';

/**
 * A request message's protobuf JSON built from text: path variables, query parameters and
 * form fields, each named by a (dotted) proto or JSON field name.
 */

/** The fields a dotted path (`a.b`, proto or JSON names) names in a message, if any. */
export function resolveFieldPath(message: DescMessage, path: string): DescField[] | undefined {
  const fields: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of path.split('.')) {
    const field: DescField | undefined = current?.fields.find(
      (f) => f.name === name || f.jsonName === name,
    );
    if (!field) return undefined;
    fields.push(field);
    current = field.fieldKind === 'message' ? field.message : undefined;
  }
  return fields;
}

/** A path or query value as the protobuf JSON of its field. */
export function fromText(field: DescField, text: string): JsonValue {
  const scalar =
    field.fieldKind === 'scalar' || (field.fieldKind === 'list' && field.listKind === 'scalar')
      ? field.scalar
      : undefined;
  const isEnum =
    field.fieldKind === 'enum' || (field.fieldKind === 'list' && field.listKind === 'enum');
  if (scalar === ScalarType.BOOL) {
    if (text === 'true') return true;
    if (text === 'false') return false;
  }
  if (isEnum && /^-?\d+$/.test(text)) return Number(text);
  // Numbers stay strings: protobuf JSON takes "12" for every numeric type, and so does a
  // Timestamp its RFC 3339 text.
  return text;
}

export function setPath(target: JsonObject, path: readonly DescField[], value: JsonValue): void {
  const last = path.at(-1);
  if (last) parentOf(target, path)[last.jsonName] = value;
}

/** Like setPath, but a repeated field collects every value given for it. */
export function appendPath(target: JsonObject, path: readonly DescField[], value: JsonValue): void {
  const last = path.at(-1);
  if (!last) return;
  const parent = parentOf(target, path);
  const list = parent[last.jsonName];
  parent[last.jsonName] =
    last.fieldKind !== 'list' ? value : Array.isArray(list) ? [...list, value] : [value];
}

/** The object that holds the path's last field, made on the way where missing. */
function parentOf(target: JsonObject, path: readonly DescField[]): JsonObject {
  let node = target;
  for (const field of path.slice(0, -1)) {
    const next = node[field.jsonName];
    const child: JsonObject = isObject(next) ? next : {};
    node[field.jsonName] = child;
    node = child;
  }
  return node;
}

/** An answer the REST layer gives itself, before any handler: status, Connect code, message. */
export class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
