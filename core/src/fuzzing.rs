//! Entry points for the fuzz targets in `fuzz/`: each hands untrusted bytes to the real code the
//! client runs on them (pull answers and the signed, sealed blobs in them, the team directory
//! and its key envelopes, Automerge chunks, exchange bundles, invite codes), so the fuzzers test
//! the shipped code, not a copy of it.
//!
//! Not part of the API: hidden from the docs and free to change with the fuzz targets.

use std::path::Path;

use serde_bytes::ByteBuf;
use waymark_protocol as proto;

use crate::crypto::{self, DeviceKeys, WorkspaceKey};
use crate::error::{Corruption, Error, Result};
use crate::exchange::{Target, merge_chunks};
use crate::model::{ImportReport, NewVisit, Place, RecordKind};
use crate::store::{Store, docs, load_stored};
use crate::sync::{Enrollment, NetworkError, SyncReport, add_membership};

/// The database key of every fixture store (fuzzing needs no secrecy).
const FIXTURE_KEY: [u8; 32] = [0x5a; 32];
/// The fixture's workspace: the same in every fixture, with the same keys and team, so that
/// seeds sealed and signed for one fixture open in any other.
pub const FIXTURE_WORKSPACE: &str = "f0220000000000000000000000000001";
/// The fixture workspace's key at epoch 0.
const WORKSPACE_KEY_0: [u8; 32] = [0x33; 32];
/// The key a coordinator hands out for epoch 1 in seeds.
const WORKSPACE_KEY_1: [u8; 32] = [0x34; 32];
/// Never contacted: the fixture only needs a membership, as a synced device has.
const FIXTURE_SERVER: &str = "http://127.0.0.1:9";

/// A device of the fixture's team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The fixture's own device.
    Own,
    /// A member in good standing.
    Teammate,
    /// The team's coordinator (hands out keys).
    Coordinator,
    /// A member revoked at sequence number [`REVOKED_AT_SEQ`].
    Revoked,
    /// A device that is not in the team.
    Stranger,
}

/// Where the fixture's revoked device was revoked.
pub const REVOKED_AT_SEQ: u64 = 10;

impl Device {
    /// Its device id in the team directory.
    pub fn id(self) -> &'static str {
        match self {
            Device::Own => "fuzz-own",
            Device::Teammate => "fuzz-teammate",
            Device::Coordinator => "fuzz-coordinator",
            Device::Revoked => "fuzz-revoked",
            Device::Stranger => "fuzz-stranger",
        }
    }

    /// Fixed key pairs, so that what one fixture signs verifies in every other.
    fn keys(self) -> Result<DeviceKeys> {
        let seed = match self {
            Device::Own => 1,
            Device::Teammate => 2,
            Device::Coordinator => 3,
            Device::Revoked => 4,
            Device::Stranger => 5,
        };
        DeviceKeys::from_bytes(&[seed; DeviceKeys::LEN])
            .ok_or_else(|| Error::Storage("fixture device keys".into()))
    }
}

/// Which document a fuzzed chunk is filed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocChoice {
    /// A document the store has never seen, with these id bytes.
    New([u8; 16]),
    /// The fixture's existing visit.
    ExistingVisit,
}

/// How a fuzzed chunk is sealed and signed before it is applied as a pulled blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealing {
    /// The document it claims to belong to.
    pub doc: DocChoice,
    /// The record kind sealed inside.
    pub kind: RecordKind,
    /// The device that signs it.
    pub signer: Device,
    /// Its sequence number in the pull.
    pub seq: u64,
    /// The key epoch it claims (only epoch 0 has a key in the fixture).
    pub epoch: u32,
    /// An alteration of the signed blob: position (modulo its length) and xor mask.
    pub tamper: Option<(usize, u8)>,
}

/// A real store that synced one workspace: joined by an invite, connected to a server that is
/// never contacted, with a team of devices whose keys are fixed, and one visit.
pub struct Fixture {
    store: Store,
    workspace: String,
    visit: String,
}

impl Fixture {
    /// Creates the fixture store at `path` (a file that must not exist yet).
    pub fn create(path: &Path) -> Result<Fixture> {
        let store = Store::open(path, &FIXTURE_KEY)?;
        let code = crate::invite::encode(&crate::invite::InviteBody {
            workspace: FIXTURE_WORKSPACE.into(),
            name: "Fuzzing team".into(),
            keys: vec![(0, ByteBuf::from(WORKSPACE_KEY_0.to_vec()))],
            server: None,
            verify: None,
            signers: Vec::new(),
            log: None,
            role: None,
        })?;
        let workspace = store.join(&code)?.id;
        let visit = store.create_visit(
            &workspace,
            &NewVisit {
                place: Place {
                    name: "Bus station".into(),
                    area: "North".into(),
                    coordinates: None,
                },
                occurred_at: 1_764_000_000_000,
                visit_type: "transit_point".into(),
                people_reached: 3,
                notes: "Two people waiting.".into(),
                ..Default::default()
            },
        )?;
        store.with_writer(|w| {
            let tx = w.transaction()?;
            add_membership(
                &tx,
                &workspace,
                FIXTURE_SERVER,
                &proto::EnrollResponse {
                    workspace_id: workspace.clone(),
                    device_id: Device::Own.id().into(),
                    device_token: "fuzz-token".into(),
                    role: proto::roles::MEMBER.into(),
                },
                &Enrollment {
                    keys: Device::Own.keys()?,
                    name: Device::Own.id().into(),
                    join_proof: None,
                    // As if it joined with the coordinator's invite: it learnt the
                    // coordinator's key in person, so the log it started is trusted.
                    vouched: vec![Device::Coordinator.keys()?.sign_public()],
                    anchor: None,
                    actor: store.actor_id().to_bytes().to_vec(),
                },
            )?;
            tx.commit()?;
            Ok(())
        })?;
        let fixture = Fixture {
            store,
            workspace,
            visit,
        };
        fixture.apply_team_response(&fixture.team_response(Vec::new())?)?;
        Ok(fixture)
    }

    /// Opens a fixture store made by [`Fixture::create`] (or a copy of one: copying a fresh
    /// fixture's file is much cheaper than making one for every fuzz input).
    pub fn open(path: &Path) -> Result<Fixture> {
        let store = Store::open(path, &FIXTURE_KEY)?;
        let visit = store
            .read(|c| docs::first_of_kind(c, FIXTURE_WORKSPACE, RecordKind::Visit))?
            .ok_or_else(|| Error::not_found("the fixture's visit"))?;
        Ok(Fixture {
            store,
            workspace: FIXTURE_WORKSPACE.into(),
            visit,
        })
    }

    /// The store itself.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The existing visit's id.
    pub fn visit_id(&self) -> &str {
        &self.visit
    }

    /// Decodes `body` as the client decodes a pull answer and applies its blobs exactly as
    /// `sync()` does (verifying, opening, merging; bad blobs are set aside).
    pub fn apply_pull_response(&self, body: &[u8]) -> Result<SyncReport> {
        let page: proto::PullResponse = proto::decode(body).map_err(NetworkError::Unreadable)?;
        self.apply(&page.blobs)
    }

    /// Seals and signs `chunk` as `how` says and applies it as a pulled blob.
    pub fn apply_sealed_chunk(&self, how: &Sealing, chunk: &[u8]) -> Result<SyncReport> {
        let mut blob = self.sealed_blob(how, chunk)?;
        if let Some((at, mask)) = how.tamper {
            let at = at % blob.ciphertext.len();
            blob.ciphertext[at] ^= mask;
        }
        self.apply(&[blob])
    }

    /// A pull answer holding `chunk` sealed and signed as `how` says (fuzz seeds).
    pub fn sealed_pull_response(&self, how: &Sealing, chunk: &[u8]) -> Result<Vec<u8>> {
        let blob = self.sealed_blob(how, chunk)?;
        Ok(proto::encode(&proto::PullResponse {
            head: blob.seq,
            blobs: vec![blob],
            more: false,
            team_version: 1,
            chain_after: None,
            chain_last: None,
            chain_head: None,
            check_ins: 0,
            tips: 0,
        }))
    }

    /// Decodes `body` as the client decodes the team directory and keeps it as a sync does:
    /// devices and roles, and the workspace keys in envelopes sealed to this device.
    /// Returns the key epochs learnt.
    pub fn apply_team_response(&self, body: &[u8]) -> Result<Vec<u32>> {
        let team: proto::TeamResponse = proto::decode(body).map_err(NetworkError::Unreadable)?;
        let m = self.store.membership(&self.workspace)?;
        self.store.apply_team(&m, &team)
    }

    /// The fixture's team log, signed by its coordinator: the genesis, the other three devices
    /// admitted, the revoked one revoked at [`REVOKED_AT_SEQ`], and a rotation to epoch 1.
    pub fn team_log(&self) -> Result<Vec<proto::team_log::SignedEntry>> {
        use proto::team_log::{Body, Entry, Grant, Member, Restricted, TeamState, Vouch};
        let coordinator = Device::Coordinator.keys()?;
        let member = |d: Device, role: &str| -> Result<Member> {
            let keys = d.keys()?;
            Ok(Member {
                device_id: d.id().into(),
                name: d.id().into(),
                role: role.into(),
                sign_key: keys.sign_public(),
                box_key: keys.box_public(),
                actor: None,
            })
        };
        let bad = |e: proto::team_log::LogError| {
            Error::Corrupt(Corruption::by("the fixture's team log", e))
        };
        // Fixed bytes, so that every fixture makes the same log (the fixture never opens a
        // restricted record).
        let restricted = |epoch: u32| -> Result<Option<Restricted>> {
            Ok(Some(Restricted {
                public: [0x21; 32],
                grants: vec![Grant {
                    to: Device::Coordinator.keys()?.sign_public(),
                    epoch,
                    sealed: vec![0x22; 80],
                }],
            }))
        };
        let genesis = crypto::sign_log_entry(
            &coordinator,
            &Entry::first(
                coordinator.sign_public(),
                1_764_000_000,
                Body::Genesis {
                    workspace: self.workspace.clone(),
                    epoch: 0,
                    coordinator: member(Device::Coordinator, proto::roles::COORDINATOR)?,
                    restricted: restricted(0)?,
                },
            ),
        );
        let mut state = TeamState::genesis(&genesis).map_err(bad)?;
        let mut log = vec![genesis];
        let mut bodies = Vec::new();
        for d in [Device::Own, Device::Teammate, Device::Revoked] {
            bodies.push(Body::Admit {
                member: member(d, proto::roles::MEMBER)?,
                vouch: Vouch::Invite,
                grants: Vec::new(),
            });
        }
        bodies.push(Body::Revoke {
            sign_key: Device::Revoked.keys()?.sign_public(),
            after_seq: REVOKED_AT_SEQ,
        });
        bodies.push(Body::Rotate {
            epoch: 1,
            restricted: restricted(1)?,
        });
        for body in bodies {
            let e = crypto::sign_log_entry(
                &coordinator,
                &Entry::next(&state, coordinator.sign_public(), 1_764_000_000, body),
            );
            state.apply(&e).map_err(bad)?;
            log.push(e);
        }
        Ok(log)
    }

    /// The fixture's team directory, with its log and `envelopes` (fuzz seeds).
    pub fn team_response(&self, envelopes: Vec<proto::KeyEnvelope>) -> Result<Vec<u8>> {
        let devices = [
            (Device::Own, proto::roles::MEMBER, None),
            (Device::Teammate, proto::roles::MEMBER, None),
            (Device::Coordinator, proto::roles::COORDINATOR, None),
            (Device::Revoked, proto::roles::MEMBER, Some(REVOKED_AT_SEQ)),
        ]
        .into_iter()
        .map(|(d, role, revoked_at_seq)| {
            let keys = d.keys()?;
            Ok(proto::TeamDevice {
                device_id: d.id().into(),
                name: d.id().into(),
                role: role.into(),
                sign_key: keys.sign_public(),
                box_key: keys.box_public(),
                join_proof: None,
                enrolled_at: 1_764_000_000,
                revoked_at_seq,
                key_epochs: vec![0],
                actor: None,
                last_sync_at: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let log = self.team_log()?;
        Ok(proto::encode(&proto::TeamResponse {
            version: 1,
            epoch: 1,
            rotation_needed: false,
            devices,
            envelopes,
            log_len: log.len() as u64,
            log,
        }))
    }

    /// An envelope of the epoch 1 key, sealed to `to` and signed by `signer` (fuzz seeds).
    pub fn key_envelope(&self, signer: Device, to: Device) -> Result<proto::KeyEnvelope> {
        crypto::wrap_key(
            &signer.keys()?,
            &self.workspace,
            to.id(),
            &to.keys()?.box_public(),
            1,
            &WorkspaceKey::new(WORKSPACE_KEY_1),
        )
    }

    /// Merges one Automerge chunk into a new document or into the existing visit, through the
    /// strict parse that sync and bundle import use, then rolls back. Returns whether the
    /// document changed.
    pub fn merge_chunk(&self, into_existing: bool, chunk: &[u8]) -> Result<bool> {
        let id = if into_existing {
            self.visit.clone()
        } else {
            hex::encode([0x42u8; 16])
        };
        let actor = self.store.actor_id().clone();
        self.store.with_writer(|w| {
            let tx = w.transaction()?;
            let existing = load_stored(&tx, &id, &actor)?;
            let target = Target {
                id: &id,
                workspace: &self.workspace,
                kind: RecordKind::Visit,
            };
            let (_, changed) = merge_chunks(
                &tx,
                existing,
                &actor,
                &target,
                &[chunk.to_vec()],
                false,
                &crate::sync::team::Authorship::Any,
            )?;
            // Dropped without commit: every input meets the same store.
            drop(tx);
            Ok(changed)
        })
    }

    /// The existing visit as stored: its saved document, then its incremental chunks (fuzz
    /// seeds; edit the visit through [`Fixture::store`] first to get chunks).
    pub fn visit_chunks(&self) -> Result<Vec<Vec<u8>>> {
        let chunks = self.store.read(|c| docs::saved(c, &self.visit))?;
        match chunks.is_empty() {
            true => Err(Error::not_found("the fixture's visit")),
            false => Ok(chunks),
        }
    }

    /// Imports an exchange bundle, as `import_changes` does.
    pub fn import_bundle(&self, bundle: &[u8]) -> Result<ImportReport> {
        self.store.import_changes(bundle)
    }

    fn sealed_blob(&self, how: &Sealing, chunk: &[u8]) -> Result<proto::PulledBlob> {
        let doc_id = match how.doc {
            DocChoice::New(bytes) => bytes,
            DocChoice::ExistingVisit => crypto::doc_id_bytes(&self.visit)?,
        };
        let ciphertext = crypto::seal_signed(
            &WorkspaceKey::new(WORKSPACE_KEY_0),
            &how.signer.keys()?,
            &self.workspace,
            &doc_id,
            how.epoch,
            how.kind.into(),
            chunk,
        )?;
        Ok(proto::PulledBlob {
            seq: how.seq,
            content_id: proto::content_id_of(&ciphertext),
            doc_id,
            epoch: how.epoch,
            ciphertext,
            device_id: how.signer.id().into(),
        })
    }

    fn apply(&self, blobs: &[proto::PulledBlob]) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut changed = crate::sync::Changed::default();
        if blobs.is_empty() {
            return Ok(report);
        }
        self.store
            .apply_pulled(&self.workspace, blobs, &mut report, &mut changed)?;
        changed.into_report(&mut report);
        Ok(report)
    }
}

/// Parses an invite code as `join` does, without joining.
pub fn parse_invite(code: &str) -> Result<()> {
    crate::invite::decode(code).map(|_| ())
}

/// An invite code whose payload is `body` (fuzzes the CBOR inside the code directly).
pub fn invite_code_around(body: &[u8]) -> String {
    format!(
        "{}{}",
        crate::invite::PREFIX,
        data_encoding::BASE32_NOPAD.encode(body)
    )
}
