-- Schema 6: staff safety check-ins (issue 14). Before a risky visit a worker's phone starts a
-- check-in (a random id, "due back in N seconds", the details sealed for the team), may extend
-- it, and closes it (safe) or raises it (`alarm`, the duress PIN). The server watches the
-- deadline on its own clock: still open past the deadline and the grace period, a check-in is
-- overdue and the operator's alert hook runs, as it does for an alarm. The server learns the
-- device, the deadline, the state and the timing, never the details.

-- Grows with every change of the workspace's check-ins; pulls report it, so devices fetch the
-- list only when it changed.
ALTER TABLE workspaces ADD COLUMN check_ins_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE check_ins (
    workspace   INTEGER NOT NULL REFERENCES workspaces (id),
    id          BLOB NOT NULL,      -- 16 random bytes chosen by the device
    device      INTEGER NOT NULL REFERENCES devices (id),  -- the only one that may update it
    state       TEXT NOT NULL,      -- open, overdue, closed, alarm
    deadline    INTEGER NOT NULL,   -- server clock
    version     INTEGER NOT NULL,   -- the device's update number: the highest is kept
    epoch       INTEGER NOT NULL,
    sealed      BLOB NOT NULL,      -- details sealed under the workspace key; opaque here
    updated_at  INTEGER NOT NULL,   -- the device's last accepted update
    overdue_at  INTEGER,            -- when the watcher found it overdue
    -- The alert: its kind ('overdue' or 'alarm') while one is owed, NULL when none is; when a
    -- watcher claimed it (a claim older than a minute is taken over: at least once, also with
    -- several server processes), when the hook succeeded, and how many times it was claimed.
    alert_kind  TEXT,
    claimed_at  INTEGER,
    alerted_at  INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, id)
);
-- What the watcher scans every second: open check-ins by deadline and alerts not delivered;
-- every minute, finished check-ins by age. And a device's live check-ins (the limit per device).
CREATE INDEX check_ins_deadline ON check_ins (deadline) WHERE state = 'open';
CREATE INDEX check_ins_alerts ON check_ins (claimed_at)
    WHERE alert_kind IS NOT NULL AND alerted_at IS NULL;
CREATE INDEX check_ins_finished ON check_ins (updated_at) WHERE state IN ('closed', 'alarm');
CREATE INDEX check_ins_device ON check_ins (device, state);
