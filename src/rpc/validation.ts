import { type DescMessage, type Message, type MessageShape, ScalarType } from '@bufbuild/protobuf';
import { isReflectMessage, type ReflectMessage, reflect } from '@bufbuild/protobuf/reflect';
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
  WatchConsultationRequestSchema,
  WatchWaitingRoomRequestSchema,
} from '../../gen/video/v1/video_service_pb.js';
import { MAX_PAGE_SIZE } from '../video/pagination.js';

/**
 * Every input rule of the API, in one place, checked by an interceptor before any I/O.
 * A rule answers the first violation as `field: what is wrong`; field names are the
 * proto's. The size of an image is checked here against the configured maximum too, and
 * the claims of a bearer token get the same id rules as the request fields (auth/jwt.ts).
 *
 * Characters, decided once for every text field:
 * - ids (appointment, user, clinic ids, the audit `action`): 1 to N of `A-Z a-z 0-9 . _ : @ | -`;
 *   consultation ids are UUIDs;
 * - free text (`description`): valid Unicode (no lone surrogate), no control character but
 *   tab and newline (no NUL, no other C0, DEL or C1 control);
 * - short text (`content_type`): valid Unicode, no control character at all;
 * - page tokens: only the base64url alphabet and `.`, as the service issues them;
 * - idempotency keys: printable ASCII;
 * - and, as a floor under every string field of a request, rules or not: valid Unicode and
 *   no control character but tab and newline. PostgreSQL cannot store NUL, so nothing that
 *   holds one reaches it.
 */
export const LIMITS = {
  appointmentId: 64,
  userId: 128,
  clinicId: 64,
  action: 64,
  description: 1000,
  contentType: 100,
  pageToken: 512,
  idempotencyKey: 64,
} as const;

/**
 * Slots the API accepts (ScheduleConsultation): the slot has not ended yet, starts at most
 * this far ahead, and never before 2000-01-01. Appointment events from Kafka are not held
 * to these (they mirror the appointments service, late or not).
 */
export const SLOT_BOUNDS = {
  earliestStart: new Date('2000-01-01T00:00:00Z'),
  maxDaysAhead: 731,
} as const;

export interface Violation {
  readonly field: string;
  readonly message: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EXTERNAL_ID = /^[A-Za-z0-9._:@|-]+$/;
/** Whether text holds a C0 control (tab and newline excepted when allowed), DEL or a C1 control. */
function hasControl(value: string, allowTabAndNewline: boolean): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 && !(allowTabAndNewline && (c === 0x09 || c === 0x0a))) return true;
    if (c >= 0x7f && c <= 0x9f) return true;
  }
  return false;
}
const PAGE_TOKEN = /^[A-Za-z0-9_.-]*$/;
/** A high surrogate with no low one after it, or a low one with no high one before it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

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

/** Whether a string is an id of at most `max` characters (the rule of ids, for token claims). */
export function isExternalId(value: unknown, max: number): value is string {
  return typeof value === 'string' && externalId('', value, max) === undefined;
}

/** Free text: bounded, valid Unicode, no control character but tab and newline. */
const freeText = (field: string, value: string, max: number): Check => {
  if (value.length > max) return { field, message: `must be at most ${max} characters` };
  return textFloor(field, value);
};

/** One line of printable text: bounded, valid Unicode, no control character. */
const shortText = (field: string, value: string, max: number): Check => {
  if (value.length > max) return { field, message: `must be at most ${max} characters` };
  if (LONE_SURROGATE.test(value)) return { field, message: 'must be valid Unicode' };
  return hasControl(value, false)
    ? { field, message: 'must not contain control characters' }
    : undefined;
};

/** What any string of a request must be: valid Unicode, no control but tab and newline. */
const textFloor = (field: string, value: string): Check => {
  if (LONE_SURROGATE.test(value)) return { field, message: 'must be valid Unicode' };
  return hasControl(value, true)
    ? { field, message: 'must not contain control characters other than tab and newline' }
    : undefined;
};

/** A client's idempotency key: optional, 1 to 64 printable ASCII characters. */
const idempotencyKey = (field: string, value: string): Check =>
  value === '' || /^[\x21-\x7e]+$/.test(value)
    ? value.length > LIMITS.idempotencyKey
      ? { field, message: `must be at most ${LIMITS.idempotencyKey} characters` }
      : undefined
    : { field, message: 'may contain only printable ASCII characters' };

const pageToken = (field: string, value: string): Check => {
  if (value.length > LIMITS.pageToken) {
    return { field, message: `must be at most ${LIMITS.pageToken} characters` };
  }
  return PAGE_TOKEN.test(value)
    ? undefined
    : { field, message: 'is not a token this service issued' };
};

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

/** The API's bounds of a new slot (see SLOT_BOUNDS); the order of start and end is the domain's. */
const slotBounds = (start: Timestamp | undefined, end: Timestamp | undefined, now: Date): Check => {
  if (!start || !end) return undefined;
  const startMs = Number(start.seconds) * 1000;
  const endMs = Number(end.seconds) * 1000 + Math.floor(end.nanos / 1_000_000);
  if (startMs < SLOT_BOUNDS.earliestStart.getTime()) {
    return { field: 'scheduled_start', message: 'must not be before 2000-01-01' };
  }
  if (startMs > now.getTime() + SLOT_BOUNDS.maxDaysAhead * 86_400_000) {
    return {
      field: 'scheduled_start',
      message: `must be at most ${SLOT_BOUNDS.maxDaysAhead} days ahead`,
    };
  }
  return endMs <= now.getTime()
    ? { field: 'scheduled_end', message: 'must be in the future' }
    : undefined;
};

/**
 * An enum value the proto declares. Over JSON, protobuf-es keeps an unknown number as it is
 * (refused here) but cannot keep an unknown name: the VideoService's JSON parser refuses
 * unknown names and fields (video-routes.ts), since ignoring them would drop the value.
 */
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
  /** The service's clock: slots are judged against it. */
  readonly now: () => Date;
}

const rules = new Map<string, Rule<DescMessage>>();
const schemas = new Map<string, DescMessage>();
function rule<Desc extends DescMessage>(schema: Desc, check: Rule<Desc>): void {
  rules.set(schema.typeName, check as unknown as Rule<DescMessage>);
  schemas.set(schema.typeName, schema);
}

const byConsultationId = (m: { consultationId: string }): Check[] => [
  uuid('consultation_id', m.consultationId),
];

rule(ScheduleConsultationRequestSchema, (m, options) => [
  externalId('appointment_id', m.appointmentId, LIMITS.appointmentId),
  externalId('doctor_id', m.doctorId, LIMITS.userId),
  externalId('patient_id', m.patientId, LIMITS.userId),
  timestamp('scheduled_start', m.scheduledStart, true),
  timestamp('scheduled_end', m.scheduledEnd, true),
  slotBounds(m.scheduledStart, m.scheduledEnd, options.now()),
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
rule(WatchConsultationRequestSchema, byConsultationId);
const byDoctorId = (m: { doctorId: string }): Check[] => [
  externalId('doctor_id', m.doctorId, LIMITS.userId, false),
];
rule(ListWaitingRoomRequestSchema, byDoctorId);
rule(WatchWaitingRoomRequestSchema, byDoctorId);
rule(AdmitPatientRequestSchema, byConsultationId);
rule(StartConsultationRequestSchema, byConsultationId);
rule(GenerateTokenRequestSchema, byConsultationId);
rule(EndConsultationRequestSchema, byConsultationId);
rule(GetConsultationStatusRequestSchema, byConsultationId);
rule(ReportTechnicalIssueRequestSchema, (m) => [
  uuid('consultation_id', m.consultationId),
  knownEnum('issue_type', m.issueType, TechnicalIssueType, false),
  freeText('description', m.description, LIMITS.description),
  idempotencyKey('idempotency_key', m.idempotencyKey),
]);
rule(ShareMedicalImageRequestSchema, (m, options) => [
  uuid('consultation_id', m.consultationId),
  m.content.length === 0 ? { field: 'content', message: 'is required' } : undefined,
  m.content.length > options.maxImageBytes
    ? { field: 'content', message: `must be at most ${options.maxImageBytes} bytes` }
    : undefined,
  shortText('content_type', m.contentType, LIMITS.contentType),
  idempotencyKey('idempotency_key', m.idempotencyKey),
]);
/** The paging fields of a list request. */
const page = (m: { pageSize: number; pageToken: string }): Check[] => [
  m.pageSize > MAX_PAGE_SIZE
    ? { field: 'page_size', message: `must be at most ${MAX_PAGE_SIZE}` }
    : undefined,
  pageToken('page_token', m.pageToken),
];
rule(ListConsultationHistoryRequestSchema, (m) => [
  ...m.statuses.map((s, i) => knownEnum(`statuses[${i}]`, s, ConsultationStatus, false)),
  timestamp('scheduled_from', m.scheduledFrom, false),
  timestamp('scheduled_to', m.scheduledTo, false),
  ...page(m),
]);
rule(GetProviderStatusRequestSchema, () => []);
rule(RecordConsentRequestSchema, byConsultationId);
rule(StartRecordingRequestSchema, byConsultationId);
rule(StopRecordingRequestSchema, byConsultationId);
rule(ListAuditEntriesRequestSchema, (m) => [
  externalId('actor_id', m.actorId, LIMITS.userId, false),
  externalId('resource_id', m.resourceId, LIMITS.userId, false),
  externalId('action', m.action, LIMITS.action, false),
  timestamp('from', m.from, false),
  timestamp('to', m.to, false),
  ...page(m),
]);

/**
 * The floor under every string of a message, nested ones too, whether a rule names the
 * field or not: a field added to the proto cannot carry a NUL to the database.
 */
function* stringFloor(message: ReflectMessage, path = ''): Generator<Violation> {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const name = `${path}${field.name}`;
    switch (field.fieldKind) {
      case 'scalar':
        if (field.scalar === ScalarType.STRING) {
          const v = textFloor(name, message.get(field) as string);
          if (v) yield v;
        }
        break;
      case 'list': {
        const list = message.get(field);
        for (let i = 0; i < list.size; i++) {
          const item = list.get(i);
          if (typeof item === 'string') {
            const v = textFloor(`${name}[${i}]`, item);
            if (v) yield v;
          } else if (isReflectMessage(item)) {
            yield* stringFloor(item, `${name}[${i}].`);
          }
        }
        break;
      }
      case 'map':
        for (const [key, item] of message.get(field)) {
          const k = typeof key === 'string' ? textFloor(`${name} key`, key) : undefined;
          if (k) yield k;
          if (typeof item === 'string') {
            const v = textFloor(`${name} value`, item);
            if (v) yield v;
          } else if (isReflectMessage(item)) {
            yield* stringFloor(item, `${name} value.`);
          }
        }
        break;
      case 'message':
        yield* stringFloor(message.get(field), `${name}.`);
        break;
      default:
        break;
    }
  }
}

function floorOf(message: Message): Generator<Violation> | [] {
  const schema = schemas.get(message.$typeName);
  return schema ? stringFloor(reflect(schema, message as MessageShape<DescMessage>)) : [];
}

/** Every violation of a request message, the named rules' first (in their order). */
export function violations(message: Message, options: RuleOptions): Violation[] {
  const check = rules.get(message.$typeName);
  const named = check
    ? check(message as MessageShape<DescMessage>, options).filter(
        (v): v is Violation => v !== undefined,
      )
    : [];
  return [...named, ...floorOf(message)];
}

/** The first violation of a request message, or undefined when it is valid. */
export function validate(message: Message, options: RuleOptions): Violation | undefined {
  const check = rules.get(message.$typeName);
  const first = check
    ? check(message as MessageShape<DescMessage>, options).find((v) => v !== undefined)
    : undefined;
  if (first) return first;
  for (const v of floorOf(message)) return v;
  return undefined;
}

/** Whether a message type has rules (a test checks every RPC's request has some). */
export function hasRules(typeName: string): boolean {
  return rules.has(typeName);
}
