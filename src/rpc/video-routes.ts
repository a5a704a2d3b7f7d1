import type { ConnectRouter, HandlerContext } from '@connectrpc/connect';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';
import type { Caller } from '../video/audit.js';
import {
  fromProtoIssueType,
  fromProtoProvider,
  fromProtoStatus,
  toProtoProvider,
  toProtoRole,
} from '../video/proto-enums.js';
import type { UseCaseDeps } from '../video/use-case.js';
import { admitPatient } from '../video/use-cases/admit-patient.js';
import { cancelConsultation } from '../video/use-cases/cancel-consultation.js';
import { checkIn } from '../video/use-cases/check-in.js';
import { endConsultation } from '../video/use-cases/end-consultation.js';
import { generateToken } from '../video/use-cases/generate-token.js';
import { getConsultationStatus } from '../video/use-cases/get-consultation-status.js';
import { getProviderStatus } from '../video/use-cases/get-provider-status.js';
import { listAuditEntries } from '../video/use-cases/list-audit-entries.js';
import { listConsultationHistory } from '../video/use-cases/list-consultation-history.js';
import { listWaitingRoom } from '../video/use-cases/list-waiting-room.js';
import { recordConsent } from '../video/use-cases/record-consent.js';
import { reportTechnicalIssue } from '../video/use-cases/report-technical-issue.js';
import { scheduleConsultation } from '../video/use-cases/schedule-consultation.js';
import { shareMedicalImage } from '../video/use-cases/share-medical-image.js';
import { startConsultation } from '../video/use-cases/start-consultation.js';
import { startRecording } from '../video/use-cases/start-recording.js';
import { stopRecording } from '../video/use-cases/stop-recording.js';
import { watchConsultation } from '../video/use-cases/watch-consultation.js';
import { watchWaitingRoom } from '../video/use-cases/watch-waiting-room.js';
import { kClientAddress, kPrincipal, kRequestId } from './context.js';
import { mappedStream } from './mapped-stream.js';
import {
  fromTimestamp,
  toProtoConsultation,
  toProtoConsultationUpdate,
  toProtoWaitingPatient,
  toProtoWaitingRoomUpdate,
  toTimestamp,
} from './mappers.js';

/**
 * The VideoService handlers: each one translates the request, calls one use case and
 * translates the answer. Authentication, validation and error mapping happened already
 * in the interceptors.
 */
export function createVideoRoutes(deps: UseCaseDeps) {
  return (router: ConnectRouter) =>
    router.service(VideoService, {
      async scheduleConsultation(req, ctx) {
        const { consultation, created } = await scheduleConsultation(deps, caller(ctx), {
          appointmentId: req.appointmentId,
          doctorId: req.doctorId,
          patientId: req.patientId,
          scheduledStart: fromTimestamp(req.scheduledStart)!,
          scheduledEnd: fromTimestamp(req.scheduledEnd)!,
          provider: fromProtoProvider(req.provider),
        });
        return { consultation: toProtoConsultation(consultation), created };
      },

      async cancelConsultation(req, ctx) {
        const target =
          req.target.case === 'appointmentId'
            ? { appointmentId: req.target.value }
            : { consultationId: req.target.value ?? '' };
        const consultation = await cancelConsultation(deps, caller(ctx), target);
        return { consultation: toProtoConsultation(consultation) };
      },

      async checkIn(req, ctx) {
        const { consultation, queuePosition } = await checkIn(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation), queuePosition };
      },

      async listWaitingRoom(req, ctx) {
        const patients = await listWaitingRoom(deps, caller(ctx), req);
        return { patients: patients.map(toProtoWaitingPatient) };
      },

      async admitPatient(req, ctx) {
        const consultation = await admitPatient(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation) };
      },

      async startConsultation(req, ctx) {
        const { consultation, started } = await startConsultation(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation), started };
      },

      async generateToken(req, ctx) {
        const token = await generateToken(deps, caller(ctx), req);
        return {
          token: token.token,
          joinUrl: token.joinUrl,
          provider: toProtoProvider(token.provider),
          providerSessionId: token.providerSessionId,
          expiresAt: toTimestamp(token.expiresAt),
          role: toProtoRole(token.role),
        };
      },

      async endConsultation(req, ctx) {
        const consultation = await endConsultation(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation) };
      },

      watchWaitingRoom: (req, ctx) =>
        mappedStream(
          watchWaitingRoom(deps, caller(ctx), req, ctx.signal),
          toProtoWaitingRoomUpdate,
        ),

      watchConsultation: (req, ctx) =>
        mappedStream(
          watchConsultation(deps, caller(ctx), req, ctx.signal),
          toProtoConsultationUpdate,
        ),

      async getConsultationStatus(req, ctx) {
        const consultation = await getConsultationStatus(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation) };
      },

      async reportTechnicalIssue(req, ctx) {
        const issue = await reportTechnicalIssue(deps, caller(ctx), {
          consultationId: req.consultationId,
          issueType: fromProtoIssueType(req.issueType),
          description: req.description,
          idempotencyKey: req.idempotencyKey,
        });
        return { issueId: issue.issueId, reportedAt: toTimestamp(issue.reportedAt) };
      },

      async shareMedicalImage(req, ctx) {
        const image = await shareMedicalImage(deps, caller(ctx), {
          consultationId: req.consultationId,
          content: req.content,
          declaredType: req.contentType,
          idempotencyKey: req.idempotencyKey,
        });
        return { ...image, sharedAt: toTimestamp(image.sharedAt) };
      },

      async listConsultationHistory(req, ctx) {
        const page = await listConsultationHistory(deps, caller(ctx), {
          statuses: req.statuses.map(fromProtoStatus),
          scheduledFrom: fromTimestamp(req.scheduledFrom),
          scheduledTo: fromTimestamp(req.scheduledTo),
          pageSize: req.pageSize,
          pageToken: req.pageToken,
        });
        return {
          consultations: page.consultations.map(toProtoConsultation),
          nextPageToken: page.nextPageToken,
        };
      },

      async getProviderStatus(_req, ctx) {
        const statuses = await getProviderStatus(deps, caller(ctx));
        return {
          providers: statuses.map((s) => ({
            provider: toProtoProvider(s.name),
            configured: s.configured,
            healthy: s.healthy,
            isDefault: s.isDefault,
            detail: s.detail,
            circuitState: s.circuitState,
            lastError: s.lastError,
            latencyMs: s.latencyMs,
          })),
        };
      },

      async recordConsent(req, ctx) {
        const consultation = await recordConsent(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation) };
      },

      async startRecording(req, ctx) {
        const consultation = await startRecording(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation) };
      },

      async stopRecording(req, ctx) {
        const consultation = await stopRecording(deps, caller(ctx), req);
        return { consultation: toProtoConsultation(consultation) };
      },

      async listAuditEntries(req, ctx) {
        const page = await listAuditEntries(deps, caller(ctx), {
          actorId: req.actorId,
          resourceId: req.resourceId,
          action: req.action,
          from: fromTimestamp(req.from),
          to: fromTimestamp(req.to),
          pageSize: req.pageSize,
          pageToken: req.pageToken,
        });
        return {
          entries: page.entries.map((e) => ({
            id: e.id,
            at: toTimestamp(e.at),
            actorId: e.actorId,
            actorRole: e.actorRole,
            clinicId: e.clinicId,
            action: e.action,
            resourceType: e.resourceType,
            resourceId: e.resourceId ?? '',
            outcome: e.outcome,
            requestId: e.requestId ?? '',
            clientAddress: e.clientAddress ?? '',
            userAgent: e.userAgent ?? '',
          })),
          nextPageToken: page.nextPageToken,
        };
      },
    });
}

/** The authenticated caller and where the call came from, for the use cases' audit. */
function caller(ctx: HandlerContext): Caller {
  const principal = ctx.values.get(kPrincipal);
  // The auth interceptor runs before every VideoService handler; no principal is a bug.
  if (!principal) throw new Error('no authenticated principal on a VideoService call');
  return {
    principal,
    requestId: ctx.values.get(kRequestId),
    clientAddress: ctx.values.get(kClientAddress),
    userAgent: ctx.requestHeader.get('user-agent') ?? undefined,
  };
}
