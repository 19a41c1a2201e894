//! The panic button and key change at the boundary: `WaymarkStore.wipe()`,
//! `WaymarkStore.rekey(newKey)` and `destroyStoreFiles(path)`.
//!
//! The platform wrappers (`android/`, `ios/`) add what only they can do: deleting the key from
//! Android Keystore / iOS Keychain as part of a wipe, and keeping the old key until a rekey has
//! returned.

use waymark_core as wc;

use crate::error::{Result, off_thread};
use crate::store::WaymarkStore;

/// One connected workspace's server and this device's credentials there, kept in memory by
/// `wipe` so the app can ask the server to revoke the device when the network allows.
#[derive(uniffi::Record, Clone, PartialEq)]
pub struct PendingRevocation {
    /// The local workspace id.
    pub workspace_id: String,
    /// The sync server's base URL.
    pub server_url: String,
    /// The workspace's id on that server.
    pub server_workspace_id: String,
    /// This device's id on that server.
    pub device_id: String,
    /// This device's bearer token there: a secret, never log it.
    pub device_token: String,
}

impl std::fmt::Debug for PendingRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRevocation")
            .field("workspace_id", &self.workspace_id)
            .field("server_url", &self.server_url)
            .field("server_workspace_id", &self.server_workspace_id)
            .field("device_id", &self.device_id)
            .field("device_token", &"<redacted>")
            .finish()
    }
}

impl From<wc::PendingRevocation> for PendingRevocation {
    fn from(r: wc::PendingRevocation) -> Self {
        PendingRevocation {
            workspace_id: r.workspace_id,
            server_url: r.server_url,
            server_workspace_id: r.server_workspace_id,
            device_id: r.device_id,
            device_token: r.device_token.as_str().to_string(),
        }
    }
}

/// What `wipe` leaves to the app.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct WipeReport {
    /// Workspaces whose server should be told that this device is gone.
    pub pending_revocations: Vec<PendingRevocation>,
    /// How many files of the store were removed.
    pub files_removed: u32,
}

impl From<wc::WipeReport> for WipeReport {
    fn from(r: wc::WipeReport) -> Self {
        WipeReport {
            pending_revocations: r.pending_revocations.into_iter().map(Into::into).collect(),
            files_removed: r.files_removed,
        }
    }
}

#[uniffi::export]
impl WaymarkStore {
    /// Destroys the store: the key held in memory is zeroized, every connection closed, the
    /// files overwritten where it matters and removed; every call on any handle to it then
    /// fails with `Wiped`. Delete the platform key too (`KeystoreKey` / `KeychainKey` wipe
    /// helpers do both): that is what makes an earlier copy of the file unreadable.
    ///
    /// Returns the server credentials to revoke this device with. A second call fails with
    /// `Wiped`.
    pub async fn wipe(&self) -> Result<WipeReport> {
        let store = self.store.clone();
        off_thread("wipe", move || store.wipe())
            .await
            .map(Into::into)
    }

    /// Re-encrypts the whole store with `new_key` (32 bytes); afterwards only `new_key` opens
    /// it. Keep the old key until this returns: a process killed during the rekey leaves a
    /// store that opens with one of the two (try the new one first).
    ///
    /// Fails with `InvalidInput` (field `new_key`) if the key is not 32 bytes.
    pub async fn rekey(&self, new_key: Vec<u8>) -> Result<()> {
        let store = self.store.clone();
        off_thread("rekey", move || store.rekey(&new_key)).await
    }
}

/// Removes the files of a store that cannot be opened (its key is lost, or a wipe was cut
/// short) as `wipe` does; returns how many files there were. No store may be open on `path`.
#[uniffi::export]
pub fn destroy_store_files(path: String) -> Result<u32> {
    crate::error::call(|| wc::Store::destroy_files(&path))
}
