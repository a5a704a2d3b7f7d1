import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderRegistry, VideoProvider } from '../../src/domain/ports.js';
import type { UseCaseDeps } from '../../src/video/use-case.js';
import { cancelConsultation } from '../../src/video/use-cases/cancel-consultation.js';
import { checkIn } from '../../src/video/use-cases/check-in.js';
import { generateToken } from '../../src/video/use-cases/generate-token.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { appointmentId } from '../support/clients.js';
import { recordStatements } from '../support/statements.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * GenerateToken's write path: two round trips when nothing changed during the provider
 * call (the read with its participants, then one statement for the record, the audit
 * entry and the event), and the same outcome as a unit of work when something did.
 */
let u: TestUseCases;
const service = callerOf('service', 'appointments');
const doctor = callerOf('doctor', 'doc-tok');

beforeAll(async () => {
  u = await openTestUseCases();
});
afterAll(async () => {
  await u?.stop();
});

async function schedule(patientId: string) {
  const start = new Date(Date.now() + 5 * 60_000);
  const { consultation } = await scheduleConsultation(u.deps, service, {
    appointmentId: appointmentId('tok'),
    doctorId: 'doc-tok',
    patientId,
    scheduledStart: start,
    scheduledEnd: new Date(start.getTime() + 30 * 60_000),
    provider: undefined,
  });
  return consultation.id;
}

/** The use cases with a provider that runs `during` just before it issues a token. */
function whileIssuing(during: () => Promise<unknown>): UseCaseDeps {
  const registry = u.deps.providers;
  const providers = new Proxy(registry, {
    get(target, key) {
      if (key !== 'get') return Reflect.get(target, key);
      return (name: Parameters<ProviderRegistry['get']>[0]) =>
        new Proxy(target.get(name), {
          get(provider, method) {
            if (method !== 'issueToken') return Reflect.get(provider, method);
            return async (request: Parameters<VideoProvider['issueToken']>[0]) => {
              await during();
              return provider.issueToken(request);
            };
          },
        });
    },
  });
  return { ...u.deps, providers };
}

async function recorded(id: string) {
  const [c] = await u.sql<{ version: number; provider_session_id: string | null }>(
    'select version, provider_session_id from consultation where id = ?',
    [id],
  );
  const tokens = await u.sql<{ user_id: string }>(
    `select payload->>'userId' as user_id from outbox_message
      where subject = ? and type = 'video.token.generated' order by seq`,
    [id],
  );
  const joins = await u.sql<{ outcome: string }>(
    `select outcome from audit_entry where resource_id = ? and action = 'consultation.join'
      order by at`,
    [id],
  );
  const [first] = await u.sql<{ first_token_at: Date | null }>(
    `select first_token_at from participant where consultation_id = ? and role = 'doctor'`,
    [id],
  );
  return {
    version: c?.version,
    session: Boolean(c?.provider_session_id),
    tokens: tokens.map((t) => t.user_id),
    joins: joins.map((j) => j.outcome),
    firstToken: Boolean(first?.first_token_at),
  };
}

describe('GenerateToken', () => {
  it('reads once and writes once: the record, its audit entry and its event in one statement', async () => {
    const id = await schedule('pat-tok-1');
    // The first token stores the new session (a new version); the second changes nothing.
    await generateToken(u.deps, doctor, { consultationId: id });
    const statements = await recordStatements(() =>
      generateToken(u.deps, doctor, { consultationId: id }),
    );
    expect(statements).toEqual(['select consultation', 'with']);
    expect(await recorded(id)).toEqual({
      version: 2,
      session: true,
      tokens: ['doc-tok', 'doc-tok'],
      joins: ['allowed', 'allowed'],
      firstToken: true,
    });
  });

  it('records the token on the consultation as it is when it changed during the provider call', async () => {
    const id = await schedule('pat-tok-2');
    const patient = callerOf('patient', 'pat-tok-2');
    const deps = whileIssuing(() => checkIn(u.deps, patient, { consultationId: id }));
    await generateToken(deps, doctor, { consultationId: id });
    // Checked in (version 2), then the session stored by the token's record (version 3).
    expect(await recorded(id)).toEqual({
      version: 3,
      session: true,
      tokens: ['doc-tok'],
      joins: ['allowed'],
      firstToken: true,
    });
  });

  it('refuses, and records only the refusal, when the consultation was cancelled during the provider call', async () => {
    const id = await schedule('pat-tok-3');
    const deps = whileIssuing(() => cancelConsultation(u.deps, service, { consultationId: id }));
    await expect(generateToken(deps, doctor, { consultationId: id })).rejects.toMatchObject({
      code: 'failed_precondition',
    });
    expect(await recorded(id)).toEqual({
      version: 2,
      session: false,
      tokens: [],
      joins: ['failed_precondition'],
      firstToken: false,
    });
  });
});
