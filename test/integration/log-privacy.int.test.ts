import { Writable } from 'node:stream';
import { ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { type App, startApp } from '../../src/app.js';
import { mintToken } from '../../src/auth/jwt.js';
import { DEVELOPMENT_JWT_SECRET, loadConfig } from '../../src/config.js';
import type { Role } from '../../src/domain/access.js';
import { createLogger } from '../../src/logger.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { png } from '../support/images.js';

/**
 * Logs carry ids, never PHI: a whole consultation runs at debug level with every log
 * line captured, and none of them may hold a token, a description, a name or image bytes.
 */
const lines: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  },
});
let app: App;
let database: TestDatabase;
let baseUrl: string;
const tokens: string[] = [];
const token = (role: Role, userId: string) => {
  const minted = mintToken({ secret: DEVELOPMENT_JWT_SECRET, role, userId, clinicId: 'clinic-1' });
  tokens.push(minted);
  return minted;
};

beforeAll(async () => {
  database = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'debug',
    RATE_LIMIT_REQUESTS: '0',
    ...database.env,
  });
  app = await startApp(config, createLogger('debug', sink));
  baseUrl = `http://127.0.0.1:${app.port}`;
});
afterAll(async () => {
  await app?.stop();
  await database?.drop();
});

it('never logs tokens, free text, names or image bytes', async () => {
  const secrets = {
    description: 'Maria Gonzalez cannot hear, chest pain since Tuesday',
    name: 'Maria Gonzalez',
  };
  const service = videoClient(baseUrl, token('service', 'appointments'));
  const doctor = videoClient(baseUrl, token('doctor', 'doc-log'));
  const patient = videoClient(baseUrl, token('patient', 'pat-log'));
  const { consultation } = await service.scheduleConsultation({
    appointmentId: appointmentId('log'),
    doctorId: 'doc-log',
    patientId: 'pat-log',
    ...slot(5),
  });
  const id = { consultationId: consultation!.id };
  await patient.checkIn(id);
  await doctor.listWaitingRoom({});
  await doctor.admitPatient(id);
  const joinTokens = [
    (await patient.generateToken(id)).token,
    (await doctor.generateToken(id)).token,
  ];
  await doctor.startConsultation(id);
  await patient.reportTechnicalIssue({
    ...id,
    issueType: TechnicalIssueType.AUDIO,
    description: secrets.description,
  });
  await patient.shareMedicalImage({ ...id, content: png() });
  await doctor.endConsultation(id);
  await doctor.listConsultationHistory({});
  // Refused calls log too: with a bad token, and with bad input that echoes nothing back.
  await videoClient(baseUrl, 'garbage.token.value')
    .getConsultationStatus(id)
    .catch(() => {});
  await patient
    .reportTechnicalIssue({ ...id, issueType: 0, description: secrets.description })
    .catch(() => {});

  expect(lines.length).toBeGreaterThan(10);
  const forbidden = [
    ...tokens,
    ...joinTokens,
    'garbage.token.value',
    secrets.description,
    secrets.name,
    Buffer.from(png()).toString('base64'),
  ];
  for (const line of lines) {
    for (const secret of forbidden) expect(line).not.toContain(secret);
  }
  const rpcLines = lines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'rpc');
  expect(rpcLines.length).toBeGreaterThanOrEqual(13);
  for (const line of rpcLines) expect(line.requestId).toEqual(expect.any(String));
});

it('keeps what a refused or failed call carried out of the log, on every error path', async () => {
  const marker = 'PHI-MARKER-Jane-Roe-diabetic';
  const lineCount = lines.length;
  const service = videoClient(baseUrl, token('service', 'appointments'));
  const patient = videoClient(baseUrl, token('patient', 'pat-err'));
  const patientGrpc = videoClient(baseUrl, token('patient', 'pat-err'), 'grpc');
  const { consultation } = await service.scheduleConsultation({
    appointmentId: appointmentId('log-err'),
    doctorId: 'doc-err',
    patientId: 'pat-err',
    ...slot(5),
  });
  const consultationId = consultation!.id;
  const bearer = { authorization: `Bearer ${token('patient', 'pat-err')}` };
  const post = (method: string, type: string, body: string | Uint8Array) =>
    fetch(`${baseUrl}/video.v1.VideoService/${method}`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': type },
      body,
    }).then((res) => res.arrayBuffer());
  const codes = new Set<string>();
  const collect = (call: Promise<unknown>) =>
    call.then(
      () => codes.add('ok'),
      (error: unknown) => codes.add(ConnectError.from(error).rawMessage),
    );

  // A NUL in free text: once a database error quoting the whole event payload.
  for (const client of [patient, patientGrpc]) {
    await collect(
      client.reportTechnicalIssue({
        consultationId,
        issueType: TechnicalIssueType.AUDIO,
        description: `${marker}\u0000`,
      }),
    );
  }
  // Bad JSON, bad binary, an oversized body, unknown enum names and fields, all with the marker.
  await post('ReportTechnicalIssue', 'application/json', `{"description": "${marker}`);
  await post('ReportTechnicalIssue', 'application/json', `{"description": ${marker}}`);
  await post(
    'ReportTechnicalIssue',
    'application/json',
    JSON.stringify({ consultationId, issueType: marker, description: marker }),
  );
  await post(
    'ReportTechnicalIssue',
    'application/json',
    JSON.stringify({ consultationId, [marker]: marker }),
  );
  await post(
    'ReportTechnicalIssue',
    'application/proto',
    new TextEncoder().encode(`\xff${marker}`),
  );
  await post(
    'ReportTechnicalIssue',
    'application/json',
    JSON.stringify({ consultationId, description: marker.repeat(600_000) }),
  );
  await fetch(
    `${baseUrl}/video.v1.VideoService/GetConsultationStatus?connect=v1&encoding=json&message=${encodeURIComponent(`{"consultationId":"${marker}"}`)}`,
    { headers: bearer },
  ).then((res) => res.arrayBuffer());
  await collect(
    patient.listConsultationHistory({ pageToken: Buffer.from(marker).toString('base64url') }),
  );
  await collect(patient.getConsultationStatus({ consultationId: marker }));

  const written = lines.slice(lineCount);
  expect(written.length).toBeGreaterThan(3);
  for (const line of written) expect(line).not.toContain(marker);
  // Every call was refused as the client's fault: nothing answered INTERNAL.
  expect([...codes].filter((m) => /internal/i.test(m))).toEqual([]);
  // Codes in logs are spelt as on the wire.
  const logged = written
    .map((l) => JSON.parse(l) as { msg?: string; code?: string })
    .filter((l) => l.msg === 'rpc')
    .map((l) => l.code);
  expect(logged).toContain('invalid_argument');
  for (const code of logged) expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
});
