import type { DescMessage, Message, MessageShape } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { ConsultationStatus, Provider } from '../../gen/video/v1/consultation_pb.js';
import {
  AdmitPatientRequestSchema,
  CancelConsultationRequestSchema,
  CheckInRequestSchema,
  EndConsultationRequestSchema,
  GenerateTokenRequestSchema,
  GetConsultationStatusRequestSchema,
  GetProviderStatusRequestSchema,
  ListAuditEntriesRequestSchema,
  ListConsultationHistoryRequestSchema,
  ListWaitingRoomRequestSchema,
  RecordConsentRequestSchema,
  ReportTechnicalIssueRequestSchema,
  ScheduleConsultationRequestSchema,
  ShareMedicalImageRequestSchema,
  StartConsultationRequestSchema,
  StartRecordingRequestSchema,
  StopRecordingRequestSchema,
  TechnicalIssueType,
} from '../../gen/video/v1/video_service_pb.js';
import { MAX_PAGE_SIZE } from '../video/pagination.js';

/**
 * Every input rule of the API, in one place, checked by an interceptor before any I/O.
 * A rule answers the first violation as `field: what is wrong`; field names are the
 * proto's. The size of an image is checked here against the configured maximum too.
 */
export const LIMITS = {
  appointmentId: 64,
  userId: 128,
  description: 1000,
  contentType: 100,
  pageToken: 512,
} as const;

export interface Violation {
  readonly field: string;
  readonly message: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EXTERNAL_ID = /^[A-Za-z0-9._:@|-]+$/;

type Check = Violation | undefined;

const uuid = (field: string, value: string): Check =>
  value === ''
    ? { field, message: 'is required' }
    : UUID.test(value)
      ? undefined
      : { field, message: 'must be a UUID' };

const externalId = (field: string, value: string, max: number, required = true): Check => {
  if (value === '') return required ? { field, message: 'is required' } : undefined;
  if (value.length > max) return { field, message: `must be at most ${max} characters` };
  if (!EXTERNAL_ID.test(value)) {
    return { field, message: 'may contain only letters, digits and . _ : @ | -' };
  }
  return undefined;
};

const maxLength = (field: string, value: string, max: number): Check =>
  value.length > max ? { field, message: `must be at most ${max} characters` } : undefined;

const timestamp = (field: string, value: Timestamp | undefined, required: boolean): Check => {
  if (value === undefined) return required ? { field, message: 'is required' } : undefined;
  // Year 1 to 9999, as the protobuf JSON mapping allows.
  if (value.seconds < -62135596800n || value.seconds > 253402300799n) {
    return { field, message: 'is out of range' };
  }
  return value.nanos < 0 || value.nanos > 999_999_999
    ? { field, message: 'has invalid nanos' }
    : undefined;
};

const knownEnum = (
  field: string,
  value: number,
  known: object,
  allowUnspecified: boolean,
): Check => {
  if (value === 0) return allowUnspecified ? undefined : { field, message: 'is required' };
  return Object.values(known).includes(value)
    ? undefined
    : { field, message: 'is not a known value' };
};

type Rule<Desc extends DescMessage> = (
  message: MessageShape<Desc>,
  options: RuleOptions,
) => Check[];
export interface RuleOptions {
  readonly maxImageBytes: number;
}

const rules = new Map<string, Rule<DescMessage>>();
function rule<Desc extends DescMessage>(schema: Desc, check: Rule<Desc>): void {
  rules.set(schema.typeName, check as unknown as Rule<DescMessage>);
}

const byConsultationId = (m: { consultationId: string }): Check[] => [
  uuid('consultation_id', m.consultationId),
];

rule(ScheduleConsultationRequestSchema, (m) => [
  externalId('appointment_id', m.appointmentId, LIMITS.appointmentId),
  externalId('doctor_id', m.doctorId, LIMITS.userId),
  externalId('patient_id', m.patientId, LIMITS.userId),
  timestamp('scheduled_start', m.scheduledStart, true),
  timestamp('scheduled_end', m.scheduledEnd, true),
  knownEnum('provider', m.provider, Provider, true),
]);
rule(CancelConsultationRequestSchema, (m) => {
  switch (m.target.case) {
    case 'consultationId':
      return [uuid('consultation_id', m.target.value)];
    case 'appointmentId':
      return [externalId('appointment_id', m.target.value, LIMITS.appointmentId)];
    default:
      return [
        { field: 'consultation_id', message: 'consultation_id or appointment_id is required' },
      ];
  }
});
rule(CheckInRequestSchema, byConsultationId);
rule(ListWaitingRoomRequestSchema, (m) => [
  externalId('doctor_id', m.doctorId, LIMITS.userId, false),
]);
rule(AdmitPatientRequestSchema, byConsultationId);
rule(StartConsultationRequestSchema, byConsultationId);
rule(GenerateTokenRequestSchema, byConsultationId);
rule(EndConsultationRequestSchema, byConsultationId);
rule(GetConsultationStatusRequestSchema, byConsultationId);
rule(ReportTechnicalIssueRequestSchema, (m) => [
  uuid('consultation_id', m.consultationId),
  knownEnum('issue_type', m.issueType, TechnicalIssueType, false),
  maxLength('description', m.description, LIMITS.description),
]);
rule(ShareMedicalImageRequestSchema, (m, options) => [
  uuid('consultation_id', m.consultationId),
  m.content.length === 0 ? { field: 'content', message: 'is required' } : undefined,
  m.content.length > options.maxImageBytes
    ? { field: 'content', message: `must be at most ${options.maxImageBytes} bytes` }
    : undefined,
  maxLength('content_type', m.contentType, LIMITS.contentType),
]);
rule(ListConsultationHistoryRequestSchema, (m) => [
  ...m.statuses.map((s, i) => knownEnum(`statuses[${i}]`, s, ConsultationStatus, false)),
  timestamp('scheduled_from', m.scheduledFrom, false),
  timestamp('scheduled_to', m.scheduledTo, false),
  m.pageSize > MAX_PAGE_SIZE
    ? { field: 'page_size', message: `must be at most ${MAX_PAGE_SIZE}` }
    : undefined,
  maxLength('page_token', m.pageToken, LIMITS.pageToken),
]);
rule(GetProviderStatusRequestSchema, () => []);
rule(RecordConsentRequestSchema, byConsultationId);
rule(StartRecordingRequestSchema, byConsultationId);
rule(StopRecordingRequestSchema, byConsultationId);
rule(ListAuditEntriesRequestSchema, (m) => [
  externalId('actor_id', m.actorId, LIMITS.userId, false),
  externalId('resource_id', m.resourceId, LIMITS.userId, false),
  maxLength('action', m.action, 64),
  timestamp('from', m.from, false),
  timestamp('to', m.to, false),
  m.pageSize > MAX_PAGE_SIZE
    ? { field: 'page_size', message: `must be at most ${MAX_PAGE_SIZE}` }
    : undefined,
  maxLength('page_token', m.pageToken, LIMITS.pageToken),
]);

/** The first violation of a request message, or undefined when it is valid. */
export function validate(message: Message, options: RuleOptions): Violation | undefined {
  const check = rules.get(message.$typeName);
  if (!check) return undefined;
  return check(message as MessageShape<DescMessage>, options).find((v) => v !== undefined);
}

/** Whether a message type has rules (a test checks every RPC's request has some). */
export function hasRules(typeName: string): boolean {
  return rules.has(typeName);
}
