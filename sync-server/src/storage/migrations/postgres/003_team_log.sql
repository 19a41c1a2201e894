-- PostgreSQL schema 3: the same as SQLite's schema 3 (see ../003_team_log.sql): the team log.

ALTER TABLE workspaces ADD COLUMN log_len BIGINT NOT NULL DEFAULT 0;

CREATE TABLE team_log (
    workspace   BIGINT NOT NULL REFERENCES workspaces (id),
    idx         BIGINT NOT NULL,
    hash        BYTEA NOT NULL,
    entry       BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (workspace, idx)
);
