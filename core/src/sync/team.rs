//! The team of a synced workspace: who its devices are (their public keys and roles, as the
//! server lists them), the workspace keys sealed to this device, key rotation after a
//! revocation, and the approval of devices that joined without being handed the keys.
//!
//! The server only relays: every workspace key it carries is sealed to one device's X25519 key
//! and signed by the coordinator's device that made it, and every blob is signed by its author.
//! What the server can still do is list devices dishonestly; see `docs/SECURITY.md`.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use waymark_protocol as proto;

use super::http::{Call, Server};
use super::{Membership, SyncReport};
use crate::crypto::{self, DeviceKeys};
use crate::error::{Error, Result};
use crate::store::{Store, keys, now_ms};
use crate::validate;

/// Times a coordinator's device retries a rotation that another one raced.
const ROTATION_ATTEMPTS: usize = 3;

/// One device of a team, as this device last heard from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    /// The device's id on the server.
    pub device_id: String,
    /// The name it enrolled with.
    pub name: String,
    /// `coordinator` or `member`.
    pub role: String,
    /// True for the device this store runs on.
    pub is_this_device: bool,
    /// True once revoked: it can no longer sync, and keys made after cannot reach it.
    pub revoked: bool,
    /// True while it has not been given the workspace key (it joined by an invite to approve).
    pub awaiting_approval: bool,
}

/// A device that joined by an invite to be approved and waits for a coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJoin {
    /// The device's id on the server.
    pub device_id: String,
    /// The name it enrolled with.
    pub name: String,
    /// Six digits the joining device shows too: approve only if they match.
    pub verification_code: String,
    /// True if its join proof matches an invite this device created (so the server did not
    /// substitute its keys).
    pub verified: bool,
}

/// This device's own key pairs for a connected workspace.
pub(crate) fn own_keys(conn: &Connection, workspace: &str) -> Result<DeviceKeys> {
    let bytes: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT device_keys FROM memberships WHERE workspace_id = ?1")?
        .query_row(params![workspace], |r| r.get(0))
        .optional()?;
    let bytes = bytes.ok_or_else(|| Error::not_found(format!("membership of {workspace}")))?;
    bytes
        .as_deref()
        .and_then(DeviceKeys::from_bytes)
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "the membership of {workspace} has no device keys: join the workspace again"
            ))
        })
}

/// Whether a signer may have written the blob numbered `seq`: it must be a device of the team
/// and, if revoked, the blob must come from before its revocation.
pub(crate) fn check_signer(
    conn: &Connection,
    workspace: &str,
    signer: &[u8; 32],
    seq: u64,
) -> Result<()> {
    let row: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT revoked_at_seq FROM team_devices WHERE workspace_id = ?1 AND sign_key = ?2",
        )?
        .query_row(params![workspace, signer.as_slice()], |r| r.get(0))
        .optional()?;
    match row {
        None => Err(Error::Tampered(
            "signed by a device that is not in the team".into(),
        )),
        Some(Some(revoked_at)) if i64::try_from(seq).unwrap_or(i64::MAX) > revoked_at => Err(
            Error::Tampered("signed by a revoked device after its revocation".into()),
        ),
        Some(_) => Ok(()),
    }
}

/// Re-seals queued changes sealed under an older epoch with the current key, so that nothing
/// sent after a rotation is readable with a key a revoked device holds.
pub(crate) fn reseal_outbox(tx: &Transaction<'_>, workspace: &str) -> Result<u64> {
    let Some((epoch, key)) = keys::current(tx, workspace)? else {
        return Ok(0);
    };
    let own = own_keys(tx, workspace)?;
    let rows: Vec<(i64, String, u32, Vec<u8>)> = tx
        .prepare(
            "SELECT id, doc_id, epoch, ciphertext FROM outbox
             WHERE workspace_id = ?1 AND epoch < ?2",
        )?
        .query_map(params![workspace, epoch], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for (id, doc, old_epoch, sealed) in rows {
        let old_key = keys::at_epoch(tx, workspace, old_epoch)?
            .ok_or_else(|| Error::Corrupt(format!("no key for queued epoch {old_epoch}")))?;
        let doc_bytes = crypto::doc_id_bytes(&doc)?;
        let (kind, chunk) =
            crypto::open_signed(&old_key, workspace, &doc_bytes, old_epoch, &sealed)?;
        let fresh = crypto::seal_signed(&key, &own, workspace, &doc_bytes, epoch, kind, &chunk)?;
        tx.prepare_cached(
            "UPDATE outbox SET epoch = ?2, content_id = ?3, ciphertext = ?4 WHERE id = ?1",
        )?
        .execute(params![
            id,
            epoch,
            proto::content_id_of(&fresh).as_slice(),
            fresh
        ])?;
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// Fetches the team from the server and keeps it; opens the workspace keys sealed to this
    /// device that it does not have yet. Returns the epochs newly learnt.
    pub(crate) fn refresh_team(&self, server: &Server, m: &Membership) -> Result<Vec<u32>> {
        let team = server.get::<proto::TeamResponse>(proto::PATH_TEAM)?.body;
        self.with_writer(|w| {
            let tx = w.conn.transaction()?;
            let learnt = store_team(&tx, m, &team)?;
            if !learnt.is_empty() {
                reseal_outbox(&tx, &m.workspace)?;
            }
            tx.commit()?;
            Ok(learnt)
        })
    }

    /// Applies set-aside blobs that waited for a key this device now has.
    pub(crate) fn retry_held(&self, workspace: &str, report: &mut SyncReport) -> Result<()> {
        let held: Vec<proto::PulledBlob> = self.read(|c| {
            let mut st = c.prepare(
                "SELECT s.seq, s.doc_id, s.epoch, s.blob FROM set_aside s
                 JOIN workspace_keys k ON k.workspace_id = s.workspace_id AND k.epoch = s.epoch
                 WHERE s.workspace_id = ?1 AND s.blob IS NOT NULL ORDER BY s.seq",
            )?;
            let rows = st.query_map(params![workspace], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, doc, epoch, blob) = row?;
                out.push(proto::PulledBlob {
                    seq: u64::try_from(seq).unwrap_or(0),
                    content_id: proto::content_id_of(&blob),
                    doc_id: crypto::doc_id_bytes(&doc)?,
                    epoch,
                    ciphertext: blob,
                    device_id: String::new(),
                });
            }
            Ok(out)
        })?;
        if held.is_empty() {
            return Ok(());
        }
        let mut changed = BTreeSet::new();
        self.apply_blobs(workspace, &held, false, report, &mut changed)?;
        report.changed.extend(changed);
        Ok(())
    }

    /// If this device is a coordinator and a device was revoked since the current epoch, makes
    /// a new workspace key and seals it to every remaining device. Returns whether it rotated.
    pub(crate) fn rotate_if_needed(&self, server: &Server, m: &Membership) -> Result<bool> {
        for _ in 0..ROTATION_ATTEMPTS {
            let plan = self.read(|c| rotation_plan(c, &m.workspace))?;
            let Some((epoch, recipients)) = plan else {
                return Ok(false);
            };
            let key = crypto::new_workspace_key();
            let envelopes = self.read(|c| {
                let own = own_keys(c, &m.workspace)?;
                recipients
                    .iter()
                    .map(|(device, box_key)| {
                        crypto::wrap_key(&own, &m.workspace, device, box_key, epoch, &key)
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            let sent = server.post::<_, proto::KeysResponse>(
                Call::Device,
                proto::PATH_KEYS,
                &proto::KeysRequest {
                    rotate_to: Some(epoch),
                    envelopes,
                },
            );
            match sent {
                Ok(_) => {
                    self.with_writer(|w| {
                        let tx = w.conn.transaction()?;
                        keys::insert(&tx, &m.workspace, epoch, &key)?;
                        tx.execute(
                            "UPDATE team_state SET epoch = ?2, rotation_needed = 0
                             WHERE workspace_id = ?1",
                            params![m.workspace, epoch],
                        )?;
                        reseal_outbox(&tx, &m.workspace)?;
                        tx.commit()?;
                        Ok(())
                    })?;
                    return Ok(true);
                }
                // Another coordinator rotated first, or a device enrolled meanwhile: look
                // again at the team and try once more.
                Err(Error::Network(_)) => {
                    self.refresh_team(server, m)?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Network(
            "the key rotation kept conflicting with other changes to the team; it will be retried at the next sync".into(),
        ))
    }

    /// Revokes a device of the team (a coordinator: any device; anyone: itself). Its access
    /// stops at once; a coordinator's device then rotates the workspace key so that nothing
    /// written from now on can be read with the keys the revoked device holds.
    pub fn revoke_device(&self, workspace: &str, device_id: &str) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("device_id", device_id)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = Server::new(&m.url, Some(m.token.clone()))?;
        server.post::<_, proto::RevokeResponse>(
            Call::Device,
            proto::PATH_REVOKE,
            &proto::RevokeRequest {
                device_id: device_id.to_string(),
            },
        )?;
        if device_id == m.device_id {
            return Ok(());
        }
        self.refresh_team(&server, &m)?;
        self.rotate_if_needed(&server, &m)?;
        Ok(())
    }

    /// The team of a connected workspace as this device last synced it.
    pub fn team(&self, workspace: &str) -> Result<Vec<TeamMember>> {
        validate::id("workspace_id", workspace)?;
        self.read(|c| {
            let me: Option<String> = c
                .query_row(
                    "SELECT device_id FROM memberships WHERE workspace_id = ?1",
                    params![workspace],
                    |r| r.get(0),
                )
                .optional()?;
            let me = me.ok_or_else(|| Error::not_found(format!("membership of {workspace}")))?;
            let epoch = current_epoch(c, workspace)?;
            let mut st = c.prepare(
                "SELECT device_id, name, role, revoked_at_seq, key_epochs, join_proof
                 FROM team_devices WHERE workspace_id = ?1 ORDER BY enrolled_at, device_id",
            )?;
            let rows = st.query_map(params![workspace], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (device_id, name, role, revoked_at, epochs, proof) = row?;
                out.push(TeamMember {
                    is_this_device: device_id == me,
                    awaiting_approval: revoked_at.is_none()
                        && proof.is_some()
                        && !has_epoch(&epochs, epoch),
                    revoked: revoked_at.is_some(),
                    device_id,
                    name,
                    role,
                });
            }
            Ok(out)
        })
    }

    /// Devices waiting for a coordinator to approve their join, fetched from the server.
    pub fn pending_joins(&self, workspace: &str) -> Result<Vec<PendingJoin>> {
        validate::id("workspace_id", workspace)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = Server::new(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        self.read(|c| {
            let secrets = invite_secrets(c, workspace)?;
            let epoch = current_epoch(c, workspace)?;
            let mut st = c.prepare(
                "SELECT device_id, name, sign_key, box_key, join_proof, key_epochs
                 FROM team_devices WHERE workspace_id = ?1 AND revoked_at_seq IS NULL
                   AND join_proof IS NOT NULL ORDER BY enrolled_at, device_id",
            )?;
            let rows = st.query_map(params![workspace], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (device_id, name, sign, boxk, proof, epochs) = row?;
                if has_epoch(&epochs, epoch) {
                    continue;
                }
                out.push(PendingJoin {
                    device_id,
                    name,
                    verification_code: crypto::verification_digits(&proof),
                    verified: proof_matches(&secrets, &sign, &boxk, &proof),
                });
            }
            Ok(out)
        })
    }

    /// Approves a pending join: seals every workspace key this device has to the joining
    /// device. Refused unless its join proof matches an invite this device created.
    pub fn approve_join(&self, workspace: &str, device_id: &str) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("device_id", device_id)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = Server::new(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        let envelopes = self.read(|c| {
            let row: Option<(Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<i64>)> = c
                .query_row(
                    "SELECT sign_key, box_key, join_proof, revoked_at_seq FROM team_devices
                     WHERE workspace_id = ?1 AND device_id = ?2",
                    params![workspace, device_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let (sign, boxk, proof, revoked) =
                row.ok_or_else(|| Error::not_found(format!("device {device_id}")))?;
            if revoked.is_some() {
                return Err(Error::invalid("device_id", "the device was revoked"));
            }
            let proof = proof.ok_or_else(|| {
                Error::invalid(
                    "device_id",
                    "the device did not join by an invite to approve",
                )
            })?;
            if !proof_matches(&invite_secrets(c, workspace)?, &sign, &boxk, &proof) {
                return Err(Error::Tampered(
                    "the device's join proof matches no invite of this device: do not approve it"
                        .into(),
                ));
            }
            let box_key: [u8; 32] = boxk
                .as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt("a team device's key is damaged".into()))?;
            let own = own_keys(c, workspace)?;
            let mut st = c.prepare(
                "SELECT epoch, key FROM workspace_keys WHERE workspace_id = ?1 ORDER BY epoch",
            )?;
            let all: Vec<(u32, Vec<u8>)> = st
                .query_map(params![workspace], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            all.into_iter()
                .map(|(epoch, k)| {
                    let key = crypto::key_from_bytes(&k).ok_or_else(|| {
                        Error::Corrupt("a stored workspace key is damaged".into())
                    })?;
                    crypto::wrap_key(&own, workspace, device_id, &box_key, epoch, &key)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        server.post::<_, proto::KeysResponse>(
            Call::Device,
            proto::PATH_KEYS,
            &proto::KeysRequest {
                rotate_to: None,
                envelopes,
            },
        )?;
        self.refresh_team(&server, &m)?;
        Ok(())
    }

    /// The six digits to show on a device that joined by an invite to be approved, while it
    /// waits; `None` for a device that was handed the keys.
    pub fn join_verification_code(&self, workspace: &str) -> Result<Option<String>> {
        validate::id("workspace_id", workspace)?;
        self.read(|c| {
            let proof: Option<Option<Vec<u8>>> = c
                .query_row(
                    "SELECT join_proof FROM memberships WHERE workspace_id = ?1",
                    params![workspace],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(proof.flatten().map(|p| crypto::verification_digits(&p)))
        })
    }

    /// The membership of a connected workspace.
    pub(crate) fn membership(&self, workspace: &str) -> Result<Membership> {
        self.read(|c| {
            c.query_row(
                "SELECT workspace_id, server_url, device_token, device_id FROM memberships
                 WHERE workspace_id = ?1 AND revoked = 0",
                params![workspace],
                |r| {
                    Ok(Membership {
                        workspace: r.get(0)?,
                        url: r.get(1)?,
                        token: r.get(2)?,
                        device_id: r.get(3)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| Error::not_found(format!("a synced membership of {workspace}")))
        })
    }
}

/// Keeps the team as listed and opens the envelopes of epochs this device lacks. Returns the
/// epochs learnt.
pub(crate) fn store_team(
    tx: &Transaction<'_>,
    m: &Membership,
    team: &proto::TeamResponse,
) -> Result<Vec<u32>> {
    let ws = &m.workspace;
    tx.execute(
        "DELETE FROM team_devices WHERE workspace_id = ?1",
        params![ws],
    )?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO team_devices(workspace_id, device_id, name, role, sign_key, box_key,
                join_proof, enrolled_at, revoked_at_seq, key_epochs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT DO NOTHING",
        )?;
        for d in &team.devices {
            let epochs: Vec<String> = d.key_epochs.iter().map(u32::to_string).collect();
            ins.execute(params![
                ws,
                d.device_id,
                d.name,
                d.role,
                d.sign_key.as_slice(),
                d.box_key.as_slice(),
                d.join_proof,
                d.enrolled_at,
                d.revoked_at_seq
                    .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                epochs.join(","),
            ])?;
        }
    }
    tx.execute(
        "INSERT INTO team_state(workspace_id, epoch, rotation_needed) VALUES (?1, ?2, ?3)
         ON CONFLICT(workspace_id) DO UPDATE SET epoch = excluded.epoch,
            rotation_needed = excluded.rotation_needed",
        params![ws, team.epoch, team.rotation_needed],
    )?;
    let role = team
        .devices
        .iter()
        .find(|d| d.device_id == m.device_id)
        .map(|d| d.role.clone());
    tx.execute(
        "UPDATE memberships SET team_version = max(team_version, ?2),
            role = coalesce(?3, role) WHERE workspace_id = ?1",
        params![ws, i64::try_from(team.version).unwrap_or(i64::MAX), role],
    )?;
    let own = own_keys(tx, ws)?;
    let mut learnt = Vec::new();
    for env in &team.envelopes {
        if env.device_id != m.device_id || keys::at_epoch(tx, ws, env.epoch)?.is_some() {
            continue;
        }
        // Only a coordinator still in the team may hand out keys: a revoked coordinator's
        // phone, with a server's help, must not make the team adopt a key it knows.
        let signer_ok = team.devices.iter().any(|d| {
            d.sign_key == env.signer_key
                && d.role == proto::roles::COORDINATOR
                && d.revoked_at_seq.is_none()
        });
        if !signer_ok {
            continue;
        }
        // An envelope that fails to open is ignored: it cannot be used, and must not stop the
        // sync; the next rotation or approval replaces it.
        if let Ok(key) = crypto::unwrap_key(&own, ws, env) {
            keys::insert(tx, ws, env.epoch, &key)?;
            learnt.push(env.epoch);
        }
    }
    Ok(learnt)
}

/// The epoch and the remaining devices' X25519 keys, if this device must rotate now.
fn rotation_plan(
    c: &Connection,
    workspace: &str,
) -> Result<Option<(u32, Vec<(String, [u8; 32])>)>> {
    let role: Option<String> = c
        .query_row(
            "SELECT role FROM memberships WHERE workspace_id = ?1 AND revoked = 0",
            params![workspace],
            |r| r.get(0),
        )
        .optional()?;
    if role.as_deref() != Some(proto::roles::COORDINATOR) {
        return Ok(None);
    }
    let state: Option<(u32, bool)> = c
        .query_row(
            "SELECT epoch, rotation_needed FROM team_state WHERE workspace_id = ?1",
            params![workspace],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((epoch, true)) = state else {
        return Ok(None);
    };
    let mut st = c.prepare(
        "SELECT device_id, box_key FROM team_devices
         WHERE workspace_id = ?1 AND revoked_at_seq IS NULL ORDER BY device_id",
    )?;
    let recipients = st
        .query_map(params![workspace], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|(d, k)| {
            let k: [u8; 32] = k
                .as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt("a team device's key is damaged".into()))?;
            Ok((d, k))
        })
        .collect::<Result<Vec<_>>>()?;
    let next = epoch
        .checked_add(1)
        .ok_or_else(|| Error::Corrupt("the key epoch cannot grow further".into()))?;
    Ok(Some((next, recipients)))
}

/// The workspace's current epoch as the server last said (0 if never heard).
fn current_epoch(c: &Connection, workspace: &str) -> Result<u32> {
    Ok(c.query_row(
        "SELECT epoch FROM team_state WHERE workspace_id = ?1",
        params![workspace],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

fn has_epoch(list: &str, epoch: u32) -> bool {
    list.split(',').any(|e| e.parse() == Ok(epoch))
}

/// Verification secrets of this device's invites that have not expired.
fn invite_secrets(c: &Connection, workspace: &str) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare(
        "SELECT secret FROM invite_secrets WHERE workspace_id = ?1 AND expires_at >= ?2",
    )?;
    let rows = st.query_map(params![workspace, now_ms() / 1000], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn proof_matches(secrets: &[Vec<u8>], sign: &[u8], boxk: &[u8], proof: &[u8]) -> bool {
    let (Ok(sign), Ok(boxk)) = (<[u8; 32]>::try_from(sign), <[u8; 32]>::try_from(boxk)) else {
        return false;
    };
    secrets
        .iter()
        .any(|s| crypto::verify_join_proof(s, &sign, &boxk, proof))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::model::{NewVisit, Place, RecordKind};

    /// A store syncing one workspace as device "me", with a teammate "ana" and a device "ben"
    /// revoked at sequence number 10. Returns the store, workspace, and the teammates' keys.
    fn setup() -> (tempfile::TempDir, Store, String, DeviceKeys, DeviceKeys) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db"), &[3u8; 32]).unwrap();
        let ws = store.create_workspace("Team").unwrap().id;
        let (ana, ben) = (DeviceKeys::generate(), DeviceKeys::generate());
        let me = DeviceKeys::generate();
        store
            .with_writer(|w| {
                let tx = w.conn.transaction()?;
                tx.execute(
                    "INSERT INTO memberships(workspace_id, server_url, server_workspace_id,
                        device_id, device_token, device_keys, role)
                     VALUES (?1, 'http://127.0.0.1:9', ?1, 'me', 't', ?2, 'member')",
                    params![ws, me.to_bytes().as_slice()],
                )?;
                for (id, k, revoked) in [
                    ("me", &me, None),
                    ("ana", &ana, None),
                    ("ben", &ben, Some(10i64)),
                ] {
                    tx.execute(
                        "INSERT INTO team_devices(workspace_id, device_id, name, role, sign_key,
                            box_key, enrolled_at, revoked_at_seq, key_epochs)
                         VALUES (?1, ?2, ?2, 'member', ?3, ?4, 0, ?5, '0')",
                        params![
                            ws,
                            id,
                            k.sign_public().as_slice(),
                            k.box_public().as_slice(),
                            revoked
                        ],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        (dir, store, ws, ana, ben)
    }

    /// A blob of a new visit written by `author` in a store of its own, sealed with `key`.
    fn foreign_visit(
        ws: &str,
        key: &crypto::WorkspaceKey,
        epoch: u32,
        author: &DeviceKeys,
        seq: u64,
        notes: &str,
    ) -> (String, proto::PulledBlob) {
        let dir = tempfile::tempdir().unwrap();
        let other = Store::open(dir.path().join("o.db"), &[4u8; 32]).unwrap();
        // A teammate's store: the same workspace, joined in person.
        let code = crate::invite::encode(&crate::invite::InviteBody {
            workspace: ws.into(),
            name: "Team".into(),
            keys: vec![(epoch, serde_bytes::ByteBuf::from(key.to_vec()))],
            server: None,
            verify: None,
        })
        .unwrap();
        other.join(&code).unwrap();
        let id = other
            .create_visit(
                ws,
                &NewVisit {
                    place: Place {
                        name: "Market".into(),
                        area: "North".into(),
                        coordinates: None,
                    },
                    occurred_at: 1_764_000_000_000,
                    visit_type: "street_outreach".into(),
                    notes: notes.into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let snapshot: Vec<u8> = other
            .read(|c| {
                Ok(c.query_row(
                    "SELECT snapshot FROM documents WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        let doc = crypto::doc_id_bytes(&id).unwrap();
        let ct = crypto::seal_signed(key, author, ws, &doc, epoch, RecordKind::Visit, &snapshot)
            .unwrap();
        (
            id,
            proto::PulledBlob {
                seq,
                content_id: proto::content_id_of(&ct),
                doc_id: doc,
                epoch,
                ciphertext: ct,
                device_id: "whoever".into(),
            },
        )
    }

    fn key0(store: &Store, ws: &str) -> crypto::WorkspaceKey {
        store.read(|c| keys::at_epoch(c, ws, 0)).unwrap().unwrap()
    }

    fn apply(store: &Store, ws: &str, blobs: &[proto::PulledBlob]) -> SyncReport {
        let mut report = SyncReport::default();
        store
            .apply_pulled(ws, blobs, &mut report, &mut BTreeSet::new())
            .unwrap();
        report
    }

    #[test]
    fn blobs_are_applied_only_when_signed_by_a_device_of_the_team_in_good_standing() {
        let (_d, store, ws, ana, ben) = setup();
        let key = key0(&store, &ws);
        let stranger = DeviceKeys::generate();
        let (ana_visit, b1) = foreign_visit(&ws, &key, 0, &ana, 5, "from ana");
        let (ben_before, b2) = foreign_visit(&ws, &key, 0, &ben, 9, "ben before revocation");
        let (ben_after, b3) = foreign_visit(&ws, &key, 0, &ben, 11, "ben after revocation");
        let (strange, b4) = foreign_visit(&ws, &key, 0, &stranger, 12, "unknown device");
        let report = apply(&store, &ws, &[b1.clone(), b2, b3, b4]);
        assert!(store.get_visit(&ana_visit).is_ok());
        assert!(
            store.get_visit(&ben_before).is_ok(),
            "written before the revocation"
        );
        for id in [&ben_after, &strange] {
            assert!(matches!(store.get_visit(id), Err(Error::NotFound { .. })));
        }
        let reasons: Vec<(u64, String)> = report
            .set_aside
            .iter()
            .map(|s| (s.seq, s.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].1.contains("revoked device after its revocation"),
            "{reasons:?}"
        );
        assert!(reasons[1].1.contains("not in the team"), "{reasons:?}");
        assert_eq!(store.set_aside_blobs().unwrap().len(), 2, "and remembered");

        // The same blob replayed later under a new number changes nothing and is not refused.
        let before = store.checkpoint().unwrap();
        let mut replay = b1;
        replay.seq = 40;
        let again = apply(&store, &ws, &[replay]);
        assert!(again.set_aside.is_empty());
        assert_eq!(store.checkpoint().unwrap(), before);
    }

    #[test]
    fn a_blob_sealed_under_a_key_not_yet_received_is_held_and_applied_when_it_arrives() {
        let (_d, store, ws, ana, _) = setup();
        let next = crypto::new_workspace_key();
        let (id, blob) = foreign_visit(&ws, &next, 1, &ana, 7, "after rotation");
        let report = apply(&store, &ws, &[blob]);
        assert!(
            report.set_aside[0]
                .reason
                .contains("waiting for the key of epoch 1")
        );
        assert!(store.get_visit(&id).is_err());
        store
            .with_writer(|w| keys::insert(&w.conn, &ws, 1, &next))
            .unwrap();
        let mut report = SyncReport::default();
        store.retry_held(&ws, &mut report).unwrap();
        assert_eq!(store.get_visit(&id).unwrap().notes, "after rotation");
        assert!(
            store.set_aside_blobs().unwrap().is_empty(),
            "no longer set aside"
        );
        assert_eq!(report.changed, vec![id]);
    }

    #[test]
    fn queued_changes_are_resealed_under_the_newest_key() {
        let (_d, store, ws, _, _) = setup();
        let id = store
            .create_visit(
                &ws,
                &NewVisit {
                    place: Place {
                        name: "Port".into(),
                        area: "South".into(),
                        coordinates: None,
                    },
                    occurred_at: 1_764_000_000_000,
                    visit_type: "street_outreach".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let epochs = |s: &Store| -> Vec<u32> {
            s.read(|c| {
                let mut st = c.prepare("SELECT epoch FROM outbox ORDER BY id")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<u32>>>()?)
            })
            .unwrap()
        };
        assert!(!epochs(&store).is_empty() && epochs(&store).iter().all(|e| *e == 0));
        let next = crypto::new_workspace_key();
        let n = store
            .with_writer(|w| {
                let tx = w.conn.transaction()?;
                keys::insert(&tx, &ws, 1, &next)?;
                let n = reseal_outbox(&tx, &ws)?;
                tx.commit()?;
                Ok(n)
            })
            .unwrap();
        assert_eq!(n as usize, epochs(&store).len());
        assert!(epochs(&store).iter().all(|e| *e == 1));
        // What is queued now opens with the new key and is this device's own visit.
        let (doc, ct): (String, Vec<u8>) = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT doc_id, ciphertext FROM outbox ORDER BY id LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .unwrap();
        assert_eq!(doc, id);
        let doc = crypto::doc_id_bytes(&doc).unwrap();
        assert!(crypto::open_signed(&next, &ws, &doc, 1, &ct).is_ok());
        assert!(crypto::open_signed(&key0(&store, &ws), &ws, &doc, 0, &ct).is_err());
    }
}
