import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ConsultationSchema } from '../../gen/video/v1/consultation_pb.js';
import { fromTimestamp, toProtoConsultation } from '../../src/rpc/mappers.js';
import type { ConsultationView, ParticipantView } from '../../src/video/views.js';

describe('fromTimestamp', () => {
  it('keeps the last instant of year 9999 in year 9999 (no rounding into year 10000)', () => {
    const date = fromTimestamp({ seconds: 253402300799n, nanos: 999_999_978 } as never);
    expect(date?.toISOString()).toBe('9999-12-31T23:59:59.999Z');
  });

  it('truncates to the millisecond, before and after 1970', () => {
    expect(fromTimestamp({ seconds: 1n, nanos: 1_999_999 } as never)?.getTime()).toBe(1001);
    expect(fromTimestamp({ seconds: -1n, nanos: 500_000_000 } as never)?.getTime()).toBe(-500);
    expect(fromTimestamp(undefined)).toBeUndefined();
  });
});

describe('toProtoConsultation', () => {
  const at = new Date('2026-11-29T10:00:00.123Z');
  const participant = (role: 'doctor' | 'patient'): ParticipantView => ({
    userId: `u-${role}`,
    role,
    checkedInAt: role === 'patient' ? at : null,
    admittedAt: null,
    firstTokenAt: at,
    firstJoinedAt: null,
    lastLeftAt: null,
    connectedSeconds: 12,
    connected: true,
    lastDisconnectReason: null,
    recordingConsentAt: null,
  });
  const view: ConsultationView = {
    id: 'c-1',
    appointmentId: 'a-1',
    clinicId: 'clinic-1',
    doctorId: 'd-1',
    patientId: 'u-patient',
    scheduledStart: at,
    scheduledEnd: at,
    status: 'in_progress',
    provider: 'jitsi',
    providerSessionId: 'room-1',
    startedAt: at,
    endedAt: null,
    durationSeconds: null,
    endReason: null,
    version: 7,
    createdAt: at,
    recordingStatus: 'started',
    recordingUrl: null,
    participants: [participant('doctor'), participant('patient')],
  };

  it('is the message create() makes of the same fields, byte for byte', () => {
    const written = toProtoConsultation(view);
    const { participants, ...fields } = written;
    const made = create(ConsultationSchema, { ...fields, participants });
    expect(written).toEqual(made);
    expect(toBinary(ConsultationSchema, written)).toEqual(toBinary(ConsultationSchema, made));
  });

  it('sets every field of the message, so that a field added to the proto is not left out', () => {
    const written = toProtoConsultation(view);
    expect(Object.keys(written).sort()).toEqual(
      ['$typeName', ...ConsultationSchema.fields.map((field) => field.localName)].sort(),
    );
  });
});
