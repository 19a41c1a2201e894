//! The server's side of the team log: it stores the coordinator-signed entries and serves them,
//! but decides nothing with them beyond what keeps its own records consistent with the log.
//!
//! An append is checked here, the same way on every backend, against the stored log, the
//! workspace's devices as enrolled and its key epoch, inside the transaction that then stores
//! it: the entries must extend the log exactly (compare-and-swap on its head), verify under
//! the rules every device applies (`waymark_protocol::team_log`), and agree with what the
//! server knows (an admitted device is one enrolled here with those keys). The plan it returns
//! says what the backend must do so that the server's own records follow the log: tokens of
//! revoked devices stop working, roles change, the epoch moves.

use std::collections::HashSet;

use waymark_protocol::team_log::{Applied, Body, SignedEntry, TeamState};
use waymark_protocol::{AppendRequest, KeyEnvelope, PublicKey, limits};

use super::{StorageError, StorageResult};

/// A device of the workspace as enrolled on this server, for checking an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledDevice {
    /// Its public id.
    pub id: String,
    /// Its role as the server records it.
    pub role: String,
    /// Its Ed25519 key (all zeros for a device enrolled before keys existed).
    pub sign_key: PublicKey,
    /// Its X25519 key.
    pub box_key: PublicKey,
    /// Whether its token was revoked.
    pub revoked: bool,
}

/// What the backend stores and changes for an accepted append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendPlan {
    /// The new entries with their index and hash, in order (entries the log already had are
    /// not repeated here).
    pub new_entries: Vec<(u64, [u8; 32], SignedEntry)>,
    /// Devices whose tokens must stop working now (revoked by the log, not yet by the server).
    pub revoke: Vec<String>,
    /// Devices whose server role must change, with the role.
    pub roles: Vec<(String, String)>,
    /// The workspace's epoch after the append.
    pub epoch: u32,
    /// The log's length after the append.
    pub len: u64,
    /// The log's head after the append.
    pub head: [u8; 32],
}

/// Checks `request` against the stored log `stored`, the workspace's `devices` and its key
/// `epoch` (see the module docs). Errors: [`StorageError::Conflict`] when the entries do not
/// follow the stored head (another coordinator appended first), [`StorageError::Invalid`] when
/// they are not a valid continuation or disagree with the server's records. An admission of a
/// device the server has no record of (lost in a restore from backup) is history it keeps
/// without acting on it; envelopes for such a device are not stored. A device enrolled in
/// another workspace (`enrolled_elsewhere`) is refused.
pub fn plan_append(
    stored: &[SignedEntry],
    request: &AppendRequest,
    devices: &[EnrolledDevice],
    epoch: u32,
    enrolled_elsewhere: &mut dyn FnMut(&str) -> StorageResult<bool>,
) -> StorageResult<AppendPlan> {
    if request.entries.len() > limits::MAX_LOG_ENTRIES {
        return Err(StorageError::Invalid(format!(
            "at most {} entries per append",
            limits::MAX_LOG_ENTRIES
        )));
    }
    if let Some(big) = request
        .entries
        .iter()
        .position(|e| e.entry.len() > limits::MAX_LOG_ENTRY_BYTES)
    {
        return Err(StorageError::Invalid(format!(
            "entry {big} of the request is longer than {} bytes",
            limits::MAX_LOG_ENTRY_BYTES
        )));
    }
    let mut state = match stored {
        [] => None,
        // Every stored entry was verified when it was appended: only new ones are checked
        // for signatures, so an append costs little under the write lock, whatever its sender.
        entries => Some(TeamState::replay_stored(entries).map_err(|e| {
            StorageError::Backend(format!("the stored team log does not verify: {e}").into())
        })?),
    };
    let mut plan = AppendPlan {
        new_entries: Vec::new(),
        revoke: Vec::new(),
        roles: Vec::new(),
        epoch,
        len: stored.len() as u64,
        head: state.as_ref().map_or([0; 32], |s| s.head),
    };
    let mut rotated_to = Vec::new();
    for (n, signed) in request.entries.iter().enumerate() {
        let entry = signed
            .decode()
            .map_err(|e| StorageError::Invalid(format!("entry {n} of the request: {e}")))?;
        let index = entry.index;
        let have = stored.len() as u64;
        if index < have {
            // Re-sent after a restore, or by a device catching the server up: must be the same.
            let same = usize::try_from(index)
                .ok()
                .and_then(|i| stored.get(i))
                .is_some_and(|s| s == signed);
            if !same || !plan.new_entries.is_empty() {
                return Err(moved(index));
            }
            continue;
        }
        if index != plan.len {
            return Err(if index > plan.len {
                StorageError::Invalid(format!(
                    "entry {index} leaves a gap: the log has {} entries",
                    plan.len
                ))
            } else {
                moved(index)
            });
        }
        let invalid = |e: waymark_protocol::team_log::LogError| match e {
            waymark_protocol::team_log::LogError::Chain { .. } => moved(index),
            other => StorageError::Invalid(other.to_string()),
        };
        match state.as_mut() {
            None => {
                let Body::Genesis {
                    epoch: g_epoch,
                    coordinator,
                    ..
                } = &entry.body
                else {
                    return Err(StorageError::Invalid(
                        "the team log must start with a genesis".into(),
                    ));
                };
                let started = TeamState::genesis(signed).map_err(invalid)?;
                let enrolled = find(devices, &coordinator.device_id)?;
                if enrolled.sign_key != coordinator.sign_key
                    || enrolled.box_key != coordinator.box_key
                {
                    return Err(StorageError::Invalid(
                        "the genesis names keys its coordinator's device did not enroll with"
                            .into(),
                    ));
                }
                if enrolled.revoked || enrolled.role != waymark_protocol::roles::COORDINATOR {
                    return Err(StorageError::Invalid(
                        "the genesis must be made by a coordinator's device in good standing"
                            .into(),
                    ));
                }
                if *g_epoch != epoch {
                    return Err(StorageError::Invalid(format!(
                        "the genesis says epoch {g_epoch}; the workspace is at epoch {epoch}"
                    )));
                }
                state = Some(started);
            }
            Some(s) => {
                let applied = s.apply(signed).map_err(invalid)?;
                match applied {
                    Applied::Admitted(key) => {
                        let m = &s.members[&key].member;
                        // A device this server has no record of was enrolled in a database
                        // since restored from a backup: its admission is history the team
                        // signed and devices send back; the device itself can no longer
                        // authenticate here and must enrol again.
                        match devices.iter().find(|d| d.id == m.device_id) {
                            Some(enrolled) => {
                                if enrolled.sign_key != m.sign_key || enrolled.box_key != m.box_key
                                {
                                    return Err(StorageError::Invalid(format!(
                                        "entry {index} admits keys device {} did not enroll with",
                                        m.device_id
                                    )));
                                }
                                if enrolled.role != m.role {
                                    plan.roles.push((m.device_id.clone(), m.role.clone()));
                                }
                            }
                            None if enrolled_elsewhere(&m.device_id)? => {
                                return Err(StorageError::Invalid(format!(
                                    "entry {index} admits device {}, enrolled in another \
                                     workspace",
                                    m.device_id
                                )));
                            }
                            None => {}
                        }
                    }
                    Applied::Revoked(key) => {
                        let id = &s.members[&key].member.device_id;
                        if devices.iter().any(|d| &d.id == id && !d.revoked) {
                            plan.revoke.push(id.clone());
                        }
                    }
                    Applied::RoleChanged(key) => {
                        let m = &s.members[&key].member;
                        if devices.iter().any(|d| d.id == m.device_id) {
                            plan.roles.push((m.device_id.clone(), m.role.clone()));
                        }
                    }
                    Applied::Rotated(to) => rotated_to.push(to),
                }
            }
        }
        let s = state.as_ref().ok_or_else(|| {
            StorageError::Backend("the team log has no state after an entry".into())
        })?;
        plan.len = s.len;
        plan.head = s.head;
        plan.epoch = s.epoch;
        plan.new_entries.push((index, s.head, signed.clone()));
    }
    check_envelopes(state.as_ref(), &request.envelopes, &rotated_to)?;
    Ok(plan)
}

/// Envelopes go only to devices the log admits and has not revoked, for epochs the log has
/// reached, signed by a coordinator of the log; a rotation brings one for every such device.
fn check_envelopes(
    state: Option<&TeamState>,
    envelopes: &[KeyEnvelope],
    rotated_to: &[u32],
) -> StorageResult<()> {
    if envelopes.len() > limits::MAX_ENVELOPES {
        return Err(StorageError::Invalid(format!(
            "at most {} envelopes per request",
            limits::MAX_ENVELOPES
        )));
    }
    let Some(state) = state else {
        if envelopes.is_empty() {
            return Ok(());
        }
        return Err(StorageError::Invalid(
            "envelopes need a team log: start it with a genesis".into(),
        ));
    };
    let mut seen = HashSet::new();
    for (i, env) in envelopes.iter().enumerate() {
        let Some(member) = state.by_device_id(&env.device_id) else {
            return Err(StorageError::Invalid(format!(
                "envelope {i}: device {} is not in the team log",
                env.device_id
            )));
        };
        if !member.active() {
            return Err(StorageError::Conflict(format!(
                "envelope {i}: device {} was revoked",
                env.device_id
            )));
        }
        if env.epoch > state.epoch {
            return Err(StorageError::Invalid(format!(
                "envelope {i}: epoch {} is beyond the team log's epoch {}",
                env.epoch, state.epoch
            )));
        }
        if !state.is_coordinator(&env.signer_key) {
            return Err(StorageError::Invalid(format!(
                "envelope {i}: not signed by a coordinator of the team log"
            )));
        }
        let size = env.sealed_key.len();
        if size == 0 || size > limits::MAX_SEALED_KEY_BYTES {
            return Err(StorageError::Invalid(format!(
                "envelope {i}: sealed_key must be 1 to {} bytes",
                limits::MAX_SEALED_KEY_BYTES
            )));
        }
        if !seen.insert((env.device_id.as_str(), env.epoch)) {
            return Err(StorageError::Invalid(format!(
                "envelope {i}: a second envelope for device {} and epoch {}",
                env.device_id, env.epoch
            )));
        }
    }
    for epoch in rotated_to {
        if let Some(missing) = state
            .active()
            .into_iter()
            .find(|m| !seen.contains(&(m.device_id.as_str(), *epoch)))
        {
            return Err(StorageError::Invalid(format!(
                "a rotation to epoch {epoch} must seal the new key to every device of the team \
                 (device {} has no envelope)",
                missing.device_id
            )));
        }
    }
    Ok(())
}

fn find<'a>(devices: &'a [EnrolledDevice], id: &str) -> StorageResult<&'a EnrolledDevice> {
    devices
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| StorageError::Invalid(format!("no device {id} is enrolled here")))
}

fn moved(index: u64) -> StorageError {
    StorageError::LogMoved(format!(
        "entry {index} does not follow the team log's head: another coordinator appended \
         first; fetch the log and retry"
    ))
}
