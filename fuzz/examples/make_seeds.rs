//! Writes the committed seed corpora, `fuzz/seeds/<target>/`, from real encoded values: bodies
//! encoded by `waymark-protocol`; chunks, signed and sealed blobs, key envelopes, bundles and
//! invite codes made by real stores. Every fixture shares one workspace, key and team, so what is
//! sealed here opens in the fuzzers' fixtures. Run it again when a format changes:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```

use std::path::{Path, PathBuf};

use waymark_core::fuzzing::{Device, DocChoice, Fixture, Sealing};
use waymark_core::{RecordKind, Store};
use waymark_fuzz::client::SealedInput;

type Seeds = Vec<(String, Vec<u8>)>;

fn write(root: &Path, target: &str, seeds: Seeds) -> Result<(), Box<dyn std::error::Error>> {
    let dir = root.join(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("{target}: {} seeds", seeds.len());
    Ok(())
}

fn with_flag(flag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend(bytes);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let scratch = tempfile::tempdir()?;
    let fx = Fixture::create(&scratch.path().join("fixture.db"))?;
    let visit = fx.visit_id().to_owned();
    fx.store()
        .set_visit_notes(&visit, "Two people waiting; one without a passport.")?;
    let chunks = fx.visit_chunks()?;
    let (snapshot, change) = (chunks[0].clone(), chunks[chunks.len() - 1].clone());

    write(&root, "protocol_decode", waymark_fuzz::protocol::seeds())?;

    let by = |signer, doc, kind| Sealing {
        doc,
        kind,
        signer,
        seq: 1,
        epoch: 0,
        tamper: None,
    };
    let new_visit = by(Device::Teammate, DocChoice::New([7; 16]), RecordKind::Visit);
    let cases = [
        ("new-visit", new_visit.clone(), &snapshot),
        (
            "change-by-own",
            by(Device::Own, DocChoice::ExistingVisit, RecordKind::Visit),
            &change,
        ),
        (
            "wrong-kind",
            by(
                Device::Coordinator,
                DocChoice::ExistingVisit,
                RecordKind::Workshop,
            ),
            &change,
        ),
        (
            "revoked-late",
            Sealing {
                signer: Device::Revoked,
                seq: 11,
                ..new_visit.clone()
            },
            &snapshot,
        ),
        (
            "stranger",
            by(Device::Stranger, DocChoice::New([8; 16]), RecordKind::Visit),
            &snapshot,
        ),
        (
            "altered",
            Sealing {
                tamper: Some((120, 1)),
                ..new_visit.clone()
            },
            &snapshot,
        ),
        (
            "future-epoch",
            Sealing {
                epoch: 1,
                ..new_visit.clone()
            },
            &snapshot,
        ),
    ];
    let mut pulls = Seeds::new();
    let mut sealed = Seeds::new();
    for (name, how, chunk) in &cases {
        if how.tamper.is_none() {
            pulls.push((name.to_string(), fx.sealed_pull_response(how, chunk)?));
        }
        let input = SealedInput {
            how: how.clone(),
            chunk: chunk.to_vec(),
        };
        sealed.push((name.to_string(), input.to_bytes()));
    }
    write(&root, "pull_response", pulls)?;
    write(&root, "sealed_blob", sealed)?;

    write(
        &root,
        "team_response",
        vec![
            ("directory".into(), fx.team_response(Vec::new())?),
            (
                "new-key".into(),
                fx.team_response(vec![fx.key_envelope(Device::Coordinator, Device::Own)?])?,
            ),
            (
                "key-from-a-member".into(),
                fx.team_response(vec![
                    fx.key_envelope(Device::Teammate, Device::Own)?,
                    fx.key_envelope(Device::Coordinator, Device::Teammate)?,
                ])?,
            ),
        ],
    )?;

    write(
        &root,
        "automerge_chunk",
        vec![
            ("snapshot-new".into(), with_flag(0, &snapshot)),
            ("snapshot-existing".into(), with_flag(1, &snapshot)),
            ("change-new".into(), with_flag(0, &change)),
            ("change-existing".into(), with_flag(1, &change)),
        ],
    )?;

    // A bundle sealed for the fixture workspace, as a teammate's store exports it.
    let teammate = Fixture::create(&scratch.path().join("teammate.db"))?;
    let since = teammate.store().checkpoint()?;
    teammate
        .store()
        .set_visit_notes(teammate.visit_id(), "Seen again at the north gate.")?;
    write(
        &root,
        "bundle_import",
        vec![
            ("everything".into(), teammate.store().export_changes(None)?),
            (
                "one-change".into(),
                teammate.store().export_changes(Some(&since))?,
            ),
        ],
    )?;

    // Invite codes from a store whose workspace has no server.
    let other = Store::open(scratch.path().join("other.db"), &[9; 32])?;
    let team = other.create_workspace("Field team")?;
    let code = other.create_invite(&team.id, 3600)?;
    let payload = data_encoding::BASE32_NOPAD.decode(&code.as_bytes()["WAYMARK1".len()..])?;
    write(
        &root,
        "invite_code",
        vec![
            ("typed".into(), with_flag(0, code.as_bytes())),
            ("payload".into(), with_flag(1, &payload)),
        ],
    )?;
    Ok(())
}
