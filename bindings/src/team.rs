//! The team at the boundary: who the devices of a workspace are, revoking one (which rotates
//! the workspace key), invites to be approved, and telling the server a wiped device is gone.

use zeroize::Zeroizing;

use waymark_core as wc;

use crate::error::{Result, call, off_thread};
use crate::store::WaymarkStore;
use crate::types::{PendingJoin, TeamMember, TeamStatus};
use crate::wipe::PendingRevocation;

#[uniffi::export]
impl WaymarkStore {
    /// The devices of a connected workspace, as of the last sync.
    pub fn team(&self, workspace_id: String) -> Result<Vec<TeamMember>> {
        call(|| self.store.team(&workspace_id)).map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Revokes a device (a coordinator: any device; anyone: itself). Its access stops at once,
    /// and a coordinator's device rotates the workspace key so that nothing written from now on
    /// can be read with the keys the revoked device holds.
    ///
    /// Fails with `NotPermitted` when a member tries to revoke another device.
    pub async fn revoke_device(&self, workspace_id: String, device_id: String) -> Result<()> {
        let store = self.store.clone();
        off_thread("revoke", move || {
            store.revoke_device(&workspace_id, &device_id)
        })
        .await
    }

    /// What this device knows of a workspace's team and of the server's behaviour: whether the
    /// team log is verified and admits this device, and the attacks it noticed.
    pub fn team_status(&self, workspace_id: String) -> Result<TeamStatus> {
        call(|| self.store.team_status(&workspace_id)).map(Into::into)
    }

    /// Changes a device's role (coordinators only), recorded in the team log.
    pub async fn set_role(
        &self,
        workspace_id: String,
        device_id: String,
        role: String,
    ) -> Result<()> {
        let store = self.store.clone();
        off_thread("role", move || {
            store.set_role(&workspace_id, &device_id, &role)
        })
        .await
    }

    /// Creates an invite code, passed in person, for another device to join with `role`
    /// (`coordinator` or `member`; only a coordinator may invite a coordinator).
    pub async fn create_invite_with_role(
        &self,
        workspace_id: String,
        ttl_seconds: u64,
        role: String,
    ) -> Result<String> {
        let store = self.store.clone();
        off_thread("invite", move || {
            store.create_invite_with_role(&workspace_id, ttl_seconds, &role)
        })
        .await
    }

    /// Lets this store reach sync servers over plain `http://` on any host (off by default:
    /// tokens would cross the network in clear text). Only for tests and closed networks;
    /// `http://` to this machine is always accepted.
    pub fn allow_insecure_transport(&self, allow: bool) {
        self.store.allow_insecure_transport(allow);
    }

    /// Creates an invite code that carries no key: the joining device waits until a
    /// coordinator approves it with `approve_join`, once the codes on both screens match.
    pub async fn create_approval_invite(
        &self,
        workspace_id: String,
        ttl_seconds: u64,
    ) -> Result<String> {
        let store = self.store.clone();
        off_thread("invite", move || {
            store.create_approval_invite(&workspace_id, ttl_seconds)
        })
        .await
    }

    /// Devices of the team this device does not vouch for yet (waiting for approval, or
    /// invited by someone else), fetched from the server.
    pub async fn pending_joins(&self, workspace_id: String) -> Result<Vec<PendingJoin>> {
        let store = self.store.clone();
        off_thread("team", move || store.pending_joins(&workspace_id))
            .await
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Approves a pending join: seals the workspace keys to the joining device. Fails with
    /// `Tampered` if its join proof matches no invite of this device (do not trust it).
    pub async fn approve_join(&self, workspace_id: String, device_id: String) -> Result<()> {
        let store = self.store.clone();
        off_thread("approve", move || {
            store.approve_join(&workspace_id, &device_id)
        })
        .await
    }

    /// Admits a device after comparing, in person, the verification code it shows with the one
    /// `pending_joins` lists for it: recorded in the team log, and the workspace keys are
    /// sealed to it.
    pub async fn confirm_device(&self, workspace_id: String, device_id: String) -> Result<()> {
        let store = self.store.clone();
        off_thread("confirm", move || {
            store.confirm_device(&workspace_id, &device_id)
        })
        .await
    }

    /// The verification code (twelve digits) this device shows so that a coordinator can check,
    /// in person, that the server lists its real keys.
    pub fn verification_code(&self, workspace_id: String) -> Result<String> {
        call(|| self.store.verification_code(&workspace_id))
    }
}

/// Tells the server that this device was wiped, so it is revoked at once. Call it with each
/// `WipeReport.pendingRevocations` entry until it succeeds (e.g. from a background job when the
/// network returns); repeating it is harmless.
#[uniffi::export]
pub async fn send_revocation(pending: PendingRevocation) -> Result<()> {
    let core = wc::PendingRevocation {
        workspace_id: pending.workspace_id,
        server_url: pending.server_url,
        server_workspace_id: pending.server_workspace_id,
        device_id: pending.device_id,
        device_token: Zeroizing::new(pending.device_token),
    };
    off_thread("revocation", move || core.send()).await
}
