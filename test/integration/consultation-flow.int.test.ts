import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConsultationStatus,
  EndReason,
  ParticipantRole,
  Provider,
} from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { DEVELOPMENT_JITSI_SECRET } from '../../src/config.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, codeOf, slot, type VideoClient, videoClient } from '../support/clients.js';
import { serverForSeveralCopies } from '../support/database.js';
import { jpeg, png } from '../support/images.js';

/**
 * The consultation's story through the running server on a real database: scheduling,
 * the waiting room, tokens, start and end, reports, images, history, and the ownership
 * rules, each through a real Connect client.
 */
let t: TestApp;
let service: VideoClient;
const as = (role: Parameters<TestApp['token']>[0], user: string, clinic?: string) =>
  videoClient(t.baseUrl, t.token(role, user, clinic));

beforeAll(async () => {
  t = await startTestApp();
  service = as('service', 'appointments-service');
});
afterAll(async () => {
  await t?.stop();
});

async function schedule(minutesFromNow = 5, doctor = 'doc-1', patient = 'pat-1') {
  const res = await service.scheduleConsultation({
    appointmentId: appointmentId(),
    doctorId: doctor,
    patientId: patient,
    ...slot(minutesFromNow),
  });
  return res.consultation!;
}

describe('scheduling', () => {
  it('creates a consultation once per appointment', async () => {
    const request = {
      appointmentId: appointmentId(),
      doctorId: 'doc-1',
      patientId: 'pat-1',
      ...slot(60),
    };
    const first = await service.scheduleConsultation(request);
    const again = await service.scheduleConsultation(request);
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.consultation?.id).toBe(first.consultation?.id);
    expect(first.consultation).toMatchObject({
      status: ConsultationStatus.SCHEDULED,
      clinicId: 'clinic-1',
      provider: Provider.JITSI,
      version: 1,
    });
    expect(first.consultation?.participants.map((p) => p.role).sort()).toEqual(
      [ParticipantRole.PATIENT, ParticipantRole.DOCTOR].sort(),
    );
  });

  it('answers one consultation to concurrent schedules of one appointment', async () => {
    const request = {
      appointmentId: appointmentId(),
      doctorId: 'doc-1',
      patientId: 'pat-1',
      ...slot(60),
    };
    const results = await Promise.all(
      Array.from({ length: 6 }, () => service.scheduleConsultation(request)),
    );
    expect(new Set(results.map((r) => r.consultation?.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });

  it('refuses the same appointment with other participants', async () => {
    const request = {
      appointmentId: appointmentId(),
      doctorId: 'doc-1',
      patientId: 'pat-1',
      ...slot(60),
    };
    await service.scheduleConsultation(request);
    expect(await codeOf(service.scheduleConsultation({ ...request, patientId: 'pat-9' }))).toBe(
      Code.AlreadyExists,
    );
  });

  it('is for the service and clinic admins only', async () => {
    const request = {
      appointmentId: appointmentId(),
      doctorId: 'doc-1',
      patientId: 'pat-1',
      ...slot(60),
    };
    expect(await codeOf(as('doctor', 'doc-1').scheduleConsultation(request))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(as('clinic_admin', 'admin-1').scheduleConsultation(request))).toBe('ok');
  });

  it('names the wrong field of a bad request', async () => {
    const error = await service
      .scheduleConsultation({
        appointmentId: 'bad id with spaces',
        doctorId: 'd',
        patientId: 'p',
        ...slot(5),
      })
      .catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toMatch(/^appointment_id: /);
    const backwards = { ...slot(5) };
    const swapped = {
      scheduledStart: backwards.scheduledEnd,
      scheduledEnd: backwards.scheduledStart,
    };
    const err2 = await service
      .scheduleConsultation({
        appointmentId: appointmentId(),
        doctorId: 'd',
        patientId: 'p',
        ...swapped,
      })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err2 as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err2 as ConnectError).rawMessage).toMatch(/^scheduled_end: /);
  });

  it('cancels by appointment id, idempotently', async () => {
    const request = {
      appointmentId: appointmentId(),
      doctorId: 'doc-1',
      patientId: 'pat-1',
      ...slot(60),
    };
    await service.scheduleConsultation(request);
    const target = { case: 'appointmentId' as const, value: request.appointmentId };
    const first = await service.cancelConsultation({ target });
    const again = await service.cancelConsultation({ target });
    expect(first.consultation?.status).toBe(ConsultationStatus.CANCELLED);
    expect(first.consultation?.endReason).toBe(EndReason.CANCELLED);
    expect(again.consultation?.version).toBe(first.consultation?.version);
  });
});

describe('waiting room and joining', () => {
  it('runs a whole consultation', async () => {
    const c = await schedule(5, 'doc-flow', 'pat-flow');
    const doctor = as('doctor', 'doc-flow');
    const patient = as('patient', 'pat-flow');

    // The patient may not join before being admitted or before the doctor starts.
    expect(await codeOf(patient.generateToken({ consultationId: c.id }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(doctor.admitPatient({ consultationId: c.id }))).toBe(
      Code.FailedPrecondition,
    );

    const checkIn = await patient.checkIn({ consultationId: c.id });
    expect(checkIn.queuePosition).toBe(1);
    expect(checkIn.consultation?.status).toBe(ConsultationStatus.WAITING);
    expect((await patient.checkIn({ consultationId: c.id })).queuePosition).toBe(1);

    const room = await doctor.listWaitingRoom({});
    expect(room.patients).toHaveLength(1);
    expect(room.patients[0]).toMatchObject({
      consultationId: c.id,
      patientId: 'pat-flow',
      queuePosition: 1,
    });

    const admitted = await doctor.admitPatient({ consultationId: c.id });
    expect(admitted.consultation?.version).toBeGreaterThan(checkIn.consultation!.version);
    expect((await doctor.listWaitingRoom({})).patients).toHaveLength(0);

    const patientToken = await patient.generateToken({ consultationId: c.id });
    expect(patientToken.role).toBe(ParticipantRole.PATIENT);
    expect(patientToken.provider).toBe(Provider.JITSI);
    expect(patientToken.joinUrl).toBe(
      `https://meet.jitsi.localhost/${patientToken.providerSessionId}?jwt=${patientToken.token}`,
    );
    const claims = jwt.verify(patientToken.token, DEVELOPMENT_JITSI_SECRET) as jwt.JwtPayload;
    expect(claims.room).toBe(patientToken.providerSessionId);
    // Never past the end of the slot plus the grace period (15 minutes by default).
    const windowEnd = timestampDate(c.scheduledEnd!).getTime() + 15 * 60_000;
    expect(timestampDate(patientToken.expiresAt!).getTime()).toBeLessThanOrEqual(windowEnd);
    expect(claims.exp! * 1000).toBeLessThanOrEqual(windowEnd);
    expect(JSON.stringify(claims)).not.toContain('pat-flow');

    const doctorToken = await doctor.generateToken({ consultationId: c.id });
    expect(doctorToken.role).toBe(ParticipantRole.DOCTOR);
    expect((jwt.decode(doctorToken.token) as jwt.JwtPayload).moderator).toBe(true);
    expect(doctorToken.providerSessionId).toBe(patientToken.providerSessionId);

    const started = await doctor.startConsultation({ consultationId: c.id });
    expect(started.started).toBe(true);
    expect(started.consultation?.status).toBe(ConsultationStatus.IN_PROGRESS);
    const again = await doctor.startConsultation({ consultationId: c.id });
    expect(again.started).toBe(false);
    expect(again.consultation?.version).toBe(started.consultation?.version);

    const issue = await patient.reportTechnicalIssue({
      consultationId: c.id,
      issueType: TechnicalIssueType.AUDIO,
      description: 'I cannot hear the doctor',
    });
    expect(issue.issueId).toMatch(/^[0-9a-f-]{36}$/);

    const image = await patient.shareMedicalImage({ consultationId: c.id, content: png() });
    expect(image).toMatchObject({ contentType: 'image/png', sizeBytes: png().length });
    expect(image.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(
      await codeOf(
        patient.shareMedicalImage({
          consultationId: c.id,
          content: jpeg(),
          contentType: 'image/png',
        }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(
      await codeOf(
        patient.shareMedicalImage({
          consultationId: c.id,
          content: new TextEncoder().encode('not an image'),
        }),
      ),
    ).toBe(Code.InvalidArgument);

    // Only the doctor ends it; ending twice changes nothing.
    expect(await codeOf(patient.endConsultation({ consultationId: c.id }))).toBe(
      Code.PermissionDenied,
    );
    const ended = await doctor.endConsultation({ consultationId: c.id });
    expect(ended.consultation?.status).toBe(ConsultationStatus.ENDED);
    expect(ended.consultation?.endReason).toBe(EndReason.COMPLETED);
    expect(ended.consultation?.endedAt).toBeDefined();
    const endedAgain = await doctor.endConsultation({ consultationId: c.id });
    expect(endedAgain.consultation?.version).toBe(ended.consultation?.version);
    expect(endedAgain.consultation?.durationSeconds).toBe(ended.consultation?.durationSeconds);

    expect(await codeOf(patient.generateToken({ consultationId: c.id }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(doctor.startConsultation({ consultationId: c.id }))).toBe(
      Code.FailedPrecondition,
    );
    const status = await patient.getConsultationStatus({ consultationId: c.id });
    expect(status.consultation?.status).toBe(ConsultationStatus.ENDED);
  });

  it('lets the patient join once the doctor has started, without admission', async () => {
    const c = await schedule(5, 'doc-2', 'pat-2');
    await as('doctor', 'doc-2').startConsultation({ consultationId: c.id });
    const token = await as('patient', 'pat-2').generateToken({ consultationId: c.id });
    expect(token.role).toBe(ParticipantRole.PATIENT);
  });

  it('opens check-in only inside the join window', async () => {
    const later = await schedule(120, 'doc-3', 'pat-3');
    expect(await codeOf(as('patient', 'pat-3').checkIn({ consultationId: later.id }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(as('doctor', 'doc-3').generateToken({ consultationId: later.id }))).toBe(
      Code.FailedPrecondition,
    );
    const soon = await schedule(10, 'doc-3', 'pat-3');
    expect(await codeOf(as('patient', 'pat-3').checkIn({ consultationId: soon.id }))).toBe('ok');
  });

  it('queues a doctor’s patients in arrival order', async () => {
    const a = await schedule(5, 'doc-q', 'pat-qa');
    const b = await schedule(6, 'doc-q', 'pat-qb');
    expect((await as('patient', 'pat-qa').checkIn({ consultationId: a.id })).queuePosition).toBe(1);
    expect((await as('patient', 'pat-qb').checkIn({ consultationId: b.id })).queuePosition).toBe(2);
    const room = await as('doctor', 'doc-q').listWaitingRoom({});
    expect(room.patients.map((p) => [p.patientId, p.queuePosition])).toEqual([
      ['pat-qa', 1],
      ['pat-qb', 2],
    ]);
    const adminView = await as('clinic_admin', 'admin-1').listWaitingRoom({ doctorId: 'doc-q' });
    expect(adminView.patients).toHaveLength(2);
    expect((await as('doctor', 'doc-other').listWaitingRoom({})).patients).toHaveLength(0);
  });
});

describe('who sees what', () => {
  it('answers NOT_FOUND outside the caller’s consultations and clinic', async () => {
    const c = await schedule(5, 'doc-own', 'pat-own');
    const id = { consultationId: c.id };
    expect(await codeOf(as('patient', 'pat-own').getConsultationStatus(id))).toBe('ok');
    expect(await codeOf(as('doctor', 'doc-own').getConsultationStatus(id))).toBe('ok');
    expect(await codeOf(as('patient', 'pat-other').getConsultationStatus(id))).toBe(Code.NotFound);
    expect(await codeOf(as('doctor', 'doc-other').startConsultation(id))).toBe(Code.NotFound);
    expect(await codeOf(as('clinic_admin', 'admin-2', 'clinic-2').getConsultationStatus(id))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(as('doctor', 'doc-own', 'clinic-2').getConsultationStatus(id))).toBe(
      Code.NotFound,
    );
    expect(
      await codeOf(
        as('patient', 'pat-own').getConsultationStatus({ consultationId: crypto.randomUUID() }),
      ),
    ).toBe(Code.NotFound);
  });

  it('refuses calls without a valid token', async () => {
    const id = { consultationId: crypto.randomUUID() };
    expect(await codeOf(videoClient(t.baseUrl).getConsultationStatus(id))).toBe(
      Code.Unauthenticated,
    );
    expect(await codeOf(videoClient(t.baseUrl, 'not-a-jwt').getConsultationStatus(id))).toBe(
      Code.Unauthenticated,
    );
    const forged = jwt.sign(
      { role: 'service', clinic_id: 'clinic-1' },
      'another-secret-of-sufficient-length',
      {
        subject: 'x',
      },
    );
    expect(await codeOf(videoClient(t.baseUrl, forged).getConsultationStatus(id))).toBe(
      Code.Unauthenticated,
    );
  });
});

describe('history', () => {
  it('pages through the caller’s consultations, stable while rows are added', async () => {
    const doctor = 'doc-history';
    for (let i = 0; i < 5; i++) await schedule(60 + i, doctor, `pat-h${i}`);
    const client = as('doctor', doctor);
    const first = await client.listConsultationHistory({ pageSize: 2 });
    expect(first.consultations).toHaveLength(2);
    expect(first.nextPageToken).not.toBe('');
    // A consultation added meanwhile, sorting before the cursor, must not shift the pages.
    await schedule(500, doctor, 'pat-late');
    const second = await client.listConsultationHistory({
      pageSize: 2,
      pageToken: first.nextPageToken,
    });
    const third = await client.listConsultationHistory({
      pageSize: 2,
      pageToken: second.nextPageToken,
    });
    const ids = [...first.consultations, ...second.consultations, ...third.consultations].map(
      (c) => c.id,
    );
    expect(new Set(ids).size).toBe(5);
    expect(third.nextPageToken).toBe('');
    const starts = [...first.consultations, ...second.consultations, ...third.consultations].map(
      (c) => timestampDate(c.scheduledStart!).getTime(),
    );
    expect(starts).toEqual([...starts].sort((a, b) => b - a));

    // The patient sees only their own; filters apply.
    const patientView = await as('patient', 'pat-h0').listConsultationHistory({});
    expect(patientView.consultations.every((c) => c.patientId === 'pat-h0')).toBe(true);
    const cancelled = await client.listConsultationHistory({
      statuses: [ConsultationStatus.CANCELLED],
    });
    expect(cancelled.consultations).toHaveLength(0);
    expect(await codeOf(client.listConsultationHistory({ pageSize: 1000 }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(client.listConsultationHistory({ pageToken: 'garbage' }))).toBe(
      Code.InvalidArgument,
    );
    expect(
      await codeOf(
        client.listConsultationHistory({
          statuses: [ConsultationStatus.ENDED],
          pageToken: first.nextPageToken,
        }),
      ),
    ).toBe(Code.InvalidArgument);
  });
});

describe('concurrency', () => {
  it('lets exactly one of concurrent start, end and cancel calls win each transition', async () => {
    // Warm clients (their HTTP/2 connections open) so the four calls of a round leave
    // together and overlap on the server, instead of a cold client always arriving last.
    const doctor = as('doctor', 'doc-race');
    const canceller = as('service', 'appointments-race');
    const replaysBefore = await replayCount();
    const firstWinners = { start: 0, cancel: 0 };
    for (let round = 0; round < 30; round++) {
      const c = await schedule(5, 'doc-race', `pat-race-${round}`);
      const id = { consultationId: c.id };
      await Promise.all([doctor.getConsultationStatus(id), canceller.getConsultationStatus(id)]);
      const [startA, startB, cancel, end] = await Promise.allSettled([
        doctor.startConsultation(id),
        doctor.startConsultation(id),
        canceller.cancelConsultation({ target: { case: 'consultationId', value: c.id } }),
        doctor.endConsultation(id),
      ]);
      const final = (await service.getConsultationStatus(id)).consultation!;
      const context = `round ${round}: ${ConsultationStatus[final.status]}`;
      // Every refused call was refused as a precondition, never a crash or a retry-later.
      for (const r of [startA, startB, cancel, end]) {
        if (r.status === 'rejected') {
          expect(ConnectError.from(r.reason).code, context).toBe(Code.FailedPrecondition);
        }
      }
      // Start: at most one call changed the state (the other saw it started, or ended).
      const started = [startA, startB].filter((r) => r.status === 'fulfilled' && r.value.started);
      expect(started.length, context).toBeLessThanOrEqual(1);
      // Closing: exactly one of cancel and end won. A cancel always applies unless an end
      // came first; an end applies only after a start and before a cancel.
      const closers = [cancel, end].filter((r) => r.status === 'fulfilled');
      expect(closers, context).toHaveLength(1);
      if (end.status === 'fulfilled') {
        expect(final.status, context).toBe(ConsultationStatus.ENDED);
        expect(started, context).toHaveLength(1);
      } else {
        expect(final.status, context).toBe(ConsultationStatus.CANCELLED);
      }
      // The version counts exactly the changes that happened: schedule, start, close.
      expect(final.version, context).toBe(1 + started.length + 1);
      firstWinners[started.length === 1 ? 'start' : 'cancel']++;
    }
    const replays = (await replayCount()) - replaysBefore;
    console.info(
      `30 rounds: start won first ${firstWinners.start}, cancel won first ${firstWinners.cancel}; ` +
        `${replays} units of work replayed after a lost race`,
    );
    // On a PostgreSQL server the calls really raced: some units of work lost and replayed.
    // (The embedded engine's single connection runs one transaction at a time.)
    if (serverForSeveralCopies) expect(replays).toBeGreaterThan(0);
  }, 120_000);
});

describe('duration', () => {
  it('counts the duration from start to end on the service’s clock', async () => {
    let now = Date.parse('2026-03-02T09:00:00.000Z');
    const clocked = await startTestApp({}, undefined, { now: () => new Date(now) });
    try {
      const call = (role: Parameters<TestApp['token']>[0], user: string) =>
        videoClient(clocked.baseUrl, clocked.token(role, user));
      const { consultation } = await call('service', 'appointments').scheduleConsultation({
        appointmentId: appointmentId(),
        doctorId: 'doc-clock',
        patientId: 'pat-clock',
        scheduledStart: timestampFromDate(new Date(now + 60_000)),
        scheduledEnd: timestampFromDate(new Date(now + 31 * 60_000)),
      });
      const doctor = call('doctor', 'doc-clock');
      const id = { consultationId: consultation!.id };
      const started = await doctor.startConsultation(id);
      now += 754_999; // 12 min 34.999 s later
      const ended = (await doctor.endConsultation(id)).consultation!;
      expect(timestampDate(started.consultation!.startedAt!).toISOString()).toBe(
        '2026-03-02T09:00:00.000Z',
      );
      expect(timestampDate(ended.endedAt!).toISOString()).toBe('2026-03-02T09:12:34.999Z');
      // Whole seconds, not rounded up: 754.999 s is 754.
      expect(ended.durationSeconds).toBe(754);
    } finally {
      await clocked.stop();
    }
  });
});

/** The service's count of replayed units of work, from its metrics. */
async function replayCount(): Promise<number> {
  const text = await (await fetch(`${t.baseUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('video_unit_of_work_replays_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

describe('recording with consent', () => {
  it('records consent, and refuses to record without everyone’s or on Jitsi', async () => {
    const c = await schedule(5, 'doc-rec', 'pat-rec');
    const id = { consultationId: c.id };
    const doctor = as('doctor', 'doc-rec');
    const patient = as('patient', 'pat-rec');
    const refusal = (call: Promise<unknown>) =>
      call.then(
        () => 'ok',
        (e: unknown) => `${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`,
      );

    expect(await refusal(doctor.startRecording(id))).toBe(
      'FailedPrecondition: recording needs the consultation to be in progress',
    );
    await doctor.startConsultation(id);
    expect(await refusal(doctor.startRecording(id))).toMatch(
      /consent of: (doctor, patient|patient, doctor)$/,
    );

    const consented = await patient.recordConsent(id);
    const consentAt = consented.consultation?.participants.find(
      (p) => p.role === ParticipantRole.PATIENT,
    )?.recordingConsentAt;
    expect(consentAt).toBeDefined();
    // Consenting again changes nothing.
    const again = await patient.recordConsent(id);
    expect(again.consultation?.version).toBe(consented.consultation?.version);
    expect(await refusal(doctor.startRecording(id))).toBe(
      'FailedPrecondition: recording needs the consent of: doctor',
    );
    await doctor.recordConsent(id);
    expect(await refusal(doctor.startRecording(id))).toBe(
      'FailedPrecondition: recording is not available on the jitsi provider',
    );
    expect(await refusal(patient.startRecording(id))).toMatch(/^PermissionDenied/);
    // Nothing is recording, so stopping changes nothing.
    const stopped = await doctor.stopRecording(id);
    expect(stopped.consultation?.recordingStatus).toBe(0);

    const trail = await as('clinic_admin', 'admin').listAuditEntries({
      resourceId: c.id,
      action: 'consultation.record_consent',
    });
    expect(trail.entries.map((e) => e.actorId).sort()).toEqual(['doc-rec', 'pat-rec', 'pat-rec']);
  });
});
