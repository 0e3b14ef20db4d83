-- latchkey control plane schema, SQLite dialect. Times are integer microseconds since the
-- Unix epoch (UTC). Lists are JSON arrays of strings. Mirrors ../postgres/0001_init.sql
-- table for table and column for column; keep them in step.

CREATE TABLE realms (
	name             TEXT    NOT NULL PRIMARY KEY,
	created_at       INTEGER NOT NULL,
	snapshot_version INTEGER NOT NULL DEFAULT 0,
	policy_version   INTEGER NOT NULL DEFAULT 0,
	change_seq       INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE api_keys (
	realm        TEXT    NOT NULL REFERENCES realms (name),
	id           TEXT    NOT NULL,
	hash         BLOB    NOT NULL CHECK (length(hash) = 32),
	prefix       TEXT    NOT NULL,
	last4        TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	type         TEXT    NOT NULL,
	scopes       TEXT    NOT NULL,
	org          TEXT    NOT NULL,
	agents       TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	revoked_at   INTEGER,
	rotated_from TEXT    NOT NULL,
	imported     INTEGER NOT NULL CHECK (imported IN (0, 1)),
	admin        INTEGER NOT NULL CHECK (admin IN (0, 1)),
	change_seq   INTEGER NOT NULL,
	PRIMARY KEY (realm, id),
	UNIQUE (realm, hash)
) STRICT;
CREATE INDEX api_keys_created ON api_keys (realm, created_at, id);
CREATE INDEX api_keys_org ON api_keys (realm, org, created_at, id);
CREATE INDEX api_keys_change ON api_keys (realm, change_seq);

CREATE TABLE signing_keys (
	realm          TEXT    NOT NULL REFERENCES realms (name),
	kid            TEXT    NOT NULL,
	alg            TEXT    NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
	public_key     BLOB    NOT NULL,
	private_sealed BLOB    NOT NULL,
	created_at     INTEGER NOT NULL,
	retired_at     INTEGER,
	not_after      INTEGER,
	PRIMARY KEY (realm, kid)
) STRICT;
-- At most one active key per realm.
CREATE UNIQUE INDEX signing_keys_active ON signing_keys (realm) WHERE retired_at IS NULL;

CREATE TABLE org_states (
	realm      TEXT    NOT NULL REFERENCES realms (name),
	org        TEXT    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('active', 'budget_exhausted', 'suspended')),
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (realm, org)
) STRICT;

CREATE TABLE policies (
	realm      TEXT    NOT NULL REFERENCES realms (name),
	version    INTEGER NOT NULL CHECK (version > 0),
	yaml       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT    NOT NULL,
	PRIMARY KEY (realm, version)
) STRICT;

CREATE TABLE revocations (
	realm      TEXT    NOT NULL REFERENCES realms (name),
	kind       TEXT    NOT NULL CHECK (kind IN ('jti', 'session')),
	value      TEXT    NOT NULL,
	until_at   INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (realm, kind, value)
) STRICT;
CREATE INDEX revocations_until ON revocations (until_at);
CREATE INDEX revocations_realm_until ON revocations (realm, until_at);

CREATE TABLE audit_events (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	realm  TEXT    NOT NULL REFERENCES realms (name),
	at     INTEGER NOT NULL,
	actor  TEXT    NOT NULL,
	action TEXT    NOT NULL,
	target TEXT    NOT NULL,
	detail TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_events_realm ON audit_events (realm, id);
CREATE INDEX audit_events_target ON audit_events (realm, target, id);
