-- PostgreSQL schema 5: the same as SQLite's schema 5 (see ../005_snapshots.sql).
ALTER TABLE blobs ADD COLUMN snapshot_upto BIGINT;
ALTER TABLE blobs ADD COLUMN snapshot_from BIGINT;
