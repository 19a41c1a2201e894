//! The store's SQL schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! Each migration runs in one transaction together with the bump of `user_version`, so a
//! failure leaves the file exactly as it was. A file with a newer version than this build
//! knows is refused before anything is written. Projection tables are derived data: a
//! migration that changes them only marks projections stale, and `open` rebuilds them from
//! the documents with the current code.

use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};

/// One migration: the SQL that takes the schema from `version - 1` to `version`.
pub(crate) struct Migration {
    /// The version this migration reaches.
    pub version: i64,
    /// The SQL to run.
    pub sql: &'static str,
}

/// The documents: the source of truth, and everything a device needs to remember.
const V1: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    settings_doc TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE documents (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    snapshot BLOB NOT NULL,
    heads BLOB NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX documents_workspace ON documents(workspace_id, kind);
CREATE TABLE doc_chunks (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX doc_chunks_doc ON doc_chunks(doc_id, id);
";

/// Projections: one row per visit, workshop, attendee..., and full-text search.
const V2: &str = "
CREATE TABLE visits (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    place_name TEXT NOT NULL,
    area TEXT NOT NULL,
    lat REAL,
    lon REAL,
    visit_type TEXT NOT NULL,
    people_reached INTEGER NOT NULL,
    follow_up_needed INTEGER NOT NULL,
    follow_up_due TEXT,
    follow_up_done INTEGER NOT NULL,
    sensitivity TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    has_conflicts INTEGER NOT NULL
);
CREATE INDEX visits_time ON visits(occurred_at, id);
CREATE INDEX visits_area ON visits(area, occurred_at);
CREATE INDEX visits_follow_up ON visits(follow_up_needed, follow_up_done, follow_up_due);
CREATE TABLE visit_indicators (
    visit_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    PRIMARY KEY (visit_id, indicator)
) WITHOUT ROWID;
CREATE INDEX visit_indicators_by_indicator ON visit_indicators(indicator, visit_id);
CREATE TABLE visit_tags (
    visit_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (visit_id, tag)
) WITHOUT ROWID;
CREATE TABLE referrals (
    visit_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    to_whom TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (visit_id, id)
) WITHOUT ROWID;
CREATE TABLE workshops (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    title TEXT NOT NULL,
    topic TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL,
    venue TEXT NOT NULL,
    area TEXT NOT NULL,
    audience TEXT NOT NULL,
    language TEXT NOT NULL,
    sensitivity TEXT NOT NULL,
    feedback_count INTEGER NOT NULL,
    feedback_avg REAL,
    deleted INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    has_conflicts INTEGER NOT NULL
);
CREATE INDEX workshops_time ON workshops(occurred_at, id);
CREATE TABLE workshop_facilitators (
    workshop_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (workshop_id, name)
) WITHOUT ROWID;
CREATE TABLE attendees (
    workshop_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    age_band TEXT,
    gender TEXT,
    contact TEXT,
    consent_at INTEGER,
    checked_in_at INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL,
    PRIMARY KEY (workshop_id, id)
) WITHOUT ROWID;
CREATE TABLE tallies (
    workshop_id TEXT NOT NULL,
    age_band TEXT NOT NULL,
    gender TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (workshop_id, age_band, gender)
) WITHOUT ROWID;
CREATE TABLE feedback (
    workshop_id TEXT NOT NULL,
    id TEXT NOT NULL,
    score INTEGER NOT NULL,
    comment TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (workshop_id, id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE search USING fts5(
    doc_id UNINDEXED, kind UNINDEXED, workspace_id UNINDEXED, sensitivity UNINDEXED,
    title, body,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO meta(key, value) VALUES ('projections_stale', 1)
    ON CONFLICT(key) DO UPDATE SET value = 1;
";

/// Team membership: workspace keys by epoch, the sync server of each connected workspace,
/// the outbox of sealed changes not yet pushed, and blobs set aside because they failed
/// authentication.
const V3: &str = "
CREATE TABLE workspace_keys (
    workspace_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY (workspace_id, epoch)
);
CREATE TABLE memberships (
    workspace_id TEXT PRIMARY KEY,
    server_url TEXT NOT NULL,
    server_workspace_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    device_token TEXT NOT NULL,
    cursor INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    last_sync_at INTEGER
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    content_id BLOB NOT NULL,
    ciphertext BLOB NOT NULL
);
CREATE INDEX outbox_workspace ON outbox(workspace_id, id);
CREATE TABLE set_aside (
    id INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL,
    UNIQUE (workspace_id, seq)
);
";

/// Reports by worker: the device (Automerge actor, hex) that created each visit and workshop.
const V4: &str = "
ALTER TABLE visits ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE workshops ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
CREATE INDEX visits_created_by ON visits(created_by, occurred_at);
CREATE INDEX workshops_created_by ON workshops(created_by, occurred_at);
INSERT INTO meta(key, value) VALUES ('projections_stale', 1)
    ON CONFLICT(key) DO UPDATE SET value = 1;
";

/// Team security: each membership's own device keys and role, the team directory as the
/// server last listed it, verification secrets of this device's invites, the signing keys
/// this device accepts workspace keys from (learnt in person, through invites), the devices it
/// vouches for (which its key rotations include), and the sealed bytes of set-aside blobs
/// (kept so a blob waiting for a key can be applied once it arrives).
const V5: &str = "
ALTER TABLE memberships ADD COLUMN device_keys BLOB;
ALTER TABLE memberships ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
ALTER TABLE memberships ADD COLUMN team_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN join_proof BLOB;
CREATE TABLE team_devices (
    workspace_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    sign_key BLOB NOT NULL,
    box_key BLOB NOT NULL,
    join_proof BLOB,
    enrolled_at INTEGER NOT NULL,
    revoked_at_seq INTEGER,
    key_epochs TEXT NOT NULL,
    PRIMARY KEY (workspace_id, device_id)
);
CREATE INDEX team_devices_sign_key ON team_devices(workspace_id, sign_key);
CREATE TABLE team_state (
    workspace_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    rotation_needed INTEGER NOT NULL
);
CREATE TABLE invite_secrets (
    workspace_id TEXT NOT NULL,
    secret BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    approval INTEGER NOT NULL
);
CREATE TABLE trusted_signers (
    workspace_id TEXT NOT NULL,
    sign_key BLOB NOT NULL,
    PRIMARY KEY (workspace_id, sign_key)
);
CREATE TABLE accepted_devices (
    workspace_id TEXT NOT NULL,
    sign_key BLOB NOT NULL,
    PRIMARY KEY (workspace_id, sign_key)
);
ALTER TABLE set_aside ADD COLUMN epoch INTEGER;
ALTER TABLE set_aside ADD COLUMN blob BLOB;
";

/// The team log (issue 12): the verified copy of each workspace's coordinator-signed log, the
/// team it makes (`team_members`: every admitted device with the keys the log binds together,
/// and where its blobs stop counting once revoked), the log's head and the attack this device
/// noticed, if any, in `team_state`; where this device's trust in the log starts (the entry
/// its invite named); the role and use of invite secrets (single use); alerts about the
/// server; and why a set-aside blob is held. Memberships from before the log keep the trust
/// they had (`legacy_trust`): the coordinators they learnt in person.
const V6: &str = "
CREATE TABLE team_log (
    workspace_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    entry BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (workspace_id, idx)
);
CREATE TABLE team_members (
    workspace_id TEXT NOT NULL,
    sign_key BLOB NOT NULL,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    box_key BLOB NOT NULL,
    actor BLOB,
    admitted_idx INTEGER NOT NULL,
    vouch TEXT,
    revoked_after_seq INTEGER,
    PRIMARY KEY (workspace_id, sign_key)
);
ALTER TABLE team_state ADD COLUMN log_len INTEGER NOT NULL DEFAULT 0;
ALTER TABLE team_state ADD COLUMN log_head BLOB;
ALTER TABLE team_state ADD COLUMN rotation_due INTEGER NOT NULL DEFAULT 0;
ALTER TABLE team_state ADD COLUMN attack TEXT;
ALTER TABLE team_state ADD COLUMN set_aside_dropped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN anchor_idx INTEGER;
ALTER TABLE memberships ADD COLUMN anchor_hash BLOB;
ALTER TABLE memberships ADD COLUMN legacy_trust INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN actor BLOB;
ALTER TABLE memberships ADD COLUMN repull INTEGER NOT NULL DEFAULT 0;
UPDATE memberships SET legacy_trust = 1;
ALTER TABLE invite_secrets ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
CREATE TABLE team_alerts (
    id INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX team_alerts_workspace ON team_alerts(workspace_id, id);
ALTER TABLE set_aside ADD COLUMN held TEXT;
ALTER TABLE team_devices ADD COLUMN actor BLOB;
ALTER TABLE outbox ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN kind TEXT;
ALTER TABLE outbox ADD COLUMN plain BLOB;
CREATE TABLE restricted_keys (
    workspace_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    public BLOB NOT NULL,
    secret BLOB,
    PRIMARY KEY (workspace_id, epoch)
);
UPDATE set_aside SET held = 'key' WHERE blob IS NOT NULL;
";

/// Restores from backup (issue 13): the chain hash of the server's blob log at this device's
/// cursor, marks (a sequence number and the hash there) to go back to when the log is rewound,
/// and the last sequence number each document was seen at on the server (0: before this
/// version), which tells what to send again.
const V7: &str = "
ALTER TABLE memberships ADD COLUMN cursor_chain BLOB;
CREATE TABLE chain_marks (
    workspace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    chain BLOB NOT NULL,
    PRIMARY KEY (workspace_id, seq)
) WITHOUT ROWID;
ALTER TABLE documents ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
";

/// Forgetting (issue 13): each record's generation (bumped by an erase or a redaction, which
/// rewrite it without its history), the number of the server's blobs a queued rewrite
/// supersedes, and a search index that drops a deleted row's words at once instead of at its
/// next merge.
const V8: &str = "
ALTER TABLE documents ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN supersedes INTEGER;
INSERT INTO search(search, rank) VALUES ('secure-delete', 1);
";

/// Snapshots (issue 13): the snapshot blobs of each workspace this device pushed or pulled, so
/// that the next snapshot covers them too and the log's tail since the last one is known.
const V9: &str = "
CREATE TABLE snapshot_packs (
    workspace_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, doc_id)
) WITHOUT ROWID;
";

/// Safety check-ins (issue 14): this device's and its teammates' check-ins (details opened from
/// what their devices sealed, the state the server reports, the state change listeners were
/// last told of), and per workspace the check-ins'
/// version last seen in a pull and last fetched, and the server's grace period.
const V10: &str = "
CREATE TABLE check_ins (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    own INTEGER NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    expected_back INTEGER NOT NULL,
    closed_at INTEGER,
    place TEXT NOT NULL,
    with_whom TEXT NOT NULL,
    note TEXT NOT NULL,
    send_state TEXT,
    sent_version INTEGER NOT NULL DEFAULT 0,
    server_state TEXT,
    overdue_since INTEGER,
    told TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX check_ins_workspace ON check_ins(workspace_id, own);
ALTER TABLE memberships ADD COLUMN check_ins_seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN check_ins_fetched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN check_ins_grace INTEGER NOT NULL DEFAULT 600;
";

/// Duplicate attendees (issue 14): each attendee's name as compared (no accents, case or word
/// order) and the attendee it was marked the same person as; projections are rebuilt to fill
/// them.
const V11: &str = "
ALTER TABLE attendees ADD COLUMN same_as TEXT;
ALTER TABLE attendees ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
CREATE INDEX attendees_name_key ON attendees(name_key);
INSERT INTO meta(key, value) VALUES ('projections_stale', 1)
    ON CONFLICT(key) DO UPDATE SET value = 1;
";

/// Anonymous tips (issue 14): tip records' projection; the tip page a coordinator set up here
/// (its path and words) and the epoch whose key the server was last seen publishing; tips
/// stored as records whose deletion from the server is still to be asked; replies sealed to
/// tipsters, waiting to be sent; and how many tips the last pull said were waiting. Also (the
/// coordinator's desk): each device's last sync as the server last listed it, and when.
const V12: &str = "
CREATE TABLE tips (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    language TEXT NOT NULL,
    replies INTEGER NOT NULL,
    visit_id TEXT,
    deleted INTEGER NOT NULL
);
CREATE INDEX tips_workspace ON tips(workspace_id, received_at);
CREATE TABLE tip_pages (
    workspace_id TEXT PRIMARY KEY,
    page TEXT NOT NULL,
    languages BLOB NOT NULL,
    published_epoch INTEGER
);
CREATE TABLE tips_stored (
    workspace_id TEXT NOT NULL,
    server_id INTEGER NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, server_id)
);
CREATE TABLE tip_replies_out (
    id INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    request BLOB NOT NULL
);
ALTER TABLE memberships ADD COLUMN tips_waiting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN listing_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE team_devices ADD COLUMN last_sync_at INTEGER;
";

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: V1,
    },
    Migration {
        version: 2,
        sql: V2,
    },
    Migration {
        version: 3,
        sql: V3,
    },
    Migration {
        version: 4,
        sql: V4,
    },
    Migration {
        version: 5,
        sql: V5,
    },
    Migration {
        version: 6,
        sql: V6,
    },
    Migration {
        version: 7,
        sql: V7,
    },
    Migration {
        version: 8,
        sql: V8,
    },
    Migration {
        version: 9,
        sql: V9,
    },
    Migration {
        version: 10,
        sql: V10,
    },
    Migration {
        version: 11,
        sql: V11,
    },
    Migration {
        version: 12,
        sql: V12,
    },
];

/// The schema version this build writes.
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// Brings the database up to the last of `migrations`, one transaction per step.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = latest(migrations);
    if found > supported {
        return Err(Error::NewerSchema { found, supported });
    }
    for m in migrations.iter().filter(|m| m.version > found) {
        let tx = conn.transaction()?;
        step(&tx, m).map_err(|source| Error::Migration {
            version: m.version,
            source,
        })?;
        tx.commit().map_err(|source| Error::Migration {
            version: m.version,
            source,
        })?;
    }
    Ok(())
}

fn step(tx: &Transaction<'_>, m: &Migration) -> rusqlite::Result<()> {
    tx.execute_batch(m.sql)?;
    tx.pragma_update(None, "user_version", m.version)
}
