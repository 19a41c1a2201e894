//! The client's decoders of untrusted bytes, through `waymark_core::fuzzing`: pulled blobs and
//! their envelopes, Automerge chunks, exchange bundles and invite codes.
//!
//! Every input meets a fresh store (a real SQLCipher file, on tmpfs when there is one): a copy
//! of one fixture store made at start-up, so an input that fails replays alone exactly as it ran.

use std::path::PathBuf;
use std::sync::OnceLock;

use waymark_core::fuzzing::{
    Device, DocChoice, Fixture, REVOKED_AT_SEQ, Sealing, invite_code_around, parse_invite,
};
use waymark_core::{Error, RecordKind};

/// Where fixture stores go: tmpfs if the machine has one (every input writes a store).
pub(crate) fn scratch_dir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    let root = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("waymark-fuzz-")
        .tempdir_in(root)
        .unwrap_or_else(|e| panic!("no scratch directory: {e}"))
}

/// The bytes of a freshly created fixture store, made once per process (creating one takes
/// about a hundred times longer than copying it).
fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = scratch_dir();
        let path = dir.path().join("store.db");
        let fixture = Fixture::create(&path)
            .unwrap_or_else(|e| panic!("the fixture store could not be created: {e}"));
        // Closing the store checkpoints its write-ahead log into the file.
        drop(fixture);
        assert!(
            !dir.path().join("store.db-wal").exists(),
            "the fixture store kept a write-ahead log"
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading the fixture store: {e}"))
    })
}

/// Runs `f` on a fresh copy of the fixture store, deleted afterwards.
fn with_fixture(f: impl FnOnce(&Fixture)) {
    let dir = scratch_dir();
    let path = dir.path().join("store.db");
    std::fs::write(&path, template()).unwrap_or_else(|e| panic!("copying the fixture: {e}"));
    let fixture =
        Fixture::open(&path).unwrap_or_else(|e| panic!("the fixture store did not open: {e}"));
    f(&fixture);
    // Closed before its directory goes.
    drop(fixture);
    drop(dir);
}

/// The errors untrusted bytes may cause; anything else (storage, network) is a bug here.
fn assert_refused_cleanly(what: &str, err: &Error) {
    let ok = matches!(
        err,
        Error::Corrupt(_)
            | Error::Tampered(_)
            | Error::InvalidInvite(_)
            | Error::UnknownWorkspace { .. }
    );
    assert!(
        ok,
        "{what}: untrusted bytes caused an unexpected error: {err:?}"
    );
    let message = err.to_string();
    assert!(!message.is_empty());
}

/// A pull answer from a hostile or broken server: decoded and applied as sync applies it. Blobs
/// that fail are set aside; the call itself fails only if the answer does not decode.
pub fn pull_response(data: &[u8]) {
    with_fixture(|fx| match fx.apply_pull_response(data) {
        Ok(report) => {
            let set_aside = fx
                .store()
                .set_aside_blobs()
                .unwrap_or_else(|e| panic!("set-aside list unreadable: {e}"));
            // One row per sequence number: a repeated number is set aside once.
            let seqs: std::collections::BTreeSet<u64> =
                report.set_aside.iter().map(|b| b.seq).collect();
            assert_eq!(set_aside.len(), seqs.len(), "{report:?}");
        }
        Err(Error::Network(e)) => assert!(e.to_string().contains("CBOR"), "{e}"),
        Err(e) => panic!("a pull answer caused an unexpected error: {e:?}"),
    });
}

/// A chunk sealed with the workspace key and signed by a device of the team (or not), then
/// possibly altered: what a teammate, a revoked member or a stranger could slip into a pull.
///
/// Layout (simple, so that seeds are easy to write): a flags byte, then the 16 id bytes of a new
/// document (unless bit 0), the alteration (bit 6: position u16 LE, xor mask), the sequence number
/// u64 LE and epoch u32 LE (bit 7; else 1 and 0), then the chunk. Flags: bit 0 the existing
/// visit; bits 1-2 the record kind; bits 3-5 the signer (teammate, own, coordinator, revoked,
/// stranger).
#[derive(Debug)]
pub struct SealedInput {
    /// How it is sealed, signed and altered.
    pub how: Sealing,
    /// The Automerge chunk.
    pub chunk: Vec<u8>,
}

const SIGNERS: [Device; 5] = [
    Device::Teammate,
    Device::Own,
    Device::Coordinator,
    Device::Revoked,
    Device::Stranger,
];

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

impl SealedInput {
    /// Reads the layout above; `None` if the input is too short.
    pub fn parse(data: &[u8]) -> Option<SealedInput> {
        let (&flags, mut rest) = data.split_first()?;
        let doc = if flags & 1 == 1 {
            DocChoice::ExistingVisit
        } else {
            DocChoice::New(take::<16>(&mut rest)?)
        };
        let kind = match (flags >> 1) & 0b11 {
            1 => RecordKind::Workshop,
            2 => RecordKind::Settings,
            3 => RecordKind::Tip,
            _ => RecordKind::Visit,
        };
        let signer = SIGNERS
            .get(usize::from((flags >> 3) & 0b111))
            .copied()
            .unwrap_or(Device::Teammate);
        let tamper = if flags & 0x40 != 0 {
            let t = take::<3>(&mut rest)?;
            Some((usize::from(u16::from_le_bytes([t[0], t[1]])), t[2]))
        } else {
            None
        };
        let (seq, epoch) = if flags & 0x80 != 0 {
            (
                u64::from_le_bytes(take::<8>(&mut rest)?),
                u32::from_le_bytes(take::<4>(&mut rest)?),
            )
        } else {
            (1, 0)
        };
        Some(SealedInput {
            how: Sealing {
                doc,
                kind,
                signer,
                seq,
                epoch,
                tamper,
            },
            chunk: rest.to_vec(),
        })
    }

    /// The bytes [`SealedInput::parse`] reads back as `self` (for seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let h = &self.how;
        let mut flags: u8 = match h.kind {
            RecordKind::Visit => 0,
            RecordKind::Workshop => 1,
            RecordKind::Settings => 2,
            RecordKind::Tip => 3,
        } << 1;
        let signer = SIGNERS.iter().position(|d| *d == h.signer).unwrap_or(0);
        flags |= u8::try_from(signer).unwrap_or(0) << 3;
        let mut out = Vec::new();
        match h.doc {
            DocChoice::ExistingVisit => flags |= 1,
            DocChoice::New(id) => out.extend(id),
        }
        if let Some((at, mask)) = h.tamper {
            flags |= 0x40;
            out.extend(u16::try_from(at).unwrap_or(u16::MAX).to_le_bytes());
            out.push(mask);
        }
        if (h.seq, h.epoch) != (1, 0) {
            flags |= 0x80;
            out.extend(h.seq.to_le_bytes());
            out.extend(h.epoch.to_le_bytes());
        }
        out.insert(0, flags);
        out.extend(&self.chunk);
        out
    }
}

/// A chunk sealed with the workspace key and signed: gets past the seal to the decoding of what
/// is inside. Only an unaltered blob signed by a device in good standing, under a key this
/// device has, may ever be applied; anything else is set aside, never an error.
pub fn sealed_blob(data: &[u8]) {
    let Some(input) = SealedInput::parse(data) else {
        return;
    };
    let how = &input.how;
    with_fixture(|fx| {
        let report = fx
            .apply_sealed_chunk(how, &input.chunk)
            .unwrap_or_else(|e| {
                panic!("a pulled blob failed the sync instead of being set aside: {e:?}")
            });
        let altered = how.tamper.is_some_and(|(_, mask)| mask != 0);
        let untrusted = match how.signer {
            Device::Stranger => true,
            Device::Revoked => how.seq > REVOKED_AT_SEQ,
            _ => false,
        };
        if altered || untrusted || how.epoch != 0 {
            assert!(report.changed.is_empty(), "applied: {how:?}");
            assert_eq!(report.set_aside.len(), 1, "not set aside: {how:?}");
        }
    });
}

/// The team directory from a hostile or broken server: the team log, devices, roles and key
/// envelopes. A key is learnt only from an envelope sealed to this device; a log that does not
/// verify is reported as the server's attack.
pub fn team_response(data: &[u8]) {
    let addressed: Vec<u32> = waymark_protocol::decode::<waymark_protocol::TeamResponse>(data)
        .map(|t| {
            t.envelopes
                .iter()
                .filter(|e| e.device_id == Device::Own.id())
                .map(|e| e.epoch)
                .collect()
        })
        .unwrap_or_default();
    with_fixture(|fx| match fx.apply_team_response(data) {
        Ok(learnt) => {
            for epoch in &learnt {
                assert!(
                    addressed.contains(epoch),
                    "learnt epoch {epoch} from nowhere"
                );
            }
        }
        Err(Error::Network(e)) => assert!(e.to_string().contains("CBOR"), "{e}"),
        Err(Error::HostileServer(reason)) => assert!(!reason.is_empty()),
        Err(e) => assert_refused_cleanly("a team directory", &e),
    });
}

/// One Automerge chunk merged (strictly parsed) into a new document or an existing one.
pub fn automerge_chunk(data: &[u8]) {
    let Some((&flags, chunk)) = data.split_first() else {
        return;
    };
    with_fixture(|fx| {
        if let Err(e) = fx.merge_chunk(flags & 1 == 1, chunk) {
            assert_refused_cleanly("an Automerge chunk", &e);
        }
    });
}

/// An exchange bundle carried in on a memory card.
pub fn bundle_import(data: &[u8]) {
    with_fixture(|fx| {
        if let Err(e) = fx.import_bundle(data) {
            assert_refused_cleanly("a bundle", &e);
        }
    });
}

/// An invite code as typed or scanned (first byte even), or the CBOR payload inside a
/// well-formed code (odd).
pub fn invite_code(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let code = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        invite_code_around(rest)
    };
    if let Err(e) = parse_invite(&code) {
        assert!(matches!(e, Error::InvalidInvite(_)), "{e:?}");
    }
}
