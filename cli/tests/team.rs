//! The CLI runs a team, against a real `waymark-server` process, phones made with
//! `waymark-core` and the real `waymark` binary: it creates and connects a workspace, invites
//! phones and coordinators (the code as text and as a QR code), admits a join after comparing
//! its confirmation code, changes roles, renames the workspace, lists and revokes devices;
//! resolves a conflict two phones made; edits a taxonomy and reports and exports in Spanish
//! (labels, headers and titles); and carries changes on a "memory card".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;
use waymark_core::*;

/// 2026-11-01T09:00:00Z in ms.
const NOV_1: i64 = 1_793_523_600_000;

/// A CLI store that created the workspace on `server` with the operator's `token`: the folder
/// that holds it, the store's directory and the workspace's id.
fn coordinator_laptop(server: &Server, token: &str) -> (tempfile::TempDir, PathBuf, String) {
    let cli = tempfile::tempdir().unwrap();
    let dir = cli.path().join("store");
    let out = ok(waymark(
        &dir,
        &[
            "create-workspace",
            "--name",
            "North district outreach",
            "--server",
            &server.url,
            "--token",
            token,
            "--device-name",
            "Coordinator laptop",
        ],
    ));
    assert!(
        out.contains("created workspace North district outreach"),
        "{out}"
    );
    let ws = json(&dir, &["workspaces", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (cli, dir, ws)
}

/// The invite code the CLI printed, and whether it drew a QR code under it.
fn invite(dir: &Path, args: &[&str]) -> (String, bool) {
    let mut all = vec!["invite"];
    all.extend_from_slice(args);
    let out = ok(waymark(dir, &all));
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .expect("the invite code on a line of its own")
        .trim()
        .to_string();
    let qr_rows = out
        .lines()
        .filter(|l| l.chars().count() > 20 && l.chars().all(|c| " ▀▄█".contains(c)))
        .count();
    (code, qr_rows > 10)
}

/// A phone that joined with `code` and synced.
fn joined(name: &str, code: &str) -> (tempfile::TempDir, Store) {
    let (d, p) = phone(name);
    p.join(code).unwrap();
    p.sync().unwrap();
    (d, p)
}

fn this_device(store: &Store, ws: &str) -> String {
    store
        .team(ws)
        .unwrap()
        .into_iter()
        .find(|m| m.is_this_device)
        .unwrap()
        .device_id
}

fn visit(place: &str, people: u32, indicators: &[&str]) -> NewVisit {
    NewVisit {
        place: Place {
            name: place.into(),
            area: "North".into(),
            coordinates: None,
        },
        occurred_at: NOV_1,
        visit_type: "street_outreach".into(),
        people_reached: people,
        indicators: indicators.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn failure(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    err
}

#[test]
fn a_coordinator_sets_up_the_team_invites_approves_and_revokes_from_the_cli() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let (_cli, dir, ws) = coordinator_laptop(&server, &token);

    // A member's phone joins with the code, read as text; the QR code is drawn too.
    let (code, drawn) = invite(&dir, &["--ttl", "1h"]);
    assert!(drawn, "a QR code under the invite code");
    let (_a, amina) = joined("Amina's phone", &code);
    json(&dir, &["sync", "--json"]);
    amina.sync().unwrap();
    let recorded = amina
        .create_visit(&ws, &visit("Bus station", 4, &[]))
        .unwrap();
    amina.sync().unwrap();

    // A second coordinator, who can then invite a coordinator in turn.
    let (code, _) = invite(&dir, &["--role", "coordinator"]);
    let (_b, bilal) = joined("Bilal's phone", &code);
    json(&dir, &["sync", "--json"]);
    bilal.sync().unwrap();
    assert!(
        bilal
            .create_invite_with_role(&ws, 3600, "coordinator")
            .is_ok()
    );

    // An approval invite: the phone waits until the code it shows is confirmed here.
    let approval = json(&dir, &["invite", "--approval", "--ttl", "30m", "--json"]);
    assert_eq!(approval["approval"], true);
    let (_c, chen) = joined("Chen's phone", approval["code"].as_str().unwrap());
    let chen_id = this_device(&chen, &ws);
    let waiting = json(&dir, &["joins", "--json"]);
    let join = waiting
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["device_id"] == chen_id.as_str())
        .expect("Chen's phone waits");
    assert_eq!(join["name"], "Chen's phone");
    let shown = chen.verification_code(&ws).unwrap();
    assert_eq!(join["confirmation_code"], shown.as_str());
    assert!(get_visit_fails(&chen, &recorded), "no keys before approval");
    let wrong = if shown.starts_with('0') { "1" } else { "0" }.to_string() + &shown[1..];
    let err = failure(waymark(&dir, &["approve", &chen_id, "--code", &wrong]));
    assert!(err.contains("does not match"), "{err}");
    // Typed as it is shown, or without its spaces.
    ok(waymark(
        &dir,
        &["approve", &chen_id, "--code", &shown.replace(' ', "")],
    ));
    chen.sync().unwrap();
    assert_eq!(chen.get_visit(&recorded).unwrap().people_reached, 4);

    // The team: everyone, with their roles.
    let team = json(&dir, &["team", "--json"]);
    let role = |name: &str| -> Value {
        team.as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {team}"))["role"]
            .clone()
    };
    assert_eq!(role("Coordinator laptop"), "coordinator");
    assert_eq!(role("Amina's phone"), "member");
    assert_eq!(role("Bilal's phone"), "coordinator");
    assert_eq!(role("Chen's phone"), "member");
    assert!(
        team.as_array()
            .unwrap()
            .iter()
            .all(|m| m["verified"] == true && m["revoked"] == false)
    );
    // Amina synced before the laptop last did: the server's listing says when.
    let amina_entry = team
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Amina's phone")
        .unwrap();
    assert!(
        amina_entry["last_sync_at"].as_i64().is_some(),
        "{amina_entry}"
    );
    let table = ok(waymark(&dir, &["team"]));
    assert!(table.contains("Chen's phone") && table.contains("admitted"));
    assert!(table.contains("last sync"));

    // Chen is made a coordinator: the role is in the team log, so Chen's phone now gets the
    // restricted key and opens a restricted visit it could not read as a member.
    let restricted = bilal
        .create_visit(
            &ws,
            &NewVisit {
                sensitivity: Sensitivity::Restricted,
                ..visit("Safe house", 1, &[])
            },
        )
        .unwrap();
    bilal.sync().unwrap();
    chen.sync().unwrap();
    assert!(
        get_visit_fails(&chen, &restricted),
        "a member cannot open it"
    );
    let said = ok(waymark(&dir, &["set-role", &chen_id, "coordinator"]));
    assert!(said.contains("is now a coordinator"), "{said}");
    chen.sync().unwrap();
    assert_eq!(
        chen.get_visit(&restricted).unwrap().place.name,
        "Safe house"
    );
    // A role that does not exist is a usage error, refused before anything is sent.
    let out = waymark(&dir, &["set-role", &chen_id, "owner"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'owner'"));
    // And back to member: the restricted key rotates at once.
    let said = ok(waymark(&dir, &["set-role", &chen_id, "member"]));
    assert!(said.contains("rotated"), "{said}");
    let team = json(&dir, &["team", "--json"]);
    assert!(
        team.as_array()
            .unwrap()
            .iter()
            .any(|m| m["device_id"] == chen_id.as_str() && m["role"] == "member"),
        "{team}"
    );

    // The workspace gets its team's name, on every phone after a sync.
    ok(waymark(&dir, &["rename-workspace", "Northern outreach"]));
    json(&dir, &["sync", "--json"]);
    chen.sync().unwrap();
    let names: Vec<String> = chen
        .workspaces()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["Northern outreach"]);

    // Amina's phone is lost: revoked, its next sync fails.
    let amina_id = this_device(&amina, &ws);
    ok(waymark(&dir, &["revoke", &amina_id]));
    assert!(matches!(amina.sync(), Err(Error::DeviceRevoked)));
    let team = json(&dir, &["team", "--json"]);
    assert!(
        team.as_array()
            .unwrap()
            .iter()
            .any(|m| m["device_id"] == amina_id.as_str() && m["revoked"] == true)
    );
    let err = failure(waymark(&dir, &["revoke", "no-such-device"]));
    assert!(err.contains("no device"), "{err}");
}

fn get_visit_fails(store: &Store, id: &str) -> bool {
    store.get_visit(id).is_err()
}

#[test]
fn two_phones_conflict_and_the_cli_resolves_it() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let (_cli, dir, ws) = coordinator_laptop(&server, &token);
    let (code, _) = invite(&dir, &[]);
    let (_a, amina) = joined("Amina's phone", &code);
    let (code, _) = invite(&dir, &[]);
    let (_b, bilal) = joined("Bilal's phone", &code);
    json(&dir, &["sync", "--json"]);
    amina.sync().unwrap();
    bilal.sync().unwrap();

    let id = amina
        .create_visit(&ws, &visit("Bus station", 4, &[]))
        .unwrap();
    amina.sync().unwrap();
    bilal.sync().unwrap();
    // Both edit the same field offline.
    amina
        .update_visit(&id, &[VisitEdit::PeopleReached(7)])
        .unwrap();
    bilal
        .update_visit(&id, &[VisitEdit::PeopleReached(9)])
        .unwrap();
    amina.sync().unwrap();
    bilal.sync().unwrap();
    json(&dir, &["sync", "--json"]);

    let listed = json(&dir, &["conflicts", "--json"]);
    let record = &listed.as_array().unwrap()[0];
    assert_eq!(record["id"], id.as_str());
    let conflict = record["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "people_reached")
        .expect("the people_reached conflict");
    let values = conflict["values"].as_array().unwrap();
    let by = |n: i64| {
        values
            .iter()
            .find(|v| v["value"] == n)
            .unwrap_or_else(|| panic!("{n} in {values:?}"))
    };
    assert_eq!(by(7)["author"], "Amina's phone");
    assert_eq!(by(9)["author"], "Bilal's phone");
    let table = ok(waymark(&dir, &["conflicts"]));
    assert!(table.contains("people_reached") && table.contains("Bilal's phone"));

    // Keep Amina's 7, by its number in the list.
    let pick = by(7)["index"].to_string();
    let err = failure(waymark(
        &dir,
        &["resolve", &id, "people_reached", "--pick", "5"],
    ));
    assert!(err.contains("pick one"), "{err}");
    ok(waymark(
        &dir,
        &["resolve", &id, "people_reached", "--pick", &pick],
    ));
    json(&dir, &["sync", "--json"]);
    bilal.sync().unwrap();
    assert!(bilal.conflicts(&id).unwrap().is_empty());
    assert_eq!(bilal.get_visit(&id).unwrap().people_reached, 7);
    assert_eq!(json(&dir, &["conflicts", "--json"]), Value::Array(vec![]));

    let history = json(&dir, &["history", &id, "--json"]);
    let authors: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["author"].as_str().unwrap())
        .collect();
    assert!(authors.contains(&"Amina's phone"), "{authors:?}");
    assert!(authors.contains(&"Bilal's phone"), "{authors:?}");
    assert!(authors.contains(&"Coordinator laptop"), "{authors:?}");
}

#[test]
fn labels_in_spanish_and_changes_on_a_memory_card() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());
    let (cli, dir, ws) = coordinator_laptop(&server, &token);
    let (code, _) = invite(&dir, &[]);
    let (_a, amina) = joined("Amina's phone", &code);
    let (code, _) = invite(&dir, &[]);
    let (_b, bilal) = joined("Bilal's phone", &code);

    // A new risk indicator, labelled in English, then translated.
    ok(waymark(
        &dir,
        &[
            "taxonomy",
            "add",
            "risk_indicators",
            "forced_marriage",
            "--label",
            "en=Forced marriage",
        ],
    ));
    ok(waymark(
        &dir,
        &[
            "taxonomy",
            "label",
            "risk_indicators",
            "forced_marriage",
            "es",
            "Matrimonio forzado",
        ],
    ));
    let listed = json(&dir, &["taxonomy", "list", "risk_indicators", "--json"]);
    let entry = listed[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "forced_marriage")
        .unwrap()
        .clone();
    assert_eq!(entry["labels"]["es"], "Matrimonio forzado");
    let err = failure(waymark(
        &dir,
        &["taxonomy", "add", "colours", "red", "--label", "en=Red"],
    ));
    assert!(err.contains("no taxonomy colours"), "{err}");
    json(&dir, &["sync", "--json"]);
    amina.sync().unwrap();
    bilal.sync().unwrap();

    // Amina records a visit with it, offline, and hands her changes over on a card.
    let id = amina
        .create_visit(&ws, &visit("Wedding hall", 2, &["forced_marriage"]))
        .unwrap();
    let card = cli.path().join("card");
    std::fs::create_dir(&card).unwrap();
    let from_phone = card.join("amina.waymark");
    std::fs::write(&from_phone, amina.export_changes(None).unwrap()).unwrap();
    let imported = json(
        &dir,
        &["import-changes", from_phone.to_str().unwrap(), "--json"],
    );
    assert!(
        imported["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == id.as_str()),
        "{imported}"
    );

    // The report in Spanish: the workspace's label, not the key.
    let report = json(&dir, &["report", "--lang", "es", "--json"]);
    assert_eq!(report["visits"]["indicators"]["Matrimonio forzado"], 1);
    assert_eq!(report["visits"]["by_type"]["Alcance en la calle"], 1);
    let table = ok(waymark(&dir, &["report", "--lang", "es"]));
    assert!(table.contains("Matrimonio forzado"), "{table}");
    // Headers and titles too, in the terminal, the HTML page and the exports.
    for words in [
        "Resumen",
        "Cifra",
        "Personas alcanzadas",
        "Indicadores de riesgo observados",
    ] {
        assert!(table.contains(words), "{words} in {table}");
    }
    assert!(!table.contains("people_reached"), "{table}");
    let keys = json(&dir, &["report", "--json"]);
    assert_eq!(keys["visits"]["indicators"]["forced_marriage"], 1);
    let html = cli.path().join("report.html");
    ok(waymark(
        &dir,
        &["report", "--lang", "es", "--html", html.to_str().unwrap()],
    ));
    let page = std::fs::read_to_string(&html).unwrap();
    for words in [
        "Matrimonio forzado",
        "<html lang=\"es\">",
        "Informe de terreno y sensibilización",
        "Visitas por tipo",
    ] {
        assert!(page.contains(words), "{words}");
    }
    assert!(!page.contains("Visits by type"));
    let csv = cli.path().join("csv");
    ok(waymark(
        &dir,
        &["export", "--lang", "es", "--csv", csv.to_str().unwrap()],
    ));
    let visits = std::fs::read_to_string(csv.join("visits.csv")).unwrap();
    assert!(visits.contains("Matrimonio forzado"), "{visits}");
    let header = visits.lines().next().unwrap();
    assert!(
        header.starts_with("Id,Fecha,Lugar,Zona,Tipo de visita,Personas alcanzadas"),
        "{header}"
    );
    let xlsx = cli.path().join("export.xlsx");
    ok(waymark(
        &dir,
        &["export", "--lang", "es", "--xlsx", xlsx.to_str().unwrap()],
    ));
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
    use calamine::Reader;
    let sheets = book.sheet_names();
    for name in [
        "Visitas",
        "Derivaciones",
        "Talleres",
        "Resumen",
        "Visitas por tipo",
    ] {
        assert!(sheets.iter().any(|s| s == name), "{name} in {sheets:?}");
    }
    let visits = book.worksheet_range("Visitas").unwrap();
    let rows: Vec<Vec<String>> = visits
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][..3], ["Id", "Fecha", "Lugar"]);
    assert!(
        rows.iter()
            .any(|r| r.iter().any(|c| c == "Matrimonio forzado")),
        "{rows:?}"
    );
    let err = failure(waymark(&dir, &["report", "--lang", "xx"]));
    assert!(err.contains("no label in language"), "{err}");

    // The laptop carries everything it holds to Bilal's phone, which never saw the visit.
    let to_phone = card.join("laptop.waymark");
    ok(waymark(
        &dir,
        &["export-changes", to_phone.to_str().unwrap()],
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&to_phone).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = failure(waymark(
        &dir,
        &["export-changes", to_phone.to_str().unwrap()],
    ));
    assert!(err.contains("exists") || err.contains("force"), "{err}");
    assert!(bilal.get_visit(&id).is_err());
    bilal
        .import_changes(&std::fs::read(&to_phone).unwrap())
        .unwrap();
    assert_eq!(bilal.get_visit(&id).unwrap().place.name, "Wedding hall");
}

#[test]
fn every_team_command_has_help() {
    for cmd in [
        "create-workspace",
        "invite",
        "joins",
        "approve",
        "team",
        "revoke",
        "set-role",
        "rename-workspace",
        "conflicts",
        "resolve",
        "history",
        "taxonomy",
        "export-changes",
        "import-changes",
    ] {
        let out = std::process::Command::new(WAYMARK)
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: waymark"), "{cmd}: {text}");
    }
    for sub in ["list", "add", "label", "archive"] {
        let out = std::process::Command::new(WAYMARK)
            .args(["taxonomy", sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "taxonomy {sub}");
    }
}
