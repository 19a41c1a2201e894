//! The team log: who a workspace's team is, decided by its coordinators and never by the server.
//!
//! Every membership fact is an entry of an append-only, hash-chained log per workspace, signed
//! with the Ed25519 device key of a coordinator: the genesis (the workspace and the coordinator
//! that started the log), a device admitted (its signing and sealing keys together, its role,
//! how it was vouched for), a revocation (with the sequence number up to which the revoked
//! device's blobs count as its own), a role change, and a rotation to a new key epoch.
//!
//! The server stores and serves the log but cannot forge an entry; devices replay it with
//! [`TeamState`] and derive everything from it alone: whom to seal keys to, whose blobs to
//! accept and up to where, when a rotation is due. The rules live here, in the crate both the
//! client and the server link, so the two check exactly the same things.
//!
//! ```
//! use ed25519_dalek::{Signer, SigningKey};
//! use waymark_protocol::team_log::{Body, Entry, Grant, Member, Restricted, SignedEntry, TeamState};
//!
//! let coordinator = SigningKey::from_bytes(&[7; 32]);
//! let me = Member {
//!     device_id: "d1".into(),
//!     name: "Phone 1".into(),
//!     role: "coordinator".into(),
//!     sign_key: coordinator.verifying_key().to_bytes(),
//!     box_key: [9; 32],
//!     actor: None,
//! };
//! let genesis = Entry::first(
//!     coordinator.verifying_key().to_bytes(),
//!     0,
//!     Body::Genesis {
//!         workspace: "0123456789abcdef0123456789abcdef".into(),
//!         epoch: 0,
//!         coordinator: me,
//!         restricted: Some(Restricted {
//!             public: [3; 32],
//!             grants: vec![Grant { to: coordinator.verifying_key().to_bytes(), epoch: 0, sealed: vec![1; 80] }],
//!         }),
//!     },
//! );
//! let bytes = genesis.to_bytes();
//! let signed = SignedEntry {
//!     signature: coordinator.sign(&Entry::message(&bytes)).to_bytes(),
//!     entry: bytes,
//! };
//! let state = TeamState::replay(std::slice::from_ref(&signed)).unwrap();
//! assert!(state.is_coordinator(&coordinator.verifying_key().to_bytes()));
//! assert_eq!(state.len, 1);
//! ```

use std::collections::BTreeMap;

use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{PublicKey, Signature, decode, encode, roles};

/// Domain separation of entry signatures.
const SIGNATURE_LABEL: &[u8] = b"waymark/team-entry/v1";
/// Domain separation of entry hashes (the chain).
const HASH_LABEL: &[u8] = b"waymark/team-log/v1";
/// Longest device name an entry may carry, in characters.
const MAX_NAME_CHARS: usize = 128;
/// Longest device id an entry may carry, in bytes.
const MAX_DEVICE_ID_BYTES: usize = 64;
/// Longest Automerge actor id an entry may carry, in bytes.
const MAX_ACTOR_BYTES: usize = 32;
/// Longest sealed restricted key in a grant, in bytes (a sealed box of 32 bytes is 80).
const MAX_GRANT_BYTES: usize = 128;

/// SHA-256 of a signed entry: what the next entry names as `prev`, and what invites carry.
pub type EntryHash = [u8; 32];

/// One entry as stored and sent: the CBOR bytes of an [`Entry`] and its author's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    /// The CBOR encoding of the [`Entry`], exactly as signed.
    #[serde(with = "serde_bytes")]
    pub entry: Vec<u8>,
    /// Ed25519 signature by `Entry::author` over [`Entry::message`] of `entry`.
    #[serde(with = "serde_bytes")]
    pub signature: Signature,
}

impl SignedEntry {
    /// The entry's hash: it chains the log and names a position in it.
    pub fn hash(&self) -> EntryHash {
        let mut h = Sha256::new();
        h.update(HASH_LABEL);
        h.update((self.entry.len() as u64).to_be_bytes());
        h.update(&self.entry);
        h.update(self.signature);
        h.finalize().into()
    }

    /// The entry, decoded (its signature is not checked here).
    pub fn decode(&self) -> Result<Entry, LogError> {
        decode(&self.entry).map_err(|e| LogError::Malformed(e.message))
    }
}

/// One fact about the team, signed by a coordinator's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its position: 0 for the genesis, then 1, 2, ... without gaps.
    pub index: u64,
    /// The hash of the entry before it (all zeros for the genesis).
    #[serde(with = "serde_bytes")]
    pub prev: EntryHash,
    /// The Ed25519 key of the coordinator's device that signed it.
    #[serde(with = "serde_bytes")]
    pub author: PublicKey,
    /// When its author made it, unix seconds by the author's clock (shown to people; never
    /// used for a decision).
    pub at: i64,
    /// What it says.
    pub body: Body,
}

impl Entry {
    /// The genesis entry (index 0, no predecessor).
    pub fn first(author: PublicKey, at: i64, body: Body) -> Entry {
        Entry {
            index: 0,
            prev: [0; 32],
            author,
            at,
            body,
        }
    }

    /// The entry that follows the head of `state`.
    pub fn next(state: &TeamState, author: PublicKey, at: i64, body: Body) -> Entry {
        Entry {
            index: state.len,
            prev: state.head,
            author,
            at,
            body,
        }
    }

    /// The CBOR bytes to sign and store.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// The message an author signs for entry bytes `entry` (domain separated).
    pub fn message(entry: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(SIGNATURE_LABEL.len() + entry.len());
        m.extend_from_slice(SIGNATURE_LABEL);
        m.extend_from_slice(entry);
        m
    }
}

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// The log starts: the workspace (the team's own id, the one sealed blobs are bound to), the
    /// key epoch it is at, and the coordinator's device that started it (the author).
    Genesis {
        /// The team's workspace id (not the server's).
        workspace: String,
        /// The key epoch the workspace is at when the log starts.
        epoch: u32,
        /// The device that starts the log: a coordinator, the entry's author.
        coordinator: Member,
        /// The restricted key of the epoch, granted to the coordinator.
        #[serde(default)]
        restricted: Option<Restricted>,
    },
    /// A device joins the team.
    Admit {
        /// The device, with both its public keys.
        member: Member,
        /// How the author knows the keys are the device's own.
        vouch: Vouch,
        /// For a coordinator: every epoch's restricted key, sealed to it.
        #[serde(default)]
        grants: Vec<Grant>,
    },
    /// A device leaves the team: its blobs numbered above `after_seq` are not its own, and
    /// nothing is sealed to it any more. A rotation is due until the next [`Body::Rotate`].
    Revoke {
        /// The device's signing key.
        #[serde(with = "serde_bytes")]
        sign_key: PublicKey,
        /// The last sequence number of the workspace's blob log that counts as the device's.
        after_seq: u64,
    },
    /// A device's role changes.
    Role {
        /// The device's signing key.
        #[serde(with = "serde_bytes")]
        sign_key: PublicKey,
        /// The new role, from [`roles`].
        role: String,
        /// To a coordinator: every epoch's restricted key, sealed to it.
        #[serde(default)]
        grants: Vec<Grant>,
    },
    /// The workspace moves to a new key epoch, sealed to every device of the team, with a new
    /// restricted key granted to every coordinator.
    Rotate {
        /// The new epoch: the current one + 1.
        epoch: u32,
        /// The new epoch's restricted key.
        #[serde(default)]
        restricted: Option<Restricted>,
    },
}

/// An epoch's restricted key: restricted records are sealed to its public half, and only
/// coordinators hold the secret half (the record's author keeps its own copy), so a member's
/// phone holds no restricted record it can open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restricted {
    /// The X25519 public key restricted records of this epoch are sealed to.
    #[serde(with = "serde_bytes")]
    pub public: PublicKey,
    /// The secret half, sealed to each coordinator of the team.
    pub grants: Vec<Grant>,
}

/// A restricted key's secret half, sealed (libsodium sealed box) to one coordinator's box key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The coordinator's signing key.
    #[serde(with = "serde_bytes")]
    pub to: PublicKey,
    /// The epoch of the restricted key.
    pub epoch: u32,
    /// The sealed secret.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A device as the log names it: the pair of keys that go together, and who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id on the server.
    pub device_id: String,
    /// The name it enrolled with (attested by the coordinator who admitted it).
    pub name: String,
    /// Its role, from [`roles`].
    pub role: String,
    /// Its Ed25519 key: teammates accept blobs it signs.
    #[serde(with = "serde_bytes")]
    pub sign_key: PublicKey,
    /// Its X25519 key: workspace keys are sealed to it, and to no other key of this device.
    #[serde(with = "serde_bytes")]
    pub box_key: PublicKey,
    /// The Automerge actor id its changes carry, when it declared one.
    #[serde(default, with = "serde_bytes")]
    pub actor: Option<Vec<u8>>,
}

/// How the coordinator admitting a device knows that the keys it admits are the device's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vouch {
    /// It joined with an invite this coordinator handed over in person; its join proof, made
    /// with the invite's one-time secret, matches the keys.
    Invite,
    /// It joined with an invite to approve that this coordinator made; the proof matches.
    Approved,
    /// A person compared the verification code on both devices.
    Confirmed,
    /// Trusted before the team log existed (carried over when the log started).
    Migrated,
}

/// Why an entry cannot be part of the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The entry's bytes are not an entry.
    #[error("a team log entry is malformed: {0}")]
    Malformed(String),
    /// The entry is not at the next position, or does not follow the head.
    #[error(
        "team log entry {found} does not follow entry {expected_prev} (a fork, or a missing entry)"
    )]
    Chain {
        /// The index the entry claims.
        found: u64,
        /// The index of the entry it should follow.
        expected_prev: u64,
    },
    /// The signature does not verify with the author's key.
    #[error("team log entry {0} is not signed by its author")]
    BadSignature(u64),
    /// The author is not a coordinator of the team at that point of the log.
    #[error("team log entry {0} is signed by a device that is not a coordinator of the team")]
    NotCoordinator(u64),
    /// The entry breaks a rule of the log.
    #[error("team log entry {index}: {rule}")]
    Rule {
        /// The entry's index.
        index: u64,
        /// The rule it breaks.
        rule: String,
    },
}

/// A device of the team as the log has made it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The device as admitted, with its current role.
    pub member: Member,
    /// The index of the entry that admitted it.
    pub admitted_at: u64,
    /// How it was vouched for.
    pub vouch: Option<Vouch>,
    /// If revoked: the last blob sequence number that counts as its own.
    pub revoked_after_seq: Option<u64>,
}

impl MemberState {
    /// Whether the device is still part of the team.
    pub fn active(&self) -> bool {
        self.revoked_after_seq.is_none()
    }
}

/// The team as a verified prefix of its log makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamState {
    /// The team's workspace id (from the genesis).
    pub workspace: String,
    /// How many entries were verified.
    pub len: u64,
    /// The hash of the last verified entry.
    pub head: EntryHash,
    /// The current key epoch.
    pub epoch: u32,
    /// Every device ever admitted, by signing key.
    pub members: BTreeMap<PublicKey, MemberState>,
    /// A device was revoked, or a coordinator demoted, since the last rotation: a coordinator
    /// must rotate.
    pub rotation_due: bool,
    /// Each epoch's restricted public key.
    pub restricted: BTreeMap<u32, PublicKey>,
}

impl TeamState {
    /// Verifies a whole log from its genesis.
    pub fn replay(entries: &[SignedEntry]) -> Result<TeamState, LogError> {
        Self::replay_with(entries, Signatures::Check)
    }

    /// Replays a log whose signatures were checked when it was stored (by this device, in its
    /// authenticated store; by the server, when each entry was appended): every rule but the
    /// signatures, which are most of the cost.
    pub fn replay_stored(entries: &[SignedEntry]) -> Result<TeamState, LogError> {
        Self::replay_with(entries, Signatures::Checked)
    }

    fn replay_with(entries: &[SignedEntry], sigs: Signatures) -> Result<TeamState, LogError> {
        let (first, rest) = entries
            .split_first()
            .ok_or_else(|| LogError::Malformed("the log is empty".into()))?;
        let mut state = TeamState::genesis_with(first, sigs)?;
        for e in rest {
            state.apply_with(e, sigs)?;
        }
        Ok(state)
    }

    /// Verifies a genesis entry and starts the state from it.
    pub fn genesis(signed: &SignedEntry) -> Result<TeamState, LogError> {
        Self::genesis_with(signed, Signatures::Check)
    }

    fn genesis_with(signed: &SignedEntry, sigs: Signatures) -> Result<TeamState, LogError> {
        let entry = signed.decode()?;
        if entry.index != 0 || entry.prev != [0; 32] {
            return Err(LogError::Chain {
                found: entry.index,
                expected_prev: 0,
            });
        }
        let Body::Genesis {
            workspace,
            epoch,
            coordinator,
            restricted,
        } = &entry.body
        else {
            return Err(rule(0, "the first entry is not a genesis"));
        };
        if sigs == Signatures::Check {
            verify_signature(&entry, signed)?;
        }
        if coordinator.sign_key != entry.author {
            return Err(rule(
                0,
                "the genesis is not signed by the coordinator it names",
            ));
        }
        if coordinator.role != roles::COORDINATOR {
            return Err(rule(
                0,
                "the genesis names a device that is not a coordinator",
            ));
        }
        check_member(0, coordinator)?;
        if workspace.is_empty() || workspace.len() > 64 {
            return Err(rule(0, "the genesis names no valid workspace"));
        }
        let mut members = BTreeMap::new();
        members.insert(
            coordinator.sign_key,
            MemberState {
                member: coordinator.clone(),
                admitted_at: 0,
                vouch: None,
                revoked_after_seq: None,
            },
        );
        let mut state = TeamState {
            workspace: workspace.clone(),
            len: 1,
            head: signed.hash(),
            epoch: *epoch,
            members,
            rotation_due: false,
            restricted: BTreeMap::new(),
        };
        state.take_restricted(0, *epoch, restricted.as_ref())?;
        Ok(state)
    }

    /// Verifies the entry that follows the head and applies it. On error the state is as it
    /// was.
    pub fn apply(&mut self, signed: &SignedEntry) -> Result<Applied, LogError> {
        self.apply_with(signed, Signatures::Check)
    }

    fn apply_with(&mut self, signed: &SignedEntry, sigs: Signatures) -> Result<Applied, LogError> {
        let entry = signed.decode()?;
        let index = entry.index;
        if index != self.len || entry.prev != self.head {
            return Err(LogError::Chain {
                found: index,
                expected_prev: self.len.saturating_sub(1),
            });
        }
        if sigs == Signatures::Check {
            verify_signature(&entry, signed)?;
        }
        if !self.is_coordinator(&entry.author) {
            return Err(LogError::NotCoordinator(index));
        }
        let applied = match entry.body {
            Body::Genesis { .. } => return Err(rule(index, "a second genesis")),
            Body::Admit {
                member,
                vouch,
                grants,
            } => {
                check_member(index, &member)?;
                self.check_grants(index, &member.sign_key, &member.role, &grants)?;
                if self.members.contains_key(&member.sign_key) {
                    return Err(rule(index, "admits a signing key the team already has"));
                }
                for m in self.members.values() {
                    if m.member.box_key == member.box_key {
                        return Err(rule(index, "admits a sealing key the team already has"));
                    }
                    if m.member.device_id == member.device_id {
                        return Err(rule(index, "admits a device id the team already has"));
                    }
                    if member.actor.is_some() && m.member.actor == member.actor {
                        return Err(rule(index, "admits an actor id the team already has"));
                    }
                }
                let key = member.sign_key;
                self.members.insert(
                    key,
                    MemberState {
                        member,
                        admitted_at: index,
                        vouch: Some(vouch),
                        revoked_after_seq: None,
                    },
                );
                Applied::Admitted(key)
            }
            Body::Revoke {
                sign_key,
                after_seq,
            } => {
                let target = self.active_member(index, &sign_key)?;
                if target.member.role == roles::COORDINATOR && self.coordinators() == 1 {
                    return Err(rule(index, "revokes the team's last coordinator"));
                }
                if let Some(m) = self.members.get_mut(&sign_key) {
                    m.revoked_after_seq = Some(after_seq);
                }
                self.rotation_due = true;
                Applied::Revoked(sign_key)
            }
            Body::Role {
                sign_key,
                role,
                grants,
            } => {
                if !roles::is_known(&role) {
                    return Err(rule(index, "names an unknown role"));
                }
                self.check_grants(index, &sign_key, &role, &grants)?;
                let target = self.active_member(index, &sign_key)?;
                if target.member.role == role {
                    return Err(rule(index, "gives a device the role it has"));
                }
                if target.member.role == roles::COORDINATOR && self.coordinators() == 1 {
                    return Err(rule(index, "takes the role of the team's last coordinator"));
                }
                // A demoted coordinator holds this epoch's restricted key.
                if target.member.role == roles::COORDINATOR {
                    self.rotation_due = true;
                }
                if let Some(m) = self.members.get_mut(&sign_key) {
                    m.member.role = role;
                }
                Applied::RoleChanged(sign_key)
            }
            Body::Rotate { epoch, restricted } => {
                if Some(epoch) != self.epoch.checked_add(1) {
                    return Err(rule(
                        index,
                        &format!(
                            "rotates to epoch {epoch}, not {}",
                            u64::from(self.epoch) + 1
                        ),
                    ));
                }
                self.take_restricted(index, epoch, restricted.as_ref())?;
                self.epoch = epoch;
                self.rotation_due = false;
                Applied::Rotated(epoch)
            }
        };
        self.len += 1;
        self.head = signed.hash();
        Ok(applied)
    }

    /// Whether `key` is a coordinator of the team, not revoked.
    pub fn is_coordinator(&self, key: &PublicKey) -> bool {
        self.members
            .get(key)
            .is_some_and(|m| m.active() && m.member.role == roles::COORDINATOR)
    }

    /// The device with signing key `key`, if it was ever admitted.
    pub fn member(&self, key: &PublicKey) -> Option<&MemberState> {
        self.members.get(key)
    }

    /// The device with server id `device_id`, if it was ever admitted.
    pub fn by_device_id(&self, device_id: &str) -> Option<&MemberState> {
        self.members
            .values()
            .find(|m| m.member.device_id == device_id)
    }

    /// The devices of the team now, admitted and not revoked, in the order they were
    /// admitted. Keys are sealed to these alone.
    pub fn active(&self) -> Vec<&Member> {
        let mut active: Vec<&MemberState> = self.members.values().filter(|m| m.active()).collect();
        active.sort_by_key(|m| m.admitted_at);
        active.into_iter().map(|m| &m.member).collect()
    }

    /// Records an epoch's restricted key, which must be granted to every coordinator of the
    /// team (and to nobody else).
    fn take_restricted(
        &mut self,
        index: u64,
        epoch: u32,
        restricted: Option<&Restricted>,
    ) -> Result<(), LogError> {
        let Some(r) = restricted else {
            return Err(rule(index, "brings no restricted key"));
        };
        if r.public.iter().all(|b| *b == 0) {
            return Err(rule(index, "brings no valid restricted key"));
        }
        let mut to: Vec<&PublicKey> = r.grants.iter().map(|g| &g.to).collect();
        to.sort();
        let mut expected: Vec<&PublicKey> = self
            .members
            .iter()
            .filter(|(_, m)| m.active() && m.member.role == roles::COORDINATOR)
            .map(|(k, _)| k)
            .collect();
        expected.sort();
        if to != expected
            || r.grants.iter().any(|g| {
                g.epoch != epoch || g.sealed.is_empty() || g.sealed.len() > MAX_GRANT_BYTES
            })
        {
            return Err(rule(
                index,
                "does not grant the restricted key to exactly the team's coordinators",
            ));
        }
        self.restricted.insert(epoch, r.public);
        Ok(())
    }

    /// A device becoming a coordinator receives every epoch's restricted key; a member none.
    fn check_grants(
        &self,
        index: u64,
        to: &PublicKey,
        role: &str,
        grants: &[Grant],
    ) -> Result<(), LogError> {
        let ok = match role == roles::COORDINATOR {
            true => {
                let mut epochs: Vec<u32> = grants.iter().map(|g| g.epoch).collect();
                epochs.sort_unstable();
                epochs == self.restricted.keys().copied().collect::<Vec<_>>()
                    && grants.iter().all(|g| {
                        &g.to == to && !g.sealed.is_empty() && g.sealed.len() <= MAX_GRANT_BYTES
                    })
            }
            false => grants.is_empty(),
        };
        match ok {
            true => Ok(()),
            false => Err(rule(
                index,
                "a coordinator must receive every restricted key, a member none",
            )),
        }
    }

    /// Coordinators not revoked.
    fn coordinators(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.active() && m.member.role == roles::COORDINATOR)
            .count()
    }

    fn active_member(&self, index: u64, key: &PublicKey) -> Result<&MemberState, LogError> {
        match self.members.get(key) {
            Some(m) if m.active() => Ok(m),
            Some(_) => Err(rule(index, "names a device that was revoked")),
            None => Err(rule(index, "names a device that is not in the team")),
        }
    }
}

/// Whether a replay checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signatures {
    Check,
    Checked,
}

/// What applying an entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A device was admitted (its signing key).
    Admitted(PublicKey),
    /// A device was revoked.
    Revoked(PublicKey),
    /// A device's role changed.
    RoleChanged(PublicKey),
    /// The workspace moved to this epoch.
    Rotated(u32),
}

fn rule(index: u64, rule: &str) -> LogError {
    LogError::Rule {
        index,
        rule: rule.to_owned(),
    }
}

fn verify_signature(entry: &Entry, signed: &SignedEntry) -> Result<(), LogError> {
    let bad = || LogError::BadSignature(entry.index);
    let key = VerifyingKey::from_bytes(&entry.author).map_err(|_| bad())?;
    key.verify_strict(
        &Entry::message(&signed.entry),
        &DalekSignature::from_bytes(&signed.signature),
    )
    .map_err(|_| bad())
}

fn check_member(index: u64, m: &Member) -> Result<(), LogError> {
    if !roles::is_known(&m.role) {
        return Err(rule(index, "names an unknown role"));
    }
    if m.device_id.is_empty() || m.device_id.len() > MAX_DEVICE_ID_BYTES {
        return Err(rule(index, "names no valid device id"));
    }
    let chars = m.name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || m.name.chars().any(char::is_control) {
        return Err(rule(index, "names no valid device name"));
    }
    if m.sign_key == [0; 32] || m.box_key == [0; 32] {
        return Err(rule(index, "names a device without keys"));
    }
    if VerifyingKey::from_bytes(&m.sign_key).is_err() {
        return Err(rule(
            index,
            "names a signing key that is not a valid Ed25519 key",
        ));
    }
    if m.actor
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > MAX_ACTOR_BYTES)
    {
        return Err(rule(index, "names no valid actor id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    struct Dev {
        key: SigningKey,
        id: String,
    }

    impl Dev {
        fn new(n: u8) -> Dev {
            Dev {
                key: SigningKey::from_bytes(&[n; 32]),
                id: format!("device-{n}"),
            }
        }

        fn pk(&self) -> PublicKey {
            self.key.verifying_key().to_bytes()
        }

        fn member(&self, role: &str) -> Member {
            Member {
                device_id: self.id.clone(),
                name: self.id.clone(),
                role: role.into(),
                sign_key: self.pk(),
                box_key: [self.key.to_bytes()[0].wrapping_add(100); 32],
                actor: None,
            }
        }

        fn sign(&self, entry: &Entry) -> SignedEntry {
            let bytes = entry.to_bytes();
            SignedEntry {
                signature: self.key.sign(&Entry::message(&bytes)).to_bytes(),
                entry: bytes,
            }
        }
    }

    fn grant(to: PublicKey, epoch: u32) -> Grant {
        Grant {
            to,
            epoch,
            sealed: vec![7; 80],
        }
    }

    /// A restricted key for `epoch` granted to `to`.
    fn restricted(epoch: u32, to: &[PublicKey]) -> Option<Restricted> {
        Some(Restricted {
            public: [u8::try_from(epoch).unwrap() + 1; 32],
            grants: to.iter().map(|k| grant(*k, epoch)).collect(),
        })
    }

    /// Every epoch's restricted key, for a device becoming a coordinator of `s`.
    fn all_grants(s: &TeamState, to: &Dev) -> Vec<Grant> {
        s.restricted.keys().map(|e| grant(to.pk(), *e)).collect()
    }

    fn admit(s: &TeamState, d: &Dev, role: &str) -> Body {
        Body::Admit {
            member: d.member(role),
            vouch: Vouch::Invite,
            grants: match role == roles::COORDINATOR {
                true => all_grants(s, d),
                false => Vec::new(),
            },
        }
    }

    fn rotate(s: &TeamState) -> Body {
        let coordinators: Vec<PublicKey> = s
            .members
            .iter()
            .filter(|(_, m)| m.active() && m.member.role == roles::COORDINATOR)
            .map(|(k, _)| *k)
            .collect();
        Body::Rotate {
            epoch: s.epoch + 1,
            restricted: restricted(s.epoch + 1, &coordinators),
        }
    }

    fn start(c: &Dev) -> (TeamState, Vec<SignedEntry>) {
        let g = c.sign(&Entry::first(
            c.pk(),
            1,
            Body::Genesis {
                workspace: "ws".into(),
                epoch: 0,
                coordinator: c.member(roles::COORDINATOR),
                restricted: restricted(0, &[c.pk()]),
            },
        ));
        (TeamState::genesis(&g).unwrap(), vec![g])
    }

    fn append(
        state: &mut TeamState,
        log: &mut Vec<SignedEntry>,
        by: &Dev,
        body: Body,
    ) -> Result<Applied, LogError> {
        let e = by.sign(&Entry::next(state, by.pk(), 2, body));
        let applied = state.apply(&e)?;
        log.push(e);
        Ok(applied)
    }

    #[test]
    fn a_log_replays_to_the_team_its_coordinators_made() {
        let (c, a, b) = (Dev::new(1), Dev::new(2), Dev::new(3));
        let (mut s, mut log) = start(&c);
        for d in [&a, &b] {
            let body = admit(&s, d, roles::MEMBER);
            append(&mut s, &mut log, &c, body).unwrap();
        }
        append(
            &mut s,
            &mut log,
            &c,
            Body::Revoke {
                sign_key: b.pk(),
                after_seq: 40,
            },
        )
        .unwrap();
        assert!(s.rotation_due);
        let body = rotate(&s);
        append(&mut s, &mut log, &c, body).unwrap();
        let grants = all_grants(&s, &a);
        append(
            &mut s,
            &mut log,
            &c,
            Body::Role {
                sign_key: a.pk(),
                role: roles::COORDINATOR.into(),
                grants,
            },
        )
        .unwrap();
        let replayed = TeamState::replay(&log).unwrap();
        assert_eq!(replayed, s);
        assert_eq!(TeamState::replay_stored(&log).unwrap(), s);
        assert_eq!((s.len, s.epoch, s.rotation_due), (6, 1, false));
        assert_eq!(s.restricted.len(), 2, "a restricted key per epoch");
        assert!(s.is_coordinator(&a.pk()));
        assert_eq!(s.member(&b.pk()).unwrap().revoked_after_seq, Some(40));
        let active: Vec<&str> = s.active().iter().map(|m| m.device_id.as_str()).collect();
        assert_eq!(active, [c.id.as_str(), a.id.as_str()]);
        // Demoting a coordinator: it holds the restricted key, so a rotation is due.
        append(
            &mut s,
            &mut log,
            &c,
            Body::Role {
                sign_key: a.pk(),
                role: roles::MEMBER.into(),
                grants: vec![],
            },
        )
        .unwrap();
        assert!(s.rotation_due);
    }

    #[test]
    fn restricted_keys_go_to_exactly_the_coordinators() {
        let (c, a, m) = (Dev::new(1), Dev::new(2), Dev::new(3));
        let (mut s, mut log) = start(&c);
        let body = admit(&s, &m, roles::MEMBER);
        append(&mut s, &mut log, &c, body).unwrap();
        let before = s.clone();
        let refused = |s: &mut TeamState, body: Body| {
            let e = c.sign(&Entry::next(s, c.pk(), 3, body));
            assert!(matches!(s.apply(&e), Err(LogError::Rule { .. })));
        };
        // A rotation that grants the restricted key to a member, or forgets a coordinator.
        refused(
            &mut s,
            Body::Rotate {
                epoch: 1,
                restricted: restricted(1, &[c.pk(), m.pk()]),
            },
        );
        refused(
            &mut s,
            Body::Rotate {
                epoch: 1,
                restricted: restricted(1, &[]),
            },
        );
        refused(
            &mut s,
            Body::Rotate {
                epoch: 1,
                restricted: None,
            },
        );
        // A coordinator admitted without the restricted keys, a member admitted with them.
        refused(
            &mut s,
            Body::Admit {
                member: a.member(roles::COORDINATOR),
                vouch: Vouch::Confirmed,
                grants: vec![],
            },
        );
        let grants = all_grants(&s, &a);
        refused(
            &mut s,
            Body::Admit {
                member: a.member(roles::MEMBER),
                vouch: Vouch::Confirmed,
                grants,
            },
        );
        refused(
            &mut s,
            Body::Role {
                sign_key: m.pk(),
                role: roles::COORDINATOR.into(),
                grants: vec![],
            },
        );
        assert_eq!(s, before);
    }

    #[test]
    fn forged_reordered_and_unauthorised_entries_are_refused() {
        let (c, a, x) = (Dev::new(1), Dev::new(2), Dev::new(9));
        let (mut s, mut log) = start(&c);
        let body = admit(&s, &a, roles::MEMBER);
        append(&mut s, &mut log, &c, body).unwrap();
        let before = s.clone();

        // A member signs an entry: not a coordinator.
        let by_member = a.sign(&Entry::next(&s, a.pk(), 3, rotate(&s)));
        assert_eq!(s.apply(&by_member), Err(LogError::NotCoordinator(2)));
        // A stranger signs it claiming a coordinator as author.
        let mut forged = x.sign(&Entry::next(&s, c.pk(), 3, rotate(&s)));
        assert_eq!(s.apply(&forged), Err(LogError::BadSignature(2)));
        forged.signature[0] ^= 1;
        assert!(s.apply(&forged).is_err());
        // An entry that skips a position or names another predecessor: a fork or a gap.
        let mut skip = Entry::next(&s, c.pk(), 3, rotate(&s));
        skip.index += 1;
        assert!(matches!(
            s.apply(&c.sign(&skip)),
            Err(LogError::Chain { .. })
        ));
        let mut fork = Entry::next(&s, c.pk(), 3, rotate(&s));
        fork.prev = [5; 32];
        assert!(matches!(
            s.apply(&c.sign(&fork)),
            Err(LogError::Chain { .. })
        ));
        // Epochs follow the log: no jumping ahead.
        let jump = c.sign(&Entry::next(
            &s,
            c.pk(),
            3,
            Body::Rotate {
                epoch: 4_000_000_000,
                restricted: restricted(0, &[c.pk()]),
            },
        ));
        assert!(matches!(s.apply(&jump), Err(LogError::Rule { .. })));
        // A key admitted twice, a device revoked twice, the last coordinator removed.
        for body in [
            admit(&s, &a, roles::MEMBER),
            Body::Revoke {
                sign_key: x.pk(),
                after_seq: 1,
            },
            Body::Revoke {
                sign_key: c.pk(),
                after_seq: 1,
            },
            Body::Role {
                sign_key: c.pk(),
                role: roles::MEMBER.into(),
                grants: vec![],
            },
            Body::Genesis {
                workspace: "ws".into(),
                epoch: 0,
                coordinator: x.member(roles::COORDINATOR),
                restricted: restricted(0, &[x.pk()]),
            },
        ] {
            let e = c.sign(&Entry::next(&s, c.pk(), 3, body));
            assert!(matches!(s.apply(&e), Err(LogError::Rule { .. })), "{e:?}");
        }
        assert_eq!(s, before, "a refused entry changes nothing");
        // A revoked coordinator signs nothing more.
        append(
            &mut s,
            &mut log,
            &c,
            Body::Role {
                sign_key: a.pk(),
                role: roles::COORDINATOR.into(),
                grants: all_grants(&before, &a),
            },
        )
        .unwrap();
        append(
            &mut s,
            &mut log,
            &a,
            Body::Revoke {
                sign_key: c.pk(),
                after_seq: 9,
            },
        )
        .unwrap();
        let late = c.sign(&Entry::next(&s, c.pk(), 4, rotate(&s)));
        assert_eq!(s.apply(&late), Err(LogError::NotCoordinator(4)));
    }

    #[test]
    fn a_genesis_must_be_signed_by_the_coordinator_it_names() {
        let (c, x) = (Dev::new(1), Dev::new(2));
        let body = Body::Genesis {
            workspace: "ws".into(),
            epoch: 0,
            coordinator: c.member(roles::COORDINATOR),
            restricted: restricted(0, &[c.pk()]),
        };
        let by_other = x.sign(&Entry::first(x.pk(), 0, body.clone()));
        assert!(TeamState::genesis(&by_other).is_err());
        let member_genesis = c.sign(&Entry::first(
            c.pk(),
            0,
            Body::Genesis {
                workspace: "ws".into(),
                epoch: 0,
                coordinator: c.member(roles::MEMBER),
                restricted: restricted(0, &[c.pk()]),
            },
        ));
        assert!(TeamState::genesis(&member_genesis).is_err());
        let without_restricted = c.sign(&Entry::first(
            c.pk(),
            0,
            Body::Genesis {
                workspace: "ws".into(),
                epoch: 0,
                coordinator: c.member(roles::COORDINATOR),
                restricted: None,
            },
        ));
        assert!(TeamState::genesis(&without_restricted).is_err());
        assert!(TeamState::genesis(&c.sign(&Entry::first(c.pk(), 0, body))).is_ok());
        assert!(TeamState::replay(&[]).is_err());
        let not_cbor = SignedEntry {
            entry: vec![0xff, 0],
            signature: [0; 64],
        };
        assert!(matches!(
            TeamState::genesis(&not_cbor),
            Err(LogError::Malformed(_))
        ));
    }
}
