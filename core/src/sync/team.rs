//! The team of a synced workspace: who its devices are (their public keys and roles, as the
//! server lists them), the workspace keys sealed to this device, key rotation after a
//! revocation, and the approval of devices that joined without being handed the keys.
//!
//! The server only relays: every workspace key it carries is sealed to one device's X25519 key
//! and signed by the coordinator's device that made it, and every blob is signed by its author.
//! What the server can still do is list devices dishonestly; see `docs/SECURITY.md`.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use waymark_protocol as proto;

use super::http::{Call, Server};
use super::{Membership, SyncReport};
use crate::crypto::{self, DeviceKeys};
use crate::error::{Error, Result};
use crate::store::{Store, keys};
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
    /// True if this device vouches for it (itself, devices met through invites in person, and
    /// those it approved or confirmed): only such devices receive the keys it rotates to.
    pub verified: bool,
}

/// A device that joined by an invite to be approved and waits for a coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJoin {
    /// The device's id on the server.
    pub device_id: String,
    /// The name it enrolled with.
    pub name: String,
    /// Six digits the device itself shows (`verification_code`): they match only if the server
    /// did not substitute its keys.
    pub verification_code: String,
    /// True if its join proof matches an invite to approve that this device created (so the
    /// server did not substitute its keys); approve it with `approve_join`. Others can be
    /// confirmed in person with `confirm_device` once the six digits match.
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

/// The team directory's answers about blob signers, remembered for one transaction (a page
/// of blobs has few signers, and the directory does not change while it is applied).
#[derive(Default)]
pub(crate) struct Signers {
    seen: HashMap<[u8; 32], Option<Option<i64>>>,
}

impl Signers {
    /// Refuses (`Tampered`) a blob at `seq` signed by `signer` unless the key belongs to a
    /// device of the team that was not revoked before `seq`.
    pub(crate) fn check(
        &mut self,
        conn: &Connection,
        workspace: &str,
        signer: &[u8; 32],
        seq: u64,
    ) -> Result<()> {
        let row = match self.seen.get(signer) {
            Some(row) => *row,
            None => {
                let row: Option<Option<i64>> = conn
                    .prepare_cached(
                        "SELECT revoked_at_seq FROM team_devices
                         WHERE workspace_id = ?1 AND sign_key = ?2",
                    )?
                    .query_row(params![workspace, signer.as_slice()], |r| r.get(0))
                    .optional()?;
                self.seen.insert(*signer, row);
                row
            }
        };
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
}

/// Re-seals queued changes sealed under an older epoch with the current key, so that nothing
/// sent after a rotation is readable with a key a revoked device holds.
fn reseal_outbox(tx: &Transaction<'_>, workspace: &str) -> Result<u64> {
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
        self.apply_team(m, &team)
    }

    /// Keeps a team directory as the server listed it, in one transaction, and re-seals
    /// queued changes if it brought a newer key. Returns the epochs newly learnt.
    pub(crate) fn apply_team(
        &self,
        m: &Membership,
        team: &proto::TeamResponse,
    ) -> Result<Vec<u32>> {
        self.with_writer(|w| {
            let tx = w.conn.transaction()?;
            let learnt = store_team(&tx, m, team)?;
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
            let mut st = c.prepare(
                "SELECT d.device_id, d.name, d.role, d.revoked_at_seq, a.sign_key IS NOT NULL
                 FROM team_devices d LEFT JOIN accepted_devices a
                   ON a.workspace_id = d.workspace_id AND a.sign_key = d.sign_key
                 WHERE d.workspace_id = ?1 ORDER BY d.enrolled_at, d.device_id",
            )?;
            let rows = st.query_map(params![workspace], |r| {
                Ok(TeamMember {
                    is_this_device: r.get::<_, String>(0)? == me,
                    device_id: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    revoked: r.get::<_, Option<i64>>(3)?.is_some(),
                    verified: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Devices of the team this device does not vouch for yet (joined by an invite to approve,
    /// or invited by someone else), fetched from the server.
    pub fn pending_joins(&self, workspace: &str) -> Result<Vec<PendingJoin>> {
        validate::id("workspace_id", workspace)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = Server::new(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        self.read(|c| {
            let secrets = invite_secrets(c, workspace, true)?;
            let mut st = c.prepare(
                "SELECT d.device_id, d.name, d.sign_key, d.box_key, d.join_proof
                 FROM team_devices d
                 WHERE d.workspace_id = ?1 AND d.revoked_at_seq IS NULL
                   AND d.sign_key NOT IN
                     (SELECT sign_key FROM accepted_devices WHERE workspace_id = ?1)
                 ORDER BY d.enrolled_at, d.device_id",
            )?;
            let rows = st.query_map(params![workspace], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (device_id, name, sign, boxk, proof) = row?;
                out.push(PendingJoin {
                    device_id,
                    name,
                    verification_code: crypto::verification_digits(&sign, &boxk),
                    verified: proof
                        .is_some_and(|p| matching_secret(&secrets, &sign, &boxk, &p).is_some()),
                });
            }
            Ok(out)
        })
    }

    /// Approves a join by an invite to approve that this device created: vouches for the
    /// device and seals every workspace key this device has to it. Refused (`Tampered`) unless
    /// its join proof matches such an invite.
    pub fn approve_join(&self, workspace: &str, device_id: &str) -> Result<()> {
        self.vouch_for(workspace, device_id, true)
    }

    /// Confirms a device after comparing, in person, the six digits it shows
    /// (`verification_code`) with those `pending_joins` lists for it: vouches for it and seals
    /// every workspace key this device has to it.
    pub fn confirm_device(&self, workspace: &str, device_id: &str) -> Result<()> {
        self.vouch_for(workspace, device_id, false)
    }

    fn vouch_for(&self, workspace: &str, device_id: &str, by_proof: bool) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("device_id", device_id)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = Server::new(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        let (sign_key, role, used_secret, envelopes) = self.read(|c| {
            let row: Option<Listed> = c
                .query_row(
                    "SELECT sign_key, box_key, join_proof, revoked_at_seq, role FROM team_devices
                     WHERE workspace_id = ?1 AND device_id = ?2",
                    params![workspace, device_id],
                    |r| {
                        Ok(Listed {
                            sign: r.get(0)?,
                            boxk: r.get(1)?,
                            proof: r.get(2)?,
                            revoked: r.get::<_, Option<i64>>(3)?.is_some(),
                            role: r.get(4)?,
                        })
                    },
                )
                .optional()?;
            let Listed {
                sign,
                boxk,
                proof,
                revoked,
                role,
            } = row.ok_or_else(|| Error::not_found(format!("device {device_id}")))?;
            if revoked {
                return Err(Error::invalid("device_id", "the device was revoked"));
            }
            let mut used = None;
            if by_proof {
                let secrets = invite_secrets(c, workspace, true)?;
                used = proof.and_then(|p| matching_secret(&secrets, &sign, &boxk, &p));
                if used.is_none() {
                    return Err(Error::Tampered(
                        "the device's join proof matches no invite of this device: do not approve it"
                            .into(),
                    ));
                }
            }
            let box_key: [u8; 32] = boxk
                .as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt("a team device's key is damaged".into()))?;
            let envelopes = wrap_all(c, workspace, device_id, &box_key, &[])?;
            Ok((sign, role, used, envelopes))
        })?;
        upload_envelopes(&server, envelopes)?;
        self.with_writer(|w| {
            let tx = w.conn.transaction()?;
            accept(&tx, workspace, &sign_key, role == proto::roles::COORDINATOR)?;
            if let Some(secret) = used_secret {
                tx.execute(
                    "DELETE FROM invite_secrets WHERE workspace_id = ?1 AND secret = ?2",
                    params![workspace, secret],
                )?;
            }
            tx.commit()?;
            Ok(())
        })?;
        self.refresh_team(&server, &m)?;
        Ok(())
    }

    /// As a coordinator, seals the keys a device this device vouches for is missing (it joined
    /// with a code made before a rotation, or enrolled while one ran). Returns whether it sent
    /// any.
    pub(crate) fn top_up(&self, server: &Server, m: &Membership) -> Result<bool> {
        let envelopes = self.read(|c| {
            let role: String = c.query_row(
                "SELECT role FROM memberships WHERE workspace_id = ?1",
                params![m.workspace],
                |r| r.get(0),
            )?;
            if role != proto::roles::COORDINATOR {
                return Ok(Vec::new());
            }
            let mut st = c.prepare(
                "SELECT d.device_id, d.box_key, d.key_epochs FROM team_devices d
                 JOIN accepted_devices a ON a.workspace_id = d.workspace_id AND a.sign_key = d.sign_key
                 WHERE d.workspace_id = ?1 AND d.revoked_at_seq IS NULL AND d.device_id != ?2",
            )?;
            let rows = st
                .query_map(params![m.workspace, m.device_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let current = current_epoch(c, &m.workspace)?;
            let mut out = Vec::new();
            for (device, boxk, epochs) in rows {
                // Only a device missing the current key needs anything.
                if has_epoch(&epochs, current) {
                    continue;
                }
                let Ok(box_key) = <[u8; 32]>::try_from(boxk.as_slice()) else {
                    continue;
                };
                let held: Vec<u32> = epochs.split(',').filter_map(|e| e.parse().ok()).collect();
                out.extend(wrap_all(c, &m.workspace, &device, &box_key, &held)?);
            }
            Ok(out)
        })?;
        if envelopes.is_empty() {
            return Ok(false);
        }
        upload_envelopes(server, envelopes)?;
        self.refresh_team(server, m)?;
        Ok(true)
    }

    /// The six digits this device shows so that a coordinator can check, in person, that the
    /// server lists its real keys (`pending_joins`, `confirm_device`).
    pub fn verification_code(&self, workspace: &str) -> Result<String> {
        validate::id("workspace_id", workspace)?;
        self.read(|c| {
            let keys = own_keys(c, workspace)?;
            Ok(crypto::verification_digits(
                &keys.sign_public(),
                &keys.box_public(),
            ))
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

impl crate::store::PendingRevocation {
    /// Tells the server that this device was wiped, so that it is revoked at once and a
    /// coordinator's device rotates the workspace key. Safe to repeat: a device already
    /// revoked counts as done.
    pub fn send(&self) -> Result<()> {
        let server = Server::new(&self.server_url, Some(self.device_token.to_string()))?;
        match server.post::<_, proto::RevokeResponse>(
            Call::Device,
            proto::PATH_REVOKE,
            &proto::RevokeRequest {
                device_id: self.device_id.clone(),
            },
        ) {
            Ok(_) | Err(Error::DeviceRevoked) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Keeps the team as listed and opens the envelopes of epochs this device lacks. Returns the
/// epochs learnt.
fn store_team(
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
    // Devices that joined with an invite this device handed over in person: their proof,
    // made with the invite's secret, shows the listed keys are theirs.
    let secrets = invite_secrets(tx, ws, false)?;
    for d in &team.devices {
        if let Some(proof) = &d.join_proof
            && d.revoked_at_seq.is_none()
            && matching_secret(&secrets, &d.sign_key, &d.box_key, proof).is_some()
        {
            accept(tx, ws, &d.sign_key, false)?;
        }
    }
    let own = own_keys(tx, ws)?;
    let mut learnt = Vec::new();
    for env in &team.envelopes {
        if env.device_id != m.device_id || keys::at_epoch(tx, ws, env.epoch)?.is_some() {
            continue;
        }
        // Only a coordinator still in the team, and one this device learnt in person (through
        // its invite) or confirmed, may hand out keys: neither the server nor a revoked
        // coordinator's phone may make the team adopt a key they know.
        let signer_ok = team.devices.iter().any(|d| {
            d.sign_key == env.signer_key
                && d.role == proto::roles::COORDINATOR
                && d.revoked_at_seq.is_none()
        }) && tx
            .prepare_cached(
                "SELECT 1 FROM trusted_signers WHERE workspace_id = ?1 AND sign_key = ?2",
            )?
            .exists(params![ws, env.signer_key.as_slice()])?;
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

/// A device to seal a key to: its id and X25519 public key.
type Recipient = (String, [u8; 32]);

/// A device as the team directory lists it, for approving or confirming it.
struct Listed {
    sign: Vec<u8>,
    boxk: Vec<u8>,
    proof: Option<Vec<u8>>,
    revoked: bool,
    role: String,
}

/// The epoch and the remaining devices' X25519 keys, if this device must rotate now.
fn rotation_plan(c: &Connection, workspace: &str) -> Result<Option<(u32, Vec<Recipient>)>> {
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
    // Only devices this one vouches for: a device the server slipped into the list must not
    // receive the new key.
    let mut st = c.prepare(
        "SELECT d.device_id, d.box_key FROM team_devices d
         JOIN accepted_devices a ON a.workspace_id = d.workspace_id AND a.sign_key = d.sign_key
         WHERE d.workspace_id = ?1 AND d.revoked_at_seq IS NULL ORDER BY d.device_id",
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

/// Verification secrets of this device's invites (of invites to approve, or in person).
fn invite_secrets(c: &Connection, workspace: &str, approval: bool) -> Result<Vec<Vec<u8>>> {
    let mut st =
        c.prepare("SELECT secret FROM invite_secrets WHERE workspace_id = ?1 AND approval = ?2")?;
    let rows = st.query_map(params![workspace, approval], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The secret among `secrets` under which `proof` is the join proof of these keys.
fn matching_secret(secrets: &[Vec<u8>], sign: &[u8], boxk: &[u8], proof: &[u8]) -> Option<Vec<u8>> {
    let (Ok(sign), Ok(boxk)) = (<[u8; 32]>::try_from(sign), <[u8; 32]>::try_from(boxk)) else {
        return None;
    };
    secrets
        .iter()
        .find(|s| crypto::verify_join_proof(s, &sign, &boxk, proof))
        .cloned()
}

/// Records that this device vouches for a device (and, for a coordinator, accepts keys it
/// seals).
fn accept(tx: &Transaction<'_>, workspace: &str, sign_key: &[u8], coordinator: bool) -> Result<()> {
    tx.execute(
        "INSERT INTO accepted_devices(workspace_id, sign_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![workspace, sign_key],
    )?;
    if coordinator {
        tx.execute(
            "INSERT INTO trusted_signers(workspace_id, sign_key) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
            params![workspace, sign_key],
        )?;
    }
    Ok(())
}

/// Uploads envelopes of existing epochs (an approval, a confirmation or a top-up).
fn upload_envelopes(server: &Server, envelopes: Vec<proto::KeyEnvelope>) -> Result<()> {
    server.post::<_, proto::KeysResponse>(
        Call::Device,
        proto::PATH_KEYS,
        &proto::KeysRequest {
            rotate_to: None,
            envelopes,
        },
    )?;
    Ok(())
}

/// Envelopes of every workspace key this device has, except epochs in `skip`, for a device.
fn wrap_all(
    c: &Connection,
    workspace: &str,
    device_id: &str,
    box_key: &[u8; 32],
    skip: &[u32],
) -> Result<Vec<proto::KeyEnvelope>> {
    let own = own_keys(c, workspace)?;
    let mut st =
        c.prepare("SELECT epoch, key FROM workspace_keys WHERE workspace_id = ?1 ORDER BY epoch")?;
    let all: Vec<(u32, Vec<u8>)> = st
        .query_map(params![workspace], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    all.into_iter()
        .filter(|(epoch, _)| !skip.contains(epoch))
        .map(|(epoch, k)| {
            let key = crypto::key_from_bytes(&k)
                .ok_or_else(|| Error::Corrupt("a stored workspace key is damaged".into()))?;
            crypto::wrap_key(&own, workspace, device_id, box_key, epoch, &key)
        })
        .collect()
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
            signers: Vec::new(),
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
    fn keys_are_adopted_only_from_coordinators_this_device_learnt_in_person() {
        let (_d, store, ws, _, _) = setup();
        let me = store.read(|c| own_keys(c, &ws)).unwrap();
        let stranger = DeviceKeys::generate();
        let next = crypto::new_workspace_key();
        let entry = |id: &str, k: &DeviceKeys, role: &str| proto::TeamDevice {
            device_id: id.into(),
            name: id.into(),
            role: role.into(),
            sign_key: k.sign_public(),
            box_key: k.box_public(),
            join_proof: None,
            enrolled_at: 0,
            revoked_at_seq: None,
            key_epochs: vec![],
        };
        let team = proto::TeamResponse {
            version: 9,
            epoch: 1,
            rotation_needed: false,
            devices: vec![
                entry("me", &me, proto::roles::MEMBER),
                entry("planted", &stranger, proto::roles::COORDINATOR),
            ],
            envelopes: vec![
                crypto::wrap_key(&stranger, &ws, "me", &me.box_public(), 1, &next).unwrap(),
            ],
        };
        let m = Membership {
            workspace: ws.clone(),
            url: String::new(),
            token: String::new(),
            device_id: "me".into(),
        };
        let apply = |team: &proto::TeamResponse| {
            store
                .with_writer(|w| {
                    let tx = w.conn.transaction()?;
                    let learnt = store_team(&tx, &m, team)?;
                    tx.commit()?;
                    Ok(learnt)
                })
                .unwrap()
        };
        assert!(
            apply(&team).is_empty(),
            "a coordinator only the server vouches for"
        );
        assert!(store.read(|c| keys::at_epoch(c, &ws, 1)).unwrap().is_none());
        // Once this device has met it (an invite vouched for it, or it was confirmed):
        store
            .with_writer(|w| {
                let tx = w.conn.transaction()?;
                accept(&tx, &ws, &stranger.sign_public(), true)?;
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        assert_eq!(apply(&team), vec![1]);
        assert_eq!(
            *store.read(|c| keys::at_epoch(c, &ws, 1)).unwrap().unwrap(),
            *next
        );
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
