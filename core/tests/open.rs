//! Opening a store: encryption at rest, wrong keys, and files from other versions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use waymark_core::*;

fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        out.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    out
}

/// Each file of `dir` with a fingerprint of its content, for "nothing changed" checks.
///
/// The `-shm` file is left out: it is SQLite's shared-memory index of the WAL, which every
/// reader updates (read marks) and which holds no record data.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-shm")
        })
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (
                e.file_name().to_string_lossy().into_owned(),
                (bytes.len(), h.finish()),
            )
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn the_file_on_disk_reveals_no_text_that_was_stored() {
    let t = temp_path();
    let markers = [
        "ZEBRA-NOTE-7731",
        "Kiln-Place-4410",
        "Quarter-Area-9921",
        "Attendee-Name-5520",
        "Workspace-Name-3381",
        "+1-555-0199-CONTACT",
    ];
    {
        let s = open(&t.path);
        let ws = s.create_workspace(markers[4]).unwrap();
        let mut v = visit(markers[1], markers[2], NOV_1);
        v.notes = format!("The owner keeps passports. {}", markers[0]);
        s.create_visit(&ws.id, &v).unwrap();
        let w = s
            .create_workshop(&ws.id, &workshop("Rights", "workers_rights", NOV_1))
            .unwrap();
        s.check_in(
            &w,
            &NewAttendee {
                name: markers[3].into(),
                contact: Some(markers[5].into()),
                consent: true,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let bytes = all_bytes(t.dir.path());
    assert!(bytes.len() > 4096);
    assert!(
        !contains(&bytes, "SQLite format 3"),
        "no plaintext SQLite header"
    );
    for m in markers.iter().chain(
        [
            "passports",
            "street_outreach",
            "workers_rights",
            "deception",
        ]
        .iter(),
    ) {
        assert!(!contains(&bytes, m), "{m} found in the raw file");
    }
    // ...while the store itself still reads it all back.
    let s = open(&t.path);
    assert_eq!(s.search("ZEBRA", 5).unwrap().len(), 1);
}

#[test]
fn a_wrong_key_is_refused_as_such_and_changes_nothing() {
    let t = temp_path();
    let s = open(&t.path);
    s.create_workspace("Team").unwrap();
    let wrong = [0x13u8; 32];
    // While the app holds the store open (a WAL is pending)...
    let before = files(t.dir.path());
    assert!(matches!(Store::open(&t.path, &wrong), Err(Error::WrongKey)));
    assert_eq!(files(t.dir.path()), before, "the file was not touched");
    drop(s);
    // ...and once it is closed.
    let before = files(t.dir.path());
    assert!(matches!(Store::open(&t.path, &wrong), Err(Error::WrongKey)));
    assert_eq!(files(t.dir.path()), before, "the file was not touched");
    assert!(matches!(
        Store::open(&t.path, &[1, 2, 3]),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(open(&t.path).workspaces().unwrap().len(), 1);
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let t = temp_path();
    std::fs::write(
        &t.path,
        b"this is a text file, not a database, and it is long enough to matter",
    )
    .unwrap();
    let before = files(t.dir.path());
    assert!(matches!(Store::open(&t.path, &KEY), Err(Error::WrongKey)));
    assert_eq!(files(t.dir.path()), before);
}

#[test]
fn reopening_keeps_everything() {
    let t = temp_path();
    let (ws, id, actor) = {
        let s = open(&t.path);
        let ws = s.create_workspace("Team").unwrap().id;
        let id = s.create_visit(&ws, &visit("Dock", "Port", NOV_1)).unwrap();
        s.set_visit_notes(&id, "kept").unwrap();
        (ws, id, s.actor())
    };
    let s = open(&t.path);
    assert_eq!(s.actor(), actor, "the device keeps its identity");
    assert_eq!(s.get_visit(&id).unwrap().notes, "kept");
    assert_eq!(
        s.list_visits(&VisitFilter {
            workspace_id: Some(ws),
            ..Default::default()
        })
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn the_store_is_usable_from_many_threads_at_once() {
    let (_t, s, ws) = store_with_workspace();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            let ws = ws.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let mut v = visit(&format!("w{w} p{i}"), "North", NOV_1 + i);
                    v.notes = format!("writer{w} note{i}");
                    let id = s.create_visit(&ws, &v).unwrap();
                    s.update_visit(&id, &[VisitEdit::PeopleReached(i as u32)])
                        .unwrap();
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..60 {
                    let n = s
                        .list_visits(&VisitFilter {
                            limit: Some(1000),
                            ..Default::default()
                        })
                        .unwrap()
                        .len();
                    assert!(n >= last, "committed visits never disappear");
                    last = n;
                    s.search("writer0", 10).unwrap();
                }
            })
        })
        .collect();
    let ids: Vec<String> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    readers.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(ids.len(), 100);
    assert_eq!(
        s.list_visits(&VisitFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap()
        .len(),
        100
    );
    for id in &ids {
        assert!(s.get_visit(id).unwrap().notes.starts_with("writer"));
    }
}
