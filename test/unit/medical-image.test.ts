import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import { checkMedicalImage, detectMedicalImageType } from '../../src/domain/medical-image.js';
import { dicom, jpeg, png } from '../support/images.js';

describe('medical image recognition', () => {
  it('recognises PNG, JPEG and DICOM by their bytes', () => {
    expect(detectMedicalImageType(png())).toBe('image/png');
    expect(detectMedicalImageType(jpeg())).toBe('image/jpeg');
    expect(detectMedicalImageType(dicom())).toBe('application/dicom');
  });

  it('refuses text, truncated files and disguises', () => {
    expect(detectMedicalImageType(new TextEncoder().encode('hello, not an image'))).toBeUndefined();
    expect(detectMedicalImageType(png().subarray(0, 20))).toBeUndefined();
    expect(detectMedicalImageType(jpeg().subarray(0, jpeg().length - 2))).toBeUndefined();
    const fakePng = new Uint8Array(64);
    fakePng.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(detectMedicalImageType(fakePng)).toBeUndefined();
  });

  it('refuses a declared type that the bytes contradict, accepts aliases', () => {
    expect(checkMedicalImage(jpeg(), 'image/jpg', 1e6)).toBe('image/jpeg');
    expect(checkMedicalImage(png(), '', 1e6)).toBe('image/png');
    expect(() => checkMedicalImage(png(), 'image/jpeg', 1e6)).toThrow(/content_type/);
  });

  it('refuses empty and oversized files before looking at them', () => {
    expect(() => checkMedicalImage(new Uint8Array(), '', 1e6)).toThrow(DomainError);
    expect(() => checkMedicalImage(png(), '', 10)).toThrow(/at most 10 bytes/);
  });
});
