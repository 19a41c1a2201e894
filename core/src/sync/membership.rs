//! Membership of a sync server: enrolling this device for a workspace (its key pairs, name and
//! join proof) and recording the membership, with the server, credentials and trust it starts
//! from. Joining by invite (`invite.rs`) ends here too.

use rusqlite::Transaction;
use waymark_protocol as proto;

use super::http::Call;
use super::restore;
use crate::crypto;
use crate::error::{Error, Result};
use crate::store::{Store, docs, memberships, signers};
use crate::validate;

/// This device's enrollment: its key pairs, its name, the join proof for its invite's secret,
/// and the signing keys its invite vouched for (the inviter's trusted coordinators).
pub(crate) struct Enrollment {
    pub(crate) keys: crypto::DeviceKeys,
    pub(crate) name: String,
    pub(crate) join_proof: Option<Vec<u8>>,
    pub(crate) vouched: Vec<[u8; 32]>,
    /// The team log entry the invite named, where this device's trust in the log starts.
    pub(crate) anchor: Option<(u64, [u8; 32])>,
    /// The Automerge actor this store's changes carry.
    pub(crate) actor: Vec<u8>,
}

impl Enrollment {
    /// Fresh key pairs for the store whose changes carry `actor`; `proof_secret` is the
    /// one-time secret of the invite.
    pub(crate) fn new(
        proof_secret: Option<&[u8]>,
        vouched: Vec<[u8; 32]>,
        anchor: Option<(u64, [u8; 32])>,
        name: &str,
        actor: &[u8],
    ) -> Enrollment {
        let keys = crypto::DeviceKeys::generate();
        // As the server will store it, so that the proof covers exactly what it lists.
        let name = name.trim().to_string();
        let (sign, boxk) = (keys.sign_public(), keys.box_public());
        let join_proof = proof_secret.map(|s| {
            crypto::join_proof(
                s,
                &crypto::Identity {
                    sign_key: &sign,
                    box_key: &boxk,
                    name: &name,
                    actor: Some(actor),
                },
            )
            .to_vec()
        });
        Enrollment {
            keys,
            name,
            join_proof,
            vouched,
            anchor,
            actor: actor.to_vec(),
        }
    }

    /// The enrollment request carrying the public keys.
    pub(crate) fn request(&self, token: &str) -> proto::EnrollRequest {
        proto::EnrollRequest {
            token: token.to_string(),
            device_name: self.name.clone(),
            sign_key: self.keys.sign_public(),
            box_key: self.keys.box_public(),
            join_proof: self.join_proof.clone(),
            actor: Some(self.actor.clone()),
        }
    }
}

/// Records that this store syncs `workspace` with the server at `url` as the enrolled device.
/// Never replaces a membership: a workspace's server, device keys and trust are set once.
pub(crate) fn add_membership(
    tx: &Transaction<'_>,
    workspace: &str,
    url: &str,
    e: &proto::EnrollResponse,
    enrollment: &Enrollment,
) -> Result<()> {
    memberships::insert(
        tx,
        &memberships::NewMembership {
            workspace,
            url,
            server_workspace: &e.workspace_id,
            device_id: &e.device_id,
            device_token: &e.device_token,
            role: &e.role,
            device_keys: enrollment.keys.to_bytes().as_slice(),
            join_proof: enrollment.join_proof.as_deref(),
            anchor: enrollment.anchor,
            actor: &enrollment.actor,
        },
    )?;
    // This device trusts itself and what its invite, received in person, vouched for.
    let own = enrollment.keys.sign_public();
    for k in std::iter::once(&own).chain(&enrollment.vouched) {
        signers::trust(tx, workspace, k)?;
        signers::accept(tx, workspace, k)?;
    }
    Ok(())
}

impl Store {
    /// Connects a local workspace to a sync server with an enrolment token from the server's
    /// operator (`waymark-server token issue`); everything recorded so far is queued for the
    /// next `sync()`.
    pub fn connect_workspace(
        &self,
        workspace: &str,
        server_url: &str,
        enrollment_token: &str,
    ) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("enrollment_token", enrollment_token)?;
        let known = self.workspaces()?.iter().any(|w| w.id == workspace);
        if !known {
            return Err(Error::not_found(format!("workspace {workspace}")));
        }
        let connected = self.read(|c| memberships::in_force(c, workspace))?;
        if connected == Some(true) {
            return Err(Error::invalid(
                "workspace_id",
                "the workspace already syncs with a server; its server cannot be changed",
            ));
        }
        let server = self.server(server_url, None)?;
        let enrollment = Enrollment::new(
            None,
            Vec::new(),
            None,
            &self.device_name()?,
            self.actor_id().to_bytes(),
        );
        let resp = server.post::<_, proto::EnrollResponse>(
            Call::Enroll,
            proto::PATH_ENROLL,
            &enrollment.request(enrollment_token),
        )?;
        self.with_writer(|w| {
            let tx = w.transaction()?;
            // A revoked membership gives way to the new enrolment: a new device identity that
            // the team log must admit like any other.
            memberships::delete_revoked(&tx, workspace)?;
            add_membership(
                &tx,
                workspace,
                server_url.trim_end_matches('/'),
                &resp.body,
                &enrollment,
            )?;
            // Queue what exists so far: each document's save and chunks, as they are stored.
            for (id, kind) in docs::in_workspace(&tx, workspace)? {
                restore::queue_whole(&tx, workspace, &id, kind)?;
            }
            tx.commit()?;
            Ok(())
        })
    }
}
