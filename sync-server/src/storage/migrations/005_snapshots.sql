-- Schema 5: coordinators' snapshots of many documents (issue 13). A snapshot blob records the
-- last sequence number it covers; pulls skip blobs a later snapshot covers, and skip a snapshot
-- for a device whose cursor is already past what it covers.
ALTER TABLE blobs ADD COLUMN snapshot_upto INTEGER;
