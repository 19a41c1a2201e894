-- PostgreSQL schema 2: the same as SQLite's schema 2 (see ../002_team.sql): device keys and
-- roles, the workspace's key epoch and team version, and key envelopes.

ALTER TABLE workspaces ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN team_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN rotation_needed BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE enrollment_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'coordinator';
UPDATE enrollment_tokens SET role = 'member' WHERE issued_by IS NOT NULL;

ALTER TABLE devices ADD COLUMN role TEXT NOT NULL DEFAULT 'coordinator';
UPDATE devices SET role = 'member'
    WHERE id IN (SELECT used_by FROM enrollment_tokens WHERE issued_by IS NOT NULL);
ALTER TABLE devices ADD COLUMN sign_key BYTEA;
ALTER TABLE devices ADD COLUMN box_key BYTEA;
ALTER TABLE devices ADD COLUMN join_proof BYTEA;
ALTER TABLE devices ADD COLUMN revoked_at_seq BIGINT;
-- Devices revoked before schema 2: the head when the revocation happened, as far as blob times
-- tell (a revoked device cannot push, so none of its blobs is above this).
UPDATE devices SET revoked_at_seq = (
    SELECT coalesce(max(b.seq), 0) FROM blobs b
    WHERE b.workspace = devices.workspace AND b.created_at <= devices.revoked_at
) WHERE revoked_at IS NOT NULL;
-- Those devices still hold the workspace key.
UPDATE workspaces SET rotation_needed = TRUE
    WHERE id IN (SELECT workspace FROM devices WHERE revoked_at IS NOT NULL);
CREATE UNIQUE INDEX devices_sign_key ON devices (workspace, sign_key);
CREATE UNIQUE INDEX devices_box_key ON devices (workspace, box_key);

CREATE TABLE key_envelopes (
    device      BIGINT NOT NULL REFERENCES devices (id),
    epoch       BIGINT NOT NULL,
    sealed_key  BYTEA NOT NULL,
    signer_key  BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (device, epoch)
);
