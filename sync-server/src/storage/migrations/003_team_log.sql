-- Schema 3: the team log (issue 12). Coordinators' devices sign every membership fact (genesis,
-- admission, revocation, role change, rotation) into an append-only, hash-chained log per
-- workspace; the server stores and serves it, and checks each append against it
-- (`storage::team_log`). Once a workspace has a log, its epoch follows the log's rotations.

-- How many entries the workspace's team log has (0: none yet).
ALTER TABLE workspaces ADD COLUMN log_len INTEGER NOT NULL DEFAULT 0;

-- The Automerge actor id a device enrolled with (covered by its join proof); the team log binds
-- it to the device's keys.
ALTER TABLE devices ADD COLUMN actor BLOB;

CREATE TABLE team_log (
    workspace   INTEGER NOT NULL REFERENCES workspaces (id),
    idx         INTEGER NOT NULL,
    -- SHA-256 of the signed entry, as `team_log::SignedEntry::hash` computes it.
    hash        BLOB NOT NULL,
    -- The CBOR of the entry exactly as its author signed it, and the signature.
    entry       BLOB NOT NULL,
    signature   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (workspace, idx)
) WITHOUT ROWID;
