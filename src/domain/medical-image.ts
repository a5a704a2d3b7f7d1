import { invalidArgument } from './errors.js';

/** The media types a consultation accepts, recognised by their bytes. */
export type MedicalImageType = 'image/png' | 'image/jpeg' | 'application/dicom';
export const MEDICAL_IMAGE_TYPES: readonly MedicalImageType[] = [
  'image/png',
  'image/jpeg',
  'application/dicom',
];

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const DICOM_PREAMBLE_LENGTH = 128;

/**
 * What the bytes are, or undefined. Checks structure, not just a prefix, so that a
 * truncated file or a text file behind a magic number is refused: PNG needs its IHDR
 * chunk, JPEG its start-of-image and end-of-image markers, DICOM Part 10 its 128-byte
 * preamble followed by "DICM".
 */
export function detectMedicalImageType(bytes: Uint8Array): MedicalImageType | undefined {
  if (
    bytes.length >= 33 &&
    PNG_SIGNATURE.every((b, i) => bytes[i] === b) &&
    ascii(bytes, 12, 4) === 'IHDR'
  ) {
    return 'image/png';
  }
  if (
    bytes.length >= 4 &&
    bytes[0] === 0xff &&
    bytes[1] === 0xd8 &&
    bytes[2] === 0xff &&
    bytes[bytes.length - 2] === 0xff &&
    bytes[bytes.length - 1] === 0xd9
  ) {
    return 'image/jpeg';
  }
  if (
    bytes.length >= DICOM_PREAMBLE_LENGTH + 4 &&
    ascii(bytes, DICOM_PREAMBLE_LENGTH, 4) === 'DICM'
  ) {
    return 'application/dicom';
  }
  return undefined;
}

/**
 * Checks an image before anything is stored: size, recognised type, and that a declared
 * type (if any) agrees with the bytes. Answers the recognised type.
 */
export function checkMedicalImage(
  bytes: Uint8Array,
  declaredType: string,
  maxBytes: number,
): MedicalImageType {
  if (bytes.length === 0) throw invalidArgument('content', 'must not be empty');
  if (bytes.length > maxBytes) {
    throw invalidArgument('content', `must be at most ${maxBytes} bytes`);
  }
  const detected = detectMedicalImageType(bytes);
  if (detected === undefined) {
    throw invalidArgument('content', 'must be a PNG, JPEG or DICOM (Part 10) file');
  }
  const declared = normaliseDeclaredType(declaredType);
  if (declared !== undefined && declared !== detected) {
    throw invalidArgument('content_type', `declared ${declaredType} but the bytes are ${detected}`);
  }
  return detected;
}

function normaliseDeclaredType(value: string): string | undefined {
  const type = value.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === '') return undefined;
  return type === 'image/jpg' ? 'image/jpeg' : type;
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + length));
}
