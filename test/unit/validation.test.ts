import { create, type DescMethod, ScalarType } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import {
  CancelConsultationRequestSchema,
  GetConsultationStatusRequestSchema,
  ListAuditEntriesRequestSchema,
  ListConsultationHistoryRequestSchema,
  ReportTechnicalIssueRequestSchema,
  ScheduleConsultationRequestSchema,
  ShareMedicalImageRequestSchema,
  TechnicalIssueType,
  VideoService,
} from '../../gen/video/v1/video_service_pb.js';
import { hasRules, LIMITS, validate } from '../../src/rpc/validation.js';

const now = new Date('2026-06-01T12:00:00Z');
const options = { maxImageBytes: 1024, now: () => now };
const id = '3f0c1c9e-8d5b-4b8e-9a51-0c7f6f0b2a11';

describe('input rules', () => {
  it('cover the request of every RPC', () => {
    for (const method of VideoService.methods) {
      expect(hasRules(method.input.typeName), method.name).toBe(true);
    }
  });

  it('name the field and the rule', () => {
    const check = (schema: Parameters<typeof create>[0], init: object) =>
      validate(create(schema, init as never), options);

    expect(check(GetConsultationStatusRequestSchema, {})).toEqual({
      field: 'consultation_id',
      message: 'is required',
    });
    expect(check(GetConsultationStatusRequestSchema, { consultationId: 'abc' })).toEqual({
      field: 'consultation_id',
      message: 'must be a UUID',
    });
    expect(check(GetConsultationStatusRequestSchema, { consultationId: id })).toBeUndefined();

    const schedule = {
      appointmentId: 'a-1',
      doctorId: 'd',
      patientId: 'p',
      scheduledStart: timestampFromDate(new Date(now.getTime() + 60_000)),
      scheduledEnd: timestampFromDate(new Date(now.getTime() + 31 * 60_000)),
    };
    expect(check(ScheduleConsultationRequestSchema, schedule)).toBeUndefined();
    expect(
      check(ScheduleConsultationRequestSchema, { ...schedule, appointmentId: 'x'.repeat(65) }),
    ).toEqual({
      field: 'appointment_id',
      message: `must be at most ${LIMITS.appointmentId} characters`,
    });
    expect(
      check(ScheduleConsultationRequestSchema, { ...schedule, scheduledEnd: undefined }),
    ).toEqual({
      field: 'scheduled_end',
      message: 'is required',
    });
    expect(check(ScheduleConsultationRequestSchema, { ...schedule, provider: 42 })).toEqual({
      field: 'provider',
      message: 'is not a known value',
    });

    expect(check(CancelConsultationRequestSchema, {})?.field).toBe('consultation_id');
    expect(
      check(CancelConsultationRequestSchema, { target: { case: 'appointmentId', value: 'a 1' } })
        ?.field,
    ).toBe('appointment_id');

    const report = { consultationId: id, issueType: TechnicalIssueType.AUDIO };
    expect(check(ReportTechnicalIssueRequestSchema, report)).toBeUndefined();
    expect(check(ReportTechnicalIssueRequestSchema, { ...report, issueType: 0 })?.field).toBe(
      'issue_type',
    );
    expect(
      check(ReportTechnicalIssueRequestSchema, { ...report, description: 'x'.repeat(1001) })?.field,
    ).toBe('description');

    expect(
      check(ShareMedicalImageRequestSchema, { consultationId: id, content: new Uint8Array(1025) }),
    ).toEqual({ field: 'content', message: 'must be at most 1024 bytes' });

    expect(check(ListConsultationHistoryRequestSchema, { pageSize: 101 })?.field).toBe('page_size');
    expect(
      check(ListConsultationHistoryRequestSchema, { statuses: [ConsultationStatus.ENDED, 99] })
        ?.field,
    ).toBe('statuses[1]');
  });
});

/** A valid request of every RPC, so that one bad field is the only thing wrong. */
const start = new Date(now.getTime() + 60 * 60_000);
const VALID: Record<string, object> = {
  ScheduleConsultation: {
    appointmentId: 'a-1',
    doctorId: 'd',
    patientId: 'p',
    scheduledStart: timestampFromDate(start),
    scheduledEnd: timestampFromDate(new Date(start.getTime() + 30 * 60_000)),
  },
  CancelConsultation: { target: { case: 'appointmentId', value: 'a-1' } },
  ListWaitingRoom: { doctorId: 'd' },
  ReportTechnicalIssue: {
    consultationId: id,
    issueType: TechnicalIssueType.AUDIO,
    description: 'no sound',
  },
  ShareMedicalImage: { consultationId: id, content: new Uint8Array(10), contentType: 'image/png' },
  ListConsultationHistory: { pageToken: 'abc' },
  GetProviderStatus: {},
  ListAuditEntries: {
    actorId: 'd',
    resourceId: id,
    action: 'consultation.read',
    pageToken: 'abc',
  },
};
const valid = (method: DescMethod) => VALID[method.name] ?? { consultationId: id };

describe('characters', () => {
  /** Every string field of every request, oneof members included. */
  const stringFields = VideoService.methods.flatMap((method) =>
    method.input.fields
      .filter((f) => f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING)
      .map((field) => ({ method, field })),
  );

  it('a valid request of every RPC passes', () => {
    for (const method of VideoService.methods) {
      expect(validate(create(method.input, valid(method) as never), options), method.name).toBe(
        undefined,
      );
    }
  });

  it.each([
    ['NUL', 'a\u0000b'],
    ['another C0 control', 'a\u001bb'],
    ['DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
    ['a lone high surrogate', 'a\ud800b'],
    ['a lone low surrogate', 'a\udc00b'],
  ])('refuses %s in every string field, naming it', (_kind, bad) => {
    expect(stringFields.length).toBeGreaterThan(10);
    for (const { method, field } of stringFields) {
      const init: Record<string, unknown> = { ...valid(method) };
      if (field.oneof) init[field.oneof.localName] = { case: field.localName, value: bad };
      else init[field.localName] = bad;
      const violation = validate(create(method.input, init as never), options);
      expect(violation?.field, `${method.name}.${field.name}`).toBe(field.name);
    }
  });

  it('lets free text hold tabs, newlines and any valid Unicode', () => {
    const report = VALID.ReportTechnicalIssue!;
    for (const description of ['line 1\nline 2\tend', 'Schmerzen 😷 — ÄÖÜ ß 中文', '']) {
      expect(
        validate(create(ReportTechnicalIssueRequestSchema, { ...report, description }), options),
      ).toBeUndefined();
    }
    expect(
      validate(
        create(ReportTechnicalIssueRequestSchema, { ...report, description: 'a\r\nb' }),
        options,
      )?.field,
    ).toBe('description');
  });

  it('takes only ids in the audit action filter, and only base64url in page tokens', () => {
    const audit = VALID.ListAuditEntries!;
    expect(
      validate(create(ListAuditEntriesRequestSchema, { ...audit, action: 'drop table' }), options)
        ?.field,
    ).toBe('action');
    expect(
      validate(create(ListAuditEntriesRequestSchema, { ...audit, pageToken: '%%%' }), options),
    ).toEqual({ field: 'page_token', message: 'is not a token this service issued' });
  });
});

describe('slots', () => {
  const schedule = (startAt: Date, minutes = 30) =>
    validate(
      create(ScheduleConsultationRequestSchema, {
        ...VALID.ScheduleConsultation,
        scheduledStart: timestampFromDate(startAt),
        scheduledEnd: timestampFromDate(new Date(startAt.getTime() + minutes * 60_000)),
      }),
      options,
    );
  const days = (n: number) => new Date(now.getTime() + n * 86_400_000);

  it('accepts a slot that has not ended and starts within two years', () => {
    expect(schedule(days(0))).toBeUndefined();
    expect(schedule(new Date(now.getTime() - 10 * 60_000))).toBeUndefined(); // under way
    expect(schedule(days(730))).toBeUndefined();
  });

  it('refuses a slot already over, one too far ahead, and the years 0001 and 9999', () => {
    expect(schedule(new Date(now.getTime() - 60 * 60_000))).toEqual({
      field: 'scheduled_end',
      message: 'must be in the future',
    });
    expect(schedule(days(800))?.field).toBe('scheduled_start');
    expect(schedule(new Date('0001-01-01T00:00:00Z'))?.field).toBe('scheduled_start');
    expect(schedule(new Date('1999-12-31T00:00:00Z'))?.field).toBe('scheduled_start');
    expect(schedule(new Date('9999-12-31T00:00:00Z'))?.field).toBe('scheduled_start');
  });
});
