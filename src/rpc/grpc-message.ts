/**
 * The `grpc-message` header as the gRPC spec writes it: percent-encoded only outside
 * printable ASCII (0x20–0x7E) and for `%` itself, over the message's UTF-8 bytes.
 *
 * connect-es encodes it with encodeURIComponent, which also encodes `:`, `/`, `#`, `?`,
 * `&`… (and the space). Spec-conforming clients (grpc-core: Python, C++, Go) decode every
 * escape, but @grpc/grpc-js decodes with decodeURI, which leaves the escapes of reserved
 * characters as they are: its users read `content%3A must be…`. Written the spec's way,
 * every client reads the message as sent.
 */
export function grpcMessageEncode(message: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(message)) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Re-encodes a `grpc-message` value the spec's way; a value it cannot decode stays as it is. */
export function grpcMessageReencode(value: string): string {
  try {
    return grpcMessageEncode(decodeURIComponent(value));
  } catch {
    return value;
  }
}
