package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations run in order, each in its own transaction; the table
// audit_stream_schema records how many have run. Append only: a released
// migration never changes. They create objects in the connection's current
// schema (the first of search_path), so one database can hold several logs.
var migrations = []string{
	`-- 1: events with their Merkle tree hashes, meta, tokens, idempotency keys.
-- Hashes are 32 raw bytes. kind and source are bytea because any string a
-- producer may send must round-trip exactly (text refuses NUL); the view
-- events_hex shows rows as the API does.
CREATE TABLE events (
	event_id  bigint PRIMARY KEY,
	timestamp text   NOT NULL,
	kind      bytea  NOT NULL,
	source    bytea  NOT NULL,
	payload   text   NOT NULL,
	prev_hash bytea  NOT NULL,
	hash      bytea  NOT NULL,
	tree      bytea  NOT NULL
);
-- A btree entry must fit in a third of a page, and a stored kind or source
-- may be longer than that (an import of another log's export), so the
-- filter indexes hold their SHA-256; queries compare both the digest and
-- the value.
CREATE INDEX events_kind ON events (sha256(kind), event_id);
CREATE INDEX events_source ON events (sha256(source), event_id);
CREATE VIEW events_hex AS
	SELECT event_id, timestamp, encode(kind, 'escape') AS kind, encode(source, 'escape') AS source,
	       payload, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
	FROM events;
CREATE TABLE meta (
	key   text  PRIMARY KEY,
	value bytea NOT NULL
);
CREATE TABLE tokens (
	id      text  PRIMARY KEY,
	name    text  NOT NULL,
	roles   text  NOT NULL,
	sources text  NOT NULL,
	digest  bytea NOT NULL UNIQUE,
	created text  NOT NULL,
	expires text,
	revoked text
);
CREATE TABLE idempotency_keys (
	scope       text   NOT NULL,
	key         text   NOT NULL,
	body_digest bytea  NOT NULL,
	first_id    bigint NOT NULL,
	count       bigint NOT NULL,
	created     bigint NOT NULL,
	PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created);`,
	`-- 2: the instant of each event's timestamp, for time ranges. The timestamp
-- column keeps the text as sent (the hash covers it); ts is its instant in
-- Unix microseconds, computed by the server with the API's own timestamp
-- grammar, NULL until then and for a timestamp that does not parse. The
-- server fills it for rows written before this migration (or by an older
-- binary) at start-up; events_ts_missing keeps finding them cheap.
ALTER TABLE events ADD COLUMN ts bigint;
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_ts_missing ON events (event_id) WHERE ts IS NULL;
-- The value at a payload path, for the expression indexes --index-payload
-- creates (audit_stream_payload_key(payload, '{decision_id}')). Numbers are
-- compared as doubles, as the API compares them, so they are keyed by their
-- double value; a payload jsonb cannot read (a \u0000 escape) is keyed by a
-- marker every indexed query also selects, so that no match is ever missed:
-- the server checks each candidate row exactly.
CREATE FUNCTION audit_stream_payload_key(payload text, path text[]) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
	v jsonb;
BEGIN
	v := payload::jsonb #> path;
	IF jsonb_typeof(v) = 'number' THEN
		RETURN to_jsonb((v #>> '{}')::float8);
	END IF;
	RETURN v;
EXCEPTION WHEN others THEN
	RETURN '"\u0001unreadable"'::jsonb;
END
$fn$;`,
	provenanceSchema,
	`-- 4: the payload key function catches errors, which opens a subtransaction
-- on every call, and a parallel worker cannot open one: marked parallel safe,
-- it failed every index build PostgreSQL ran in parallel (--index-payload on
-- an existing log of a few hundred megabytes) and any parallel scan that
-- called it.
ALTER FUNCTION audit_stream_payload_key(text, text[]) PARALLEL UNSAFE;`,
	`-- 5: kind and source are far from independent (a producer sends a few
-- kinds), and the planner multiplied their selectivities, and those of their
-- digests the indexes hold, as if they were: it took a kind and source
-- matching 16,700 rows of a million for about a hundred, and read a time
-- range through the ts index and sorted it. These statistics give it the
-- pairs' real frequencies. ANALYZE fills them now rather than at
-- autovacuum's next pass (never, where it is off): it reads a sample of the
-- table, seconds whatever its size.
CREATE STATISTICS events_kind_source (dependencies, mcv) ON kind, source, sha256(kind), sha256(source) FROM events;
ANALYZE events;`,
}

// unreadableKey is what audit_stream_payload_key returns for a payload it
// cannot read; every indexed lookup also selects it.
const unreadableKey = `"\u0001unreadable"`

const versionTable = `CREATE TABLE IF NOT EXISTS audit_stream_schema (version integer NOT NULL);`

// MigrationSQL is every migration as one script, for DBAs who apply schema
// changes themselves (audit-stream migrate --print).
func MigrationSQL() string {
	var b strings.Builder
	b.WriteString("-- audit-stream schema for PostgreSQL; run in the schema the servers use.\nBEGIN;\n")
	b.WriteString(versionTable + "\n")
	for i, m := range migrations {
		fmt.Fprintf(&b, "\n%s\n", m)
		if i == 0 {
			b.WriteString("INSERT INTO audit_stream_schema (version) VALUES (1);\n")
		} else {
			fmt.Fprintf(&b, "UPDATE audit_stream_schema SET version = %d;\n", i+1)
		}
	}
	b.WriteString("COMMIT;\n")
	return b.String()
}

// migrate brings the schema up to date. Instances starting together take
// turns under a transaction-level advisory lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, lockKey int64) error {
	for {
		done, err := migrateStep(ctx, pool, lockKey)
		if err != nil || done {
			return err
		}
	}
}

func migrateStep(ctx context.Context, pool *pgxpool.Pool, lockKey int64) (done bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return false, fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, versionTable); err != nil {
		return false, fmt.Errorf("postgres: migrate: %w", err)
	}
	var v int
	err = tx.QueryRow(ctx, "SELECT version FROM audit_stream_schema").Scan(&v)
	switch {
	case err == pgx.ErrNoRows:
		if _, err := tx.Exec(ctx, "INSERT INTO audit_stream_schema (version) VALUES (0)"); err != nil {
			return false, fmt.Errorf("postgres: migrate: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("postgres: read schema version: %w", err)
	}
	if v > len(migrations) {
		return false, fmt.Errorf("postgres: database schema version %d is newer than this binary knows (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return true, tx.Commit(ctx)
	}
	if _, err := tx.Exec(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("postgres: migration %d: %w", v+1, err)
	}
	if _, err := tx.Exec(ctx, "UPDATE audit_stream_schema SET version = $1", v+1); err != nil {
		return false, fmt.Errorf("postgres: migration %d: %w", v+1, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("postgres: migration %d: %w", v+1, err)
	}
	return false, nil
}

// Exec runs a script (such as MigrationSQL) on the database at url.
func Exec(ctx context.Context, url, script string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, script); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}
