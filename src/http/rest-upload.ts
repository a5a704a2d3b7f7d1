import type http from 'node:http';
import type http2 from 'node:http2';
import {
  type DescField,
  type DescMessage,
  fromJson,
  type JsonObject,
  ScalarType,
  toBinary,
} from '@bufbuild/protobuf';
import busboy from 'busboy';
import { appendPath, fromText, RestError, resolveFieldPath } from './rest-json.js';

/**
 * File uploads on REST routes: `multipart/form-data`, what a browser's file form sends,
 * for a request with one `bytes` field. The file part fills that field, the other parts
 * the request's other fields, and the file is read while it streams in, never more than
 * one byte past the limit.
 */

export interface Upload {
  /** The form's other fields, as request JSON. */
  readonly fields: JsonObject;
  readonly file: Uint8Array;
  /** The upload was cut at the limit: the rest of the body was never read. */
  readonly unread: boolean;
}

export interface UploadField {
  readonly bytes: DescField;
  /** A string field the file part's own Content-Type declares, when the form does not. */
  readonly declaredType: DescField | undefined;
}

/** Multipart uploads go to a request's one `bytes` field (and its `content_type`). */
export function uploadField(input: DescMessage): UploadField | undefined {
  const bytes = input.fields.filter(
    (f) => f.fieldKind === 'scalar' && f.scalar === ScalarType.BYTES,
  );
  if (bytes.length !== 1 || !bytes[0]) return undefined;
  const declaredType = input.fields.find(
    (f) => f.name === 'content_type' && f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING,
  );
  return { bytes: bytes[0], declaredType };
}

/** Parts a multipart upload may have besides the file. */
const MAX_FORM_FIELDS = 16;
const MAX_FORM_FIELD_BYTES = 4096;
/** A file part without a specific type declares nothing. */
const GENERIC_TYPES = new Set(['', 'application/octet-stream']);

export function readMultipart(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  input: DescMessage,
  upload: UploadField,
  maxBytes: number,
): Promise<Upload> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers as http.IncomingHttpHeaders,
        limits: {
          files: 1,
          fields: MAX_FORM_FIELDS,
          fieldSize: MAX_FORM_FIELD_BYTES,
          parts: MAX_FORM_FIELDS + 1,
        },
      });
    } catch {
      reject(new RestError(400, 'invalid_argument', 'body: not a multipart/form-data body'));
      return;
    }
    const fields: JsonObject = {};
    const chunks: Buffer[] = [];
    let fileType = '';
    let sawFile = false;
    const finish = (unread: boolean) => {
      if (!sawFile) {
        reject(
          new RestError(
            400,
            'invalid_argument',
            `${upload.bytes.name}: the form has no file part "image"`,
          ),
        );
        return;
      }
      const declared = upload.declaredType;
      if (declared && fields[declared.jsonName] === undefined && !GENERIC_TYPES.has(fileType)) {
        fields[declared.jsonName] = fileType;
      }
      resolve({ fields, file: Buffer.concat(chunks), unread });
    };
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) {
        parser.emit('error', new RestError(400, 'invalid_argument', `${name}: too long`));
        return;
      }
      const path = resolveFieldPath(input, name);
      const field = path?.at(-1);
      if (path && field) appendPath(fields, path, fromText(field, value));
      else fields[name] = value;
    });
    parser.on('file', (name, stream, info) => {
      if (name !== 'image' && name !== upload.bytes.name && name !== upload.bytes.jsonName) {
        stream.resume();
        return;
      }
      sawFile = true;
      fileType = info.mimeType.toLowerCase();
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        chunks.push(chunk);
        if (size <= maxBytes) return;
        // One byte past the limit is enough for the handler to refuse the size; the rest
        // of the body is left unread and the connection closed after the answer.
        req.unpipe(parser);
        stream.destroy();
        const kept = Buffer.concat(chunks).subarray(0, maxBytes + 1);
        chunks.splice(0, chunks.length, kept);
        finish(true);
      });
    });
    parser.once('filesLimit', () => {
      parser.emit('error', new RestError(400, 'invalid_argument', 'body: one file at most'));
    });
    parser.once('close', () => finish(false));
    parser.once('error', (error: unknown) => {
      req.unpipe(parser);
      reject(
        error instanceof RestError
          ? error
          : new RestError(400, 'invalid_argument', 'body: not a valid multipart/form-data body'),
      );
    });
    req.pipe(parser);
  });
}

/** The form's text fields decoded as protobuf JSON, with the file in its bytes field. */
export function requestWithFile(
  input: DescMessage,
  fields: JsonObject,
  upload: UploadField | undefined,
  file: Uint8Array,
): Uint8Array {
  let message: ReturnType<typeof fromJson>;
  try {
    message = fromJson(input, fields);
  } catch (error) {
    throw new RestError(400, 'invalid_argument', (error as Error).message);
  }
  if (upload) (message as unknown as Record<string, unknown>)[upload.bytes.localName] = file;
  return toBinary(input, message);
}
