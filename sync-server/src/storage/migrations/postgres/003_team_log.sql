-- PostgreSQL schema 3: the same as SQLite's schema 3 (see ../003_team_log.sql): the team log.

ALTER TABLE workspaces ADD COLUMN log_len BIGINT NOT NULL DEFAULT 0;

-- The Automerge actor id a device enrolled with (covered by its join proof); the team log binds
-- it to the device's keys.
ALTER TABLE devices ADD COLUMN actor BYTEA;

CREATE TABLE team_log (
    workspace   BIGINT NOT NULL REFERENCES workspaces (id),
    idx         BIGINT NOT NULL,
    hash        BYTEA NOT NULL,
    entry       BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (workspace, idx)
);
