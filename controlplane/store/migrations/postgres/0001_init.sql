-- latchkey control plane schema, PostgreSQL dialect. Mirrors ../sqlite/0001_init.sql table
-- for table and column for column; keep them in step. Text compared or sorted by the store
-- uses the "C" collation so that ordering is by bytes, as in SQLite. Constraint names are
-- part of the contract: the store maps unique violations to fields by name.

CREATE TABLE realms (
	name             text COLLATE "C" NOT NULL,
	created_at       timestamptz      NOT NULL,
	snapshot_version bigint           NOT NULL DEFAULT 0,
	policy_version   bigint           NOT NULL DEFAULT 0,
	change_seq       bigint           NOT NULL DEFAULT 0,
	CONSTRAINT realms_pkey PRIMARY KEY (name)
);

CREATE TABLE api_keys (
	realm        text COLLATE "C" NOT NULL REFERENCES realms (name),
	id           text COLLATE "C" NOT NULL,
	hash         bytea            NOT NULL CHECK (length(hash) = 32),
	prefix       text             NOT NULL,
	last4        text             NOT NULL,
	name         text             NOT NULL,
	type         text COLLATE "C" NOT NULL,
	scopes       jsonb            NOT NULL,
	org          text COLLATE "C" NOT NULL,
	agents       jsonb            NOT NULL,
	created_at   timestamptz      NOT NULL,
	expires_at   timestamptz,
	revoked_at   timestamptz,
	rotated_from text             NOT NULL,
	imported     boolean          NOT NULL,
	admin        boolean          NOT NULL,
	change_seq   bigint           NOT NULL,
	CONSTRAINT api_keys_pkey PRIMARY KEY (realm, id),
	CONSTRAINT api_keys_hash_key UNIQUE (realm, hash)
);
CREATE INDEX api_keys_created ON api_keys (realm, created_at, id);
CREATE INDEX api_keys_org ON api_keys (realm, org, created_at, id);
CREATE INDEX api_keys_change ON api_keys (realm, change_seq);

CREATE TABLE signing_keys (
	realm          text COLLATE "C" NOT NULL REFERENCES realms (name),
	kid            text COLLATE "C" NOT NULL,
	alg            text             NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
	public_key     bytea            NOT NULL,
	private_sealed bytea            NOT NULL,
	created_at     timestamptz      NOT NULL,
	retired_at     timestamptz,
	not_after      timestamptz,
	CONSTRAINT signing_keys_pkey PRIMARY KEY (realm, kid)
);
-- At most one active key per realm.
CREATE UNIQUE INDEX signing_keys_active ON signing_keys (realm) WHERE retired_at IS NULL;

CREATE TABLE org_states (
	realm      text COLLATE "C" NOT NULL REFERENCES realms (name),
	org        text COLLATE "C" NOT NULL,
	state      text             NOT NULL CHECK (state IN ('active', 'budget_exhausted', 'suspended')),
	updated_at timestamptz      NOT NULL,
	CONSTRAINT org_states_pkey PRIMARY KEY (realm, org)
);

CREATE TABLE policies (
	realm      text COLLATE "C" NOT NULL REFERENCES realms (name),
	version    bigint           NOT NULL CHECK (version > 0),
	yaml       bytea            NOT NULL,
	created_at timestamptz      NOT NULL,
	created_by text             NOT NULL,
	CONSTRAINT policies_pkey PRIMARY KEY (realm, version)
);

CREATE TABLE revocations (
	realm      text COLLATE "C" NOT NULL REFERENCES realms (name),
	kind       text COLLATE "C" NOT NULL CHECK (kind IN ('jti', 'session')),
	value      text COLLATE "C" NOT NULL,
	until_at   timestamptz      NOT NULL,
	created_at timestamptz      NOT NULL,
	CONSTRAINT revocations_pkey PRIMARY KEY (realm, kind, value)
);
CREATE INDEX revocations_until ON revocations (until_at);
CREATE INDEX revocations_realm_until ON revocations (realm, until_at);

CREATE TABLE audit_events (
	id     bigint GENERATED ALWAYS AS IDENTITY,
	realm  text COLLATE "C" NOT NULL REFERENCES realms (name),
	at     timestamptz      NOT NULL,
	actor  text             NOT NULL,
	action text COLLATE "C" NOT NULL,
	target text COLLATE "C" NOT NULL,
	detail jsonb            NOT NULL,
	CONSTRAINT audit_events_pkey PRIMARY KEY (id)
);
CREATE INDEX audit_events_realm ON audit_events (realm, id);
CREATE INDEX audit_events_target ON audit_events (realm, target, id);
