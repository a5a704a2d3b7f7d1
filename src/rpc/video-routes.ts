import type { ConnectRouter, HandlerContext } from '@connectrpc/connect';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';
import { type Caller, listAuditEntries, type RefusalAuditDeps } from '../video/audit.js';
import type { PageTokens } from '../video/pagination.js';
import {
  fromProtoIssueType,
  fromProtoProvider,
  fromProtoStatus,
  toProtoProvider,
  toProtoRole,
} from '../video/proto-enums.js';
import type { VideoService as VideoUseCases } from '../video/video-service.js';
import { kClientAddress, kPrincipal, kRequestId } from './interceptors.js';
import { fromTimestamp, toProtoConsultation, toTimestamp } from './mappers.js';

/**
 * The VideoService handlers: each one translates the request, calls one use case and
 * translates the answer. Authentication, validation and error mapping happened already
 * in the interceptors.
 */
export function createVideoRoutes(
  video: VideoUseCases,
  auditDeps: RefusalAuditDeps & { readonly pageTokens: PageTokens },
) {
  return (router: ConnectRouter) =>
    router.service(VideoService, {
      async scheduleConsultation(req, ctx) {
        const { consultation, created } = await video.scheduleConsultation(caller(ctx), {
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
        const consultation = await video.cancelConsultation(caller(ctx), target);
        return { consultation: toProtoConsultation(consultation) };
      },

      async checkIn(req, ctx) {
        const { consultation, queuePosition } = await video.checkIn(
          caller(ctx),
          req.consultationId,
        );
        return { consultation: toProtoConsultation(consultation), queuePosition };
      },

      async listWaitingRoom(req, ctx) {
        const patients = await video.listWaitingRoom(caller(ctx), req.doctorId);
        return {
          patients: patients.map((p) => ({
            ...p,
            checkedInAt: toTimestamp(p.checkedInAt),
            scheduledStart: toTimestamp(p.scheduledStart),
          })),
        };
      },

      async admitPatient(req, ctx) {
        const consultation = await video.admitPatient(caller(ctx), req.consultationId);
        return { consultation: toProtoConsultation(consultation) };
      },

      async startConsultation(req, ctx) {
        const { consultation, started } = await video.startConsultation(
          caller(ctx),
          req.consultationId,
        );
        return { consultation: toProtoConsultation(consultation), started };
      },

      async generateToken(req, ctx) {
        const token = await video.generateToken(caller(ctx), req.consultationId);
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
        const consultation = await video.endConsultation(caller(ctx), req.consultationId);
        return { consultation: toProtoConsultation(consultation) };
      },

      async getConsultationStatus(req, ctx) {
        const consultation = await video.getConsultation(caller(ctx), req.consultationId);
        return { consultation: toProtoConsultation(consultation) };
      },

      async reportTechnicalIssue(req, ctx) {
        const issue = await video.reportTechnicalIssue(caller(ctx), {
          consultationId: req.consultationId,
          issueType: fromProtoIssueType(req.issueType),
          description: req.description,
          idempotencyKey: req.idempotencyKey,
        });
        return { issueId: issue.issueId, reportedAt: toTimestamp(issue.reportedAt) };
      },

      async shareMedicalImage(req, ctx) {
        const image = await video.shareMedicalImage(caller(ctx), {
          consultationId: req.consultationId,
          content: req.content,
          declaredType: req.contentType,
          idempotencyKey: req.idempotencyKey,
        });
        return { ...image, sharedAt: toTimestamp(image.sharedAt) };
      },

      async listConsultationHistory(req, ctx) {
        const page = await video.listHistory(caller(ctx), {
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
        const statuses = await video.providerStatus(caller(ctx));
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
        const consultation = await video.recordConsent(caller(ctx), req.consultationId);
        return { consultation: toProtoConsultation(consultation) };
      },

      async startRecording(req, ctx) {
        const consultation = await video.startRecording(caller(ctx), req.consultationId);
        return { consultation: toProtoConsultation(consultation) };
      },

      async stopRecording(req, ctx) {
        const consultation = await video.stopRecording(caller(ctx), req.consultationId);
        return { consultation: toProtoConsultation(consultation) };
      },

      async listAuditEntries(req, ctx) {
        const page = await listAuditEntries(auditDeps, caller(ctx), {
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
