-- Schema 4: the blob log's chain hash (issue 13). Each blob's row keeps the hash of the log up
-- to and including it (`waymark_protocol::chain_next`), so a device can tell a log that was
-- rewound (a restore from backup) and written again from the one it synced with, and find where
-- the two part. Rows stored before this schema are filled in, in order, by the migration code
-- (`storage::backfill_chain`): SQL has no SHA-256.
ALTER TABLE blobs ADD COLUMN chain BLOB;
