import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { collectRecords, uniquePrefix } from '../support/events.js';
import { png } from '../support/images.js';

/**
 * A client that lost an answer (a timeout, a shutdown cutting its call off after the
 * commit) retries with the same idempotency key, and nothing is filed twice: no second
 * row, no second event.
 */
const brokers = inject('kafkaBrokers');
const prefix = uniquePrefix('idempotency');
const topics = ['video.technical.issue.reported', 'video.image.shared'].map((t) => prefix + t);
let t: TestApp;
let reader: Awaited<ReturnType<typeof collectRecords>>;

beforeAll(async () => {
  reader = await collectRecords(brokers, topics);
  t = await startTestApp({ KAFKA_BROKERS: brokers, KAFKA_TOPIC_PREFIX: prefix });
});
afterAll(async () => {
  await t?.stop();
  await reader?.stop();
});

async function consultationInProgress() {
  const { consultation } = await videoClient(
    t.baseUrl,
    t.token('service', 'svc'),
  ).scheduleConsultation({
    appointmentId: appointmentId('idem'),
    doctorId: 'doc-i',
    patientId: 'pat-i',
    ...slot(5),
  });
  const id = consultation!.id;
  await videoClient(t.baseUrl, t.token('doctor', 'doc-i')).startConsultation({
    consultationId: id,
  });
  return id;
}

const eventsOf = (id: string) =>
  reader.records.filter((r) => (r.value as { consultationId?: string }).consultationId === id);

describe('idempotency keys', () => {
  it('files a technical issue once per key, however often and however concurrently it is sent', async () => {
    const id = await consultationInProgress();
    const patient = videoClient(t.baseUrl, t.token('patient', 'pat-i'));
    const doctor = videoClient(t.baseUrl, t.token('doctor', 'doc-i'));
    const report = (client: typeof patient, idempotencyKey: string) =>
      client.reportTechnicalIssue({
        consultationId: id,
        issueType: TechnicalIssueType.AUDIO,
        description: 'echo',
        idempotencyKey,
      });

    const first = await report(patient, 'retry-1');
    const again = await report(patient, 'retry-1');
    const racing = await Promise.all(Array.from({ length: 5 }, () => report(patient, 'race-1')));
    const otherUser = await report(doctor, 'retry-1');
    const unkeyed = await Promise.all([report(patient, ''), report(patient, '')]);

    expect(again.issueId).toBe(first.issueId);
    expect(again.reportedAt).toEqual(first.reportedAt);
    expect(new Set(racing.map((r) => r.issueId)).size).toBe(1);
    expect(otherUser.issueId).not.toBe(first.issueId);
    expect(unkeyed[0]?.issueId).not.toBe(unkeyed[1]?.issueId);

    // retry-1 (patient), race-1, retry-1 (doctor), and the two unkeyed ones.
    await reader.waitFor(() => eventsOf(id).length >= 5);
    // Long enough for a duplicate to arrive, were there one.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const issueIds = eventsOf(id).map((r) => (r.value as { issueId: string }).issueId);
    expect(issueIds).toHaveLength(5);
    expect(new Set(issueIds).size).toBe(5);
  });

  it('shares an image once per key', async () => {
    const id = await consultationInProgress();
    const doctor = videoClient(t.baseUrl, t.token('doctor', 'doc-i'));
    const share = () =>
      doctor.shareMedicalImage({ consultationId: id, content: png(), idempotencyKey: 'upload-7' });
    const [a, b] = await Promise.all([share(), share()]);
    const c = await share();
    expect(new Set([a.imageId, b.imageId, c.imageId]).size).toBe(1);
    await reader.waitFor(() => eventsOf(id).some((r) => r.topic.endsWith('video.image.shared')));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(eventsOf(id).filter((r) => r.topic.endsWith('video.image.shared'))).toHaveLength(1);
  });

  it('refuses a key that is not 1 to 64 printable ASCII characters', async () => {
    const id = await consultationInProgress();
    const patient = videoClient(t.baseUrl, t.token('patient', 'pat-i'));
    for (const idempotencyKey of ['x'.repeat(65), 'with space', 'ключ']) {
      const error = await patient
        .reportTechnicalIssue({ consultationId: id, issueType: 1, description: '', idempotencyKey })
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      expect(error?.code, idempotencyKey).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toMatch(/^idempotency_key: /);
    }
  });
});
