//! Changing the store's encryption key without losing data.
//!
//! SQLCipher's `PRAGMA rekey` (checked on this build with the raw-key form and WAL) rewrites
//! every page with the new key in one write transaction. In WAL mode the rewritten pages are
//! appended to the log and become the database only when the commit frame is synced, so a
//! process killed at any instant leaves a store that opens with exactly one of the two keys,
//! with all of its data (`core/tests/rekey.rs` kills it to check). The host must therefore
//! keep the old key until `rekey` has returned, and on opening try the new key first, then
//! the old one (the Kotlin and Swift key helpers do this).

use zeroize::Zeroizing;

use super::{KEY_LEN, Store, connect, lock};
use crate::error::{Error, Result};

impl Store {
    /// Re-encrypts the whole store with `new_key` (32 bytes); afterwards only `new_key` opens
    /// it. Blocks reads and writes while it runs (it rewrites every page: about as long as
    /// copying the file).
    ///
    /// Fails with `InvalidInput` (field `new_key`) if the key is not 32 bytes, and with
    /// `Wiped` on a wiped store. If it fails, the store still opens with the old key.
    pub fn rekey(&self, new_key: &[u8]) -> Result<()> {
        let new_key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
            new_key
                .try_into()
                .map_err(|_| Error::invalid("new_key", format!("must be {KEY_LEN} bytes")))?,
        );
        // Writer first, then the key held exclusively: no write and no read is in progress,
        // so no connection opened with the old key is in use.
        let mut writer = lock(&self.inner.writer);
        let Some(w) = writer.as_mut() else {
            return Err(Error::Wiped);
        };
        let mut key = self.inner.key.write().unwrap_or_else(|p| p.into_inner());
        if key.is_none() {
            return Err(Error::Wiped);
        }
        // Readers were opened with the old key and would fail on the rewritten pages.
        lock(&self.inner.readers).clear();
        let pragma = Zeroizing::new(format!(
            "PRAGMA rekey = \"x'{}'\";",
            Zeroizing::new(hex::encode(*new_key)).as_str()
        ));
        w.conn.execute_batch(&pragma)?;
        // SQLCipher 4 does not always report a failed rekey: believe a fresh connection
        // opened with the new key, and keep the old key if it cannot read the file.
        drop(connect(&self.inner.path, &new_key, true)?);
        *key = Some(new_key);
        // Copy the rewritten pages from the log into the file now, so that the file stops
        // holding pages readable with the old key as soon as possible. Best effort: a busy
        // checkpoint happens later by itself.
        let _ = w
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(())
    }
}
