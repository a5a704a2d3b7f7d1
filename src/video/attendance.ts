import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { attendanceTotals, type DisconnectReason } from '../domain/attendance.js';
import { durationSeconds, type ProviderName } from '../domain/consultation.js';
import type { Clock } from '../domain/ports.js';
import {
  type ConsultationEntity,
  ConsultationSchema,
  type ParticipantEntity,
  type ProviderConnectionEntity,
  ProviderConnectionSchema,
} from '../persistence/entities.js';
import { addAuditEntry } from './audit.js';
import { closeConsultation } from './close-consultation.js';
import { addEvent, eventScope } from './events.js';
import { recordFirstDelivery } from './inbox.js';
import { toProtoDisconnectReason, toProtoRole } from './proto-enums.js';

/** A participant's connection began or ended, as a provider reports it. */
export interface ConnectionEvent {
  /** Identifies this report, so a repeated webhook is applied once. */
  readonly eventId: string;
  readonly provider: ProviderName;
  readonly sessionId: string;
  readonly connectionId: string;
  /** The opaque participant id the service gave the provider with the token. */
  readonly participantId: string | undefined;
  readonly kind: 'joined' | 'left';
  readonly at: Date;
  /** For `left`: when that connection began, if the provider says. */
  readonly joinedAt?: Date | undefined;
  readonly reason?: DisconnectReason | undefined;
}

/** The provider's recording of the session changed state. */
export interface RecordingChangedEvent {
  readonly eventId: string;
  readonly provider: ProviderName;
  readonly sessionId: string;
  readonly recordingId: string;
  readonly status: 'started' | 'stopped' | 'ready' | 'failed';
  readonly url: string | undefined;
  readonly at: Date;
}

/** The provider closed the whole session. */
export interface SessionClosedEvent {
  readonly eventId: string;
  readonly provider: ProviderName;
  readonly sessionId: string;
  readonly at: Date;
}

const connectionFacts = (
  c: ConsultationEntity,
  participant: ParticipantEntity,
  connection: ProviderConnectionEntity,
  at: Date,
) => ({
  ...eventScope(c),
  userId: participant.userId,
  userRole: toProtoRole(participant.role),
  connectionId: connection.connectionId,
  at: timestampFromDate(at),
});

export type AttendanceOutcome = 'applied' | 'duplicate' | 'unknown-session' | 'unknown-participant';

export type Attendance = ReturnType<typeof createAttendance>;

/**
 * Attendance: who was connected to the video session, when, and for how long. Reports
 * come from provider webhooks (lossy, unordered, repeated) and from the reconciler;
 * each is applied once, and the participant's totals are recomputed from every
 * connection known so far, so order and gaps do not matter.
 */
export function createAttendance(deps: { orm: MikroORM; clock: Clock; logger: Logger }) {
  const { orm, clock } = deps;

  /**
   * Takes the consultation's row lock, so reports of one session are applied one after
   * another whichever copy receives them, then records the report's id: false when it
   * was applied before.
   */
  async function firstTime(
    em: EntityManager,
    event: { eventId: string; provider: ProviderName; sessionId: string },
  ) {
    await em.execute(
      'select id from consultation where provider = ? and provider_session_id = ? for update',
      [event.provider, event.sessionId],
    );
    // The provider is the source: its reports and the reconciler's repairs of them.
    const source = `webhook:${event.provider}`;
    return recordFirstDelivery(em, { source, eventId: event.eventId, topic: source }, clock.now());
  }

  function audit(
    em: EntityManager,
    c: ConsultationEntity,
    provider: ProviderName,
    action: 'consultation.attendance' | 'consultation.end',
  ) {
    addAuditEntry(
      em,
      { principal: { userId: `provider:${provider}`, role: 'service', clinicId: c.clinicId } },
      { action, resourceType: 'consultation', resourceId: c.id, outcome: 'allowed' },
      clock.now(),
    );
  }

  /** `video.participant.joined` for a connection, once: the caller checks it is the first report. */
  function announceJoin(
    em: EntityManager,
    c: ConsultationEntity,
    participant: ParticipantEntity,
    connection: ProviderConnectionEntity,
    at: Date,
  ) {
    addEvent(
      em,
      'video.participant.joined',
      eventScope(c),
      connectionFacts(c, participant, connection, at),
      at,
    );
  }

  /** `video.participant.left`, with the reason and how long the connection lasted. */
  function announceLeave(
    em: EntityManager,
    c: ConsultationEntity,
    participant: ParticipantEntity,
    connection: ProviderConnectionEntity,
    at: Date,
  ) {
    addEvent(
      em,
      'video.participant.left',
      eventScope(c),
      {
        ...connectionFacts(c, participant, connection, at),
        reason: toProtoDisconnectReason(connection.reason ?? 'unknown'),
        durationSeconds: connection.joinedAt ? durationSeconds(connection.joinedAt, at) : 0,
      },
      at,
    );
  }

  /** The consultation of the provider session a report is about, with its participants. */
  function sessionConsultation(
    em: EntityManager,
    event: { provider: ProviderName; sessionId: string },
  ) {
    return em.findOne(
      ConsultationSchema,
      { provider: event.provider, providerSessionId: event.sessionId },
      { populate: ['participants'] },
    );
  }

  async function recomputeTotals(em: EntityManager, participant: ParticipantEntity) {
    // In one order whatever order the reports came in: ties (two connections ending in the
    // same millisecond) resolve the same way every time.
    const connections = await em.find(
      ProviderConnectionSchema,
      { participant },
      { orderBy: { connectionId: 'asc' } },
    );
    const totals = attendanceTotals(
      connections.map((c) => ({
        joinedAt: c.joinedAt ?? null,
        leftAt: c.leftAt ?? null,
        reason: c.reason ?? null,
      })),
    );
    participant.firstJoinedAt = totals.firstJoinedAt;
    participant.lastLeftAt = totals.lastLeftAt;
    participant.connectedSeconds = totals.connectedSeconds;
    participant.connected = totals.connected;
    participant.lastDisconnectReason = totals.lastReason;
  }

  return {
    async recordConnection(event: ConnectionEvent): Promise<AttendanceOutcome> {
      return orm.em.fork().transactional(async (em) => {
        if (!(await firstTime(em, event))) return 'duplicate';
        const c = await sessionConsultation(em, event);
        if (!c) return 'unknown-session';
        const key = { provider: event.provider, connectionId: event.connectionId };
        const existing = await em.findOne(ProviderConnectionSchema, key);
        // A known connection knows its participant; a new one names it in its data.
        const participantId = existing?.participant.id ?? event.participantId;
        const participant = c.participants.getItems().find((p) => p.id === participantId);
        if (!participant) return 'unknown-participant';
        const connection =
          existing ??
          em.create(ProviderConnectionSchema, {
            id: randomUUID(),
            consultation: c,
            participant,
            clinicId: c.clinicId,
            ...key,
          });
        // A connection is announced once per transition; later reports of the same
        // transition (a webhook after the reconciler's repair, or the other way round)
        // only make its times more exact.
        if (event.kind === 'joined') {
          const first = !connection.joinedAt;
          if (!connection.joinedAt || event.at < connection.joinedAt)
            connection.joinedAt = event.at;
          if (first) announceJoin(em, c, participant, connection, event.at);
        } else {
          const first = !connection.leftAt;
          // The reconciler sees a leave after it happened, so the earliest report is the best.
          if (!connection.leftAt || event.at < connection.leftAt) connection.leftAt = event.at;
          if (!connection.joinedAt && event.joinedAt) {
            // The leave came first (the join report is late or lost) and says when it began.
            connection.joinedAt = event.joinedAt;
            announceJoin(em, c, participant, connection, event.joinedAt);
          }
          // The provider's own reason beats one inferred from a closed session or a gap.
          if (event.reason && event.reason !== 'unknown') connection.reason = event.reason;
          else if (first) connection.reason = 'unknown';
          if (first) announceLeave(em, c, participant, connection, event.at);
        }
        // Who is connected is part of the consultation its watchers see: bump its version.
        c.updatedAt = clock.now();
        await em.flush();
        await recomputeTotals(em, participant);
        audit(em, c, event.provider, 'consultation.attendance');
        return 'applied';
      });
    },

    /** The recording's state as the provider reports it; `ready` announces its URL. */
    async recordingChanged(event: RecordingChangedEvent): Promise<AttendanceOutcome> {
      return orm.em.fork().transactional(async (em) => {
        if (!(await firstTime(em, event))) return 'duplicate';
        const c = await em.findOne(ConsultationSchema, {
          provider: event.provider,
          providerSessionId: event.sessionId,
        });
        if (!c) return 'unknown-session';
        // A late `started` or `stopped` never takes a ready recording back.
        if (c.recordingStatus === 'ready' && event.status !== 'ready') return 'applied';
        c.recordingId ??= event.recordingId;
        c.recordingStatus = event.status;
        if (event.url) c.recordingUrl = event.url;
        c.updatedAt = clock.now();
        await em.flush();
        if (event.status === 'ready' && c.recordingUrl) {
          addEvent(
            em,
            'video.recording.ready',
            eventScope(c),
            { ...eventScope(c), recordingUrl: c.recordingUrl, at: timestampFromDate(event.at) },
            event.at,
          );
        }
        audit(em, c, event.provider, 'consultation.attendance');
        return 'applied';
      });
    },

    /** The provider closed the session: a consultation still in progress ends here. */
    async sessionClosed(event: SessionClosedEvent): Promise<AttendanceOutcome> {
      return orm.em.fork().transactional(async (em) => {
        if (!(await firstTime(em, event))) return 'duplicate';
        const c = await sessionConsultation(em, event);
        if (!c) return 'unknown-session';
        // Connections still open ended with the session.
        const open = await em.find(ProviderConnectionSchema, { consultation: c, leftAt: null });
        const byId = new Map(c.participants.getItems().map((p) => [p.id, p]));
        for (const connection of open) {
          connection.leftAt = event.at;
          connection.reason = 'session_closed';
          const participant = byId.get(connection.participant.id);
          if (participant) announceLeave(em, c, participant, connection, event.at);
        }
        await em.flush();
        for (const participant of c.participants.getItems()) await recomputeTotals(em, participant);
        // Either way a new version: the end's, or the attendance change's alone.
        if (c.status === 'in_progress') {
          await closeConsultation(em, c, 'provider_closed', event.at);
          audit(em, c, event.provider, 'consultation.end');
        } else {
          c.updatedAt = clock.now();
          audit(em, c, event.provider, 'consultation.attendance');
        }
        return 'applied';
      });
    },
  };
}
