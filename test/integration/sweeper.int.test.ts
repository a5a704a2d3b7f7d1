import { afterAll, expect, it } from 'vitest';
import { ConsultationStatus, EndReason } from '../../gen/video/v1/consultation_pb.js';
import { startTestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, serverForSeveralCopies } from '../support/database.js';

/**
 * No-shows and overruns, closed by two copies of the service sweeping the same database
 * at once: each effect happens exactly once.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

it.runIf(serverForSeveralCopies)(
  'marks no-shows and ends overruns once, with two copies sweeping at once',
  async () => {
    let offsetMs = 0;
    const clock = { now: () => new Date(Date.now() + offsetMs) };
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const env = {
      SWEEP_INTERVAL_MS: '100',
      NO_SHOW_GRACE_MINUTES: '10',
      MAX_CONSULTATION_MINUTES: '120',
    };
    const a = await startTestApp(env, database, clock);
    const b = await startTestApp({ ...env, MIGRATE_ON_START: 'false' }, database, clock);
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    const service = videoClient(a.baseUrl, a.token('service', 'svc'));
    const schedule = async (minutesFromNow: number, patient: string) =>
      (
        await service.scheduleConsultation({
          appointmentId: appointmentId('sweep'),
          doctorId: 'doc-sweep',
          patientId: patient,
          ...slot(minutesFromNow),
        })
      ).consultation!.id;

    // Ten that nobody attends, ten that run on and on, five where the patient came.
    const absent = await Promise.all(
      Array.from({ length: 10 }, (_, i) => schedule(5, `pat-absent-${i}`)),
    );
    const endless = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const id = await schedule(5, `pat-endless-${i}`);
        await videoClient(a.baseUrl, a.token('doctor', 'doc-sweep')).startConsultation({
          consultationId: id,
        });
        await videoClient(a.baseUrl, a.token('patient', `pat-endless-${i}`)).generateToken({
          consultationId: id,
        });
        return id;
      }),
    );
    const attended = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const id = await schedule(5, `pat-came-${i}`);
        await videoClient(a.baseUrl, a.token('patient', `pat-came-${i}`)).checkIn({
          consultationId: id,
        });
        await videoClient(a.baseUrl, a.token('doctor', 'doc-sweep')).admitPatient({
          consultationId: id,
        });
        await videoClient(a.baseUrl, a.token('patient', `pat-came-${i}`)).generateToken({
          consultationId: id,
        });
        return id;
      }),
    );

    // Three hours later: past every slot plus grace, and past the maximum length.
    offsetMs = 3 * 3600_000;
    const status = (id: string) => service.getConsultationStatus({ consultationId: id });
    const deadline = Date.now() + 20_000;
    const done = async () => {
      const all = await Promise.all([...absent, ...endless].map(status));
      return all.every((s) => s.consultation?.endReason !== EndReason.UNSPECIFIED);
    };
    while (!(await done()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    // Let both sweepers run a few more passes over the same rows.
    await new Promise((r) => setTimeout(r, 500));

    const admin = videoClient(a.baseUrl, a.token('clinic_admin', 'admin'));
    for (const id of absent) {
      const c = (await status(id)).consultation!;
      expect(c.status).toBe(ConsultationStatus.NO_SHOW);
      expect(c.endReason).toBe(EndReason.NO_SHOW);
      expect(c.version).toBe(2);
      const trail = await admin.listAuditEntries({ resourceId: id, actorId: 'system:sweeper' });
      expect(trail.entries.map((e) => e.action)).toEqual(['consultation.no_show']);
    }
    for (const id of endless) {
      const c = (await status(id)).consultation!;
      expect(c.status).toBe(ConsultationStatus.ENDED);
      expect(c.endReason).toBe(EndReason.MAX_DURATION);
      expect(c.durationSeconds).toBeGreaterThanOrEqual(3 * 3600 - 60);
      const trail = await admin.listAuditEntries({ resourceId: id, actorId: 'system:sweeper' });
      expect(trail.entries.map((e) => e.action)).toEqual(['consultation.end']);
    }
    for (const id of attended) {
      expect((await status(id)).consultation?.endReason).toBe(EndReason.UNSPECIFIED);
    }
  },
  60_000,
);
