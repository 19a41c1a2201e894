//! The team log on this device: the verified copy of the workspace's coordinator-signed log,
//! what it makes of the team (`team_members`, `team_state`), and how a server's answer is
//! reconciled with it.
//!
//! A device trusts the log, never the server's word: it keeps every entry it verified, and
//! takes from the server only entries that extend them under the log's rules
//! (`waymark_protocol::team_log`). Where the first entries come from decides everything, so the
//! log must reach an anchor shown in person: the entry hash an invite carries, or, for a
//! device that joined before the log existed (or with an invite that names none), a genesis
//! signed by a coordinator it learnt through its invite.
//!
//! What a server can do to the log, and what this device makes of it:
//! - show entries that do not extend what this device verified (a fork), are not signed by a
//!   coordinator of the team, or break a rule: refused, reported as an attack, and the sync of
//!   that workspace stops ([`Error::HostileServer`]) until the server shows the real log;
//! - show fewer entries than this device verified (a rollback, or a server restored from a
//!   backup): reported, and this device sends the missing entries back (they carry their
//!   coordinators' signatures, so the server can check them and cannot alter them);
//! - hide entries from a device that never saw them: undetectable by the log alone, but every
//!   blob sealed under an epoch the log does not reach betrays it (see `sync::team`).

use rusqlite::{Connection, Transaction};
use waymark_protocol::team_log::{Body, EntryHash, SignedEntry, TeamState};

use crate::crypto::{self, DeviceKeys};

use crate::error::{Corruption, Error, Result};
use crate::store::{self, keys, team_log};

/// What kind of misbehaviour of the server a device noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// The server showed team history that contradicts the history this device verified.
    Fork,
    /// The server showed less team history than this device verified (rolled back, or
    /// restored from a backup); this device sent the missing entries back.
    Rollback,
    /// An entry is not signed by a coordinator of the team, or breaks the log's rules.
    Forged,
    /// The server hides team history: the entry an invite named, or a rotation teammates'
    /// changes are sealed under, is missing from what it shows.
    Withheld,
    /// The log the server shows belongs to another team, or was started by a device this
    /// device never learnt in person.
    WrongTeam,
    /// The server lists, for a device of the team, keys other than those the team log names
    /// (a server that wants keys sealed to a key of its own).
    Substituted,
    /// The server's blob log no longer holds what this device synced (restored from a backup,
    /// or a new database): this device sent its records again and pulled from where the two
    /// logs still agree. Not an attack by itself; nothing was lost.
    Rewound,
}

impl AlertKind {
    /// A stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Fork => "fork",
            AlertKind::Rollback => "rollback",
            AlertKind::Forged => "forged",
            AlertKind::Withheld => "withheld",
            AlertKind::WrongTeam => "wrong_team",
            AlertKind::Substituted => "substituted",
            AlertKind::Rewound => "rewound",
        }
    }

    fn parse(s: &str) -> Option<AlertKind> {
        [
            AlertKind::Fork,
            AlertKind::Rollback,
            AlertKind::Forged,
            AlertKind::Withheld,
            AlertKind::WrongTeam,
            AlertKind::Substituted,
            AlertKind::Rewound,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Something this device noticed the server doing to the team's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamAlert {
    /// When it was noticed, ms since the Unix epoch (this device's clock).
    pub at_ms: i64,
    /// What kind of misbehaviour.
    pub kind: AlertKind,
    /// What exactly, for people (no record content, no key).
    pub detail: String,
}

/// A misbehaviour found while reconciling the server's log with this device's.
#[derive(Debug)]
pub(crate) struct Attack {
    pub kind: AlertKind,
    pub detail: String,
}

impl Attack {
    pub(crate) fn new(kind: AlertKind, detail: impl Into<String>) -> Attack {
        Attack {
            kind,
            detail: detail.into(),
        }
    }
}

/// Where this device's trust in the log starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The entry an invite named: the log must hold it, at that index.
    Entry(u64, EntryHash),
    /// A genesis signed by one of these keys (coordinators learnt in person).
    Signers(Vec<[u8; 32]>),
}

/// This device's verified copy of a workspace's team log.
pub(crate) struct LocalLog {
    /// Every verified entry, in order.
    pub entries: Vec<SignedEntry>,
    /// The team they make; `None` while no entry is verified.
    pub state: Option<TeamState>,
}

impl LocalLog {
    /// The log of `workspace` as stored. Its entries' signatures were verified when they were
    /// stored, and the store is authenticated (SQLCipher checks every page), so they are not
    /// checked again: a replay checks the chain and the rules only, a tenth of the cost.
    pub(crate) fn load(c: &Connection, workspace: &str) -> Result<LocalLog> {
        let entries = team_log::entries(c, workspace)?;
        let state = match entries.is_empty() {
            true => None,
            false => Some(TeamState::replay_stored(&entries).map_err(|e| {
                Error::Corrupt(Corruption::by("the stored team log does not verify", e))
            })?),
        };
        Ok(LocalLog { entries, state })
    }

    /// How many entries are verified.
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

/// What the server's log is, next to this device's.
pub(crate) enum Reconciled {
    /// Neither has a log yet.
    Empty,
    /// The server's log is this device's, possibly extended: the new entries (verified) and
    /// the team after them.
    Extended {
        new: Vec<SignedEntry>,
        state: TeamState,
    },
    /// The server's log is a strict prefix of this device's: the entries it lacks.
    Behind { missing: Vec<SignedEntry> },
}

/// Reconciles the server's log with `ours`. `from` is the index the server's `entries` start
/// at, `server_len` its length; `anchor` applies while this device has verified nothing yet;
/// `workspace` is the team the log must belong to.
pub(crate) fn reconcile(
    ours: &LocalLog,
    from: u64,
    entries: &[SignedEntry],
    server_len: u64,
    anchor: &Anchor,
    workspace: &str,
) -> std::result::Result<Reconciled, Attack> {
    let have = ours.len();
    if entries.len() as u64 != server_len.saturating_sub(from) {
        return Err(Attack::new(
            AlertKind::Withheld,
            format!(
                "the server says its team log has {server_len} entries but sent {} from entry {from}",
                entries.len()
            ),
        ));
    }
    if server_len < have {
        // Everything it shows must be ours; the rest it lost (or hides). The caller asks for
        // the whole log in this case.
        if from > 0 {
            return Err(Attack::new(
                AlertKind::Withheld,
                "the server's team log is shorter than this device's and was not sent whole",
            ));
        }
        for (i, e) in entries.iter().enumerate() {
            if ours.entries.get(i) != Some(e) {
                return Err(fork(i as u64));
            }
        }
        return Ok(Reconciled::Behind {
            missing: ours.entries[server_len as usize..].to_vec(),
        });
    }
    if server_len == 0 {
        return Ok(Reconciled::Empty);
    }
    let mut new = Vec::new();
    let (mut state, start) = match &ours.state {
        Some(state) => {
            // The server's entries start at our head (the last entry we verified) or earlier:
            // those must be ours exactly.
            if from > have {
                return Err(Attack::new(
                    AlertKind::Withheld,
                    format!(
                        "the server sent team log entries from {from}, past this device's {have}"
                    ),
                ));
            }
            let overlap = (have - from) as usize;
            for (i, e) in entries.iter().take(overlap).enumerate() {
                let index = from as usize + i;
                if ours.entries.get(index) != Some(e) {
                    return Err(fork(index as u64));
                }
            }
            (state.clone(), overlap)
        }
        None => {
            if from != 0 {
                return Err(Attack::new(
                    AlertKind::Withheld,
                    "the server did not send its team log from the start",
                ));
            }
            let first = &entries[0];
            let state = TeamState::genesis(first).map_err(|e| forged(&e))?;
            if state.workspace != workspace {
                return Err(Attack::new(
                    AlertKind::WrongTeam,
                    "the server's team log belongs to another workspace",
                ));
            }
            if let Anchor::Signers(keys) = anchor {
                let author = first.decode().map(|e| e.author).map_err(|e| forged(&e))?;
                if !keys.contains(&author) {
                    return Err(Attack::new(
                        AlertKind::WrongTeam,
                        "the team log was started by a device this device never learnt in person",
                    ));
                }
            }
            new.push(first.clone());
            (state, 1)
        }
    };
    for e in &entries[start.min(entries.len())..] {
        state.apply(e).map_err(|err| match err {
            waymark_protocol::team_log::LogError::Chain { found, .. } => fork(found),
            other => forged(&other),
        })?;
        new.push(e.clone());
    }
    if ours.state.is_none()
        && let Anchor::Entry(index, hash) = anchor
    {
        match usize::try_from(*index).ok().and_then(|i| new.get(i)) {
            Some(e) if e.hash() == *hash => {}
            Some(_) => {
                return Err(Attack::new(
                    AlertKind::Fork,
                    format!(
                        "the team log's entry {index} is not the one this device's invite named"
                    ),
                ));
            }
            None => {
                return Err(Attack::new(
                    AlertKind::Withheld,
                    format!(
                        "the server's team log lacks entry {index}, which this device's invite named"
                    ),
                ));
            }
        }
    }
    Ok(Reconciled::Extended { new, state })
}

fn fork(index: u64) -> Attack {
    Attack::new(
        AlertKind::Fork,
        format!("the server's team log entry {index} differs from the one this device verified"),
    )
}

fn forged(e: &waymark_protocol::team_log::LogError) -> Attack {
    Attack::new(AlertKind::Forged, e.to_string())
}

/// Stores newly verified entries and the team they make, inside `tx`, with the restricted keys
/// they grant to this device (`own`).
pub(crate) fn store_verified(
    tx: &Transaction<'_>,
    workspace: &str,
    new: &[SignedEntry],
    state: &TeamState,
    own: Option<&DeviceKeys>,
) -> Result<()> {
    for (epoch, public) in &state.restricted {
        keys::insert_restricted(tx, workspace, *epoch, public, None)?;
    }
    if let Some(own) = own {
        let me = own.sign_public();
        for e in new {
            let Ok(entry) = e.decode() else { continue };
            let grants = match entry.body {
                Body::Genesis {
                    restricted: Some(r),
                    ..
                }
                | Body::Rotate {
                    restricted: Some(r),
                    ..
                } => r.grants,
                Body::Admit { grants, .. } | Body::Role { grants, .. } => grants,
                _ => Vec::new(),
            };
            for g in grants.iter().filter(|g| g.to == me) {
                // A grant that does not open, or opens to another key than the log names, is
                // of no use: this device simply cannot read restricted records of that epoch.
                let Some(secret) = crypto::open_grant(own, &g.sealed) else {
                    continue;
                };
                let Some(public) = state.restricted.get(&g.epoch) else {
                    continue;
                };
                if crypto::restricted_public(&secret) == *public {
                    keys::insert_restricted(tx, workspace, g.epoch, public, Some(&secret))?;
                }
            }
        }
    }
    team_log::append(tx, workspace, state.len - new.len() as u64, new)?;
    team_log::set_team(tx, workspace, state)?;
    // Keys of epochs the log has not reached come from nowhere the team vouches for (an
    // invite can carry any epoch number): they must never seal anything.
    keys::drop_beyond(tx, workspace, state.epoch)?;
    Ok(())
}

/// Records an alert; with `blocking`, also as the workspace's unresolved attack (cleared when
/// the server next shows a log that verifies).
pub(crate) fn record_alert(
    conn: &Connection,
    workspace: &str,
    kind: AlertKind,
    detail: &str,
    blocking: bool,
) -> Result<()> {
    store::alerts::record(conn, workspace, kind.as_str(), detail)?;
    if blocking {
        team_log::set_attack(conn, workspace, &format!("{}: {detail}", kind.as_str()))?;
    }
    Ok(())
}

/// The alerts recorded for a workspace, newest first (at most `limit`).
pub(crate) fn alerts(c: &Connection, workspace: &str, limit: u32) -> Result<Vec<TeamAlert>> {
    Ok(store::alerts::newest(c, workspace, limit)?
        .into_iter()
        .filter_map(|a| {
            Some(TeamAlert {
                at_ms: a.at_ms,
                kind: AlertKind::parse(&a.kind)?,
                detail: a.detail,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use waymark_protocol::roles;
    use waymark_protocol::team_log::{Body, Entry, Grant, Member, Restricted, Vouch};

    use super::*;
    use crate::crypto::{self, DeviceKeys};

    const WS: &str = "0123456789abcdef0123456789abcdef";

    /// A device with its own key pairs.
    struct Dev {
        keys: DeviceKeys,
        id: String,
    }

    impl Dev {
        fn new(id: &str) -> Dev {
            Dev {
                keys: DeviceKeys::generate(),
                id: id.into(),
            }
        }

        fn pk(&self) -> [u8; 32] {
            self.keys.sign_public()
        }

        fn member(&self, role: &str) -> Member {
            Member {
                device_id: self.id.clone(),
                name: self.id.clone(),
                role: role.into(),
                sign_key: self.keys.sign_public(),
                box_key: self.keys.box_public(),
                actor: None,
            }
        }
    }

    /// A log started by `by` for `workspace`, then one admission per device of `admit`.
    fn log_of(workspace: &str, by: &Dev, admit: &[&Dev]) -> Vec<SignedEntry> {
        let genesis = crypto::sign_log_entry(
            &by.keys,
            &Entry::first(
                by.pk(),
                1,
                Body::Genesis {
                    workspace: workspace.into(),
                    epoch: 0,
                    coordinator: by.member(roles::COORDINATOR),
                    restricted: Some(Restricted {
                        public: [9; 32],
                        grants: vec![Grant {
                            to: by.pk(),
                            epoch: 0,
                            sealed: vec![1; 80],
                        }],
                    }),
                },
            ),
        );
        let mut log = vec![genesis];
        for d in admit {
            next(
                &mut log,
                by,
                Body::Admit {
                    member: d.member(roles::MEMBER),
                    vouch: Vouch::Invite,
                    grants: vec![],
                },
            );
        }
        log
    }

    /// A rotation to `epoch`, its restricted key granted (as far as the log can check) to the
    /// log's coordinators when `next` signs it.
    fn rotate(epoch: u32) -> Body {
        Body::Rotate {
            epoch,
            restricted: None,
        }
    }

    /// Appends to `log` an entry signed by `by`, following its head.
    fn next(log: &mut Vec<SignedEntry>, by: &Dev, mut body: Body) {
        let state = TeamState::replay(log).unwrap();
        if let Body::Rotate {
            epoch,
            restricted: restricted @ None,
        } = &mut body
        {
            *restricted = Some(Restricted {
                public: [10; 32],
                grants: state
                    .active()
                    .into_iter()
                    .filter(|m| m.role == roles::COORDINATOR)
                    .map(|m| Grant {
                        to: m.sign_key,
                        epoch: *epoch,
                        sealed: vec![1; 80],
                    })
                    .collect(),
            });
        }
        log.push(crypto::sign_log_entry(
            &by.keys,
            &Entry::next(&state, by.pk(), 2, body),
        ));
    }

    /// This device's copy: the first `n` entries of `log`.
    fn ours(log: &[SignedEntry], n: usize) -> LocalLog {
        let entries = log[..n].to_vec();
        let state = (n > 0).then(|| TeamState::replay(&entries).unwrap());
        LocalLog { entries, state }
    }

    /// What the server answers to `?log_from=from`: its whole length, the entries from there.
    fn answer(
        ours: &LocalLog,
        server: &[SignedEntry],
        from: usize,
        anchor: &Anchor,
    ) -> std::result::Result<Reconciled, Attack> {
        reconcile(
            ours,
            from as u64,
            &server[from.min(server.len())..],
            server.len() as u64,
            anchor,
            WS,
        )
    }

    fn refused(r: std::result::Result<Reconciled, Attack>) -> AlertKind {
        match r {
            Err(a) => a.kind,
            Ok(_) => panic!("the server's log was accepted"),
        }
    }

    fn extended(r: std::result::Result<Reconciled, Attack>) -> (Vec<SignedEntry>, TeamState) {
        match r {
            Ok(Reconciled::Extended { new, state }) => (new, state),
            Ok(_) => panic!("not an extension"),
            Err(a) => panic!("refused as {:?}: {}", a.kind, a.detail),
        }
    }

    #[test]
    fn a_newcomer_trusts_the_log_only_if_it_holds_the_entry_its_invite_named() {
        let (c, ana, ben) = (Dev::new("c"), Dev::new("ana"), Dev::new("ben"));
        let server = log_of(WS, &c, &[&ana, &ben]);
        let none = ours(&server, 0);
        // The invite was made when Ana's admission was the head.
        let anchor = Anchor::Entry(1, server[1].hash());
        let (new, state) = extended(answer(&none, &server, 0, &anchor));
        assert_eq!(new, server);
        assert_eq!(state.len, 3);
        assert!(state.is_coordinator(&c.pk()));
        assert!(state.member(&ben.pk()).is_some_and(|m| m.active()));

        // Another entry at that index: the server shows another history than the invite's.
        let other = log_of(WS, &c, &[&ben, &ana]);
        assert_eq!(refused(answer(&none, &other, 0, &anchor)), AlertKind::Fork);
        // The log stops before it: the server hides the entry the invite named.
        let shorter = &server[..1];
        assert_eq!(
            refused(answer(&none, shorter, 0, &anchor)),
            AlertKind::Withheld
        );
        // A log that verifies but was started by someone else (the server's own coordinator):
        // its entry 1 is not the one the invite named.
        let planted = log_of(WS, &Dev::new("x"), &[&ana]);
        assert_eq!(
            refused(answer(&none, &planted, 0, &anchor)),
            AlertKind::Fork
        );
    }

    #[test]
    fn a_device_without_an_invite_hash_trusts_a_genesis_only_from_a_coordinator_it_met() {
        let (c, ana) = (Dev::new("c"), Dev::new("ana"));
        let server = log_of(WS, &c, &[&ana]);
        let none = ours(&server, 0);
        let (new, _) = extended(answer(&none, &server, 0, &Anchor::Signers(vec![c.pk()])));
        assert_eq!(new.len(), 2);
        // Started by a coordinator this device never learnt in person.
        let stranger = Dev::new("x");
        let planted = log_of(WS, &stranger, &[&ana]);
        assert_eq!(
            refused(answer(&none, &planted, 0, &Anchor::Signers(vec![c.pk()]))),
            AlertKind::WrongTeam
        );
        // Nothing from the start: a device with nothing verified needs the genesis.
        assert_eq!(
            refused(answer(&none, &server, 1, &Anchor::Signers(vec![c.pk()]))),
            AlertKind::Withheld
        );
    }

    #[test]
    fn a_log_that_extends_this_devices_is_taken_from_its_head() {
        let (c, ana, ben) = (Dev::new("c"), Dev::new("ana"), Dev::new("ben"));
        let mut server = log_of(WS, &c, &[&ana]);
        let mine = ours(&server, 2);
        next(
            &mut server,
            &c,
            Body::Admit {
                member: ben.member(roles::MEMBER),
                vouch: Vouch::Confirmed,
                grants: vec![],
            },
        );
        next(
            &mut server,
            &c,
            Body::Revoke {
                sign_key: ana.pk(),
                after_seq: 7,
            },
        );
        next(&mut server, &c, rotate(1));
        // The anchor no longer matters once something is verified.
        let anchor = Anchor::Signers(Vec::new());
        let (new, state) = extended(answer(&mine, &server, 1, &anchor));
        assert_eq!(new, server[2..].to_vec(), "only what this device lacked");
        assert_eq!((state.len, state.epoch, state.rotation_due), (5, 1, false));
        assert_eq!(state.member(&ana.pk()).unwrap().revoked_after_seq, Some(7));
        // The same log, nothing new: an extension by nothing.
        let (new, state) = extended(answer(&ours(&server, 5), &server, 4, &anchor));
        assert!(new.is_empty());
        assert_eq!(state.len, 5);
        // No log on either side.
        assert!(matches!(
            answer(&ours(&server, 0), &[], 0, &anchor),
            Ok(Reconciled::Empty)
        ));
    }

    #[test]
    fn a_log_that_contradicts_this_devices_is_a_fork() {
        let (c, ana, ben) = (Dev::new("c"), Dev::new("ana"), Dev::new("ben"));
        let mine_log = log_of(WS, &c, &[&ana]);
        let mine = ours(&mine_log, 2);
        let anchor = Anchor::Signers(vec![c.pk()]);
        // Same length, another entry 1, signed by the real coordinator (a second branch).
        let branch = log_of(WS, &c, &[&ben]);
        for from in [0, 1] {
            assert_eq!(
                refused(answer(&mine, &branch, from, &anchor)),
                AlertKind::Fork,
                "from {from}"
            );
        }
        // A longer branch: entry 1 differs where the logs overlap.
        let mut longer = branch.clone();
        next(&mut longer, &c, rotate(1));
        assert_eq!(refused(answer(&mine, &longer, 1, &anchor)), AlertKind::Fork);
        // New entries that do not follow this device's head (sent from the head on).
        let mut after_branch = branch;
        next(&mut after_branch, &c, rotate(1));
        let mut stitched = mine_log.clone();
        stitched.push(after_branch[2].clone());
        assert_eq!(
            refused(answer(&mine, &stitched, 1, &anchor)),
            AlertKind::Fork
        );
        // A shorter log that is not a prefix of this device's.
        let other_genesis = log_of(WS, &Dev::new("c2"), &[]);
        assert_eq!(
            refused(answer(&mine, &other_genesis, 0, &anchor)),
            AlertKind::Fork
        );
    }

    #[test]
    fn a_rolled_back_log_gives_the_entries_the_server_lacks() {
        let (c, ana, ben) = (Dev::new("c"), Dev::new("ana"), Dev::new("ben"));
        let log = log_of(WS, &c, &[&ana, &ben]);
        let mine = ours(&log, 3);
        let anchor = Anchor::Signers(vec![c.pk()]);
        for kept in [1, 2] {
            match answer(&mine, &log[..kept], 0, &anchor) {
                Ok(Reconciled::Behind { missing }) => {
                    assert_eq!(missing, log[kept..].to_vec(), "kept {kept}");
                }
                _ => panic!("a strict prefix is a rollback, not an attack"),
            }
        }
        // Shorter, and not sent whole: this device cannot tell a rollback from a fork.
        assert_eq!(
            refused(answer(&mine, &log[..2], 1, &anchor)),
            AlertKind::Withheld
        );
    }

    #[test]
    fn an_answer_with_fewer_entries_than_it_claims_is_withheld_history() {
        let (c, ana, ben) = (Dev::new("c"), Dev::new("ana"), Dev::new("ben"));
        let log = log_of(WS, &c, &[&ana, &ben]);
        let anchor = Anchor::Signers(vec![c.pk()]);
        // It says 3 entries and sends 2.
        for mine in [ours(&log, 0), ours(&log, 1)] {
            let r = reconcile(&mine, 0, &log[..2], 3, &anchor, WS);
            assert_eq!(refused(r), AlertKind::Withheld);
        }
        // Entries from past this device's head: what lies between is hidden.
        let mine = ours(&log, 1);
        let r = reconcile(&mine, 2, &log[2..], 3, &anchor, WS);
        assert_eq!(refused(r), AlertKind::Withheld);
    }

    #[test]
    fn a_log_of_another_workspace_is_another_team() {
        let (c, ana) = (Dev::new("c"), Dev::new("ana"));
        let elsewhere = log_of("fedcba9876543210fedcba9876543210", &c, &[&ana]);
        for anchor in [
            Anchor::Signers(vec![c.pk()]),
            Anchor::Entry(1, elsewhere[1].hash()),
        ] {
            assert_eq!(
                refused(answer(&ours(&elsewhere, 0), &elsewhere, 0, &anchor)),
                AlertKind::WrongTeam
            );
        }
    }

    #[test]
    fn entries_not_signed_by_a_coordinator_of_the_log_are_forged() {
        let (c, ana, ben) = (Dev::new("c"), Dev::new("ana"), Dev::new("ben"));
        let log = log_of(WS, &c, &[&ana]);
        let mine = ours(&log, 2);
        let anchor = Anchor::Signers(vec![c.pk()]);
        // A signature that does not verify, on a new entry and on a genesis.
        let mut bad = log.clone();
        next(
            &mut bad,
            &c,
            Body::Admit {
                member: ben.member(roles::MEMBER),
                vouch: Vouch::Invite,
                grants: vec![],
            },
        );
        bad[2].signature[0] ^= 1;
        assert_eq!(refused(answer(&mine, &bad, 1, &anchor)), AlertKind::Forged);
        let mut bad_genesis = log.clone();
        bad_genesis[0].signature[5] ^= 1;
        assert_eq!(
            refused(answer(&ours(&log, 0), &bad_genesis, 0, &anchor)),
            AlertKind::Forged
        );
        // A member (whose signature is genuine) admitting a device of its own.
        let mut by_member = log.clone();
        next(
            &mut by_member,
            &ana,
            Body::Admit {
                member: ben.member(roles::COORDINATOR),
                vouch: Vouch::Invite,
                grants: vec![],
            },
        );
        assert_eq!(
            refused(answer(&mine, &by_member, 1, &anchor)),
            AlertKind::Forged
        );
        // A coordinator breaking a rule: an epoch nobody can have rotated to.
        let mut jump = log.clone();
        next(&mut jump, &c, rotate(9));
        assert_eq!(refused(answer(&mine, &jump, 1, &anchor)), AlertKind::Forged);
    }
}
