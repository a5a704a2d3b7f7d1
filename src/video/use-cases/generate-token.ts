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
import type { Caller } from '../audit.js';
import { callerRole, loadConsultation, participant } from '../consultation-access.js';
import { addEvent, eventScope } from '../events.js';
import { toProtoProvider, toProtoRole } from '../proto-enums.js';
import { ensureProviderSession } from '../provider-session.js';
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
 * token time, the session if new) and its event commit after.
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
  await audited(deps, caller, action, consultationId, async (em) => {
    const c = await loadConsultation(em, principal, consultationId, action);
    mayJoin(c);
    const now = deps.clock.now();
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
  });
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
