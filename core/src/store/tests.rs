//! Schema migrations on real files: upgrades keep data, failures roll back, newer files are
//! refused untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::schema::{MIGRATIONS, Migration};
use super::*;

const KEY: [u8; 32] = [9; 32];

fn raw(path: &Path) -> Connection {
    connect(path, &KEY, false).unwrap()
}

fn version(path: &Path) -> i64 {
    raw(path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A real schema-1 file: the document tables only, holding a workspace and a visit made by
/// the current code (documents are the part of the format that older versions shared).
fn v1_file(dir: &Path) -> (PathBuf, String, String) {
    let donor_path = dir.join("donor.db");
    let donor = Store::open(&donor_path, &KEY).unwrap();
    let ws = donor.create_workspace("Old team").unwrap().id;
    let mut v = NewVisit {
        place: Place {
            name: "Old depot".into(),
            area: "North".into(),
            coordinates: None,
        },
        occurred_at: 1_793_523_600_000,
        visit_type: "street_outreach".into(),
        ..Default::default()
    };
    v.notes = "written before the upgrade".into();
    let id = donor.create_visit(&ws, &v).unwrap();
    drop(donor);

    let path = dir.join("v1.db");
    let mut conn = raw(&path);
    super::schema::migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
    conn.execute(
        &format!(
            "ATTACH DATABASE '{}' AS donor KEY \"x'{}'\"",
            donor_path.display(),
            hex::encode(KEY)
        ),
        [],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO main.meta SELECT * FROM donor.meta WHERE key = 'actor';
         INSERT INTO main.workspaces(id, created_at) SELECT id, created_at FROM donor.workspaces;
         INSERT INTO main.documents SELECT n, id, workspace_id, kind, snapshot, heads, chunk_count
            FROM donor.documents;
         INSERT INTO main.doc_chunks SELECT * FROM donor.doc_chunks;
         DETACH DATABASE donor;",
    )
    .unwrap();
    drop(conn);
    assert_eq!(version(&path), 1);
    (path, ws, id)
}

#[test]
fn an_old_schema_file_is_upgraded_with_its_records_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ws, id) = v1_file(dir.path());
    let s = Store::open(&path, &KEY).unwrap();
    assert_eq!(version(&path), schema::latest(MIGRATIONS));
    assert_eq!(
        s.get_visit(&id).unwrap().notes,
        "written before the upgrade"
    );
    let listed = s.list_visits(&VisitFilter::default()).unwrap();
    assert_eq!(
        listed.len(),
        1,
        "projections were rebuilt from the documents"
    );
    assert_eq!(s.workspaces().unwrap()[0].name, "Old team");
    assert_eq!(s.search("upgrade", 5).unwrap().len(), 1);
    s.create_visit(
        &ws,
        &NewVisit {
            place: Place {
                name: "New".into(),
                ..Default::default()
            },
            occurred_at: 1_793_523_600_000,
            visit_type: "home_visit".into(),
            ..Default::default()
        },
    )
    .unwrap();
}

/// A schema-11 file (before tips) holding a visit and a synced membership, upgraded: the visit
/// and the membership stay, and tips start empty with nothing waiting.
#[test]
fn a_schema_11_file_takes_tips_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ws, id) = v1_file(dir.path());
    {
        // Brought to 11 by the migrations of the build before tips, then given a membership.
        let mut conn = raw(&path);
        super::schema::migrate(&mut conn, &MIGRATIONS[..11]).unwrap();
        conn.execute(
            "INSERT INTO memberships(workspace_id, server_url, server_workspace_id, device_id,
                device_token, cursor) VALUES (?1, 'https://sync.example.org', 'srv', 'dev',
                'token', 42)",
            [&ws],
        )
        .unwrap();
    }
    assert_eq!(version(&path), 11);
    let s = Store::open(&path, &KEY).unwrap();
    assert_eq!(
        s.get_visit(&id).unwrap().notes,
        "written before the upgrade"
    );
    assert!(s.tips(&ws).unwrap().is_empty());
    drop(s);
    assert_eq!(version(&path), schema::latest(MIGRATIONS));
    let (cursor, waiting): (i64, i64) = raw(&path)
        .query_row(
            "SELECT cursor, tips_waiting FROM memberships WHERE workspace_id = ?1",
            [&ws],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cursor, waiting), (42, 0));
}

#[test]
fn a_failed_migration_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _ws, id) = v1_file(dir.path());
    let broken: Vec<Migration> = vec![
        Migration {
            version: 1,
            sql: MIGRATIONS[0].sql,
        },
        Migration {
            version: 2,
            sql: "CREATE TABLE half_done(x); DELETE FROM doc_chunks; INSERT INTO no_such_table VALUES (1);",
        },
    ];
    let err = Store::open_with_migrations(&path, &KEY, &broken)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Migration { version: 2, .. }),
        "{err:?}"
    );
    // The SQLite error that stopped it is kept, not only its message.
    let cause = std::error::Error::source(&err).unwrap();
    assert!(cause.is::<rusqlite::Error>(), "{cause:?}");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    assert_eq!(version(&path), 1);
    let conn = raw(&path);
    let half: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(half, 0, "nothing of the failed step remains");
    drop(conn);
    let s = Store::open(&path, &KEY).unwrap();
    assert_eq!(
        s.get_visit(&id).unwrap().notes,
        "written before the upgrade"
    );
}

#[test]
fn a_file_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(Store::open(&path, &KEY).unwrap());
    raw(&path).pragma_update(None, "user_version", 99).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path, &KEY).err().unwrap();
    assert!(
        matches!(err, Error::NewerSchema { found: 99, .. }),
        "{err:?}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file was not touched"
    );
}

#[test]
fn rebuilding_projections_gives_exactly_the_rows_that_were_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s = Store::open(&path, &KEY).unwrap();
    let ws = s.create_workspace("Team").unwrap().id;
    for i in 0..30 {
        let id = s
            .create_visit(
                &ws,
                &NewVisit {
                    place: Place {
                        name: format!("P{i}"),
                        area: format!("A{}", i % 3),
                        coordinates: None,
                    },
                    occurred_at: 1_793_523_600_000 + i,
                    visit_type: "street_outreach".into(),
                    indicators: vec!["isolation".into()],
                    referrals: vec![NewReferral {
                        kind: "medical".into(),
                        to: "Clinic".into(),
                        status: ReferralStatus::Made,
                    }],
                    tags: vec![format!("t{i}")],
                    notes: format!("note {i}"),
                    ..Default::default()
                },
            )
            .unwrap();
        if i % 5 == 0 {
            s.delete_record(&id).unwrap();
        }
        let w = s
            .create_workshop(
                &ws,
                &NewWorkshop {
                    title: format!("W{i}"),
                    topic: "safe_migration".into(),
                    occurred_at: 1_793_523_600_000,
                    audience: "students".into(),
                    language: "en".into(),
                    facilitators: vec!["F".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        s.check_in(
            &w,
            &NewAttendee {
                name: format!("N{i}"),
                age_band: Some("18_24".into()),
                ..Default::default()
            },
        )
        .unwrap();
        s.add_to_tally(&w, "12_17", "male", 2).unwrap();
        s.add_feedback(&w, 4, "ok").unwrap();
    }
    let before = s.projection_rows().unwrap();
    assert!(before.len() > 300);
    s.rebuild_projections().unwrap();
    assert_eq!(s.projection_rows().unwrap(), before);
}
