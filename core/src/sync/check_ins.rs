//! Staff safety check-ins: a worker going on a risky visit says when they expect to be back;
//! the server watches the deadline and raises the alarm past it, and a close with the duress
//! PIN raises it too while looking, on the worker's own phone, like any safe close.
//!
//! What the server learns: the device, an opaque id, the deadline and the state (open, closed,
//! alarm). The details (where, with whom, a note) and the state are sealed under the workspace
//! key and signed by the worker's device, so a teammate's device trusts the server for neither:
//! a close the server claims without the worker's signature is not believed, an older sealed
//! state never replaces a newer one, and a teammate's device shows a check-in overdue by its own
//! clock once the signed expected time and the grace period have passed, even if the server
//! never says so. A server can still keep a check-in from teammates who never saw it.
//!
//! A check-in is saved on the phone first and sent at once; one the server could not be told
//! of is sent at every sync until it is (`CheckIn::watched` says whether the server has it).
//! A phone that cannot reach the server to close a check-in causes a false alarm, never a
//! missed one.

use rusqlite::{Connection, Transaction};
use serde::{Deserialize, Serialize};
use waymark_protocol as proto;
use waymark_protocol::check_in_states as states;

use super::http::{Call, Server};
use super::{Changed, Membership, team};
use crate::crypto;
use crate::error::{Error, Result, StorageError};
use crate::ids::new_id;
use crate::store::check_ins::{self, Row};
use crate::store::{Store, keys, memberships, now_ms, team_lookups};
use crate::validate;

/// Longest a check-in may run: 30 days.
const MAX_DURATION_MS: i64 = proto::limits::MAX_CHECK_IN_DUE_SECS as i64 * 1000;
/// Longest note of a check-in, in bytes (the sealed state must fit the server's limit).
const MAX_NOTE_BYTES: usize = 4_000;
/// How long closed check-ins stay listed (and kept on this device): a day.
const KEEP_CLOSED_MS: i64 = 24 * 3600 * 1000;
/// A teammate's check-in the server stopped listing without this device seeing it closed is
/// dropped this long after its expected time.
const KEEP_UNLISTED_MS: i64 = 24 * 3600 * 1000;
/// Longest grace period this device accepts from a server before it shows a teammate's
/// check-in overdue by its own clock (a server cannot delay that by more).
const MAX_GRACE_SECS: u64 = 3600;

/// What a check-in is for: where the worker is going, with whom, anything else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckInDetails {
    /// Where ("Karaoke bar on 5th street, back room").
    pub place: String,
    /// With whom (a colleague, a contact).
    pub with_whom: String,
    /// Anything else the team should know to find the worker.
    pub note: String,
}

/// Where a check-in stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInState {
    /// Running: the worker is expected back by `expected_back`.
    Open,
    /// Past its expected time and the grace period without a close: look for the worker.
    Overdue,
    /// Closed with the duress PIN (shown to teammates only; the worker's own phone shows it
    /// closed): the worker is in danger.
    Alarm,
    /// Closed: the worker is safe.
    Closed,
}

impl CheckInState {
    /// A stable name: open, overdue, alarm or closed.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckInState::Open => states::OPEN,
            CheckInState::Overdue => states::OVERDUE,
            CheckInState::Alarm => states::ALARM,
            CheckInState::Closed => states::CLOSED,
        }
    }
}

/// A safety check-in of this device or of a teammate's.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckIn {
    /// Its id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The device of the worker who started it.
    pub device_id: String,
    /// That device's name, as the team log admits it (empty if unknown).
    pub device_name: String,
    /// Whether this device started it.
    pub own: bool,
    /// When it started, ms since 1970.
    pub started_at: i64,
    /// When the worker expects to be back, ms since 1970.
    pub expected_back: i64,
    /// When it was closed, ms since 1970.
    pub closed_at: Option<i64>,
    /// Where it stands now.
    pub state: CheckInState,
    /// What it is for.
    pub details: CheckInDetails,
    /// Whether the server has its latest update (for one's own: whether the deadline is
    /// watched; false while the phone has no signal).
    pub watched: bool,
}

/// What a device seals for its teammates with every update: the whole state.
#[derive(Serialize, Deserialize)]
struct Sealed {
    version: u64,
    state: String,
    started_at: i64,
    expected_back: i64,
    closed_at: Option<i64>,
    place: String,
    with_whom: String,
    note: String,
}

impl Row {
    /// Where it stands at `now` (ms), with the server's grace period.
    fn state(&self, now: i64, grace_secs: u64) -> CheckInState {
        let signed = self.state.as_str();
        let server = self.server_state.as_deref();
        if !self.own && (signed == states::ALARM || server == Some(states::ALARM)) {
            return CheckInState::Alarm;
        }
        if signed == states::CLOSED || signed == states::ALARM {
            return CheckInState::Closed;
        }
        let grace_ms = i64::try_from(grace_secs.min(MAX_GRACE_SECS) * 1000).unwrap_or(0);
        if server == Some(states::OVERDUE) || now >= self.expected_back.saturating_add(grace_ms) {
            return CheckInState::Overdue;
        }
        CheckInState::Open
    }

    fn public(self, now: i64, grace_secs: u64, device_name: String) -> CheckIn {
        CheckIn {
            state: self.state(now, grace_secs),
            watched: !self.own || self.sent_version >= self.version,
            id: self.id,
            workspace_id: self.workspace,
            device_id: self.device_id,
            device_name,
            own: self.own,
            started_at: self.started_at,
            expected_back: self.expected_back,
            closed_at: self.closed_at,
            details: CheckInDetails {
                place: self.place,
                with_whom: self.with_whom,
                note: self.note,
            },
        }
    }
}

fn grace(c: &Connection, workspace: &str) -> Result<u64> {
    let g = memberships::check_ins_grace(c, workspace)?.unwrap_or(600);
    Ok(u64::try_from(g).unwrap_or(0))
}

fn check_expected_back(expected_back: i64, now: i64) -> Result<()> {
    validate::time("expected_back", expected_back)?;
    if expected_back <= now {
        return Err(Error::invalid("expected_back", "must be in the future"));
    }
    if expected_back - now > MAX_DURATION_MS {
        return Err(Error::invalid(
            "expected_back",
            "must be at most 30 days from now",
        ));
    }
    Ok(())
}

impl Store {
    /// Starts a safety check-in before a visit: saved here at once, then sent to the server,
    /// which raises the alarm if it is not closed by `expected_back` (ms since 1970) plus the
    /// server's grace period. Returns it; `watched` is false if the server could not be told
    /// yet (no signal): the next sync tells it.
    pub fn start_check_in(
        &self,
        workspace: &str,
        expected_back: i64,
        details: &CheckInDetails,
    ) -> Result<CheckIn> {
        validate::id("workspace_id", workspace)?;
        let now = now_ms();
        check_expected_back(expected_back, now)?;
        validate::line("place", &details.place)?;
        validate::line("with_whom", &details.with_whom)?;
        validate::notes("note", &details.note)?;
        if details.note.len() > MAX_NOTE_BYTES {
            return Err(Error::invalid(
                "note",
                format!("longer than {MAX_NOTE_BYTES} bytes"),
            ));
        }
        let m = self.membership(workspace)?;
        let id = new_id();
        self.with_writer(|w| {
            check_ins::insert_own(
                w.conn(),
                &check_ins::NewOwn {
                    id: &id,
                    workspace,
                    device_id: &m.device_id,
                    state: states::OPEN,
                    started_at: now,
                    expected_back,
                    place: &details.place,
                    with_whom: &details.with_whom,
                    note: &details.note,
                },
            )
        })?;
        self.send_now(&m, &id)
    }

    /// Moves the expected time of one of this device's open check-ins (ms since 1970).
    pub fn extend_check_in(&self, check_in_id: &str, expected_back: i64) -> Result<CheckIn> {
        validate::id("check_in_id", check_in_id)?;
        check_expected_back(expected_back, now_ms())?;
        let workspace = self.with_writer(|w| {
            let r = own_open(w.conn(), check_in_id)?;
            check_ins::extend(w.conn(), check_in_id, expected_back, now_ms())?;
            Ok(r.workspace)
        })?;
        let m = self.membership(&workspace)?;
        self.send_now(&m, check_in_id)
    }

    /// Closes one of this device's check-ins: the worker is back. With the duress PIN (see
    /// [`Store::set_duress_pin`]) it raises the alarm instead, while this device shows it closed
    /// like any other close. Closing a closed check-in changes nothing.
    pub fn close_check_in(&self, check_in_id: &str, pin: Option<&str>) -> Result<CheckIn> {
        validate::id("check_in_id", check_in_id)?;
        let duress = match pin {
            Some(pin) => self.is_duress_pin(pin)?,
            None => false,
        };
        let workspace = self.with_writer(|w| {
            let r = check_ins::load(w.conn(), check_in_id)?
                .filter(|r| r.own)
                .ok_or_else(|| Error::not_found(format!("check-in {check_in_id}")))?;
            if r.state == states::OPEN {
                // The row says closed either way; only what is sent says alarm, and it is
                // cleared once the server has it.
                check_ins::close(
                    w.conn(),
                    check_in_id,
                    states::CLOSED,
                    duress.then_some(states::ALARM),
                    now_ms(),
                )?;
            }
            Ok(r.workspace)
        })?;
        let m = self.membership(&workspace)?;
        self.send_now(&m, check_in_id)
    }

    /// Sets the duress PIN that [`Store::close_check_in`] turns into an alarm (`None` removes
    /// it). Kept as an Argon2id hash, never as the PIN.
    pub fn set_duress_pin(&self, pin: Option<&str>) -> Result<()> {
        let value = match pin {
            Some(pin) => {
                if pin.chars().count() < 4 || pin.len() > 64 {
                    return Err(Error::invalid("pin", "must be 4 to 64 characters"));
                }
                let salt: [u8; 16] = rand::random();
                let hash = crypto::pin_hash(pin, &salt)?;
                Some(format!("{}:{}", hex::encode(salt), hex::encode(hash)))
            }
            None => None,
        };
        self.with_writer(|w| check_ins::set_duress_pin(w.conn(), value.as_deref()))
    }

    fn is_duress_pin(&self, pin: &str) -> Result<bool> {
        let stored = self.read(check_ins::duress_pin)?;
        let Some((salt, hash)) = stored.as_deref().and_then(|s| s.split_once(':')) else {
            return Ok(false);
        };
        let mut salt_bytes = [0u8; 16];
        hex::decode_to_slice(salt, &mut salt_bytes)
            .map_err(|_| Error::Corrupt("the stored duress PIN is damaged".into()))?;
        Ok(hex::encode(crypto::pin_hash(pin, &salt_bytes)?) == hash)
    }

    /// The check-ins of a workspace this device knows: its own, and its teammates' open,
    /// overdue or raised ones and those closed in the last day, the most urgent first.
    pub fn check_ins(&self, workspace: &str) -> Result<Vec<CheckIn>> {
        validate::id("workspace_id", workspace)?;
        let now = now_ms();
        self.read(|c| {
            let grace = grace(c, workspace)?;
            let rows = check_ins::listed(c, workspace, now - KEEP_CLOSED_MS)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let name = team_lookups::device_name(c, workspace, &r.device_id)?;
                out.push(r.public(now, grace, name));
            }
            out.sort_by_key(|ci| {
                let urgency = match ci.state {
                    CheckInState::Alarm => 0,
                    CheckInState::Overdue => 1,
                    CheckInState::Open => 2,
                    CheckInState::Closed => 3,
                };
                (urgency, ci.expected_back)
            });
            Ok(out)
        })
    }

    /// Sends one check-in's update now; a network failure leaves it for the next sync.
    fn send_now(&self, m: &Membership, id: &str) -> Result<CheckIn> {
        let server = self.server(&m.url, Some(m.token.clone()))?;
        match self.send_check_in(&server, m, id) {
            Ok(()) | Err(Error::Network(_)) => {}
            Err(e) => return Err(e),
        }
        let now = now_ms();
        self.read(|c| {
            let r = check_ins::load(c, id)?
                .ok_or_else(|| Error::not_found(format!("check-in {id}")))?;
            let grace = grace(c, &r.workspace)?;
            let name = team_lookups::device_name(c, &r.workspace, &r.device_id)?;
            Ok(r.public(now, grace, name))
        })
    }

    /// Sends the latest update of one of this device's check-ins, unless the server has it.
    fn send_check_in(&self, server: &Server, m: &Membership, id: &str) -> Result<()> {
        let request = self.read(|c| {
            let Some(r) = check_ins::load(c, id)? else {
                return Ok(None);
            };
            if !r.own || r.sent_version >= r.version {
                return Ok(None);
            }
            let (epoch, key) = keys::current(c, &m.workspace)?
                .ok_or_else(|| Error::not_found(format!("the key of {}", m.workspace)))?;
            let signer = team::own_keys(c, &m.workspace)?;
            let state = r.send_state.clone().unwrap_or_else(|| r.state.clone());
            let version = u64::try_from(r.version).unwrap_or(0);
            let sealed = Sealed {
                version,
                state: state.clone(),
                started_at: r.started_at,
                expected_back: r.expected_back,
                closed_at: r.closed_at,
                place: r.place,
                with_whom: r.with_whom,
                note: r.note,
            };
            let mut plain = zeroize::Zeroizing::new(Vec::new());
            ciborium::into_writer(&sealed, &mut *plain).map_err(|source| StorageError::Encode {
                what: "encoding",
                source,
            })?;
            let doc = crypto::doc_id_bytes(id)?;
            let due_ms = (r.expected_back - now_ms()).max(0);
            Ok(Some(proto::CheckInRequest {
                id: doc,
                due_in_secs: u64::try_from((due_ms + 999) / 1000).unwrap_or(0),
                state,
                version,
                epoch,
                sealed: crypto::seal_check_in(&key, &signer, &m.workspace, &doc, epoch, &plain)?,
            }))
        })?;
        let Some(request) = request else {
            return Ok(());
        };
        let version = i64::try_from(request.version).unwrap_or(i64::MAX);
        server.post::<_, proto::CheckInResponse>(Call::Device, proto::PATH_CHECK_INS, &request)?;
        self.with_writer(|w| {
            // Once the server has a duress close, nothing on this phone says it was one: not
            // the row, nor an earlier copy of its page in the write-ahead log.
            let cleared = check_ins::mark_sent(w.conn(), id, version)?;
            if cleared {
                crate::store::checkpoint(w);
            }
            Ok(())
        })
    }

    /// At sync: sends every update of this device's check-ins the server does not have. A
    /// refusal leaves it for later and does not fail the sync.
    pub(crate) fn send_check_ins(&self, server: &Server, m: &Membership) -> Result<()> {
        let pending = self.read(|c| check_ins::unsent(c, &m.workspace))?;
        for id in pending {
            match self.send_check_in(server, m, &id) {
                // A refusal or a cut is retried at the next sync; it must not stop this one.
                Ok(()) | Err(Error::Network(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// At sync, after the pull: fetches the team's check-ins if needed (see `fetch`), then
    /// tells `changed` of every check-in whose state changed since listeners were last told,
    /// by the server's word or by the clock (one overdue by now).
    pub(crate) fn sync_check_ins(
        &self,
        server: &Server,
        m: &Membership,
        changed: &mut Changed,
    ) -> Result<()> {
        self.fetch_check_ins(server, m)?;
        let now = now_ms();
        self.with_writer(|w| {
            let tx = w.transaction()?;
            let grace = grace(&tx, &m.workspace)?;
            for (r, told) in check_ins::all_with_told(&tx, &m.workspace)? {
                let state = r.state(now, grace).as_str();
                if told.as_deref() != Some(state) {
                    check_ins::set_told(&tx, &r.id, state)?;
                    changed.insert(r.id);
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Fetches the team's check-ins if a pull said they changed, or while a teammate's is open
    /// (to learn of its close).
    fn fetch_check_ins(&self, server: &Server, m: &Membership) -> Result<()> {
        let due = self.read(|c| {
            let (seen, fetched) = memberships::check_ins_versions(c, &m.workspace)?;
            let watching = check_ins::teammate_in(c, &m.workspace, states::OPEN)?;
            Ok(seen != fetched || watching)
        })?;
        if !due {
            return Ok(());
        }
        let answer: proto::CheckInsResponse = server.get(proto::PATH_CHECK_INS)?.body;
        let now = now_ms();
        self.with_writer(|w| {
            let tx = w.transaction()?;
            let grace_after = answer.grace_secs.min(MAX_GRACE_SECS);
            memberships::set_check_ins_fetched(
                &tx,
                &m.workspace,
                i64::try_from(answer.version).unwrap_or(i64::MAX),
                i64::try_from(grace_after).unwrap_or(0),
            )?;
            let mut listed = std::collections::BTreeSet::new();
            for entry in &answer.check_ins {
                let id = hex::encode(entry.id);
                listed.insert(id.clone());
                let before = check_ins::load(&tx, &id)?;
                if before.as_ref().is_some_and(|r| r.own) {
                    // This device knows its own check-ins better; it learns only whether the
                    // server found one overdue (never that a close raised the alarm: nothing
                    // on this phone may say so).
                    check_ins::set_server_state(
                        &tx,
                        &id,
                        (entry.state == states::OVERDUE).then_some(states::OVERDUE),
                    )?;
                } else {
                    apply_entry(&tx, &m.workspace, entry, before.as_ref())?;
                }
            }
            // A teammate's check-in the server no longer lists: kept (a server must not make
            // one disappear) until a day after it was closed or was due.
            let stale = check_ins::teammates_ended(
                &tx,
                &m.workspace,
                now - KEEP_CLOSED_MS,
                KEEP_UNLISTED_MS - KEEP_CLOSED_MS,
            )?;
            for id in stale.into_iter().filter(|id| !listed.contains(id)) {
                check_ins::delete(&tx, &id)?;
            }
            check_ins::delete_own_closed(&tx, &m.workspace, now - KEEP_CLOSED_MS)?;
            tx.commit()?;
            Ok(())
        })
    }
}

/// Stores what a teammate's check-in entry says, if it is sealed and signed by the device it
/// names and newer than what this device has; returns whether it was taken.
fn apply_entry(
    tx: &Transaction<'_>,
    workspace: &str,
    entry: &proto::CheckInEntry,
    before: Option<&Row>,
) -> Result<bool> {
    let id = hex::encode(entry.id);
    let signer = team_lookups::member_sign_key(tx, workspace, &entry.device_id)?;
    let (Some(signer), Some(key)) = (
        signer.and_then(|k| <[u8; 32]>::try_from(k).ok()),
        keys::at_epoch(tx, workspace, entry.epoch)?,
    ) else {
        // A device the log does not admit (yet), or a key this device does not hold.
        return Ok(false);
    };
    let Ok(plain) = crypto::open_check_in(
        &key,
        &signer,
        workspace,
        &entry.id,
        entry.epoch,
        &entry.sealed,
    ) else {
        // Not what its device sealed: a server's forgery is not believed.
        return Ok(false);
    };
    let Ok(sealed) = ciborium::from_reader::<Sealed, _>(plain.as_slice()) else {
        return Ok(false);
    };
    let server_state =
        Some(entry.state.as_str()).filter(|s| *s == states::OVERDUE || *s == states::ALARM);
    match before {
        Some(r)
            if u64::try_from(r.version).unwrap_or(0) >= sealed.version
                || r.device_id != entry.device_id =>
        {
            check_ins::set_server_state(tx, &id, server_state)?;
        }
        _ => {
            check_ins::upsert_teammate(
                tx,
                &check_ins::Teammate {
                    id: &id,
                    workspace,
                    device_id: &entry.device_id,
                    version: i64::try_from(sealed.version).unwrap_or(i64::MAX),
                    state: &sealed.state,
                    started_at: sealed.started_at,
                    expected_back: sealed.expected_back,
                    closed_at: sealed.closed_at,
                    place: &sealed.place,
                    with_whom: &sealed.with_whom,
                    note: &sealed.note,
                    server_state,
                    updated_at: now_ms(),
                },
            )?;
        }
    }
    Ok(true)
}

/// One of this device's open check-ins, or why not.
fn own_open(c: &Connection, id: &str) -> Result<Row> {
    let r = check_ins::load(c, id)?
        .filter(|r| r.own)
        .ok_or_else(|| Error::not_found(format!("check-in {id}")))?;
    if r.state != states::OPEN {
        return Err(Error::invalid("check_in_id", "the check-in is closed"));
    }
    Ok(r)
}
