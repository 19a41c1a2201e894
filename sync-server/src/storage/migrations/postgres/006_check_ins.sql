-- PostgreSQL schema 6: the same as SQLite's schema 6 (see ../006_check_ins.sql).
ALTER TABLE workspaces ADD COLUMN check_ins_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE check_ins (
    workspace   BIGINT NOT NULL REFERENCES workspaces (id),
    id          BYTEA NOT NULL,
    device      BIGINT NOT NULL REFERENCES devices (id),
    state       TEXT NOT NULL,
    deadline    BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    sealed      BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL,
    overdue_at  BIGINT,
    alert_kind  TEXT,
    claimed_at  BIGINT,
    alerted_at  BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX check_ins_deadline ON check_ins (deadline) WHERE state = 'open';
CREATE INDEX check_ins_alerts ON check_ins (claimed_at)
    WHERE alert_kind IS NOT NULL AND alerted_at IS NULL;
CREATE INDEX check_ins_finished ON check_ins (updated_at) WHERE state IN ('closed', 'alarm');
CREATE INDEX check_ins_device ON check_ins (device, state);
