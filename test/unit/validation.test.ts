import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import {
  CancelConsultationRequestSchema,
  GetConsultationStatusRequestSchema,
  ListConsultationHistoryRequestSchema,
  ReportTechnicalIssueRequestSchema,
  ScheduleConsultationRequestSchema,
  ShareMedicalImageRequestSchema,
  TechnicalIssueType,
  VideoService,
} from '../../gen/video/v1/video_service_pb.js';
import { hasRules, LIMITS, validate } from '../../src/rpc/validation.js';

const options = { maxImageBytes: 1024 };
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

    const start = timestampFromDate(new Date());
    const schedule = {
      appointmentId: 'a-1',
      doctorId: 'd',
      patientId: 'p',
      scheduledStart: start,
      scheduledEnd: start,
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
