//! The coordinator's journey end to end: a real `waymark-server` process on loopback, two
//! phones' worth of records made with `waymark-core` and synced, then the real `waymark` binary
//! joins with an invite, syncs, and reports. Its figures are compared with figures computed
//! here from the records the test made; the HTML report is opened in headless Chromium, which
//! must render the charts without a console error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;
use waymark_core::*;

/// 2026-11-01T09:00:00Z in ms.
const NOV_1: i64 = 1_793_523_600_000;
const DAY: i64 = 86_400_000;
const TODAY: &str = "2026-11-20";

/// A visit the test makes, and keeps to compute the figures itself.
struct V {
    device: &'static str,
    new: NewVisit,
    deleted: bool,
}

/// A workshop the test makes: named attendees (age band, gender, withdrawn), tallies, scores.
struct W {
    device: &'static str,
    new: NewWorkshop,
    named: Vec<(Option<&'static str>, Option<&'static str>, bool)>,
    tallies: Vec<(&'static str, &'static str, i64)>,
    scores: Vec<u8>,
}

// One row of the test's table of visits: positional arguments keep the table readable.
#[allow(clippy::too_many_arguments)]
fn v(
    device: &'static str,
    day: i64,
    area: &str,
    ty: &str,
    people: u32,
    indicators: &[&str],
    referrals: &[(&str, ReferralStatus)],
    follow_up: Option<(&str, bool)>,
) -> V {
    V {
        device,
        new: NewVisit {
            place: Place {
                name: format!("{area} {ty} {day}"),
                area: area.into(),
                coordinates: None,
            },
            occurred_at: NOV_1 + day * DAY,
            visit_type: ty.into(),
            people_reached: people,
            indicators: indicators.iter().map(|s| s.to_string()).collect(),
            referrals: referrals
                .iter()
                .map(|(k, s)| NewReferral {
                    kind: k.to_string(),
                    to: "Partner".into(),
                    status: *s,
                })
                .collect(),
            follow_up: follow_up.map_or_else(FollowUp::default, |(due, done)| FollowUp {
                needed: true,
                due: Some(due.into()),
                done,
            }),
            notes: format!("Met people near the {area} station"),
            ..Default::default()
        },
        deleted: false,
    }
}

fn records() -> (Vec<V>, Vec<W>) {
    use ReferralStatus::*;
    let a = "Coordinator phone";
    let b = "Field phone 2";
    let mut visits = vec![
        v(
            a,
            -20,
            "North",
            "street_outreach",
            4,
            &["deception", "isolation"],
            &[("shelter", Made)],
            Some(("2026-11-10", false)),
        ),
        v(
            a,
            -12,
            "Port",
            "worksite_visit",
            9,
            &["debt_bondage"],
            &[],
            None,
        ),
        v(
            a,
            2,
            "North",
            "transit_point",
            3,
            &["deception"],
            &[("legal_aid", Suggested), ("medical", Completed)],
            Some(("2026-11-30", false)),
        ),
        v(
            a,
            5,
            "North",
            "street_outreach",
            6,
            &[],
            &[],
            Some(("2026-11-03", true)),
        ),
        v(
            b,
            -3,
            "South",
            "street_outreach",
            2,
            &["minor_present", "deception"],
            &[("child_protection", Made)],
            Some(("2026-11-01", false)),
        ),
        v(
            b,
            8,
            "Port",
            "worksite_visit",
            11,
            &["retention_of_documents", "debt_bondage"],
            &[("labour_inspection", Accepted)],
            None,
        ),
        v(b, 9, "South", "home_visit", 1, &["isolation"], &[], None),
    ];
    // Restricted: counted in reports, left out of exports.
    visits[4].new.sensitivity = Sensitivity::Restricted;
    // Deleted: counted nowhere.
    let mut gone = v(b, 10, "South", "home_visit", 50, &["deception"], &[], None);
    gone.deleted = true;
    visits.push(gone);
    let w = |device, day: i64, topic: &str, audience: &str| NewWorkshop {
        title: format!("{topic} with {audience}"),
        topic: topic.into(),
        occurred_at: NOV_1 + day * DAY,
        duration_minutes: 90,
        venue: "Community hall".into(),
        area: if device == a { "North" } else { "South" }.into(),
        audience: audience.into(),
        language: "en".into(),
        ..Default::default()
    };
    let workshops = vec![
        W {
            device: a,
            new: w(a, -15, "safe_migration", "students"),
            named: vec![
                (Some("12_17"), Some("female"), false),
                (Some("12_17"), Some("male"), true),
                (None, None, false),
            ],
            tallies: vec![("12_17", "female", 7), ("12_17", "male", 5)],
            scores: vec![5, 4],
        },
        W {
            device: b,
            new: w(b, 4, "online_safety", "parents"),
            named: vec![(Some("25_59"), Some("female"), false)],
            tallies: vec![
                ("25_59", "female", 3),
                ("25_59", "male", 2),
                ("60_plus", "not_recorded", 1),
            ],
            scores: vec![3],
        },
        W {
            device: b,
            new: w(b, 12, "safe_migration", "migrant_workers"),
            named: vec![],
            tallies: vec![("18_24", "male", 4)],
            scores: vec![],
        },
    ];
    (visits, workshops)
}

fn add(m: &mut BTreeMap<String, i64>, k: &str, n: i64) {
    *m.entry(k.to_string()).or_default() += n;
}

fn map(v: &Value) -> BTreeMap<String, i64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_i64().unwrap()))
        .collect()
}

fn status_key(s: ReferralStatus) -> &'static str {
    match s {
        ReferralStatus::Suggested => "suggested",
        ReferralStatus::Made => "made",
        ReferralStatus::Accepted => "accepted",
        ReferralStatus::Completed => "completed",
        ReferralStatus::Declined => "declined",
    }
}

/// Checks a report's JSON against the records kept by `keep`, computed here without SQL.
fn check_report(r: &Value, visits: &[&V], workshops: &[&W]) {
    let vs: Vec<&&V> = visits.iter().filter(|v| !v.deleted).collect();
    let rv = &r["visits"];
    assert_eq!(rv["visits"], vs.len() as i64);
    assert_eq!(
        rv["people_reached"],
        vs.iter()
            .map(|v| i64::from(v.new.people_reached))
            .sum::<i64>()
    );
    let (mut ty, mut area, mut ind, mut kind, mut status) = Default::default();
    let (mut due, mut overdue) = (0, 0);
    for v in &vs {
        add(&mut ty, &v.new.visit_type, 1);
        add(&mut area, &v.new.place.area, 1);
        v.new.indicators.iter().for_each(|i| add(&mut ind, i, 1));
        for r in &v.new.referrals {
            add(&mut kind, &r.kind, 1);
            add(&mut status, status_key(r.status), 1);
        }
        let f = &v.new.follow_up;
        if f.needed && !f.done {
            due += 1;
            overdue += i64::from(f.due.as_deref().is_some_and(|d| d < TODAY));
        }
    }
    assert_eq!(map(&rv["by_type"]), ty);
    assert_eq!(map(&rv["by_area"]), area);
    assert_eq!(map(&rv["indicators"]), ind);
    assert_eq!(map(&rv["referrals_by_kind"]), kind);
    assert_eq!(map(&rv["referrals_by_status"]), status);
    assert_eq!(rv["follow_ups_due"], due);
    assert_eq!(rv["follow_ups_overdue"], overdue);

    let rw = &r["workshops"];
    assert_eq!(rw["workshops"], workshops.len() as i64);
    let (mut age, mut gender, mut topic) = Default::default();
    let (mut named, mut anonymous) = (0, 0);
    for w in workshops {
        add(&mut topic, &w.new.topic, 1);
        for (a, g, withdrawn) in &w.named {
            if !withdrawn {
                named += 1;
                add(&mut age, a.unwrap_or("unknown"), 1);
                add(&mut gender, g.unwrap_or("not_recorded"), 1);
            }
        }
        for (a, g, n) in &w.tallies {
            anonymous += n;
            add(&mut age, a, *n);
            add(&mut gender, g, *n);
        }
    }
    assert_eq!(rw["named"], named);
    assert_eq!(rw["anonymous"], anonymous);
    assert_eq!(rw["attendance"], named + anonymous);
    assert_eq!(map(&rw["by_age_band"]), age);
    assert_eq!(map(&rw["by_gender"]), gender);
    assert_eq!(map(&rw["by_topic"]), topic);
    let scores: Vec<u8> = workshops.iter().flat_map(|w| w.scores.clone()).collect();
    if scores.is_empty() {
        assert!(rw["feedback_average"].is_null());
    } else {
        let avg = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64;
        assert!((rw["feedback_average"].as_f64().unwrap() - avg).abs() < 1e-9);
    }
}

fn record(store: &Store, ws: &str, visits: &[V], workshops: &[W], device: &str) {
    for v in visits.iter().filter(|v| v.device == device) {
        let id = store.create_visit(ws, &v.new).unwrap();
        if v.deleted {
            store.delete_record(&id).unwrap();
        }
    }
    for w in workshops.iter().filter(|w| w.device == device) {
        let id = store.create_workshop(ws, &w.new).unwrap();
        for (i, (a, g, withdrawn)) in w.named.iter().enumerate() {
            let aid = store
                .check_in(
                    &id,
                    &NewAttendee {
                        name: format!("Attendee {i}"),
                        age_band: a.map(String::from),
                        gender: g.map(String::from),
                        ..Default::default()
                    },
                )
                .unwrap();
            if *withdrawn {
                store.withdraw_attendee(&id, &aid).unwrap();
            }
        }
        for (a, g, n) in &w.tallies {
            for _ in 0..*n {
                store.add_to_tally(&id, a, g, 1).unwrap();
            }
        }
        for s in &w.scores {
            store.add_feedback(&id, *s, "Clear and useful").unwrap();
        }
    }
}

#[test]
fn coordinator_joins_syncs_and_reports_the_team_figures() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let token = token.as_str();

    // Two phones: the coordinator's, which connects the workspace, and a field worker's.
    let (_a_dir, a) = phone("Coordinator phone");
    let ws = a.create_workspace("North district outreach").unwrap().id;
    a.connect_workspace(&ws, &server.url, token).unwrap();
    a.sync().unwrap();
    let (_b_dir, b) = phone("Field phone 2");
    b.join(&a.create_invite(&ws, 3600).unwrap()).unwrap();
    b.sync().unwrap();
    // The coordinator's next sync admits it into the team log; its changes go out from then.
    a.sync().unwrap();
    b.sync().unwrap();
    b.set_device_name("Field phone 2").unwrap();

    let (visits, workshops) = records();
    record(&a, &ws, &visits, &workshops, "Coordinator phone");
    record(&b, &ws, &visits, &workshops, "Field phone 2");
    b.sync().unwrap();
    a.sync().unwrap();

    // The CLI joins as one more device, a coordinator's (restricted records are sealed to
    // coordinators only), and pulls everything.
    let cli = tempfile::tempdir().unwrap();
    let dir = cli.path().join("store");
    let code = a.create_invite_with_role(&ws, 3600, "coordinator").unwrap();
    let joined = ok(waymark(&dir, &["join", &code]));
    assert!(joined.contains("North district outreach"), "{joined}");
    assert!(dir.join("waymark.salt").exists());
    json(&dir, &["sync", "--json"]);
    // Admitted by the coordinator's next sync, it reads the restricted records too.
    a.sync().unwrap();
    let synced = json(&dir, &["sync", "--json"]);
    assert!(synced["pulled"].as_u64().unwrap() > 0, "{synced}");

    // Every figure matches the records, overall and per month.
    let all_v: Vec<&V> = visits.iter().collect();
    let all_w: Vec<&W> = workshops.iter().collect();
    let report = json(&dir, &["report", "--json", "--today", TODAY]);
    check_report(&report, &all_v, &all_w);
    let months: Vec<&str> = report["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["month"].as_str().unwrap())
        .collect();
    assert_eq!(months, ["2026-10", "2026-11"]);
    let oct_v: Vec<&V> = visits
        .iter()
        .filter(|v| v.new.occurred_at < NOV_1 - 9 * 3_600_000)
        .collect();
    let oct_w: Vec<&W> = workshops
        .iter()
        .filter(|w| w.new.occurred_at < NOV_1 - 9 * 3_600_000)
        .collect();
    check_report(&report["months"][0], &oct_v, &oct_w);

    // Filters: November only, by the field worker's phone (by its name), in one area.
    let nov = json(
        &dir,
        &["report", "--json", "--today", TODAY, "--from", "2026-11"],
    );
    let nov_v: Vec<&V> = visits
        .iter()
        .filter(|v| v.new.occurred_at >= NOV_1 - 9 * 3_600_000)
        .collect();
    let nov_w: Vec<&W> = workshops
        .iter()
        .filter(|w| w.new.occurred_at >= NOV_1 - 9 * 3_600_000)
        .collect();
    check_report(&nov, &nov_v, &nov_w);
    let by_b = json(
        &dir,
        &[
            "report",
            "--json",
            "--today",
            TODAY,
            "--worker",
            "Field phone 2",
        ],
    );
    let b_v: Vec<&V> = visits
        .iter()
        .filter(|v| v.device == "Field phone 2")
        .collect();
    let b_w: Vec<&W> = workshops
        .iter()
        .filter(|w| w.device == "Field phone 2")
        .collect();
    check_report(&by_b, &b_v, &b_w);
    let port = json(
        &dir,
        &["report", "--json", "--today", TODAY, "--area", "Port"],
    );
    let port_v: Vec<&V> = visits
        .iter()
        .filter(|v| v.new.place.area == "Port")
        .collect();
    check_report(&port, &port_v, &[]);

    // The terminal table shows the same figures.
    let table = ok(waymark(&dir, &["report", "--today", TODAY]));
    for needle in [
        "Summary",
        "People reached",
        "36",
        "Visits by type",
        "Attendance by age band",
    ] {
        assert!(table.contains(needle), "{needle} missing from:\n{table}");
    }

    // Lists and search; restricted visits stay hidden unless asked for.
    let listed = json(&dir, &["visits", "--json", "--area", "South"]);
    assert_eq!(listed["visits"].as_array().unwrap().len(), 1);
    assert_eq!(listed["restricted_hidden"], 1);
    let found = json(
        &dir,
        &[
            "visits",
            "--json",
            "--search",
            "Port station",
            "--include-restricted",
        ],
    );
    assert_eq!(found["visits"].as_array().unwrap().len(), 2);
    let shops = json(&dir, &["workshops", "--json", "--topic", "safe_migration"]);
    let attendance: i64 = shops["workshops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["attendance"].as_i64().unwrap())
        .sum();
    assert_eq!(attendance, 2 + 12 + 4);

    // Exports leave the restricted visit out.
    let csv_dir = cli.path().join("csv");
    let exported = ok(waymark(
        &dir,
        &["export", "--csv", csv_dir.to_str().unwrap()],
    ));
    assert!(
        exported.contains("exported 6 visits and 3 workshops"),
        "{exported}"
    );
    assert!(
        exported.contains("1 restricted records left out"),
        "{exported}"
    );
    let visits_csv = std::fs::read_to_string(csv_dir.join("visits.csv")).unwrap();
    assert_eq!(visits_csv.lines().count(), 1 + 6);
    assert!(!visits_csv.contains("South street_outreach"));
    let xlsx = cli.path().join("team.xlsx");
    ok(waymark(&dir, &["export", "--xlsx", xlsx.to_str().unwrap()]));
    assert_eq!(&std::fs::read(&xlsx).unwrap()[..2], b"PK");

    // The HTML report renders in a browser with its charts and no console error.
    let html = cli.path().join("report.html");
    ok(waymark(
        &dir,
        &["report", "--today", TODAY, "--html", html.to_str().unwrap()],
    ));
    check_in_chromium(&html);
}

#[test]
fn a_wrong_passphrase_is_refused_without_echoing_it() {
    let cli = tempfile::tempdir().unwrap();
    let dir = cli.path().join("store");
    // A store made by joining a local (serverless) workspace's invite.
    let (_a_dir, a) = phone("Coordinator phone");
    let ws = a.create_workspace("Team").unwrap().id;
    ok(waymark(
        &dir,
        &["join", &a.create_invite(&ws, 3600).unwrap()],
    ));
    let out = Command::new(WAYMARK)
        .arg("--data-dir")
        .arg(&dir)
        .args(["report"])
        .env("WAYMARK_PASSPHRASE", "not the passphrase at all")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(!err.contains("not the passphrase"), "{err}");
    // Without a store, commands say how to make one instead of creating it.
    let none = waymark(&cli.path().join("nothing"), &["report"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("waymark join"));
    assert!(!cli.path().join("nothing").exists());
}

#[cfg(unix)]
#[test]
fn exports_and_reports_are_private_and_never_replace_a_file_or_follow_a_symlink_unasked() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let cli = tempfile::tempdir().unwrap();
    let dir = cli.path().join("store");
    let (_a_dir, a) = phone("Coordinator phone");
    let ws = a.create_workspace("Team").unwrap().id;
    ok(waymark(
        &dir,
        &["join", &a.create_invite(&ws, 3600).unwrap()],
    ));
    assert_eq!(mode(&dir), 0o700);
    for file in ["waymark.db", "waymark.salt"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }

    let out = cli.path().join("out");
    let csv = out.join("csv");
    let xlsx = out.join("team.xlsx");
    let html = out.join("report.html");
    let (csv_arg, xlsx_arg, html_arg) = (
        csv.to_str().unwrap(),
        xlsx.to_str().unwrap(),
        html.to_str().unwrap(),
    );
    let exports: [&[&str]; 3] = [
        &["export", "--csv", csv_arg],
        &["export", "--xlsx", xlsx_arg],
        &["report", "--html", html_arg],
    ];
    for args in exports {
        ok(waymark(&dir, args));
    }
    let csv_files: Vec<PathBuf> = std::fs::read_dir(&csv)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(csv_files.len() >= 3, "{csv_files:?}");
    assert_eq!(mode(&csv), 0o700);
    for file in csv_files.iter().chain([&xlsx, &html]) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // Again: refused, nothing replaced (not even part of the CSV files).
    let visits = csv.join("visits.csv");
    std::fs::write(&visits, b"edited by hand").unwrap();
    std::fs::write(&html, b"kept").unwrap();
    for args in exports {
        let again = waymark(&dir, args);
        assert!(!again.status.success(), "{args:?} replaced a file");
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(err.contains("--force"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&visits).unwrap(), b"edited by hand");
    assert_eq!(std::fs::read(&html).unwrap(), b"kept");

    // With --force: replaced, and private even if the old file was not.
    std::fs::set_permissions(&html, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(waymark(&dir, &["report", "--html", html_arg, "--force"]));
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    assert_eq!(mode(&html), 0o600);
    ok(waymark(&dir, &["export", "--csv", csv_arg, "--force"]));
    assert_ne!(std::fs::read(&visits).unwrap(), b"edited by hand");

    // A symbolic link is never written through, --force or not: not as a file, not as the CSV
    // directory, not inside it.
    let victim = cli.path().join("victim");
    std::fs::write(&victim, b"someone else's file").unwrap();
    let linked_file = out.join("linked.html");
    symlink(&victim, &linked_file).unwrap();
    let linked_dir = out.join("linked-csv");
    symlink(cli.path(), &linked_dir).unwrap();
    std::fs::remove_file(&visits).unwrap();
    symlink(&victim, &visits).unwrap();
    let linked_xlsx = out.join("linked.xlsx");
    symlink(&victim, &linked_xlsx).unwrap();
    for args in [
        vec!["report", "--html", linked_file.to_str().unwrap()],
        vec!["export", "--xlsx", linked_xlsx.to_str().unwrap()],
        vec!["export", "--csv", linked_dir.to_str().unwrap()],
        vec!["export", "--csv", csv_arg],
    ] {
        for force in [false, true] {
            let mut args = args.clone();
            if force {
                args.push("--force");
            }
            let refused = waymark(&dir, &args);
            assert!(!refused.status.success(), "{args:?} wrote through a link");
            let err = String::from_utf8_lossy(&refused.stderr);
            assert!(err.contains("symbolic link"), "{args:?}: {err}");
        }
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"someone else's file");
    assert!(!cli.path().join("visits.csv").exists());
    // No plain-text copy is left behind in the store's directory.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".export"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A coordinator at a laptop erases a record and redacts a name out of another's history: the
/// field phone, after its sync, holds neither (its search finds nothing; the record's history
/// starts at the rewrite), and neither does the laptop's own store.
#[test]
fn a_coordinator_erases_and_redacts_from_the_command_line() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let (_dir, phone) = phone("Field phone");
    let ws = phone
        .create_workspace("North district outreach")
        .unwrap()
        .id;
    phone.connect_workspace(&ws, &server.url, &token).unwrap();
    phone.sync().unwrap();
    let at = 1_793_523_600_000;
    let new = |notes: &str| NewVisit {
        place: Place {
            name: "Bus station".into(),
            area: "North".into(),
            coordinates: None,
        },
        occurred_at: at,
        visit_type: "street_outreach".into(),
        notes: notes.into(),
        ..Default::default()
    };
    let typed = phone
        .create_visit(&ws, &new("Met Zainab Okonkwo at gate 3"))
        .unwrap();
    let doomed = phone.create_visit(&ws, &new("Halima's address")).unwrap();
    phone.sync().unwrap();

    let (_cli, dir) = laptop_coordinator(&phone, &ws);
    json(&dir, &["sync", "--json"]);
    let found = |word: &str| {
        json(&dir, &["visits", "--search", word, "--json"])["visits"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        (found("Zainab"), found("Halima")),
        (1, 1),
        "the laptop has both"
    );
    let on_pages = || {
        let salt = std::fs::read_to_string(dir.join("waymark.salt")).unwrap();
        let salt: Vec<u8> = (0..salt.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&salt.trim()[i..i + 2], 16).unwrap())
            .collect();
        let mut key = [0u8; 32];
        argon2::Argon2::default()
            .hash_password_into(PASSPHRASE.as_bytes(), &salt, &mut key)
            .unwrap();
        waymark_e2e::pages::plaintext(&dir.join("waymark.db"), &key).unwrap()
    };
    assert!(
        on_pages().windows(6).any(|w| w == b"Zainab"),
        "the scan sees the name where it is"
    );
    phone
        .set_visit_notes(&typed, "Met a young woman at gate 3")
        .unwrap();
    phone.sync().unwrap();
    json(&dir, &["sync", "--json"]);

    ok(waymark(&dir, &["redact", &typed, "--field", "notes"]));
    ok(waymark(&dir, &["erase", &doomed]));
    json(&dir, &["sync", "--json"]);
    phone.sync().unwrap();

    // The laptop's store file, every page and the write-ahead log decrypted with the key the
    // passphrase gives: not a trace either.
    let pages = on_pages();
    for word in ["Zainab", "Halima"] {
        assert!(phone.search(word, 10).unwrap().is_empty(), "{word}");
        assert_eq!(found(word), 0, "{word}");
        assert!(
            !pages.windows(word.len()).any(|w| w == word.as_bytes()),
            "{word}"
        );
    }
    assert_eq!(phone.history(&typed).unwrap().len(), 1);
    assert!(phone.get_visit(&doomed).unwrap().deleted);
    // A field records do not have is refused, saying which.
    let out = waymark(&dir, &["redact", &typed, "--field", "password"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("field"));
}

#[test]
fn a_coordinator_lists_the_teams_check_ins() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let (_dir, phone) = phone("Amina");
    let ws = phone.create_workspace("North district").unwrap().id;
    phone.connect_workspace(&ws, &server.url, &token).unwrap();
    phone.sync().unwrap();
    let (_cli, dir) = laptop_coordinator(&phone, &ws);
    assert_eq!(json(&dir, &["checkins", "--json"]), serde_json::json!([]));

    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let out = phone
        .start_check_in(
            &ws,
            in_an_hour,
            &CheckInDetails {
                place: "Brick kiln, east gate".into(),
                with_whom: "Joseph".into(),
                note: String::new(),
            },
        )
        .unwrap();
    let back = phone
        .start_check_in(&ws, in_an_hour, &CheckInDetails::default())
        .unwrap();
    phone.close_check_in(&back.id, None).unwrap();
    json(&dir, &["sync", "--json"]);
    let listed = json(&dir, &["checkins", "--json"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["id"], out.id.as_str(), "the open one first");
    assert_eq!(listed[0]["state"], "open");
    assert_eq!(listed[0]["device_name"], "Amina");
    assert_eq!(listed[0]["place"], "Brick kiln, east gate");
    assert_eq!(listed[1]["state"], "closed");
    let table = ok(waymark(&dir, &["checkins"]));
    assert!(
        table.contains("Brick kiln, east gate") && table.contains("Amina"),
        "{table}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    let cli = tempfile::tempdir().unwrap();
    let dir = cli.path().join("store");
    let (_a_dir, a) = phone("Coordinator phone");
    let ws = a.create_workspace("Team").unwrap().id;
    ok(waymark(
        &dir,
        &["join", &a.create_invite(&ws, 3600).unwrap()],
    ));
    // `waymark report | head`: the reader is gone before the report is written.
    let mut child = Command::new(WAYMARK)
        .arg("--data-dir")
        .arg(&dir)
        .arg("report")
        .env("WAYMARK_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    for cmd in [
        vec!["--help"],
        vec!["join", "--help"],
        vec!["sync", "--help"],
        vec!["visits", "--help"],
        vec!["workshops", "--help"],
        vec!["report", "--help"],
        vec!["export", "--help"],
        vec!["erase", "--help"],
        vec!["redact", "--help"],
        vec!["checkins", "--help"],
        vec!["dashboard", "--help"],
    ] {
        let out = Command::new(WAYMARK).args(&cmd).output().unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: waymark"), "{cmd:?}: {text}");
    }
}

/// Opens the page in headless Chromium: a screenshot (kept beside the page), the rendered DOM
/// with its SVG charts, and no console message of any kind.
fn check_in_chromium(page: &Path) {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (scripts/install-deps installs it)");
    let text = std::fs::read_to_string(page).unwrap();
    // Self-contained: nothing is fetched (the only URL is the SVG namespace).
    for bad in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!text.contains(bad), "the page contains {bad}");
    }
    assert_eq!(
        text.matches("http").count(),
        text.matches("http://www.w3.org/2000/svg").count()
    );
    let url = format!("file://{}", page.display());
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args([
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1100,2600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "chromium failed");
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
        assert!(console.is_empty(), "console messages: {console:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let shot = page.with_extension("png");
    run(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "a screenshot of charts is not {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("WAYMARK_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let dom = run(&["--dump-dom"]);
    assert_eq!(
        dom.matches("class=\"chart line-chart\"").count(),
        2,
        "line charts"
    );
    assert_eq!(
        dom.matches("class=\"chart bar-chart\"").count(),
        9,
        "bar charts"
    );
    assert_eq!(dom.matches("<polyline class=\"series\"").count(), 4);
    // One bar per key: visits by type has 4, by area 3, ...
    assert!(dom.matches("<rect class=\"bar\"").count() > 25);
    assert!(dom.contains("<title>Waymark report</title>"));
}

#[test]
fn a_coordinator_sets_up_the_tip_page_reads_tips_replies_and_exports_them_on_request() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let (_dir, phone) = phone("Coordinator phone");
    let ws = phone.create_workspace("North district").unwrap().id;
    phone.connect_workspace(&ws, &server.url, &token).unwrap();
    phone.sync().unwrap();
    let (_cli, dir) = laptop_coordinator(&phone, &ws);
    // Until it has synced since it was admitted, it holds no coordinators' key to publish with.
    assert!(!waymark(&dir, &["tip-page"]).status.success());
    json(&dir, &["sync", "--json"]);

    let page = json(&dir, &["tip-page", "--json"]);
    assert_eq!(page["published"], false);
    let url = page["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/t/", server.url)), "{url}");
    json(&dir, &["sync", "--json"]);
    let page = json(&dir, &["tip-page", "--json"]);
    assert_eq!(
        (page["published"].as_bool(), page["url"].as_str()),
        (Some(true), Some(url.as_str()))
    );
    let shown = ok(waymark(&dir, &["tip-page"]));
    assert!(
        shown.contains(page["fingerprint"].as_str().unwrap()),
        "{shown}"
    );
    // The other coordinator's phone learns the page the laptop signed.
    phone.sync().unwrap();
    assert_eq!(phone.tip_page(&ws).unwrap().unwrap().url, url);

    let what = "Workers sleep locked inside the Lotus brick kiln";
    let code = send_tip(
        &url,
        &TipFields {
            what: what.into(),
            place: "East road".into(),
            ..Default::default()
        },
    )
    .unwrap();
    json(&dir, &["sync", "--json"]);
    let tips = json(&dir, &["tips", "--json"]);
    let tips = tips.as_array().unwrap();
    assert_eq!(tips.len(), 1, "{tips:?}");
    assert_eq!(
        (tips[0]["what"].as_str(), tips[0]["where"].as_str()),
        (Some(what), Some("East road"))
    );
    assert!(ok(waymark(&dir, &["tips"])).contains("Lotus brick kiln"));

    let id = tips[0]["id"].as_str().unwrap();
    ok(waymark(
        &dir,
        &["tip-reply", id, "Thank you, we will go and look."],
    ));
    json(&dir, &["sync", "--json"]);
    let answers = read_tip_replies(&url, &code).unwrap();
    assert_eq!(answers[0].text, "Thank you, we will go and look.");

    let plain = dir.join("plain");
    ok(waymark(
        &dir,
        &[
            "export",
            "--csv",
            plain.to_str().unwrap(),
            "--include-restricted",
        ],
    ));
    assert!(!plain.join("tips.csv").exists(), "tips only on request");
    let asked = dir.join("asked");
    ok(waymark(
        &dir,
        &["export", "--csv", asked.to_str().unwrap(), "--include-tips"],
    ));
    let csv = std::fs::read_to_string(asked.join("tips.csv")).unwrap();
    assert!(
        csv.contains(what) && csv.contains("Thank you, we will go and look."),
        "{csv}"
    );
}
