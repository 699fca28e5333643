-- The table the PostgreSQL writer inserts into (as scripts/postgres.sh
-- creates it for the tests).
create table if not exists records (
    record_id uuid primary key,
    table_name text not null,
    payload jsonb not null,
    tags text[] not null default '{}',
    written_at timestamptz not null default now());
