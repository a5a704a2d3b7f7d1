import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import {
  AppointmentCancelledSchema,
  AppointmentCreatedSchema,
  AppointmentRescheduledSchema,
} from '../../gen/video/v1/events_pb.js';
import { DomainError } from '../domain/errors.js';
import { fromTimestamp } from '../rpc/mappers.js';
import type { ScheduleConsultationRequest } from '../video/use-cases/schedule-consultation.js';

/**
 * The appointments service's events read into the requests of the use cases they apply
 * (appointment-consumer.ts): a record that can never make one is a PoisonMessage, with
 * the reason the dead-letter topic records.
 */

const ID = /^[A-Za-z0-9._:@|-]{1,64}$/;

/** Why a message can never succeed: it goes to the dead-letter topic, and the partition moves on. */
export class PoisonMessage extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'PoisonMessage';
  }
}

export const IGNORED = 'ignored: not a video appointment';

/** What an `appointment.created` asks for, or IGNORED when it is not a video appointment. */
export function appointmentCreation(json: JsonValue) {
  const event = parse(AppointmentCreatedSchema, json);
  if (event.appointmentType.toUpperCase() !== 'VIDEO') return IGNORED;
  requireIds(event.appointmentId, event.clinicId);
  if (!event.scheduledStart || !event.scheduledEnd) {
    throw new PoisonMessage('invalid', 'scheduled_start and scheduled_end are required');
  }
  const request: ScheduleConsultationRequest = {
    appointmentId: event.appointmentId,
    doctorId: event.doctorId,
    patientId: event.patientId,
    scheduledStart: fromTimestamp(event.scheduledStart)!,
    scheduledEnd: fromTimestamp(event.scheduledEnd)!,
    provider: undefined,
  };
  return { clinicId: event.clinicId, request };
}

/** What an `appointment.cancelled` asks for. */
export function appointmentCancellation(json: JsonValue) {
  const event = parse(AppointmentCancelledSchema, json);
  requireIds(event.appointmentId, event.clinicId);
  return { clinicId: event.clinicId, request: { appointmentId: event.appointmentId } };
}

/** What an `appointment.rescheduled` asks for. */
export function appointmentMove(json: JsonValue) {
  const event = parse(AppointmentRescheduledSchema, json);
  requireIds(event.appointmentId, event.clinicId);
  if (!event.scheduledStart || !event.scheduledEnd) {
    throw new PoisonMessage('invalid', 'scheduled_start and scheduled_end are required');
  }
  const request = {
    appointmentId: event.appointmentId,
    scheduledStart: fromTimestamp(event.scheduledStart)!,
    scheduledEnd: fromTimestamp(event.scheduledEnd)!,
  };
  return { clinicId: event.clinicId, request };
}

export function parseJson(value: Buffer | null): JsonValue {
  if (!value) throw new PoisonMessage('unparseable', 'empty message');
  try {
    return JSON.parse(value.toString('utf8')) as JsonValue;
  } catch (error) {
    throw new PoisonMessage('unparseable', `not JSON: ${errorText(error)}`);
  }
}

function parse<Desc extends Parameters<typeof fromJson>[0]>(schema: Desc, json: JsonValue) {
  try {
    return fromJson(schema, json, { ignoreUnknownFields: true });
  } catch (error) {
    throw new PoisonMessage('unparseable', `not a ${schema.typeName}: ${errorText(error)}`);
  }
}

function requireIds(appointmentId: string, clinicId: string): void {
  if (!ID.test(appointmentId))
    throw new PoisonMessage('invalid', 'appointment_id is missing or malformed');
  if (!ID.test(clinicId)) throw new PoisonMessage('invalid', 'clinic_id is missing or malformed');
}

/** Errors that will fail the same way however often the message is retried. */
export function asPoison(error: unknown): PoisonMessage | undefined {
  if (error instanceof PoisonMessage) return error;
  if (error instanceof DomainError && error.code !== 'unavailable') {
    return new PoisonMessage(error.code, error.message);
  }
  return undefined;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
