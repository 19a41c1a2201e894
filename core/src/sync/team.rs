//! The team of a synced workspace, as its team log makes it: who may sign blobs and up to
//! where, which key each device is sealed to, who coordinates, when a rotation is due.
//!
//! The server stores the log and lists the devices enrolled with it, but decides nothing: a
//! coordinator's device admits a device only when it knows in person that the keys are the
//! device's own (the one-time secret of an invite it handed over, or a verification code a
//! person compared), and signs that into the log together with the device's sealing key; keys
//! are sealed to the keys the log names, never to keys the server lists; a coordinator rotates
//! in the same call that revokes, or at its next sync when the operator or another coordinator
//! revoked, without waiting for a server flag. See `docs/0003-team-log.md`.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, Transaction};
use waymark_protocol as proto;
use waymark_protocol::team_log::{Body, Entry, Member, SignedEntry, TeamState, Vouch};

use super::http::{Call, Server};
use super::log::{self, AlertKind, Anchor, LocalLog, Reconciled, TeamAlert};
use super::{Membership, NetworkError, SyncReport};
use crate::crypto::{self, DeviceKeys};
use crate::error::{Error, Result};
use crate::store::invite_secrets::{self, Secret};
use crate::store::team_devices::{self, Listed};
use crate::store::{
    Store, keys, memberships, now_ms, outbox, projection, set_aside, signers, team_log,
};
use crate::validate;

/// Times an append to the team log is retried after another coordinator's append.
const APPEND_ATTEMPTS: usize = 3;
/// Sealed bytes of set-aside blobs a device keeps per workspace, waiting for a key or for the
/// log to admit their signer; beyond it the oldest are dropped (counted and reported): a
/// server or a teammate must not be able to fill a phone.
pub(crate) const HELD_BYTES_MAX: i64 = 16 * 1024 * 1024;

/// One device of a team.
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
    /// True if the team log admits it (a coordinator vouched for its keys): only such devices
    /// receive keys, and only their changes are accepted.
    pub verified: bool,
    /// Its last sync (ms since 1970) as the server last listed it, if known: the server's word,
    /// refreshed on a coordinator's device every few minutes of syncing.
    pub last_sync_at: Option<i64>,
}

/// A device that enrolled with the server and waits for a coordinator to admit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJoin {
    /// The device's id on the server.
    pub device_id: String,
    /// The name it enrolled with.
    pub name: String,
    /// The verification code (twelve digits) of the keys the server lists for it: it matches
    /// the code the device itself shows (`verification_code`) only if the server did not
    /// substitute its keys.
    pub verification_code: String,
    /// True if its join proof matches an invite this device made and that is still unused
    /// and unexpired (so the server did not substitute its keys); admit it with
    /// `approve_join`. Others can be admitted with `confirm_device` once the codes match.
    pub verified: bool,
}

/// How far this device trusts what it knows of a workspace's team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamTrust {
    /// The team log is verified up to an anchor shown in person, and this device is admitted.
    Verified,
    /// The log is verified but does not admit this device yet: a coordinator must approve it;
    /// its changes wait.
    AwaitingAdmission,
    /// The server has no team log yet (a team from before the log): a coordinator's device
    /// starts it at its next sync; until then this device receives nothing.
    AwaitingLog,
    /// The server's answers contradict what this device verified: sync of the workspace stops
    /// until the server shows the real log. The reason says what was seen.
    Attacked {
        /// What the device noticed.
        reason: String,
    },
}

/// What this device knows of a workspace's team and of the server's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamStatus {
    /// The workspace.
    pub workspace_id: String,
    /// How far this device trusts what it knows.
    pub trust: TeamTrust,
    /// Entries of the team log this device verified.
    pub log_length: u64,
    /// The key epoch the log is at.
    pub epoch: u32,
    /// This device's role in the log, if admitted.
    pub role: Option<String>,
    /// A device was revoked and no coordinator rotated the key yet.
    pub rotation_due: bool,
    /// What this device noticed the server doing, newest first (at most 50).
    pub alerts: Vec<TeamAlert>,
    /// Set-aside blobs whose bytes were dropped because too many were held.
    pub set_aside_dropped: u64,
}

/// This device's own key pairs for a connected workspace.
pub(crate) fn own_keys(conn: &Connection, workspace: &str) -> Result<DeviceKeys> {
    let bytes = memberships::device_keys(conn, workspace)?;
    let bytes = bytes.ok_or_else(|| Error::not_found(format!("membership of {workspace}")))?;
    bytes
        .as_deref()
        .and_then(DeviceKeys::from_bytes)
        .ok_or_else(|| {
            Error::corrupt(format!(
                "the membership of {workspace} has no device keys: join the workspace again"
            ))
        })
}

/// Where a blob's signer stands in the team log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Admitted, and not revoked before the blob.
    Good,
    /// Not admitted (yet): the blob is held until the log admits its signer.
    Unknown,
}

/// The team log's answers about blob signers, remembered for one transaction (a page of blobs
/// has few signers, and the log does not change while it is applied).
#[derive(Default)]
pub(crate) struct Signers {
    seen: HashMap<[u8; 32], Option<Option<i64>>>,
    authors: HashMap<[u8; 32], Authorship>,
}

impl Signers {
    /// Whose changes a blob signed by `signer` may bring (see [`Authorship`]).
    pub(crate) fn authorship(
        &mut self,
        conn: &Connection,
        workspace: &str,
        signer: &[u8; 32],
    ) -> Result<&Authorship> {
        if !self.authors.contains_key(signer) {
            let rule = Authorship::of(conn, workspace, signer)?;
            self.authors.insert(*signer, rule);
        }
        self.authors
            .get(signer)
            .ok_or_else(|| Error::Storage("a signer's rule went missing".into()))
    }

    /// Where the device that signed a blob at `seq` stands: `Tampered` if the log revoked it
    /// before `seq`.
    pub(crate) fn check(
        &mut self,
        conn: &Connection,
        workspace: &str,
        signer: &[u8; 32],
        seq: u64,
    ) -> Result<Standing> {
        let row = match self.seen.get(signer) {
            Some(row) => *row,
            None => {
                let row =
                    team_log::admission(conn, workspace, signer)?.map(|a| a.revoked_after_seq);
                self.seen.insert(*signer, row);
                row
            }
        };
        match row {
            None => Ok(Standing::Unknown),
            Some(Some(after)) if i64::try_from(seq).unwrap_or(i64::MAX) > after => Err(
                Error::Tampered("signed by a revoked device after its revocation".into()),
            ),
            Some(_) => Ok(Standing::Good),
        }
    }
}

/// Whose changes a blob (or a bundle) signed by a device may bring: bound to the device's
/// Automerge actor, so that the author history and conflicts show is a device the team admitted,
/// not a name any member can claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authorship {
    /// Anyone's: the signer is a coordinator (who compacts and relays), or the workspace keeps
    /// no team log (a team without a server, whose trust is the key handed over in person).
    Any,
    /// The signer's own actor only.
    Only(Vec<u8>),
    /// The signer declared no actor (it joined before the log): any actor no other device of
    /// the team declared.
    NotOf(BTreeSet<Vec<u8>>),
}

impl Authorship {
    /// `Tampered` unless every actor in `actors` may author changes under this rule.
    pub(crate) fn check(&self, actors: &[automerge::ActorId]) -> Result<()> {
        let refused = actors.iter().any(|a| match self {
            Authorship::Any => false,
            Authorship::Only(own) => a.to_bytes() != own.as_slice(),
            Authorship::NotOf(others) => others.contains(a.to_bytes()),
        });
        match refused {
            true => Err(Error::Tampered(
                "it carries changes written as another device than the one that signed it".into(),
            )),
            false => Ok(()),
        }
    }

    /// The rule for changes signed by `signer` in `workspace`, as the verified log makes it.
    pub(crate) fn of(c: &Connection, workspace: &str, signer: &[u8; 32]) -> Result<Authorship> {
        let mut mine = None;
        let mut others = BTreeSet::new();
        let mut any_member = false;
        for m in team_log::members(c, workspace)? {
            any_member = true;
            if m.sign_key == signer.as_slice() {
                mine = Some((m.role, m.actor, m.active));
            } else if let Some(a) = m.actor {
                others.insert(a);
            }
        }
        Ok(match mine {
            None if !any_member => Authorship::Any,
            Some((role, _, true)) if role == proto::roles::COORDINATOR => Authorship::Any,
            Some((_, Some(actor), _)) => Authorship::Only(actor),
            _ => Authorship::NotOf(others),
        })
    }
}

/// Whether this device is a coordinator of the team log of `workspace`, not revoked.
pub(crate) fn is_coordinator(c: &Connection, workspace: &str) -> Result<bool> {
    let own = own_keys(c, workspace)?.sign_public();
    team_log::is_coordinator(c, workspace, &own)
}

/// The key epoch the verified log is at, if this device has verified one.
pub(crate) fn log_epoch(c: &Connection, workspace: &str) -> Result<Option<u32>> {
    team_log::epoch(c, workspace)
}

/// Re-seals queued changes sealed under an older epoch with the current key, so that nothing
/// sent after a rotation is readable with a key a revoked device holds; and restricted
/// records' changes queued before the team log named a restricted key, to that key.
pub(crate) fn reseal_outbox(tx: &Transaction<'_>, workspace: &str) -> Result<u64> {
    let Some((epoch, key)) = keys::current(tx, workspace)? else {
        return Ok(0);
    };
    let sealable_restricted = keys::restricted_public(tx, workspace, epoch)?.is_some();
    let mut n = 0;
    for row in outbox::resealable(tx, workspace, epoch)? {
        let outbox::Resealable {
            id,
            doc_id: doc,
            epoch: old_epoch,
            sealed,
            restricted,
            kind,
            plain,
            supersedes,
        } = row;
        let fresh = match (restricted, kind, plain) {
            (true, Some(kind), Some(plain)) => {
                let done = old_epoch == epoch && crypto::is_restricted_blob(&sealed);
                if done || !(sealable_restricted || old_epoch < epoch) {
                    continue;
                }
                let meta = crypto::ChunkMeta {
                    generation: outbox::generation(tx, &doc)?,
                    replaces: supersedes.is_some(),
                    covers: supersedes.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    ..kind.into()
                };
                outbox::seal(tx, workspace, &doc, meta, &plain, true, epoch, &key)?
            }
            _ if old_epoch < epoch => {
                let old_key = keys::at_epoch(tx, workspace, old_epoch)?.ok_or_else(|| {
                    Error::corrupt(format!("no key for queued epoch {old_epoch}"))
                })?;
                let doc_bytes = crypto::doc_id_bytes(&doc)?;
                let (meta, chunk) =
                    crypto::open_signed(&old_key, workspace, &doc_bytes, old_epoch, &sealed)?;
                outbox::seal(tx, workspace, &doc, meta, &chunk, false, epoch, &key)?
            }
            _ => continue,
        };
        outbox::reseal(tx, id, epoch, &fresh)?;
        n += 1;
    }
    Ok(n)
}

/// Drops the bytes of the oldest held blobs of `workspace` beyond [`HELD_BYTES_MAX`]; returns
/// how many were dropped (their rows stay, saying so).
pub(crate) fn enforce_held_budget(tx: &Transaction<'_>, workspace: &str) -> Result<u64> {
    let mut total = set_aside::held_bytes(tx, workspace)?;
    let mut dropped = 0u64;
    while total > HELD_BYTES_MAX {
        let Some((id, len)) = set_aside::oldest_held(tx, workspace)? else {
            break;
        };
        set_aside::drop_bytes(
            tx,
            id,
            " (dropped: more blobs were held than this device keeps)",
        )?;
        total -= len;
        dropped += 1;
    }
    if dropped > 0 {
        team_log::add_dropped(tx, workspace, dropped)?;
    }
    Ok(dropped)
}

impl Listed {
    /// What the device enrolled with, as the server lists it.
    fn identity(&self) -> crypto::Identity<'_> {
        crypto::Identity {
            sign_key: &self.sign,
            box_key: &self.boxk,
            name: &self.name,
            actor: self.actor.as_deref(),
        }
    }
}

/// The secret among `secrets` under which the listed device's join proof holds.
fn matching<'a>(secrets: &'a [Secret], d: &Listed) -> Option<&'a Secret> {
    let proof = d.proof.as_deref()?;
    secrets
        .iter()
        .find(|s| crypto::verify_join_proof(&s.secret, &d.identity(), proof))
}

/// The log's description of a listed device, with the role it is admitted with.
fn member_of(d: &Listed, role: &str) -> Member {
    Member {
        device_id: d.device_id.clone(),
        name: d.name.clone(),
        role: role.to_string(),
        sign_key: d.sign,
        box_key: d.boxk,
        actor: d.actor.clone(),
    }
}

/// Entries signed by this device and the team they make.
struct Signed {
    entries: Vec<SignedEntry>,
    state: TeamState,
}

/// Signs `bodies` in turn after `state` (or as a new log), filling in the restricted keys they
/// carry: a genesis or a rotation makes a new restricted key granted to every coordinator, a
/// device becoming a coordinator is granted every epoch's. Each entry is checked by the log's
/// own rules before the next is signed.
fn sign_bodies(
    c: &Connection,
    workspace: &str,
    own: &DeviceKeys,
    mut state: Option<TeamState>,
    bodies: Vec<Body>,
) -> Result<Signed> {
    let at = now_ms() / 1000;
    let me = own.sign_public();
    let bad = |err: waymark_protocol::team_log::LogError| Error::invalid("team", err.to_string());
    // Restricted secrets made in this very append, before they are stored.
    let mut fresh: HashMap<u32, zeroize::Zeroizing<[u8; 32]>> = HashMap::new();
    let mut entries = Vec::new();
    for mut body in bodies {
        match &mut body {
            Body::Genesis {
                epoch,
                coordinator,
                restricted,
                ..
            } => {
                let (secret, public) = crypto::new_restricted_pair();
                *restricted = Some(proto::team_log::Restricted {
                    public,
                    grants: vec![proto::team_log::Grant {
                        to: coordinator.sign_key,
                        epoch: *epoch,
                        sealed: crypto::grant_to(&coordinator.box_key, &secret)?,
                    }],
                });
                fresh.insert(*epoch, secret);
            }
            Body::Rotate { epoch, restricted } => {
                let s = state
                    .as_ref()
                    .ok_or_else(|| Error::invalid("team", "no log"))?;
                let (secret, public) = crypto::new_restricted_pair();
                let grants = s
                    .active()
                    .into_iter()
                    .filter(|m| m.role == proto::roles::COORDINATOR)
                    .map(|m| {
                        Ok(proto::team_log::Grant {
                            to: m.sign_key,
                            epoch: *epoch,
                            sealed: crypto::grant_to(&m.box_key, &secret)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                *restricted = Some(proto::team_log::Restricted { public, grants });
                fresh.insert(*epoch, secret);
            }
            Body::Admit { member, grants, .. } if member.role == proto::roles::COORDINATOR => {
                let s = state
                    .as_ref()
                    .ok_or_else(|| Error::invalid("team", "no log"))?;
                *grants = grants_for(c, workspace, s, &fresh, &member.sign_key, &member.box_key)?;
            }
            Body::Role {
                sign_key,
                role,
                grants,
            } if role == proto::roles::COORDINATOR => {
                let s = state
                    .as_ref()
                    .ok_or_else(|| Error::invalid("team", "no log"))?;
                let target = s
                    .member(sign_key)
                    .ok_or_else(|| Error::not_found("the device in the team"))?;
                let box_key = target.member.box_key;
                *grants = grants_for(c, workspace, s, &fresh, sign_key, &box_key)?;
            }
            _ => {}
        }
        let entry = match &state {
            None => Entry::first(me, at, body),
            Some(s) => Entry::next(s, me, at, body),
        };
        let e = crypto::sign_log_entry(own, &entry);
        match state.as_mut() {
            None => state = Some(TeamState::genesis(&e).map_err(bad)?),
            Some(s) => {
                s.apply(&e).map_err(bad)?;
            }
        }
        entries.push(e);
    }
    let state = state.ok_or_else(|| Error::invalid("team", "nothing to sign"))?;
    Ok(Signed { entries, state })
}

/// Every epoch's restricted key of `state`, sealed to a device becoming a coordinator.
fn grants_for(
    c: &Connection,
    workspace: &str,
    state: &TeamState,
    fresh: &HashMap<u32, zeroize::Zeroizing<[u8; 32]>>,
    to: &[u8; 32],
    box_key: &[u8; 32],
) -> Result<Vec<proto::team_log::Grant>> {
    state
        .restricted
        .keys()
        .map(|epoch| {
            let secret = match fresh.get(epoch) {
                Some(s) => s.clone(),
                None => keys::restricted_secret(c, workspace, *epoch)?.ok_or_else(|| {
                    Error::NotPermitted(format!(
                        "this device lacks the restricted key of epoch {epoch}, which a new \
                         coordinator must receive; another coordinator must do this"
                    ))
                })?,
            };
            Ok(proto::team_log::Grant {
                to: *to,
                epoch: *epoch,
                sealed: crypto::grant_to(box_key, &secret)?,
            })
        })
        .collect()
}

/// What a refresh must do after taking the server's team answer.
enum Next {
    /// Nothing: the log is kept; the epochs newly learnt.
    Done(Vec<u32>),
    /// The server has no log: a coordinator may start it.
    Start,
    /// The server lacks these entries of this device's log: send them back.
    Behind(Vec<SignedEntry>),
}

/// What an append carries besides its entries.
#[derive(Default)]
struct Extra {
    /// Invite secrets that the entries consume (single use).
    used_secrets: Vec<Vec<u8>>,
}

impl Store {
    /// Fetches the team log and the server's listing of devices, verifies the log against
    /// what this device knows, keeps it, and opens the workspace keys sealed to this device by
    /// a coordinator of the log. Returns the epochs newly learnt.
    ///
    /// Fails with `HostileServer` if the server's log contradicts what this device verified
    /// (the attack is recorded and shown by `team_status`), and with `DeviceRevoked` if the log
    /// revoked this device.
    pub(crate) fn refresh_team(&self, server: &Server, m: &Membership) -> Result<Vec<u32>> {
        // A server that answers "start it" or "you are ahead" and then the same again is
        // looked at a few times, not forever.
        let mut sent_back = false;
        for _ in 0..APPEND_ATTEMPTS {
            let ours = self.read(|c| LocalLog::load(c, &m.workspace))?;
            let mut from = ours.len().saturating_sub(1);
            let mut team = server.get::<proto::TeamResponse>(&team_path(from))?.body;
            if team.log_len < ours.len() && from > 0 {
                // Shorter than ours: see all of it to tell a rollback from a fork.
                from = 0;
                team = server.get::<proto::TeamResponse>(&team_path(from))?.body;
            }
            match self.take_team(m, &ours, from, &team)? {
                Next::Done(learnt) => return Ok(learnt),
                Next::Start => {
                    if !self.start_log(server, m, &team)? {
                        // A member of a team from before the log: it waits for a coordinator.
                        return Ok(Vec::new());
                    }
                }
                Next::Behind(missing) => {
                    if sent_back {
                        // It took the entries back and lost them again: not a restore.
                        return Err(self.report_attack(
                            &m.workspace,
                            AlertKind::Rollback,
                            "the server keeps hiding team log entries this device sent back to it",
                        ));
                    }
                    sent_back = true;
                    server.post::<_, proto::AppendResponse>(
                        Call::Device,
                        proto::PATH_TEAM_LOG,
                        &proto::AppendRequest {
                            entries: missing,
                            envelopes: Vec::new(),
                        },
                    )?;
                }
            }
        }
        Err(Error::Network(
            "the server's team log kept changing while this device read it; retry later".into(),
        ))
    }

    /// Takes a team answer whose log entries start at index `from` as a sync does (see
    /// [`Store::refresh_team`]), without asking the server anything more. Used by the fuzz
    /// targets, which hand it untrusted answers.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn apply_team(
        &self,
        m: &Membership,
        team: &proto::TeamResponse,
    ) -> Result<Vec<u32>> {
        let ours = self.read(|c| LocalLog::load(c, &m.workspace))?;
        let from = team.log_len.saturating_sub(team.log.len() as u64);
        match self.take_team(m, &ours, from, team)? {
            Next::Done(learnt) => Ok(learnt),
            Next::Start | Next::Behind(_) => Ok(Vec::new()),
        }
    }

    /// Reconciles a team answer with this device's log and keeps what it may (see
    /// [`Store::refresh_team`]); says what the server must be told next, if anything.
    fn take_team(
        &self,
        m: &Membership,
        ours: &LocalLog,
        from: u64,
        team: &proto::TeamResponse,
    ) -> Result<Next> {
        let anchor = self.read(|c| anchor(c, &m.workspace))?;
        let reconciled = log::reconcile(ours, from, &team.log, team.log_len, &anchor, &m.workspace)
            .map_err(|a| self.report_attack(&m.workspace, a.kind, &a.detail))?;
        match reconciled {
            Reconciled::Extended { new, state } => Ok(Next::Done(self.keep_listing(
                m,
                team,
                Some((&new, &state)),
            )?)),
            Reconciled::Empty => {
                if let Anchor::Entry(index, _) = anchor {
                    return Err(self.report_attack(
                        &m.workspace,
                        AlertKind::Withheld,
                        &format!(
                            "the server shows no team log, but this device's invite named its entry {index}"
                        ),
                    ));
                }
                self.keep_listing(m, team, None)?;
                Ok(Next::Start)
            }
            Reconciled::Behind { missing } => {
                self.with_writer(|w| {
                    log::record_alert(
                        w.conn(),
                        &m.workspace,
                        AlertKind::Rollback,
                        &format!(
                            "the server had {} of the {} team log entries this device verified; \
                             this device sent the {} missing back",
                            team.log_len,
                            ours.len(),
                            missing.len()
                        ),
                        false,
                    )
                })?;
                Ok(Next::Behind(missing))
            }
        }
    }

    /// Records an attack the server made and returns the error that stops the sync.
    fn report_attack(&self, workspace: &str, kind: AlertKind, detail: &str) -> Error {
        let recorded =
            self.with_writer(|w| log::record_alert(w.conn(), workspace, kind, detail, true));
        match recorded {
            Ok(()) => Error::HostileServer(detail.to_string()),
            Err(e) => e,
        }
    }

    /// Keeps the server's listing, the verified log (`verified`: new entries and the team they
    /// make) and the keys sealed to this device, in one transaction; re-seals queued changes
    /// if a newer key arrived. Returns the epochs learnt.
    fn keep_listing(
        &self,
        m: &Membership,
        team: &proto::TeamResponse,
        verified: Option<(&[SignedEntry], &TeamState)>,
    ) -> Result<Vec<u32>> {
        if let Some((_, state)) = verified
            && let Some(d) = team.devices.iter().find(|d| substituted(state, d))
        {
            return Err(self.report_attack(
                &m.workspace,
                AlertKind::Substituted,
                &format!(
                    "the server lists device {} with keys the team log does not name for it",
                    d.device_id
                ),
            ));
        }
        let learnt = self.with_writer(|w| {
            let mut forgotten = Vec::new();
            let tx = w.transaction()?;
            let ws = &m.workspace;
            store_listing(&tx, ws, team)?;
            memberships::set_team_version(
                &tx,
                ws,
                i64::try_from(team.version).unwrap_or(i64::MAX),
            )?;
            let mut learnt = Vec::new();
            if let Some((new, state)) = verified {
                let own = own_keys(&tx, ws)?;
                // As the log made it before these entries (not the enrolment's role).
                let was_coordinator = team_log::is_coordinator(&tx, ws, &own.sign_public())?;
                log::store_verified(&tx, ws, new, state, Some(&own))?;
                let coordinator = state.is_coordinator(&own.sign_public());
                if !coordinator {
                    // Not a coordinator (any more): keep no restricted record but its own.
                    for id in projection::restricted_of_others(&tx, ws, &self.actor())? {
                        crate::store::forget_document(&tx, &id)?;
                        forgotten.push(id);
                    }
                } else if !was_coordinator && !new.is_empty() {
                    // Just made a coordinator: restricted records it could not open went by;
                    // pull the workspace again to read them (what it has is skipped cheaply).
                    memberships::set_repull(&tx, ws)?;
                }
                let me = state.member(&own.sign_public());
                if me.is_some_and(|me| !me.active()) {
                    tx.commit()?;
                    return Err(Error::DeviceRevoked);
                }
                if let Some(me) = me {
                    memberships::set_role(&tx, ws, &me.member.role)?;
                }
                for env in &team.envelopes {
                    if env.device_id != m.device_id
                        || env.epoch > state.epoch
                        || keys::at_epoch(&tx, ws, env.epoch)?.is_some()
                    {
                        continue;
                    }
                    // Only a coordinator of the log may hand out keys: neither the server nor a
                    // revoked coordinator's phone can make the team adopt a key they know.
                    if !state.is_coordinator(&env.signer_key) {
                        continue;
                    }
                    // An envelope that fails to open is ignored: it cannot be used, and must
                    // not stop the sync; the next rotation or top-up replaces it.
                    if let Ok(key) = crypto::unwrap_key(&own, ws, env) {
                        keys::insert(&tx, ws, env.epoch, &key)?;
                        learnt.push(env.epoch);
                    }
                }
                // New keys, or a restricted key named at last: seal what waits accordingly.
                reseal_outbox(&tx, ws)?;
            }
            tx.commit()?;
            for id in &forgotten {
                Store::take_cached(w, id);
            }
            Ok(learnt)
        })?;
        Ok(learnt)
    }

    /// Starts the team log when the server has none: a coordinator's device that connected the
    /// workspace, or that learnt the team before the log existed, signs the genesis and admits
    /// every device it vouched for. Returns whether it appended.
    fn start_log(
        &self,
        server: &Server,
        m: &Membership,
        team: &proto::TeamResponse,
    ) -> Result<bool> {
        let my_actor = self.actor_id().to_bytes().to_vec();
        let plan = self.read(|c| {
            let (role, legacy) = memberships::role_and_legacy(c, &m.workspace)?;
            if role != proto::roles::COORDINATOR {
                return Ok(None);
            }
            let own = own_keys(c, &m.workspace)?;
            let me = team.devices.iter().find(|d| d.device_id == m.device_id);
            let Some(me) = me else { return Ok(None) };
            if me.sign_key != own.sign_public() {
                return Err(Error::HostileServer(
                    "the server lists this device with keys that are not its own".into(),
                ));
            }
            if keys::at_epoch(c, &m.workspace, team.epoch)?.is_none() {
                // A key this device does not hold: another coordinator must start the log.
                return Ok(None);
            }
            let genesis = Body::Genesis {
                workspace: m.workspace.clone(),
                epoch: team.epoch,
                coordinator: Member {
                    device_id: m.device_id.clone(),
                    name: me.name.clone(),
                    role: proto::roles::COORDINATOR.into(),
                    sign_key: own.sign_public(),
                    box_key: own.box_public(),
                    actor: Some(my_actor.clone()),
                },
                // Made when the entry is signed (`sign_bodies`).
                restricted: None,
            };
            let mut bodies = vec![genesis];
            if legacy {
                // Carried over: the devices this device vouched for before the log existed,
                // with the roles it knew them in (coordinators it learnt in person), and the
                // revocations the server recorded for them.
                let trusted = signers::trusted(c, &m.workspace)?;
                let accepted = signers::accepted(c, &m.workspace)?;
                for d in &team.devices {
                    if d.device_id == m.device_id || !accepted.contains(&d.sign_key) {
                        continue;
                    }
                    let role = match trusted.contains(&d.sign_key) {
                        true => proto::roles::COORDINATOR,
                        false => proto::roles::MEMBER,
                    };
                    bodies.push(Body::Admit {
                        member: Member {
                            device_id: d.device_id.clone(),
                            name: d.name.clone(),
                            role: role.into(),
                            sign_key: d.sign_key,
                            box_key: d.box_key,
                            actor: None,
                        },
                        vouch: Vouch::Migrated,
                        grants: Vec::new(),
                    });
                    if let Some(after_seq) = d.revoked_at_seq {
                        bodies.push(Body::Revoke {
                            sign_key: d.sign_key,
                            after_seq,
                        });
                    }
                }
            }
            Ok(Some(bodies))
        })?;
        let Some(bodies) = plan else {
            return Ok(false);
        };
        let signed = self.read(|c| {
            let own = own_keys(c, &m.workspace)?;
            sign_bodies(c, &m.workspace, &own, None, bodies)
        })?;
        let signed = signed.entries;
        let sent = server.try_post::<_, proto::AppendResponse>(
            Call::Device,
            proto::PATH_TEAM_LOG,
            &proto::AppendRequest {
                entries: signed,
                envelopes: Vec::new(),
            },
        )?;
        match sent {
            Ok(_) => Ok(true),
            // Another coordinator started it first: take theirs at the next refresh.
            Err(r) if r.code == proto::codes::TEAM_LOG_MOVED => Ok(true),
            Err(refusal) => Err(Error::Network(NetworkError::RefusedStep {
                step: "the start of the team log",
                refusal,
            })),
        }
    }

    /// As a coordinator of the log, does what the team needs from one: admits devices that
    /// joined with an invite this device handed over in person (their proof matches its
    /// unused, unexpired secret), records revocations the server knows of (the operator's, a
    /// wiped phone's), rotates the key after a revocation, and seals to every device of the
    /// log the keys it lacks, to the sealing key the log names. Returns whether it appended.
    pub(crate) fn coordinator_duties(&self, server: &Server, m: &Membership) -> Result<bool> {
        self.append_to_log(server, m, |c, state, _| {
            let secrets = invite_secrets::live(c, &m.workspace)?;
            let cursor = memberships::cursor(c, &m.workspace)?;
            let cursor = u64::try_from(cursor).unwrap_or(0);
            let mut bodies = Vec::new();
            let mut extra = Extra::default();
            let mut admitted = BTreeSet::new();
            for d in team_devices::listed(c, &m.workspace)? {
                match state.member(&d.sign) {
                    None if d.revoked_at_seq.is_none() => {
                        let Some(s) = matching(&secrets, &d).filter(|s| !s.approval) else {
                            continue;
                        };
                        if !admitted.insert(s.secret.clone()) {
                            continue;
                        }
                        bodies.push(Body::Admit {
                            member: member_of(&d, &s.role),
                            vouch: Vouch::Invite,
                            grants: Vec::new(),
                        });
                        extra.used_secrets.push(s.secret.clone());
                    }
                    Some(known) if known.active() => {
                        let Some(at) = d.revoked_at_seq else { continue };
                        // The boundary is the server's, but never beyond what this device has
                        // pulled: blobs the server numbers later cannot count as the device's.
                        bodies.push(Body::Revoke {
                            sign_key: d.sign,
                            after_seq: at.min(cursor),
                        });
                    }
                    _ => {}
                }
            }
            let revoking = bodies.iter().any(|b| matches!(b, Body::Revoke { .. }));
            if state.rotation_due || revoking {
                bodies.push(Body::Rotate {
                    epoch: state.epoch.saturating_add(1),
                    restricted: None,
                });
            }
            Ok(Some((bodies, extra)))
        })
    }

    /// Appends what `plan` makes of the team (entries to sign, and what they consume) with the
    /// envelopes the team then needs, retrying after another coordinator's append. `plan`
    /// returning `None` means nothing to do. Returns whether it appended.
    fn append_to_log(
        &self,
        server: &Server,
        m: &Membership,
        plan: impl Fn(&Connection, &TeamState, &DeviceKeys) -> Result<Option<(Vec<Body>, Extra)>>,
    ) -> Result<bool> {
        for _ in 0..APPEND_ATTEMPTS {
            let prepared = self.read(|c| {
                let ours = LocalLog::load(c, &m.workspace)?;
                let Some(state) = ours.state else {
                    return Ok(None);
                };
                let own = own_keys(c, &m.workspace)?;
                if !state.is_coordinator(&own.sign_public()) {
                    return Ok(None);
                }
                let Some((bodies, extra)) = plan(c, &state, &own)? else {
                    return Ok(None);
                };
                let Signed {
                    entries,
                    state: after,
                } = sign_bodies(c, &m.workspace, &own, Some(state.clone()), bodies)?;
                let rotated = (after.epoch != state.epoch).then(crypto::new_workspace_key);
                let envelopes = envelopes_for(
                    c,
                    m,
                    &own,
                    &after,
                    rotated.as_ref().map(|k| (after.epoch, k)),
                )?;
                if entries.is_empty() && envelopes.is_empty() {
                    return Ok(None);
                }
                Ok(Some((entries, envelopes, extra, after, rotated)))
            })?;
            let Some((entries, envelopes, extra, after, rotated)) = prepared else {
                return Ok(false);
            };
            let sent = server.try_post::<_, proto::AppendResponse>(
                Call::Device,
                proto::PATH_TEAM_LOG,
                &proto::AppendRequest {
                    entries: entries.clone(),
                    envelopes,
                },
            )?;
            match sent {
                Ok(_) => {
                    self.with_writer(|w| {
                        let tx = w.transaction()?;
                        if !entries.is_empty() {
                            let own = own_keys(&tx, &m.workspace)?;
                            log::store_verified(&tx, &m.workspace, &entries, &after, Some(&own))?;
                        }
                        if let Some(key) = &rotated {
                            keys::insert(&tx, &m.workspace, after.epoch, key)?;
                            reseal_outbox(&tx, &m.workspace)?;
                        }
                        for secret in &extra.used_secrets {
                            invite_secrets::consume(&tx, &m.workspace, secret)?;
                        }
                        tx.commit()?;
                        Ok(())
                    })?;
                    // The listing (which devices hold which epochs) changed.
                    self.refresh_team(server, m)?;
                    return Ok(true);
                }
                Err(r) if r.code == proto::codes::TEAM_LOG_MOVED => {
                    // Another coordinator appended first: look at the team again.
                    self.refresh_team(server, m)?;
                }
                Err(refusal) => {
                    return Err(Error::Network(NetworkError::RefusedStep {
                        step: "a team log append",
                        refusal,
                    }));
                }
            }
        }
        Err(Error::Network(
            "the team log kept changing under this device's append; it will be retried at the next sync"
                .into(),
        ))
    }

    /// Applies set-aside blobs that waited for a key or for their signer's admission, now that
    /// this device may have either.
    pub(crate) fn retry_held(
        &self,
        workspace: &str,
        report: &mut SyncReport,
        changed: &mut super::Changed,
    ) -> Result<()> {
        let held = self.read(|c| set_aside::held(c, workspace))?;
        let held = held
            .into_iter()
            .map(|h| {
                Ok(proto::PulledBlob {
                    seq: h.seq,
                    content_id: proto::content_id_of(&h.blob),
                    doc_id: crypto::doc_id_bytes(&h.doc_id)?,
                    epoch: h.epoch,
                    ciphertext: h.blob,
                    device_id: String::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if held.is_empty() {
            return Ok(());
        }
        let mut retried = SyncReport::default();
        self.apply_blobs(workspace, &held, false, &mut retried, changed)?;
        report.set_aside_dropped += retried.set_aside_dropped;
        Ok(())
    }

    /// Blobs this device holds that are sealed under an epoch beyond its verified log: proof
    /// that a teammate saw a rotation the server does not show this device.
    pub(crate) fn check_withheld_rotation(&self, workspace: &str) -> Result<()> {
        let beyond = self.read(|c| set_aside::epoch_beyond_log(c, workspace))?;
        match beyond {
            Some(epoch) => Err(self.report_attack(
                workspace,
                AlertKind::Withheld,
                &format!(
                    "teammates' changes are sealed under key epoch {epoch}, which the team log the \
                     server shows does not reach: the server hides the team's history"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Revokes a device of the team (a coordinator: any device; anyone: itself). Its access
    /// stops at once; a coordinator's device then records the revocation in the team log and
    /// rotates the workspace key in the same call, so that nothing written from now on can be
    /// read with the keys the revoked device holds.
    pub fn revoke_device(&self, workspace: &str, device_id: &str) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("device_id", device_id)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = self.server(&m.url, Some(m.token.clone()))?;
        if device_id != m.device_id {
            // Checked on this device's own log, before anything else: the token of a lost
            // phone must die at once, whatever the server then says.
            self.require_coordinator(workspace)?;
        }
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
        // Everything the device pushed before its token died is in the log now: pull it, so
        // that the boundary this device signs covers it.
        let mut report = SyncReport::default();
        let mut changed = super::Changed::default();
        self.pull(
            &server,
            &m,
            &super::SyncOptions::default(),
            &mut report,
            &mut changed,
        )?;
        self.coordinator_duties(&server, &m)?;
        Ok(())
    }

    /// Changes a device's role (a coordinator of the team log only): recorded in the log, so
    /// every device learns who may admit, revoke and hand out keys from the log itself.
    pub fn set_role(&self, workspace: &str, device_id: &str, role: &str) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("device_id", device_id)?;
        if !proto::roles::is_known(role) {
            return Err(Error::invalid("role", "must be coordinator or member"));
        }
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = self.server(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        let appended = self.append_to_log(&server, &m, |_, state, _| {
            let target = state
                .by_device_id(device_id)
                .filter(|t| t.active())
                .ok_or_else(|| Error::not_found(format!("device {device_id} in the team")))?;
            if target.member.role == role {
                return Ok(None);
            }
            let mut bodies = vec![Body::Role {
                sign_key: target.member.sign_key,
                role: role.to_string(),
                grants: Vec::new(),
            }];
            // A coordinator stepping down holds this epoch's restricted key: rotate at once.
            if target.member.role == proto::roles::COORDINATOR {
                bodies.push(Body::Rotate {
                    epoch: state.epoch.saturating_add(1),
                    restricted: None,
                });
            }
            Ok(Some((bodies, Extra::default())))
        })?;
        if !appended {
            self.require_coordinator(workspace)?;
        }
        Ok(())
    }

    fn require_coordinator(&self, workspace: &str) -> Result<()> {
        let ok = self.read(|c| {
            let own = own_keys(c, workspace)?;
            Ok(LocalLog::load(c, workspace)?
                .state
                .is_some_and(|s| s.is_coordinator(&own.sign_public())))
        })?;
        match ok {
            true => Ok(()),
            false => Err(Error::NotPermitted(
                "only a coordinator of the team log may do this".into(),
            )),
        }
    }

    /// The team of a connected workspace as this device last synced it: the devices the team
    /// log admits, then those the server lists that wait for admission.
    pub fn team(&self, workspace: &str) -> Result<Vec<TeamMember>> {
        validate::id("workspace_id", workspace)?;
        self.read(|c| {
            let me = memberships::device_id(c, workspace)?;
            let me = me.ok_or_else(|| Error::not_found(format!("membership of {workspace}")))?;
            // The admitted (from the log), then those the server lists that wait.
            let member = |d: team_devices::Shown, verified: bool| {
                (
                    TeamMember {
                        is_this_device: d.device_id == me,
                        device_id: d.device_id,
                        name: d.name,
                        role: d.role,
                        revoked: d.revoked,
                        verified,
                        last_sync_at: d.last_sync_at,
                    },
                    d.sign_key,
                )
            };
            let admitted: Vec<(TeamMember, Vec<u8>)> = team_log::admitted(c, workspace)?
                .into_iter()
                .map(|d| member(d, true))
                .collect();
            let keys: BTreeSet<Vec<u8>> = admitted.iter().map(|(_, k)| k.clone()).collect();
            let waiting = team_devices::all(c, workspace)?
                .into_iter()
                .map(|d| member(d, false));
            let out = admitted
                .into_iter()
                .chain(waiting.filter(|(_, k)| !keys.contains(k)))
                .map(|(m, _)| m)
                .collect();
            Ok(out)
        })
    }

    /// What this device knows of a workspace's team and of the server's behaviour: whether
    /// the team log is verified and admits this device, and the attacks it noticed.
    pub fn team_status(&self, workspace: &str) -> Result<TeamStatus> {
        validate::id("workspace_id", workspace)?;
        self.read(|c| {
            let own = own_keys(c, workspace)?;
            let team_log::State {
                log_len,
                epoch,
                rotation_due,
                attack,
                set_aside_dropped: dropped,
            } = team_log::state(c, workspace)?.unwrap_or_default();
            let me = team_log::admission(c, workspace, &own.sign_public())?
                .map(|a| (a.role, a.revoked_after_seq));
            let trust = match (&attack, log_len, &me) {
                (Some(reason), _, _) => TeamTrust::Attacked {
                    reason: reason.clone(),
                },
                (None, 0, _) => TeamTrust::AwaitingLog,
                (None, _, Some((_, None))) => TeamTrust::Verified,
                (None, _, _) => TeamTrust::AwaitingAdmission,
            };
            Ok(TeamStatus {
                workspace_id: workspace.to_string(),
                trust,
                log_length: u64::try_from(log_len).unwrap_or(0),
                epoch,
                role: me
                    .filter(|(_, revoked)| revoked.is_none())
                    .map(|(role, _)| role),
                rotation_due,
                alerts: log::alerts(c, workspace, 50)?,
                set_aside_dropped: u64::try_from(dropped).unwrap_or(0),
            })
        })
    }

    /// Devices the server lists that the team log does not admit yet (joined by an invite to
    /// approve, or invited by a member), fetched from the server.
    pub fn pending_joins(&self, workspace: &str) -> Result<Vec<PendingJoin>> {
        validate::id("workspace_id", workspace)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = self.server(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        self.read(|c| {
            let secrets = invite_secrets::live(c, workspace)?;
            let admitted = team_log::member_keys(c, workspace)?;
            let mut out = Vec::new();
            for d in team_devices::listed(c, workspace)? {
                if d.revoked_at_seq.is_some() || admitted.contains(&d.sign) {
                    continue;
                }
                out.push(PendingJoin {
                    verification_code: crypto::verification_code(workspace, &d.identity())?,
                    verified: matching(&secrets, &d).is_some(),
                    device_id: d.device_id,
                    name: d.name,
                });
            }
            Ok(out)
        })
    }

    /// Admits a device that joined with an invite this device made (to approve, or in
    /// person): signs its keys into the team log and seals every workspace key to it. Refused
    /// (`Tampered`) unless its join proof matches such an invite, unused and unexpired.
    pub fn approve_join(&self, workspace: &str, device_id: &str) -> Result<()> {
        self.admit(workspace, device_id, Vouch::Approved)
    }

    /// Admits a device after a person compared, on both devices, the verification code it
    /// shows (`verification_code`) with the one `pending_joins` lists for it: signs its keys
    /// into the team log as a member and seals every workspace key to it.
    pub fn confirm_device(&self, workspace: &str, device_id: &str) -> Result<()> {
        self.admit(workspace, device_id, Vouch::Confirmed)
    }

    fn admit(&self, workspace: &str, device_id: &str, vouch: Vouch) -> Result<()> {
        validate::id("workspace_id", workspace)?;
        validate::required_line("device_id", device_id)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = self.server(&m.url, Some(m.token.clone()))?;
        self.refresh_team(&server, &m)?;
        self.require_coordinator(workspace)?;
        self.append_to_log(&server, &m, |c, state, _| {
            let d = team_devices::listed(c, workspace)?
                .into_iter()
                .find(|d| d.device_id == device_id)
                .ok_or_else(|| Error::not_found(format!("device {device_id}")))?;
            if d.revoked_at_seq.is_some() {
                return Err(Error::invalid("device_id", "the device was revoked"));
            }
            if state.member(&d.sign).is_some() {
                return Ok(None);
            }
            let mut extra = Extra::default();
            let role = match vouch {
                Vouch::Confirmed => proto::roles::MEMBER.to_string(),
                _ => {
                    let secrets = invite_secrets::live(c, workspace)?;
                    let s = matching(&secrets, &d).ok_or_else(|| {
                        Error::Tampered(
                            "the device's join proof matches no unused invite of this device: do not approve it"
                                .into(),
                        )
                    })?;
                    extra.used_secrets.push(s.secret.clone());
                    s.role.clone()
                }
            };
            Ok(Some((
                vec![Body::Admit {
                    member: member_of(&d, &role),
                    vouch,
                    grants: Vec::new(),
                }],
                extra,
            )))
        })?;
        Ok(())
    }

    /// The verification code this device shows so that a coordinator can check, in person,
    /// that the server lists its real keys (`pending_joins`, `confirm_device`).
    pub fn verification_code(&self, workspace: &str) -> Result<String> {
        validate::id("workspace_id", workspace)?;
        // The actor this device enrolled with (none before actors were declared).
        let (keys, actor) = self.read(|c| {
            let actor = memberships::actor(c, workspace)?;
            Ok((own_keys(c, workspace)?, actor))
        })?;
        let (sign, boxk) = (keys.sign_public(), keys.box_public());
        crypto::verification_code(
            workspace,
            &crypto::Identity {
                sign_key: &sign,
                box_key: &boxk,
                name: "",
                actor: actor.as_deref(),
            },
        )
    }

    /// The membership of a connected workspace.
    pub(crate) fn membership(&self, workspace: &str) -> Result<Membership> {
        self.read(|c| {
            memberships::active_in(c, workspace)?
                .ok_or_else(|| Error::not_found(format!("a synced membership of {workspace}")))
        })
    }
}

impl crate::store::PendingRevocation {
    /// Tells the server that this device was wiped, so that it is revoked at once and a
    /// coordinator's device rotates the workspace key. Safe to repeat: a device already
    /// revoked counts as done.
    pub fn send(&self) -> Result<()> {
        // The URL was accepted when the membership was made, and the token it sends is the
        // one being revoked.
        let server = Server::new(&self.server_url, Some(self.device_token.to_string()), true)?;
        match server.post::<_, proto::RevokeResponse>(
            Call::Device,
            proto::PATH_REVOKE,
            &proto::RevokeRequest {
                device_id: self.device_id.clone(),
            },
        ) {
            // Revoked already, or unknown to the server: nothing left to revoke there.
            Ok(_) | Err(Error::DeviceRevoked | Error::DeviceUnknown) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether the server lists `d` with keys (or an id) other than the team log names for it.
fn substituted(state: &TeamState, d: &proto::TeamDevice) -> bool {
    let by_id = state.by_device_id(&d.device_id).is_some_and(|m| {
        m.member.sign_key != d.sign_key
            || m.member.box_key != d.box_key
            || (d.actor.is_some() && m.member.actor != d.actor)
    });
    let by_key = state
        .member(&d.sign_key)
        .is_some_and(|m| m.member.device_id != d.device_id || m.member.box_key != d.box_key);
    by_id || by_key
}

/// Extends this device's verified log of `workspace` with entries a bundle carried, inside the
/// import's transaction: entries that do not extend what this device verified refuse the
/// bundle (`Tampered`); entries it already has change nothing. A workspace this device does not
/// sync with a server keeps no log and ignores them.
pub(crate) fn extend_log(
    tx: &Transaction<'_>,
    workspace: &str,
    entries: &[SignedEntry],
) -> Result<()> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    if !crate::store::outbox::connected(tx, workspace)? {
        return Ok(());
    }
    let bad = |detail: &str| Error::Tampered(format!("the bundle's team log: {detail}"));
    let from = first.decode().map_err(|e| bad(&e.to_string()))?.index;
    let ours = LocalLog::load(tx, workspace)?;
    let end = from.saturating_add(entries.len() as u64);
    if end <= ours.len() {
        // Nothing new; what overlaps must still be what this device verified.
        for (i, e) in entries.iter().enumerate() {
            if ours.entries.get(from as usize + i) != Some(e) {
                return Err(bad("it contradicts the log this device verified"));
            }
        }
        return Ok(());
    }
    let anchor = anchor(tx, workspace)?;
    match log::reconcile(&ours, from, entries, end, &anchor, workspace) {
        Ok(Reconciled::Extended { new, state }) => {
            if !new.is_empty() {
                let own = own_keys(tx, workspace).ok();
                log::store_verified(tx, workspace, &new, &state, own.as_ref())?;
            }
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(attack) => Err(bad(&attack.detail)),
    }
}

/// The path of a team request that wants the log from entry `from` on.
fn team_path(from: u64) -> String {
    format!("{}?{}={from}", proto::PATH_TEAM, proto::QUERY_LOG_FROM)
}

/// Where this device's trust in the team log of `workspace` starts.
fn anchor(c: &Connection, workspace: &str) -> Result<Anchor> {
    let (idx, hash) = memberships::anchor(c, workspace)?;
    if let (Some(idx), Some(hash)) = (idx, hash)
        && let Ok(hash) = <[u8; 32]>::try_from(hash)
    {
        return Ok(Anchor::Entry(u64::try_from(idx).unwrap_or(0), hash));
    }
    let own = own_keys(c, workspace)?.sign_public();
    let mut keys: Vec<[u8; 32]> = signers::trusted(c, workspace)?.into_iter().collect();
    if !keys.contains(&own) {
        keys.push(own);
    }
    Ok(Anchor::Signers(keys))
}

/// Keeps the server's listing of devices (names, which epochs they hold envelopes for, join
/// proofs of those waiting): shown to people and used to find what to admit and top up, never
/// to decide whom to trust.
fn store_listing(tx: &Transaction<'_>, ws: &str, team: &proto::TeamResponse) -> Result<()> {
    team_devices::replace(tx, ws, &team.devices)?;
    memberships::set_listing_at(tx, ws, now_ms())?;
    Ok(())
}

/// Envelopes the team needs after an append that leaves it as `after`: the new key of a
/// rotation (`rotated`) for every device of the log, and every key this device holds that a
/// device of the log lacks (as the server lists what each holds), each sealed to the key the
/// log names for the device.
fn envelopes_for(
    c: &Connection,
    m: &Membership,
    own: &DeviceKeys,
    after: &TeamState,
    rotated: Option<(u32, &crypto::WorkspaceKey)>,
) -> Result<Vec<proto::KeyEnvelope>> {
    let held: HashMap<String, Vec<u32>> = team_devices::listed(c, &m.workspace)?
        .into_iter()
        .map(|d| (d.device_id, d.key_epochs))
        .collect();
    let mine = keys::up_to(c, &m.workspace, after.epoch)?;
    let mut out = Vec::new();
    for member in after.active() {
        if let Some((epoch, key)) = rotated {
            out.push(crypto::wrap_key(
                own,
                &m.workspace,
                &member.device_id,
                &member.box_key,
                epoch,
                key,
            )?);
        }
        if member.device_id == m.device_id {
            continue;
        }
        let has = held
            .get(&member.device_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (epoch, key) in &mine {
            if has.contains(epoch) {
                continue;
            }
            out.push(crypto::wrap_key(
                own,
                &m.workspace,
                &member.device_id,
                &member.box_key,
                *epoch,
                key,
            )?);
        }
    }
    Ok(out)
}
