-- Schema 2: team security (issue 5). Devices carry public keys and a role; a workspace has a key
-- epoch, a team version and a "rotation needed" flag; coordinators' devices upload workspace keys
-- sealed to each device (envelopes).

-- Newest key epoch a coordinator rotated to.
ALTER TABLE workspaces ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
-- Grows with every enrollment, revocation and key upload; pulls report it.
ALTER TABLE workspaces ADD COLUMN team_version INTEGER NOT NULL DEFAULT 0;
-- 1 once a device is revoked, 0 again after a rotation.
ALTER TABLE workspaces ADD COLUMN rotation_needed INTEGER NOT NULL DEFAULT 0;

-- The role the enrolling device gets. Before roles, the operator's tokens went to the team's
-- first devices and devices invited the rest: those become coordinators and members.
ALTER TABLE enrollment_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'coordinator';
UPDATE enrollment_tokens SET role = 'member' WHERE issued_by IS NOT NULL;

ALTER TABLE devices ADD COLUMN role TEXT NOT NULL DEFAULT 'coordinator';
UPDATE devices SET role = 'member'
    WHERE id IN (SELECT used_by FROM enrollment_tokens WHERE issued_by IS NOT NULL);
-- Public keys; NULL only for devices enrolled before schema 2.
ALTER TABLE devices ADD COLUMN sign_key BLOB;
ALTER TABLE devices ADD COLUMN box_key BLOB;
ALTER TABLE devices ADD COLUMN join_proof BLOB;
-- The workspace's head_seq when the revocation committed.
ALTER TABLE devices ADD COLUMN revoked_at_seq INTEGER;
-- Devices revoked before schema 2: the head when the revocation happened, as far as blob times
-- tell (a revoked device cannot push, so none of its blobs is above this).
UPDATE devices SET revoked_at_seq = (
    SELECT coalesce(max(b.seq), 0) FROM blobs b
    WHERE b.workspace = devices.workspace AND b.created_at <= devices.revoked_at
) WHERE revoked_at IS NOT NULL;
-- Those devices still hold the workspace key.
UPDATE workspaces SET rotation_needed = 1
    WHERE id IN (SELECT workspace FROM devices WHERE revoked_at IS NOT NULL);
-- Clients identify a blob's signer by its sign key: no two devices of a workspace share one.
CREATE UNIQUE INDEX devices_sign_key ON devices (workspace, sign_key);
CREATE UNIQUE INDEX devices_box_key ON devices (workspace, box_key);

CREATE TABLE key_envelopes (
    device      INTEGER NOT NULL REFERENCES devices (id),
    epoch       INTEGER NOT NULL,
    sealed_key  BLOB NOT NULL,
    signer_key  BLOB NOT NULL,
    signature   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (device, epoch)
) WITHOUT ROWID;
