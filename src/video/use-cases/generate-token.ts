import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Principal } from '../../domain/access.js';
import {
  assertInsideJoinWindow,
  FINAL_STATUSES,
  joinWindow,
  type ParticipantRole,
  type ProviderName,
} from '../../domain/consultation.js';
import { failedPrecondition } from '../../domain/errors.js';
import type { ConsultationEntity } from '../../persistence/entities.js';
import { auditRow, type Caller } from '../audit.js';
import { callerRole, loadConsultation, participant } from '../consultation-access.js';
import { addOutboxRow, eventScope, outboxRow } from '../events.js';
import { toProtoProvider, toProtoRole } from '../proto-enums.js';
import { ensureProviderSession } from '../provider-session.js';
import { recordTokenAtVersion } from '../token-record.js';
import { audited, checkBeforeProviderCall, type UseCaseDeps } from '../use-case.js';

export interface JoinToken {
  readonly token: string;
  readonly joinUrl: string;
  readonly provider: ProviderName;
  readonly providerSessionId: string;
  readonly expiresAt: Date;
  readonly role: ParticipantRole;
}

/**
 * GenerateToken: a participant's join token for the provider session, valid until the
 * join window closes. The token is issued with no transaction open; its record (first
 * token time, the session if new), its audit entry and its event commit after, in one
 * statement when the consultation did not change meanwhile (two round trips in all: the
 * read with its participants, the record).
 */
export async function generateToken(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<JoinToken> {
  const { principal } = caller;
  const { consultationId } = request;
  const action = 'consultation.join';
  const mayJoin = (c: ConsultationEntity) => checkMayJoin(deps, principal, c);
  const { consultation: before } = await checkBeforeProviderCall(
    deps,
    caller,
    action,
    consultationId,
    mayJoin,
  );
  const session = await ensureProviderSession(deps.providers, before);
  const role = callerRole(principal, before);
  const { provider } = session;
  const expiresAt = joinWindow(
    { start: before.scheduledStart, end: before.scheduledEnd },
    deps.rules,
  ).end;
  const credentials = await deps.providers.get(provider).issueToken({
    sessionId: session.sessionId,
    participantId: participant(before, role).id,
    role,
    expiresAt,
  });
  const now = deps.clock.now();
  const tokenEvent = (c: { id: string; appointmentId: string; clinicId: string }) =>
    outboxRow(
      'video.token.generated',
      eventScope(c),
      {
        ...eventScope(c),
        userId: principal.userId,
        userRole: toProtoRole(role),
        provider: toProtoProvider(provider),
        expiresAt: timestampFromDate(credentials.expiresAt),
      },
      now,
    );
  // The common case in one statement: nothing changed since the checks above.
  const recorded = await recordTokenAtVersion(deps.orm.em.fork(), {
    consultationId,
    version: before.version,
    newSession: before.providerSessionId ? undefined : session,
    participantId: participant(before, role).id,
    at: now,
    audit: auditRow(
      caller,
      { action, resourceType: 'consultation', outcome: 'allowed', resourceId: consultationId },
      now,
    ),
    event: tokenEvent(before),
  });
  if (recorded) deps.outbox?.committed();
  else {
    // It changed: load and check it again, and record the token on what it is now.
    await audited(deps, caller, action, consultationId, async (em) => {
      const c = await loadConsultation(em, principal, consultationId, action);
      mayJoin(c);
      if (!c.providerSessionId) {
        c.provider = provider;
        c.providerSessionId = session.sessionId;
        c.updatedAt = now;
      }
      participant(c, role).firstTokenAt ??= now;
      addOutboxRow(em, tokenEvent(c));
    });
  }
  return {
    token: credentials.token,
    joinUrl: credentials.joinUrl,
    provider,
    providerSessionId: session.sessionId,
    expiresAt: credentials.expiresAt,
    role,
  };
}

/** The join rules: inside the window; a patient only once admitted or started. */
function checkMayJoin(deps: UseCaseDeps, p: Principal, c: ConsultationEntity): ParticipantRole {
  const role = callerRole(p, c);
  if (FINAL_STATUSES.has(c.status)) {
    throw failedPrecondition(`the consultation is ${c.status.replace('_', ' ')}`);
  }
  assertInsideJoinWindow(
    { start: c.scheduledStart, end: c.scheduledEnd },
    deps.rules,
    deps.clock.now(),
  );
  if (role === 'patient' && c.status !== 'in_progress' && !participant(c, 'patient').admittedAt) {
    throw failedPrecondition(
      'the doctor has not admitted the patient or started the consultation yet',
    );
  }
  return role;
}
