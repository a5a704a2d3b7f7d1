/** Small but structurally real image files, built in code so no binary is committed. */

/** A 1×1 PNG: signature, IHDR, IDAT, IEND. */
export function png(): Uint8Array {
  return Uint8Array.from(
    Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
      'base64',
    ),
  );
}

/** A JPEG skeleton: SOI, an APP0 (JFIF) segment, EOI. */
export function jpeg(): Uint8Array {
  return Uint8Array.from([
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xd9,
  ]);
}

/** A DICOM Part 10 file head: 128-byte preamble, "DICM", one meta element. */
export function dicom(): Uint8Array {
  const bytes = new Uint8Array(128 + 4 + 12);
  bytes.set(new TextEncoder().encode('DICM'), 128);
  // (0002,0000) UL 4: group length, as every Part 10 file starts its meta header.
  bytes.set([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00], 132);
  return bytes;
}
