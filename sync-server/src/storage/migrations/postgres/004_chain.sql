-- PostgreSQL schema 4: the same as SQLite's schema 4 (see ../004_chain.sql): each blob's chain
-- hash, filled in for earlier rows by the migration code.
ALTER TABLE blobs ADD COLUMN chain BYTEA;
