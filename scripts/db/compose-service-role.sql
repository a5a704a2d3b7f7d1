-- docker compose only: the service's least-privilege login role, created when the
-- postgres container first initialises its data (docker-entrypoint-initdb.d, as the
-- owner role POSTGRES_USER). Its privileges come from the migrations' grant step, run at
-- the service's start (MIGRATE_ON_START with DATABASE_MIGRATION_URL). Development
-- credentials: in production create the role with a secret password (README, "Database
-- roles").
create role video_service login password 'video_service' nosuperuser nocreatedb nocreaterole;
