-- One audit entry per transaction, as an audited read writes it, into the table :table
-- (audit-seal-cost.ts: the table as it was before the seals, and as it is).
\set r random(1, 100000)
insert into :table (id, at, actor_id, actor_role, clinic_id, action, resource_type, resource_id, outcome, request_id, client_address, user_agent)
values (gen_random_uuid(), now(), 'doctor-' || :r % 50, 'doctor', 'clinic-' || :r % 7, 'consultation.read', 'consultation', 'c-' || :r, 'allowed', 'req-' || :r, '127.0.0.1', 'bench');
