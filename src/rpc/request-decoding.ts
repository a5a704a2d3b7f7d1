import { base64Decode } from '@bufbuild/protobuf/wire';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import type { Compression } from '@connectrpc/connect/protocol';
import { compressionBrotli, compressionGzip } from '@connectrpc/connect-node';

/**
 * How connect-es reads every request, before any interceptor runs (the router's options):
 * - JSON: protobuf-es keeps an unknown enum number (validation refuses it) but cannot
 *   keep an unknown enum name; with connect-es's default (`ignoreUnknownFields: true`) it
 *   drops it silently, so `statuses: ["…FOO"]` would list everything and `provider:
 *   "PROVIDER_ZOOM"` would pick the default. Unknown names, and unknown fields with them
 *   (a misspelt filter is dropped the same way), are refused: INVALID_ARGUMENT.
 * - Connect GET: the `message` query parameter is decoded by connect-es, which answers
 *   INTERNAL to base64 it cannot read; the gate refuses it first as INVALID_ARGUMENT.
 * - Compressed requests: connect-node answers INTERNAL to a truncated gzip or brotli body
 *   (zlib's Z_BUF_ERROR); a body that does not decompress is the client's: INVALID_ARGUMENT.
 */
export const REQUEST_DECODING = {
  jsonOptions: { ignoreUnknownFields: false },
  requestGate: refuseUnreadableGetMessage,
  acceptCompression: [compressionGzip, compressionBrotli].map(corruptInputIsInvalid),
};

/** A compression whose failures to decompress a request answer INVALID_ARGUMENT. */
export function corruptInputIsInvalid(compression: Compression): Compression {
  return {
    name: compression.name,
    compress: (bytes) => compression.compress(bytes),
    decompress: (bytes, readMaxBytes) =>
      compression.decompress(bytes, readMaxBytes).catch((reason: unknown) => {
        const error = ConnectError.from(reason);
        if (error.code !== Code.Internal) throw error;
        throw new ConnectError(
          'decompression failed',
          Code.InvalidArgument,
          undefined,
          undefined,
          reason,
        );
      }),
  };
}

function refuseUnreadableGetMessage(context: HandlerContext): void {
  if (context.protocolName !== 'connect' || context.requestMethod !== 'GET') return;
  const query = new URL(context.url).searchParams;
  if (query.get('base64') !== '1') return;
  try {
    base64Decode(query.get('message') ?? '');
  } catch {
    throw new ConnectError('message: is not valid base64', Code.InvalidArgument);
  }
}
