import { createHash, randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  DeadlockException,
  type EntityManager,
  type FilterQuery,
  OptimisticLockError,
  UniqueConstraintViolationException,
} from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { type Action, authorize, type Principal } from '../domain/access.js';
import type { DisconnectReason } from '../domain/attendance.js';
import {
  assertInsideJoinWindow,
  assertValidSlot,
  type ConsultationStatus,
  durationSeconds,
  FINAL_STATUSES,
  joinWindow,
  missingConsent,
  type ParticipantRole,
  type ProviderName,
  type RecordingStatus,
  transition,
  type WindowRules,
} from '../domain/consultation.js';
import { DomainError, failedPrecondition, invalidArgument, notFound } from '../domain/errors.js';
import { checkMedicalImage, type MedicalImageType } from '../domain/medical-image.js';
import type { Clock } from '../domain/ports.js';
import {
  type ConsultationEntity,
  ConsultationSchema,
  type ParticipantEntity,
  ParticipantSchema,
  SharedImageSchema,
  type TechnicalIssueKind,
  TechnicalIssueSchema,
} from '../persistence/entities.js';
import type { ProviderRegistry, ProviderStatusView } from '../providers/provider-registry.js';
import {
  addAuditEntry,
  auditRow,
  type Caller,
  EventAlreadyHandled,
  insertAuditEntry,
  recordRefusal,
} from './audit.js';
import { readConsultationAudited } from './consultation-read.js';
import { addEvent, type EventScope } from './events.js';
import { recordFirstDelivery } from './inbox.js';
import { type PageTokens, pageSize } from './pagination.js';
import { toProtoEndReason, toProtoIssueType, toProtoProvider, toProtoRole } from './proto-enums.js';

/** A consultation as the use cases answer it: plain data, no ORM behind it. */
export interface ConsultationView {
  readonly id: string;
  readonly appointmentId: string;
  readonly clinicId: string;
  readonly doctorId: string;
  readonly patientId: string;
  readonly scheduledStart: Date;
  readonly scheduledEnd: Date;
  readonly status: ConsultationStatus;
  readonly provider: ProviderName | null;
  readonly providerSessionId: string | null;
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
  readonly durationSeconds: number | null;
  readonly endReason: ConsultationEntity['endReason'];
  readonly version: number;
  readonly createdAt: Date;
  readonly recordingStatus: RecordingStatus | null;
  readonly recordingUrl: string | null;
  readonly participants: readonly ParticipantView[];
}

export interface ParticipantView {
  readonly userId: string;
  readonly role: ParticipantRole;
  readonly checkedInAt: Date | null;
  readonly admittedAt: Date | null;
  readonly firstTokenAt: Date | null;
  readonly firstJoinedAt: Date | null;
  readonly lastLeftAt: Date | null;
  readonly connectedSeconds: number;
  readonly connected: boolean;
  readonly lastDisconnectReason: DisconnectReason | null;
  readonly recordingConsentAt: Date | null;
}

export interface WaitingPatientView {
  readonly consultationId: string;
  readonly appointmentId: string;
  readonly patientId: string;
  readonly doctorId: string;
  readonly checkedInAt: Date;
  readonly waitedSeconds: number;
  readonly queuePosition: number;
  readonly scheduledStart: Date;
  readonly admitted: boolean;
}

export interface ScheduleInput {
  readonly appointmentId: string;
  readonly doctorId: string;
  readonly patientId: string;
  readonly scheduledStart: Date;
  readonly scheduledEnd: Date;
  readonly provider: ProviderName | undefined;
}

export interface HistoryQuery {
  readonly statuses: readonly ConsultationStatus[];
  readonly scheduledFrom: Date | undefined;
  readonly scheduledTo: Date | undefined;
  readonly pageSize: number;
  readonly pageToken: string;
}

export interface JoinToken {
  readonly token: string;
  readonly joinUrl: string;
  readonly provider: ProviderName;
  readonly providerSessionId: string;
  readonly expiresAt: Date;
  readonly role: ParticipantRole;
}

export interface VideoServiceDeps {
  readonly orm: MikroORM;
  readonly providers: ProviderRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly rules: WindowRules & { readonly maxImageBytes: number };
  /** Signs and checks the history's page tokens (PAGE_TOKEN_SECRET). */
  readonly pageTokens: PageTokens;
  /** Called each time a unit of work lost a race and is replayed (a metric counts them). */
  readonly onReplay?: ((reason: ReplayReason) => void) | undefined;
  /** Called for every refusal whose audit entry could not be written. */
  readonly onRefusalNotAudited?: (() => void) | undefined;
}

/** Why a unit of work was replayed: its version check failed, or it was a deadlock's victim. */
export type ReplayReason = 'version_conflict' | 'deadlock';

/** How often a use case is replayed when another call changed the consultation first. */
const MAX_ATTEMPTS = 5;
/** The statuses in which a checked-in patient counts as waiting. */
const WAITING_STATUSES: ConsultationStatus[] = ['waiting', 'in_progress'];

export type VideoService = ReturnType<typeof createVideoService>;

/**
 * The consultation use cases. Each one reads as its story: load what the caller may see,
 * check the rule, change, commit; provider calls happen outside any transaction.
 */
export function createVideoService(deps: VideoServiceDeps) {
  const { orm, providers, clock, logger, rules, pageTokens } = deps;

  /**
   * Runs one unit of work in a transaction on a fresh EntityManager. A lost optimistic
   * race replays the whole unit, which then sees the winner's state and decides again.
   */
  async function unitOfWork<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await orm.em.fork().transactional(work);
      } catch (error) {
        // A lost race: another unit changed the row first, or PostgreSQL chose this one as
        // the victim of a deadlock. Either way, replaying it is safe.
        const lost = error instanceof OptimisticLockError || error instanceof DeadlockException;
        if (lost && attempt < MAX_ATTEMPTS) {
          deps.onReplay?.(error instanceof DeadlockException ? 'deadlock' : 'version_conflict');
          continue;
        }
        if (lost) {
          throw new DomainError('unavailable', 'the consultation is changing; retry', undefined, {
            cause: error,
          });
        }
        throw error;
      }
    }
  }

  /**
   * The audit trail around a use case: a refusal (a DomainError) is recorded in a
   * transaction of its own, since the refused one rolled back.
   */
  async function auditRefusals<T>(
    caller: Caller,
    action: Action,
    resourceId: string | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof DomainError) {
        const record = {
          action,
          resourceType: 'consultation',
          resourceId,
          outcome: error.code,
        } as const;
        await recordRefusal(deps, caller, record);
      }
      throw error;
    }
  }

  /**
   * One audited unit of work: the work, then its audit entry, commit together; a
   * refusal is recorded on its own. `audit.resourceId` may be set by the work (schedule
   * learns its consultation id only when it creates it).
   */
  function audited<T>(
    caller: Caller,
    action: Action,
    resourceId: string | undefined,
    work: (em: EntityManager, audit: { resourceId: string | undefined }) => Promise<T>,
  ): Promise<T> {
    const audit = { resourceId };
    return auditRefusals(caller, action, resourceId, () =>
      unitOfWork(async (em) => {
        if (caller.inbox && !(await recordFirstDelivery(em, caller.inbox, clock.now()))) {
          throw new EventAlreadyHandled(caller.inbox.source, caller.inbox.eventId);
        }
        const result = await work(em, audit);
        const record = { action, resourceType: 'consultation', outcome: 'allowed' } as const;
        addAuditEntry(em, caller, { ...record, resourceId: audit.resourceId }, clock.now());
        return result;
      }),
    );
  }

  /**
   * An audited read: the read, then its audit entry, written before the answer. A read
   * changes nothing, so no transaction is opened: one insert after the queries.
   */
  function auditedRead<T>(
    caller: Caller,
    action: Action,
    resourceId: string | undefined,
    read: (em: EntityManager) => Promise<T>,
  ): Promise<T> {
    return auditRefusals(caller, action, resourceId, async () => {
      const em = orm.em.fork();
      const result = await read(em);
      const record = { action, resourceType: 'consultation', outcome: 'allowed' } as const;
      await insertAuditEntry(em, caller, { ...record, resourceId }, clock.now());
      return result;
    });
  }

  /** Loads a consultation the caller may act on, or answers NOT_FOUND / PERMISSION_DENIED. */
  async function load(
    em: EntityManager,
    principal: Principal,
    consultationId: string,
    action: Parameters<typeof authorize>[1],
  ): Promise<ConsultationEntity> {
    authorize(principal, action);
    // Tenancy and ownership are part of the query: another clinic's consultation, one the
    // caller takes no part in, and one that does not exist all take this same path.
    const consultation = await em.findOne(
      ConsultationSchema,
      { $and: [{ id: consultationId }, visibleTo(principal)] },
      { populate: ['participants'] },
    );
    if (!consultation) throw notFound('consultation');
    authorize(principal, action, consultation);
    return consultation;
  }

  function participant(consultation: ConsultationEntity, role: ParticipantRole): ParticipantEntity {
    const found = consultation.participants.getItems().find((p) => p.role === role);
    if (!found) throw new Error(`consultation ${consultation.id} has no ${role}`);
    return found;
  }

  function callerRole(principal: Principal, consultation: ConsultationEntity): ParticipantRole {
    if (principal.role === 'doctor' && principal.userId === consultation.doctorId) return 'doctor';
    if (principal.role === 'patient' && principal.userId === consultation.patientId)
      return 'patient';
    throw new DomainError(
      'permission_denied',
      'only the consultation’s doctor and patient take part',
    );
  }

  /** Counts the doctor's waiting patients who checked in no later than `checkedInAt`. */
  async function queuePosition(
    em: EntityManager,
    consultation: ConsultationEntity,
    checkedInAt: Date,
  ): Promise<number> {
    return em.count(ParticipantSchema, {
      clinicId: consultation.clinicId,
      role: 'patient',
      admittedAt: null,
      checkedInAt: { $lte: checkedInAt },
      consultation: { doctorId: consultation.doctorId, status: { $in: WAITING_STATUSES } },
    });
  }

  /**
   * Makes sure the consultation has its provider session: the session id is derived
   * from the consultation id, so creating it twice (after a lost race) is harmless.
   */
  async function ensureProviderSession(
    consultation: ConsultationEntity,
  ): Promise<{ provider: ProviderName; sessionId: string }> {
    const provider = consultation.provider ?? providers.defaultProvider;
    if (consultation.providerSessionId) {
      // A live session stays where it is.
      return { provider, sessionId: consultation.providerSessionId };
    }
    return providers.ensureSessionWithFailover(consultation.id, provider);
  }

  async function endProviderSession(consultation: ConsultationView): Promise<void> {
    if (!consultation.provider || !consultation.providerSessionId) return;
    try {
      await providers.get(consultation.provider).endSession(consultation.providerSessionId);
    } catch (error) {
      // The consultation is already ended in the database; the provider closes idle
      // sessions on its own, so a failure here is logged, not returned.
      logger.warn(
        { err: error, consultationId: consultation.id, provider: consultation.provider },
        'could not close the provider session',
      );
    }
  }

  return {
    async scheduleConsultation(
      caller: Caller,
      input: ScheduleInput,
    ): Promise<{ consultation: ConsultationView; created: boolean }> {
      const { principal } = caller;
      const schedule = () =>
        audited(caller, 'consultation.schedule', undefined, async (em, audit) => {
          authorize(principal, 'consultation.schedule');
          assertValidSlot({ start: input.scheduledStart, end: input.scheduledEnd });
          const provider = providers.choose(input.provider, principal.clinicId);
          const found = await em.findOne(
            ConsultationSchema,
            { clinicId: principal.clinicId, appointmentId: input.appointmentId },
            { populate: ['participants'] },
          );
          if (found) {
            audit.resourceId = found.id;
            if (found.doctorId !== input.doctorId || found.patientId !== input.patientId) {
              throw new DomainError(
                'already_exists',
                'the appointment already has a consultation with other participants',
                'appointment_id',
              );
            }
            return { consultation: toView(found), created: false };
          }
          const now = clock.now();
          const created = em.create(ConsultationSchema, {
            id: randomUUID(),
            clinicId: principal.clinicId,
            appointmentId: input.appointmentId,
            doctorId: input.doctorId,
            patientId: input.patientId,
            scheduledStart: input.scheduledStart,
            scheduledEnd: input.scheduledEnd,
            status: 'scheduled',
            provider,
            createdAt: now,
            updatedAt: now,
          });
          for (const [role, userId] of [
            ['doctor', input.doctorId],
            ['patient', input.patientId],
          ] as const) {
            created.participants.add(
              em.create(ParticipantSchema, {
                id: randomUUID(),
                consultation: created,
                clinicId: principal.clinicId,
                userId,
                role,
              }),
            );
          }
          audit.resourceId = created.id;
          await em.flush();
          return { consultation: toView(created), created: true };
        });
      try {
        const result = await schedule();
        if (result.created) {
          logger.info({ consultationId: result.consultation.id }, 'consultation scheduled');
        }
        return result;
      } catch (error) {
        // Another call scheduled the same appointment between our read and our insert:
        // run again, and the existing consultation is the answer.
        if (error instanceof UniqueConstraintViolationException) return schedule();
        throw error;
      }
    },

    async cancelConsultation(
      caller: Caller,
      target: { consultationId: string } | { appointmentId: string },
    ): Promise<ConsultationView> {
      const { principal } = caller;
      const knownId = 'consultationId' in target ? target.consultationId : undefined;
      const action = 'consultation.cancel';
      const { consultation, wasLive } = await audited(
        caller,
        action,
        knownId,
        async (em, audit) => {
          authorize(principal, action);
          const id =
            'consultationId' in target
              ? target.consultationId
              : (
                  await em.findOne(
                    ConsultationSchema,
                    { clinicId: principal.clinicId, appointmentId: target.appointmentId },
                    { fields: ['id'] },
                  )
                )?.id;
          if (!id) throw notFound('consultation');
          audit.resourceId = id;
          const c = await load(em, principal, id, action);
          const t = transition(c.status, 'cancel');
          if (t.changed) {
            const now = clock.now();
            c.status = t.to;
            c.endedAt = now;
            c.endReason = 'cancelled';
            if (c.startedAt) c.durationSeconds = durationSeconds(c.startedAt, now);
            c.updatedAt = now;
            await em.flush();
            const at = timestampFromDate(now);
            addEvent(
              em,
              'video.consultation.cancelled',
              scopeOf(c),
              {
                appointmentId: c.appointmentId,
                consultationId: c.id,
                clinicId: c.clinicId,
                at,
                version: c.version,
              },
              now,
            );
            if (t.from === 'in_progress') {
              addEvent(
                em,
                'video.consultation.ended',
                scopeOf(c),
                {
                  appointmentId: c.appointmentId,
                  consultationId: c.id,
                  sessionId: c.providerSessionId ?? '',
                  durationSeconds: c.durationSeconds ?? 0,
                  reason: toProtoEndReason('cancelled'),
                  at,
                  clinicId: c.clinicId,
                  version: c.version,
                },
                now,
              );
            }
          }
          return { consultation: toView(c), wasLive: t.changed && t.from === 'in_progress' };
        },
      );
      if (wasLive) await endProviderSession(consultation);
      return consultation;
    },

    /** Moves a consultation's window (appointment.rescheduled). Idempotent. */
    async rescheduleConsultation(
      caller: Caller,
      input: { appointmentId: string; scheduledStart: Date; scheduledEnd: Date },
    ): Promise<ConsultationView> {
      const { principal } = caller;
      const action = 'consultation.reschedule';
      return audited(caller, action, undefined, async (em, audit) => {
        authorize(principal, action);
        assertValidSlot({ start: input.scheduledStart, end: input.scheduledEnd });
        const found = await em.findOne(
          ConsultationSchema,
          { clinicId: principal.clinicId, appointmentId: input.appointmentId },
          { fields: ['id'] },
        );
        if (!found) throw notFound('consultation');
        audit.resourceId = found.id;
        const c = await load(em, principal, found.id, action);
        if (FINAL_STATUSES.has(c.status) || c.status === 'in_progress') {
          throw failedPrecondition(
            `cannot move a consultation that is ${c.status.replace('_', ' ')}`,
          );
        }
        const same =
          c.scheduledStart.getTime() === input.scheduledStart.getTime() &&
          c.scheduledEnd.getTime() === input.scheduledEnd.getTime();
        if (!same) {
          c.scheduledStart = input.scheduledStart;
          c.scheduledEnd = input.scheduledEnd;
          c.updatedAt = clock.now();
          await em.flush();
        }
        return toView(c);
      });
    },

    async checkIn(
      caller: Caller,
      consultationId: string,
    ): Promise<{ consultation: ConsultationView; queuePosition: number }> {
      return audited(caller, 'consultation.check_in', consultationId, async (em) => {
        const c = await load(em, caller.principal, consultationId, 'consultation.check_in');
        const now = clock.now();
        const t = transition(c.status, 'check_in');
        assertInsideJoinWindow({ start: c.scheduledStart, end: c.scheduledEnd }, rules, now);
        const patient = participant(c, 'patient');
        const firstCheckIn = !patient.checkedInAt;
        if (firstCheckIn) {
          patient.checkedInAt = now;
          c.status = t.to;
          c.updatedAt = now;
          await em.flush();
        }
        const checkedInAt = patient.checkedInAt ?? now;
        const position = patient.admittedAt ? 0 : await queuePosition(em, c, checkedInAt);
        if (firstCheckIn) {
          addEvent(
            em,
            'video.patient.waiting',
            scopeOf(c),
            {
              appointmentId: c.appointmentId,
              consultationId: c.id,
              patientId: c.patientId,
              doctorId: c.doctorId,
              queuePosition: position,
              clinicId: c.clinicId,
              at: timestampFromDate(now),
            },
            now,
          );
        }
        return { consultation: toView(c), queuePosition: position };
      });
    },

    async listWaitingRoom(caller: Caller, doctorId: string): Promise<WaitingPatientView[]> {
      const { principal } = caller;
      return auditedRead(caller, 'waiting_room.list', undefined, async (em) => {
        authorize(principal, 'waiting_room.list');
        const forDoctor = principal.role === 'doctor' ? principal.userId : doctorId || undefined;
        const waiting = await em.find(
          ParticipantSchema,
          {
            clinicId: principal.clinicId,
            role: 'patient',
            checkedInAt: { $ne: null },
            admittedAt: null,
            consultation: {
              status: { $in: WAITING_STATUSES },
              ...(forDoctor ? { doctorId: forDoctor } : {}),
            },
          },
          { populate: ['consultation'], orderBy: { checkedInAt: 'asc', id: 'asc' } },
        );
        const now = clock.now();
        const positions = new Map<string, number>();
        return waiting.map((p) => {
          const doctor = p.consultation.doctorId;
          const position = (positions.get(doctor) ?? 0) + 1;
          positions.set(doctor, position);
          const checkedInAt = p.checkedInAt!;
          return {
            consultationId: p.consultation.id,
            appointmentId: p.consultation.appointmentId,
            patientId: p.userId,
            doctorId: doctor,
            checkedInAt,
            waitedSeconds: durationSeconds(checkedInAt, now),
            queuePosition: position,
            scheduledStart: p.consultation.scheduledStart,
            admitted: false,
          };
        });
      });
    },

    async admitPatient(caller: Caller, consultationId: string): Promise<ConsultationView> {
      return audited(caller, 'consultation.admit', consultationId, async (em) => {
        const c = await load(em, caller.principal, consultationId, 'consultation.admit');
        if (FINAL_STATUSES.has(c.status)) {
          throw failedPrecondition(
            `cannot admit to a consultation that is ${c.status.replace('_', ' ')}`,
          );
        }
        const patient = participant(c, 'patient');
        if (!patient.checkedInAt) throw failedPrecondition('the patient has not checked in');
        if (!patient.admittedAt) {
          const now = clock.now();
          patient.admittedAt = now;
          c.updatedAt = now; // the admission is a change of the consultation: bump its version
          await em.flush();
        }
        return toView(c);
      });
    },

    async startConsultation(
      caller: Caller,
      consultationId: string,
    ): Promise<{ consultation: ConsultationView; started: boolean }> {
      const { principal } = caller;
      const action = 'consultation.start';
      // Read and check first, call the provider with no transaction open, then commit.
      const before = await auditRefusals(caller, action, consultationId, async () => {
        const c = await load(orm.em.fork(), principal, consultationId, action);
        transition(c.status, 'start');
        return c;
      });
      const session = await ensureProviderSession(before);
      const result = await audited(caller, action, consultationId, async (em) => {
        const c = await load(em, principal, consultationId, action);
        const t = transition(c.status, 'start');
        if (!t.changed) return { consultation: toView(c), started: false };
        const now = clock.now();
        c.status = t.to;
        c.startedAt = now;
        c.provider = session.provider;
        c.providerSessionId = c.providerSessionId ?? session.sessionId;
        c.updatedAt = now;
        await em.flush();
        addEvent(
          em,
          'video.consultation.started',
          scopeOf(c),
          {
            appointmentId: c.appointmentId,
            consultationId: c.id,
            sessionId: c.providerSessionId,
            userId: principal.userId,
            userRole: toProtoRole('doctor'),
            provider: toProtoProvider(c.provider),
            clinicId: c.clinicId,
            at: timestampFromDate(now),
            version: c.version,
          },
          now,
        );
        return { consultation: toView(c), started: true };
      });
      if (result.started) logger.info({ consultationId }, 'consultation started');
      return result;
    },

    async generateToken(caller: Caller, consultationId: string): Promise<JoinToken> {
      const { principal } = caller;
      const action = 'consultation.join';
      const before = await auditRefusals(caller, action, consultationId, async () => {
        const c = await load(orm.em.fork(), principal, consultationId, action);
        checkMayJoin(principal, c);
        return c;
      });
      // The token is issued with no transaction open; its record and event commit after.
      const session = await ensureProviderSession(before);
      const role = callerRole(principal, before);
      const provider = session.provider;
      const expiresAt = joinWindow(
        { start: before.scheduledStart, end: before.scheduledEnd },
        rules,
      ).end;
      const credentials = await providers.get(provider).issueToken({
        sessionId: session.sessionId,
        participantId: participant(before, role).id,
        role,
        expiresAt,
      });
      await audited(caller, action, consultationId, async (em) => {
        const c = await load(em, principal, consultationId, action);
        checkMayJoin(principal, c);
        const now = clock.now();
        if (!c.providerSessionId) {
          c.provider = provider;
          c.providerSessionId = session.sessionId;
          c.updatedAt = now;
        }
        participant(c, role).firstTokenAt ??= now;
        await em.flush();
        addEvent(
          em,
          'video.token.generated',
          scopeOf(c),
          {
            appointmentId: c.appointmentId,
            consultationId: c.id,
            userId: principal.userId,
            userRole: toProtoRole(role),
            provider: toProtoProvider(provider),
            expiresAt: timestampFromDate(credentials.expiresAt),
            clinicId: c.clinicId,
          },
          now,
        );
      });
      return {
        token: credentials.token,
        joinUrl: credentials.joinUrl,
        provider,
        providerSessionId: session.sessionId,
        expiresAt: credentials.expiresAt,
        role,
      };

      /** The join rules: inside the window; a patient only once admitted or started. */
      function checkMayJoin(p: Principal, c: ConsultationEntity): ParticipantRole {
        const role = callerRole(p, c);
        if (FINAL_STATUSES.has(c.status)) {
          throw failedPrecondition(`the consultation is ${c.status.replace('_', ' ')}`);
        }
        assertInsideJoinWindow(
          { start: c.scheduledStart, end: c.scheduledEnd },
          rules,
          clock.now(),
        );
        if (
          role === 'patient' &&
          c.status !== 'in_progress' &&
          !participant(c, 'patient').admittedAt
        ) {
          throw failedPrecondition(
            'the doctor has not admitted the patient or started the consultation yet',
          );
        }
        return role;
      }
    },

    async endConsultation(caller: Caller, consultationId: string): Promise<ConsultationView> {
      const action = 'consultation.end';
      const { consultation, changed } = await audited(
        caller,
        action,
        consultationId,
        async (em) => {
          const c = await load(em, caller.principal, consultationId, action);
          const t = transition(c.status, 'end');
          if (t.changed) {
            const now = clock.now();
            c.status = t.to;
            c.endedAt = now;
            c.durationSeconds = durationSeconds(c.startedAt ?? now, now);
            c.endReason = 'completed';
            c.updatedAt = now;
            await em.flush();
            addEvent(
              em,
              'video.consultation.ended',
              scopeOf(c),
              {
                appointmentId: c.appointmentId,
                consultationId: c.id,
                sessionId: c.providerSessionId ?? '',
                durationSeconds: c.durationSeconds,
                reason: toProtoEndReason('completed'),
                at: timestampFromDate(now),
                clinicId: c.clinicId,
                version: c.version,
              },
              now,
            );
          }
          return { consultation: toView(c), changed: t.changed };
        },
      );
      if (changed) {
        logger.info({ consultationId }, 'consultation ended');
        await endProviderSession(consultation);
      }
      return consultation;
    },

    async getConsultation(caller: Caller, consultationId: string): Promise<ConsultationView> {
      const action = 'consultation.read';
      return auditRefusals(caller, action, consultationId, async () => {
        authorize(caller.principal, action);
        const record = {
          action,
          resourceType: 'consultation',
          resourceId: consultationId,
        } as const;
        const view = await readConsultationAudited(
          orm.em.fork(),
          caller.principal,
          consultationId,
          auditRow(caller, { ...record, outcome: 'allowed' }, clock.now()),
        );
        if (!view) throw notFound('consultation');
        // The statement's WHERE clause is the policy's visibility rule written in SQL; the
        // policy itself has the last word, as after every other load.
        authorize(caller.principal, action, view);
        return view;
      });
    },

    /** A participant consents to recording. Idempotent; audited like every change. */
    async recordConsent(caller: Caller, consultationId: string): Promise<ConsultationView> {
      const action = 'consultation.record_consent';
      return audited(caller, action, consultationId, async (em) => {
        const c = await load(em, caller.principal, consultationId, action);
        const role = callerRole(caller.principal, c);
        if (FINAL_STATUSES.has(c.status)) {
          throw failedPrecondition(`the consultation is ${c.status.replace('_', ' ')}`);
        }
        const me = participant(c, role);
        if (!me.recordingConsentAt) {
          const now = clock.now();
          me.recordingConsentAt = now;
          c.updatedAt = now;
          await em.flush();
        }
        return toView(c);
      });
    },

    /**
     * The doctor starts recording: only in progress, only with every participant's
     * consent, only on a provider that records. Idempotent while recording.
     */
    async startRecording(caller: Caller, consultationId: string): Promise<ConsultationView> {
      const { principal } = caller;
      const action = 'consultation.record';
      const check = (c: ConsultationEntity) => {
        callerRole(principal, c);
        if (c.status !== 'in_progress') {
          throw failedPrecondition('recording needs the consultation to be in progress');
        }
        const missing = missingConsent(c.participants.getItems());
        if (missing.length > 0) {
          throw failedPrecondition(`recording needs the consent of: ${missing.join(', ')}`);
        }
        const recorder = c.provider ? providers.get(c.provider).recording : undefined;
        if (!recorder) {
          throw failedPrecondition(`recording is not available on the ${c.provider} provider`);
        }
        return recorder;
      };
      const before = await auditRefusals(caller, action, consultationId, async () => {
        const c = await load(orm.em.fork(), principal, consultationId, action);
        const recorder = check(c);
        return { c, recorder };
      });
      if (before.c.recordingStatus === 'started') return toView(before.c);
      // The provider call happens with no transaction open.
      const { recordingId } = await before.recorder.start(before.c.providerSessionId ?? '');
      return audited(caller, action, consultationId, async (em) => {
        const c = await load(em, principal, consultationId, action);
        check(c);
        const now = clock.now();
        c.recordingId = recordingId;
        c.recordingStatus = 'started';
        c.updatedAt = now;
        await em.flush();
        addEvent(
          em,
          'video.recording.started',
          scopeOf(c),
          {
            appointmentId: c.appointmentId,
            consultationId: c.id,
            userId: principal.userId,
            provider: toProtoProvider(c.provider),
            clinicId: c.clinicId,
            at: timestampFromDate(now),
          },
          now,
        );
        return toView(c);
      });
    },

    /** The doctor stops the recording. Idempotent. */
    async stopRecording(caller: Caller, consultationId: string): Promise<ConsultationView> {
      const { principal } = caller;
      const action = 'consultation.record';
      const before = await auditRefusals(caller, action, consultationId, async () => {
        const c = await load(orm.em.fork(), principal, consultationId, action);
        callerRole(principal, c);
        return c;
      });
      if (before.recordingStatus !== 'started' || !before.recordingId || !before.provider) {
        return toView(before);
      }
      await providers
        .get(before.provider)
        .recording?.stop(before.providerSessionId ?? '', before.recordingId);
      return audited(caller, action, consultationId, async (em) => {
        const c = await load(em, principal, consultationId, action);
        if (c.recordingStatus === 'started') {
          c.recordingStatus = 'stopped';
          c.updatedAt = clock.now();
          await em.flush();
        }
        return toView(c);
      });
    },

    async reportTechnicalIssue(
      caller: Caller,
      input: {
        consultationId: string;
        issueType: TechnicalIssueKind;
        description: string;
        idempotencyKey: string;
      },
    ): Promise<{ issueId: string; reportedAt: Date }> {
      const { principal } = caller;
      const action = 'consultation.report_issue';
      const report = () =>
        audited(caller, action, input.consultationId, async (em) => {
          const c = await load(em, principal, input.consultationId, action);
          const role = callerRole(principal, c);
          if (input.idempotencyKey !== '') {
            const earlier = await em.findOne(TechnicalIssueSchema, {
              consultation: c,
              reporterId: principal.userId,
              idempotencyKey: input.idempotencyKey,
            });
            if (earlier) return { issueId: earlier.id, reportedAt: earlier.reportedAt };
          }
          if (c.status === 'cancelled') throw failedPrecondition('the consultation is cancelled');
          const issue = em.create(TechnicalIssueSchema, {
            id: randomUUID(),
            consultation: c,
            clinicId: c.clinicId,
            reporterId: principal.userId,
            reporterRole: role,
            issueType: input.issueType,
            description: input.description,
            reportedAt: clock.now(),
            idempotencyKey: input.idempotencyKey || null,
          });
          addEvent(
            em,
            'video.technical.issue.reported',
            scopeOf(c),
            {
              appointmentId: c.appointmentId,
              consultationId: c.id,
              userId: principal.userId,
              issueType: toProtoIssueType(input.issueType),
              description: input.description,
              issueId: issue.id,
              clinicId: c.clinicId,
              at: timestampFromDate(issue.reportedAt),
            },
            issue.reportedAt,
          );
          return { issueId: issue.id, reportedAt: issue.reportedAt };
        });
      return retriedOnDuplicateKey(report);
    },

    async shareMedicalImage(
      caller: Caller,
      input: {
        consultationId: string;
        content: Uint8Array;
        declaredType: string;
        idempotencyKey: string;
      },
    ): Promise<{
      imageId: string;
      contentType: MedicalImageType;
      sizeBytes: number;
      sha256: string;
      sharedAt: Date;
    }> {
      const { principal } = caller;
      const action = 'consultation.share_image';
      const share = () =>
        audited(caller, action, input.consultationId, async (em) => {
          const c = await load(em, principal, input.consultationId, action);
          callerRole(principal, c);
          if (input.idempotencyKey !== '') {
            const earlier = await em.findOne(SharedImageSchema, {
              consultation: c,
              sharedBy: principal.userId,
              idempotencyKey: input.idempotencyKey,
            });
            if (earlier) {
              return {
                imageId: earlier.id,
                contentType: earlier.contentType as MedicalImageType,
                sizeBytes: earlier.sizeBytes,
                sha256: earlier.sha256,
                sharedAt: earlier.sharedAt,
              };
            }
          }
          if (FINAL_STATUSES.has(c.status)) {
            throw failedPrecondition(`the consultation is ${c.status.replace('_', ' ')}`);
          }
          const contentType = checkMedicalImage(
            input.content,
            input.declaredType,
            rules.maxImageBytes,
          );
          const sha256 = createHash('sha256').update(input.content).digest('hex');
          const image = em.create(SharedImageSchema, {
            id: randomUUID(),
            consultation: c,
            clinicId: c.clinicId,
            sharedBy: principal.userId,
            contentType,
            sizeBytes: input.content.length,
            sha256,
            content: Buffer.from(input.content),
            sharedAt: clock.now(),
            idempotencyKey: input.idempotencyKey || null,
          });
          addEvent(
            em,
            'video.image.shared',
            scopeOf(c),
            {
              appointmentId: c.appointmentId,
              consultationId: c.id,
              userId: principal.userId,
              imageId: image.id,
              contentType,
              sizeBytes: image.sizeBytes,
              sha256,
              clinicId: c.clinicId,
              at: timestampFromDate(image.sharedAt),
            },
            image.sharedAt,
          );
          return {
            imageId: image.id,
            contentType,
            sizeBytes: image.sizeBytes,
            sha256,
            sharedAt: image.sharedAt,
          };
        });
      return retriedOnDuplicateKey(share);
    },

    async listHistory(
      caller: Caller,
      query: HistoryQuery,
    ): Promise<{ consultations: ConsultationView[]; nextPageToken: string }> {
      const { principal } = caller;
      return auditedRead(caller, 'history.list', undefined, async (em) => {
        authorize(principal, 'history.list');
        const limit = pageSize(query.pageSize);
        if (query.scheduledFrom && query.scheduledTo && query.scheduledTo < query.scheduledFrom) {
          throw invalidArgument('scheduled_to', 'must not be before scheduled_from');
        }
        const scope = {
          list: 'history',
          filters: [
            principal.clinicId,
            principal.userId,
            principal.role,
            [...query.statuses].sort(),
            query.scheduledFrom?.getTime(),
            query.scheduledTo?.getTime(),
          ],
        } as const;
        const cursor = pageTokens.decode(query.pageToken, scope);

        const where: FilterQuery<ConsultationEntity>[] = [visibleTo(principal)];
        if (query.statuses.length > 0) where.push({ status: { $in: [...query.statuses] } });
        if (query.scheduledFrom) where.push({ scheduledStart: { $gte: query.scheduledFrom } });
        if (query.scheduledTo) where.push({ scheduledStart: { $lt: query.scheduledTo } });
        if (cursor) {
          where.push({
            $or: [
              { scheduledStart: { $lt: cursor.time } },
              { scheduledStart: cursor.time, id: { $lt: cursor.id } },
            ],
          });
        }
        const rows = await em.find(
          ConsultationSchema,
          { $and: where },
          {
            populate: ['participants'],
            orderBy: { scheduledStart: 'desc', id: 'desc' },
            limit: limit + 1,
          },
        );
        const page = rows.slice(0, limit);
        const last = page.at(-1);
        return {
          consultations: page.map(toView),
          nextPageToken:
            rows.length > limit && last
              ? pageTokens.encode({ time: last.scheduledStart, id: last.id }, scope)
              : '',
        };
      });
    },

    async providerStatus(caller: Caller): Promise<ProviderStatusView[]> {
      authorize(caller.principal, 'provider.status');
      return providers.statuses();
    },
  };
}

/** Who an event of this consultation is about. */
/**
 * Runs a use case again when it lost a race on a unique key (two calls with the same
 * idempotency key at once): the second run finds the winner's row and answers it.
 */
async function retriedOnDuplicateKey<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) return run();
    throw error;
  }
}

function scopeOf(c: ConsultationEntity): EventScope {
  return { appointmentId: c.appointmentId, consultationId: c.id, clinicId: c.clinicId };
}

/** The consultations a caller may see at all, as a query filter (see canSee). */
function visibleTo(principal: Principal): FilterQuery<ConsultationEntity> {
  switch (principal.role) {
    case 'patient':
      return { clinicId: principal.clinicId, patientId: principal.userId };
    case 'doctor':
      return { clinicId: principal.clinicId, doctorId: principal.userId };
    default:
      return { clinicId: principal.clinicId };
  }
}

function toView(c: ConsultationEntity): ConsultationView {
  return {
    id: c.id,
    appointmentId: c.appointmentId,
    clinicId: c.clinicId,
    doctorId: c.doctorId,
    patientId: c.patientId,
    scheduledStart: c.scheduledStart,
    scheduledEnd: c.scheduledEnd,
    status: c.status,
    provider: c.provider ?? null,
    providerSessionId: c.providerSessionId ?? null,
    startedAt: c.startedAt ?? null,
    endedAt: c.endedAt ?? null,
    durationSeconds: c.durationSeconds ?? null,
    endReason: c.endReason ?? null,
    version: c.version,
    createdAt: c.createdAt,
    recordingStatus: c.recordingStatus ?? null,
    recordingUrl: c.recordingUrl ?? null,
    participants: c.participants.getItems().map((p) => ({
      userId: p.userId,
      role: p.role,
      checkedInAt: p.checkedInAt ?? null,
      admittedAt: p.admittedAt ?? null,
      firstTokenAt: p.firstTokenAt ?? null,
      firstJoinedAt: p.firstJoinedAt ?? null,
      lastLeftAt: p.lastLeftAt ?? null,
      connectedSeconds: p.connectedSeconds,
      connected: p.connected,
      lastDisconnectReason: p.lastDisconnectReason ?? null,
      recordingConsentAt: p.recordingConsentAt ?? null,
    })),
  };
}
