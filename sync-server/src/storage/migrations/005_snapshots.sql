-- Schema 5: coordinators' snapshots of many documents (issue 13). A snapshot blob records the
-- last sequence number it covers (`snapshot_upto`) and the first snapshot blob of its
-- compaction (`snapshot_from`: a compaction may take several pushes). Pulls skip blobs a later
-- snapshot covers, and skip a snapshot for a device that was already past what it covers before
-- the compaction began (a device between its first and last snapshot blob takes them all).
ALTER TABLE blobs ADD COLUMN snapshot_upto INTEGER;
ALTER TABLE blobs ADD COLUMN snapshot_from INTEGER;
