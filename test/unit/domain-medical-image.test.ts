import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import {
  checkMedicalImage,
  detectMedicalImageType,
  MEDICAL_IMAGE_TYPES,
} from '../../src/domain/medical-image.js';
import { dicom, jpeg, png } from '../support/images.js';

/** A copy of `bytes` with the byte at `index` (negative: from the end) changed. */
function corrupt(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  const at = index < 0 ? copy.length + index : index;
  copy[at] = (copy[at]! + 1) % 256;
  return copy;
}

/** What the check refused with, or the type it accepted. */
function outcome(bytes: Uint8Array, declaredType: string, maxBytes = 1e6) {
  try {
    return checkMedicalImage(bytes, declaredType, maxBytes);
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { code: error.code, field: error.field, message: error.message };
  }
}

describe('medical image types', () => {
  it('names exactly the types it recognises', () => {
    expect([png(), jpeg(), dicom()].map(detectMedicalImageType)).toEqual(MEDICAL_IMAGE_TYPES);
  });

  it('recognises the shortest file of each type', () => {
    // Signature and IHDR chunk; start-of-image and end-of-image; preamble and "DICM".
    expect(detectMedicalImageType(png().subarray(0, 33))).toBe('image/png');
    expect(detectMedicalImageType(Uint8Array.from([0xff, 0xd8, 0xff, 0xd9]))).toBe('image/jpeg');
    expect(detectMedicalImageType(dicom().subarray(0, 132))).toBe('application/dicom');
  });

  it('refuses a PNG whose signature is off by one byte', () => {
    for (const index of [0, 1, 7]) {
      expect(detectMedicalImageType(corrupt(png(), index))).toBeUndefined();
    }
  });

  it('refuses a JPEG with any byte of its start or end marker wrong', () => {
    for (const index of [0, 1, 2, -2, -1]) {
      expect(detectMedicalImageType(corrupt(jpeg(), index))).toBeUndefined();
    }
  });

  it('refuses a long file without "DICM" after the preamble', () => {
    expect(detectMedicalImageType(new Uint8Array(200))).toBeUndefined();
    expect(detectMedicalImageType(corrupt(dicom(), 128))).toBeUndefined();
  });
});

describe('medical image checks', () => {
  it('refuses an empty file as empty', () => {
    expect(outcome(new Uint8Array(), '')).toEqual({
      code: 'invalid_argument',
      field: 'content',
      message: 'content: must not be empty',
    });
  });

  it('accepts a file of exactly the maximum size and refuses one byte more', () => {
    const image = png();
    expect(outcome(image, '', image.length)).toBe('image/png');
    expect(outcome(image, '', image.length - 1)).toEqual({
      code: 'invalid_argument',
      field: 'content',
      message: `content: must be at most ${image.length - 1} bytes`,
    });
  });

  it('refuses bytes of no accepted type', () => {
    expect(outcome(new TextEncoder().encode('plain text'), '')).toEqual({
      code: 'invalid_argument',
      field: 'content',
      message: 'content: must be a PNG, JPEG or DICOM (Part 10) file',
    });
  });

  it('says which type was declared and which one the bytes are', () => {
    expect(outcome(png(), 'image/jpeg')).toEqual({
      code: 'invalid_argument',
      field: 'content_type',
      message: 'content_type: declared image/jpeg but the bytes are image/png',
    });
  });

  it('accepts a declared type that agrees, whatever its case and parameters', () => {
    expect(outcome(png(), 'image/png')).toBe('image/png');
    expect(outcome(png(), 'Image/PNG; charset=binary')).toBe('image/png');
    expect(outcome(dicom(), 'application/dicom')).toBe('application/dicom');
  });
});
