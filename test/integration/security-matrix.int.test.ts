import { Code } from '@connectrpc/connect';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import type { Role } from '../../src/domain/access.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, codeOf, slot, type VideoClient, videoClient } from '../support/clients.js';
import { png } from '../support/images.js';

/**
 * The authorization matrix, written out by hand so it checks the code rather than repeat
 * it: every RPC, as every role, on the caller's own consultation, on someone else's in the
 * same clinic, and on one of another clinic, with the exact code each cell must answer.
 * Then every RPC with every kind of bad token.
 */
const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'video-service';
const SECRET = 'matrix-test-secret-of-more-than-32-characters';

let t: TestApp;
let service: VideoClient;

beforeAll(async () => {
  t = await startTestApp({ AUTH_JWT_SECRET: SECRET, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE });
  service = videoClient(
    t.baseUrl,
    sign({ sub: 'appointments', role: 'service', clinic_id: 'clinic-1' }),
  );
});
afterAll(async () => {
  await t?.stop();
});

function sign(claims: object, options: jwt.SignOptions = {}, secret = SECRET): string {
  return jwt.sign(claims, secret, {
    algorithm: 'HS256',
    issuer: ISSUER,
    audience: AUDIENCE,
    ...('exp' in claims ? {} : { expiresIn: 600 }),
    ...options,
  });
}
const as = (role: Role, userId: string, clinicId = 'clinic-1') =>
  videoClient(t.baseUrl, sign({ sub: userId, role, clinic_id: clinicId }));

type Relation = 'own' | 'else' | 'other-clinic';
type Cell = Code | 'ok';
const ROLES: Role[] = ['patient', 'doctor', 'nurse', 'clinic_admin', 'service'];
const { NotFound: NF, PermissionDenied: PD } = Code;

/** Who the caller is, for a role and their relation to the consultation. */
function callerFor(role: Role, relation: Relation) {
  const clinic = relation === 'other-clinic' ? 'clinic-2' : 'clinic-1';
  const user =
    role === 'patient'
      ? relation === 'else'
        ? 'pat-else'
        : 'pat-own'
      : role === 'doctor'
        ? relation === 'else'
          ? 'doc-else'
          : 'doc-own'
        : `${role}-1`;
  return as(role, user, clinic);
}

/** A fresh consultation, brought into the state in which the action is possible. */
async function consultationFor(state: 'scheduled' | 'checked-in' | 'started'): Promise<string> {
  const { consultation } = await service.scheduleConsultation({
    appointmentId: appointmentId('matrix'),
    doctorId: 'doc-own',
    patientId: 'pat-own',
    ...slot(5),
  });
  const id = consultation!.id;
  if (state === 'checked-in' || state === 'started') {
    await as('patient', 'pat-own').checkIn({ consultationId: id });
  }
  if (state === 'started') await as('doctor', 'doc-own').startConsultation({ consultationId: id });
  return id;
}

interface ConsultationRpc {
  readonly state: 'scheduled' | 'checked-in' | 'started';
  readonly call: (client: VideoClient, consultationId: string) => Promise<unknown>;
  /** The answer on the caller's own consultation, per role (patient, doctor, nurse, admin, service). */
  readonly own: [Cell, Cell, Cell, Cell, Cell];
}

const CONSULTATION_RPCS: Record<string, ConsultationRpc> = {
  GetConsultationStatus: {
    state: 'scheduled',
    call: (c, id) => c.getConsultationStatus({ consultationId: id }),
    own: ['ok', 'ok', 'ok', 'ok', 'ok'],
  },
  CancelConsultation: {
    state: 'scheduled',
    call: (c, id) => c.cancelConsultation({ target: { case: 'consultationId', value: id } }),
    own: [PD, PD, PD, 'ok', 'ok'],
  },
  CheckIn: {
    state: 'scheduled',
    call: (c, id) => c.checkIn({ consultationId: id }),
    own: ['ok', PD, PD, PD, PD],
  },
  AdmitPatient: {
    state: 'checked-in',
    call: (c, id) => c.admitPatient({ consultationId: id }),
    own: [PD, 'ok', 'ok', PD, PD],
  },
  StartConsultation: {
    state: 'scheduled',
    call: (c, id) => c.startConsultation({ consultationId: id }),
    own: [PD, 'ok', PD, PD, PD],
  },
  GenerateToken: {
    state: 'started',
    call: (c, id) => c.generateToken({ consultationId: id }),
    own: ['ok', 'ok', PD, PD, PD],
  },
  EndConsultation: {
    state: 'started',
    call: (c, id) => c.endConsultation({ consultationId: id }),
    own: [PD, 'ok', PD, PD, PD],
  },
  ReportTechnicalIssue: {
    state: 'started',
    call: (c, id) =>
      c.reportTechnicalIssue({ consultationId: id, issueType: TechnicalIssueType.VIDEO }),
    own: ['ok', 'ok', PD, PD, PD],
  },
  RecordConsent: {
    state: 'started',
    call: (c, id) => c.recordConsent({ consultationId: id }),
    own: ['ok', 'ok', PD, PD, PD],
  },
  StartRecording: {
    state: 'started',
    call: (c, id) => c.startRecording({ consultationId: id }),
    // Allowed for the doctor; then refused for want of consent, which is the next rule.
    own: [PD, Code.FailedPrecondition, PD, PD, PD],
  },
  StopRecording: {
    state: 'started',
    call: (c, id) => c.stopRecording({ consultationId: id }),
    own: [PD, 'ok', PD, PD, PD],
  },
  ShareMedicalImage: {
    state: 'started',
    call: (c, id) => c.shareMedicalImage({ consultationId: id, content: png() }),
    own: ['ok', 'ok', PD, PD, PD],
  },
};

/** Someone else's or another clinic's: refused for the role, else invisible. */
function expected(rpc: ConsultationRpc, roleIndex: number, relation: Relation): Cell {
  const own = rpc.own[roleIndex]!;
  if (relation === 'own' || own === PD) return own;
  const staff = ['nurse', 'clinic_admin', 'service'].includes(ROLES[roleIndex]!);
  // Staff act on their whole clinic: someone else's consultation there is theirs too.
  if (relation === 'else' && staff) return own;
  return NF;
}

const label = (cell: Cell) => (cell === 'ok' ? 'ok' : Code[cell]);

describe('every consultation RPC × role × relation', () => {
  for (const [name, rpc] of Object.entries(CONSULTATION_RPCS)) {
    for (const [roleIndex, role] of ROLES.entries()) {
      for (const relation of ['own', 'else', 'other-clinic'] as const) {
        const want = expected(rpc, roleIndex, relation);
        it(`${name} as ${role} on ${relation}: ${label(want)}`, async () => {
          const id = await consultationFor(rpc.state);
          expect(label(await codeOf(rpc.call(callerFor(role, relation), id)))).toBe(label(want));
        });
      }
    }
  }
});

describe('every clinic-level RPC × role', () => {
  const CLINIC_RPCS: Record<string, [(c: VideoClient) => Promise<unknown>, Cell[]]> = {
    ScheduleConsultation: [
      (c) =>
        c.scheduleConsultation({
          appointmentId: appointmentId('m'),
          doctorId: 'd',
          patientId: 'p',
          ...slot(60),
        }),
      [PD, PD, PD, 'ok', 'ok'],
    ],
    ListWaitingRoom: [(c) => c.listWaitingRoom({}), [PD, 'ok', 'ok', 'ok', PD]],
    ListConsultationHistory: [(c) => c.listConsultationHistory({}), ['ok', 'ok', 'ok', 'ok', 'ok']],
    GetProviderStatus: [(c) => c.getProviderStatus({}), ['ok', 'ok', 'ok', 'ok', 'ok']],
    ListAuditEntries: [(c) => c.listAuditEntries({}), [PD, PD, PD, 'ok', PD]],
  };
  for (const [name, [call, cells]] of Object.entries(CLINIC_RPCS)) {
    for (const [i, role] of ROLES.entries()) {
      it(`${name} as ${role}: ${label(cells[i]!)}`, async () => {
        expect(label(await codeOf(call(callerFor(role, 'own'))))).toBe(label(cells[i]!));
      });
    }
  }

  it('keeps history, waiting rooms and the audit trail inside the clinic', async () => {
    const id = await consultationFor('checked-in');
    const history = await as('clinic_admin', 'admin-2', 'clinic-2').listConsultationHistory({});
    expect(history.consultations.map((c) => c.id)).not.toContain(id);
    const room = await as('nurse', 'nurse-2', 'clinic-2').listWaitingRoom({});
    expect(room.patients.map((p) => p.consultationId)).not.toContain(id);
    const trail = await as('clinic_admin', 'admin-2', 'clinic-2').listAuditEntries({
      resourceId: id,
    });
    expect(trail.entries).toHaveLength(0);
  });
});

describe('bad tokens, on every RPC', () => {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: 'doc-own', role: 'doctor', clinic_id: 'clinic-1' };
  const none = (payload: object) =>
    `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(
      JSON.stringify({ ...payload, iss: ISSUER, aud: AUDIENCE, exp: now + 600 }),
    ).toString('base64url')}.`;
  const TOKENS: Record<string, string | undefined> = {
    'no token': undefined,
    'not a JWT': 'garbage.token.here',
    expired: sign({ ...claims, exp: now - 3600 }),
    'future nbf': sign({ ...claims, nbf: now + 3600 }),
    'wrong aud': sign(claims, { audience: 'someone-else' }),
    'wrong iss': sign(claims, { issuer: 'https://evil.example.test' }),
    'bad signature': sign(claims, {}, 'a-different-secret-of-more-than-32-characters'),
    'alg none': none(claims),
    'no role claim': sign({ sub: 'x', clinic_id: 'clinic-1' }),
    'unknown role': sign({ ...claims, role: 'superuser' }),
  };
  const id = '00000000-0000-4000-8000-000000000000';
  const RPCS: Record<string, (c: VideoClient) => Promise<unknown>> = {
    ...Object.fromEntries(
      Object.entries(CONSULTATION_RPCS).map(([name, rpc]) => [
        name,
        (c: VideoClient) => rpc.call(c, id),
      ]),
    ),
    ListWaitingRoom: (c) => c.listWaitingRoom({}),
    ListConsultationHistory: (c) => c.listConsultationHistory({}),
    GetProviderStatus: (c) => c.getProviderStatus({}),
    ListAuditEntries: (c) => c.listAuditEntries({}),
  };
  for (const [kind, token] of Object.entries(TOKENS)) {
    it(`answers UNAUTHENTICATED with ${kind}`, async () => {
      const client = videoClient(t.baseUrl, token);
      for (const [name, call] of Object.entries(RPCS)) {
        expect(`${name}: ${label(await codeOf(call(client)))}`).toBe(`${name}: Unauthenticated`);
      }
    });
  }
});

describe('a service verifying RS256 tokens from public keys', () => {
  it('accepts RS256, and refuses the HS/RS confusion token and HS256 tokens', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const rs = await startTestApp({
      AUTH_PUBLIC_KEYS: pem.replaceAll('\n', '\\n'),
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    });
    try {
      const claims = { sub: 'svc', role: 'service', clinic_id: 'clinic-1' };
      const options = { issuer: ISSUER, audience: AUDIENCE, expiresIn: 600 } as const;
      const good = jwt.sign(claims, privateKey, { ...options, algorithm: 'RS256' });
      const confused = jwt.sign(claims, pem, { ...options, algorithm: 'HS256' });
      const hsToken = jwt.sign(claims, SECRET, { ...options, algorithm: 'HS256' });
      expect(await codeOf(videoClient(rs.baseUrl, good).getProviderStatus({}))).toBe('ok');
      expect(label(await codeOf(videoClient(rs.baseUrl, confused).getProviderStatus({})))).toBe(
        'Unauthenticated',
      );
      expect(label(await codeOf(videoClient(rs.baseUrl, hsToken).getProviderStatus({})))).toBe(
        'Unauthenticated',
      );
    } finally {
      await rs.stop();
    }
  });
});
