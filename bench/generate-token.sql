-- The reference for GenerateToken, for pgbench, frozen: what the service sent PostgreSQL
-- for one GenerateToken until 2026-11-29 (eight statements), by the doctor of a
-- consultation in progress who already holds a token (the seeded case; see
-- bench/fixture.ts), in the same order and the same shape. The service now sends two
-- (the read with its participants, then one statement for the audit entry and the
-- event; src/video/token-record.ts); the bench reports them as its round trips and keeps
-- comparing with this script, so that the ratio measures the change.
--
-- Where the statements came from (src/video/use-cases/generate-token.ts until 2026-11-29):
--   1-2  load() outside any transaction, to issue the provider token with no
--        transaction open: MikroORM selects the consultation, scoped to the caller's
--        clinic and (for a doctor) doctor id, then populates its participants with a
--        second select.
--   3    audited() -> unitOfWork() (src/video/use-case.ts): orm.em.fork().transactional() opens a transaction.
--   4-5  load() again inside it: the same two selects.
--        Nothing changes (the session id and first_token_at are already set), so the
--        flush issues no update and the optimistic-lock version is not touched.
--   6    addAuditEntry (src/video/audit.ts): the audit_entry row of the allowed call.
--   7    addEvent (src/video/events.ts): the outbox_message row with the
--        video.token.generated payload as protobuf JSON; MikroORM asks for the bigserial.
--   8    commit (the flush of 6 and 7 happens at commit).
-- bench/write-path.ts records the statements the service really sends for one call
-- (through the pg driver) and reports them next to this file's eight.
--
-- Why it is equivalent: MikroORM 7 inlines the values and sends each statement as a
-- simple-protocol query, which is what pgbench's default `-M simple` does with :n
-- substituted as text. The literals are the ones the service sends, but for
-- the generated values: uuids and timestamps come from gen_random_uuid() and now()
-- here (the service makes them in JavaScript), and the JWT expiry in the payload is a
-- fixed string of the same length. The JWT signing, auth and RPC work are what the
-- service adds on top, which is what the comparison measures.
--
-- Run by bench/write-path.ts as:
--   pgbench -n -c <concurrency> -j 2 -T <seconds> -D consultations=<count> \
--     -f bench/generate-token.sql <database url>
\set n random(100000000001, 100000000000 + :consultations)
select "c0".* from "consultation" as "c0" where "c0"."id" = '00000000-0000-4000-8000-:n' and "c0"."clinic_id" = 'bench-clinic' and "c0"."doctor_id" = 'bench-doctor' limit 1;
select "p0".* from "participant" as "p0" where "p0"."consultation_id" in ('00000000-0000-4000-8000-:n');
begin;
select "c0".* from "consultation" as "c0" where "c0"."id" = '00000000-0000-4000-8000-:n' and "c0"."clinic_id" = 'bench-clinic' and "c0"."doctor_id" = 'bench-doctor' limit 1;
select "p0".* from "participant" as "p0" where "p0"."consultation_id" in ('00000000-0000-4000-8000-:n');
insert into "audit_entry" ("id", "at", "actor_id", "actor_role", "clinic_id", "action", "resource_type", "resource_id", "outcome", "request_id", "client_address", "user_agent") values (gen_random_uuid(), now(), 'bench-doctor', 'doctor', 'bench-clinic', 'consultation.join', 'consultation', '00000000-0000-4000-8000-:n', 'allowed', gen_random_uuid()::text, '127.0.0.1', 'connect-es/2.2.0');
insert into "outbox_message" ("id", "type", "key", "subject", "clinic_id", "payload", "created_at", "attempts") values (gen_random_uuid(), 'video.token.generated', 'bench-apt-:n', '00000000-0000-4000-8000-:n', 'bench-clinic', '{"appointmentId":"bench-apt-:n","consultationId":"00000000-0000-4000-8000-:n","userId":"bench-doctor","userRole":"PARTICIPANT_ROLE_DOCTOR","provider":"PROVIDER_JITSI","expiresAt":"2030-01-01T01:00:00Z","clinicId":"bench-clinic"}', now(), 0) returning "seq";
commit;
