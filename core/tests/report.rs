//! Reports and exports as a coordinator uses them: the team's merged records (two devices,
//! several months, deleted and restricted records, withdrawn attendees, anonymous tallies)
//! turned into figures, and every figure checked against one computed here, in plain Rust,
//! from the records the test itself created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use waymark_core::*;

const AREAS: &[&str] = &["North", "South", "Port"];
const TYPES: &[&str] = &["street_outreach", "worksite_visit", "transit_point"];
const INDICATORS: &[&str] = &["deception", "debt_bondage", "isolation", "minor_present"];
const KINDS: &[&str] = &["shelter", "legal_aid", "medical"];
const STATUSES: &[ReferralStatus] = &[
    ReferralStatus::Suggested,
    ReferralStatus::Made,
    ReferralStatus::Completed,
];
const TOPICS: &[&str] = &["safe_migration", "online_safety"];
const AUDIENCES: &[&str] = &["students", "parents"];
const BANDS: &[&str] = &["12_17", "18_24", "25_59"];
const GENDERS: &[&str] = &["female", "male"];

/// What the test knows about a visit it created, to compute figures without SQL.
#[derive(Clone)]
struct V {
    at: i64,
    area: String,
    actor: String,
    new: NewVisit,
    deleted: bool,
}

/// What the test knows about a workshop it created.
#[derive(Clone)]
struct W {
    at: i64,
    area: String,
    topic: String,
    audience: String,
    actor: String,
    /// (age band, gender) of named attendees still counted.
    named: Vec<(Option<String>, Option<String>)>,
    /// (age band, gender, count) tallied.
    tallies: Vec<(String, String, i64)>,
    scores: Vec<u8>,
    deleted: bool,
    restricted: bool,
}

fn month_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

fn count(map: &mut BTreeMap<String, i64>, key: &str, n: i64) {
    *map.entry(key.to_string()).or_default() += n;
}

fn as_map(c: &[Count]) -> BTreeMap<String, i64> {
    c.iter().map(|c| (c.key.clone(), c.count)).collect()
}

/// Visit figures computed from the test's own records.
fn expected_visits(vs: &[&V], today: &str) -> VisitFigures {
    let mut f = VisitFigures::default();
    let (mut ty, mut area, mut ind, mut kind, mut status) = Default::default();
    for v in vs.iter().filter(|v| !v.deleted) {
        f.visits += 1;
        f.people_reached += i64::from(v.new.people_reached);
        count(&mut ty, &v.new.visit_type, 1);
        count(&mut area, &v.area, 1);
        for i in &v.new.indicators {
            count(&mut ind, i, 1);
        }
        for r in &v.new.referrals {
            f.referrals += 1;
            count(&mut kind, &r.kind, 1);
            let s = match r.status {
                ReferralStatus::Suggested => "suggested",
                ReferralStatus::Made => "made",
                ReferralStatus::Accepted => "accepted",
                ReferralStatus::Completed => "completed",
                ReferralStatus::Declined => "declined",
            };
            count(&mut status, s, 1);
        }
        let fu = &v.new.follow_up;
        if fu.needed && !fu.done {
            f.follow_ups_due += 1;
            if fu.due.as_deref().is_some_and(|d| d < today) {
                f.follow_ups_overdue += 1;
            }
        }
    }
    let list = |m: BTreeMap<String, i64>| {
        m.into_iter()
            .map(|(key, count)| Count { key, count })
            .collect()
    };
    f.by_type = list(ty);
    f.by_area = list(area);
    f.indicators = list(ind);
    f.referrals_by_kind = list(kind);
    f.referrals_by_status = list(status);
    f
}

/// Workshop figures computed from the test's own records.
fn expected_workshops(ws: &[&W]) -> WorkshopFigures {
    let mut f = WorkshopFigures::default();
    let (mut topic, mut aud, mut age, mut gender) = Default::default();
    let mut score_sum = 0i64;
    for w in ws.iter().filter(|w| !w.deleted) {
        f.workshops += 1;
        count(&mut topic, &w.topic, 1);
        count(&mut aud, &w.audience, 1);
        for (a, g) in &w.named {
            f.named += 1;
            count(&mut age, a.as_deref().unwrap_or("unknown"), 1);
            count(&mut gender, g.as_deref().unwrap_or("not_recorded"), 1);
        }
        for (a, g, n) in &w.tallies {
            f.anonymous += n;
            count(&mut age, a, *n);
            count(&mut gender, g, *n);
        }
        f.feedback_count += w.scores.len() as i64;
        score_sum += w.scores.iter().map(|s| i64::from(*s)).sum::<i64>();
    }
    f.attendance = f.named + f.anonymous;
    f.feedback_average = (f.feedback_count > 0).then(|| score_sum as f64 / f.feedback_count as f64);
    let list = |m: BTreeMap<String, i64>| {
        m.into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(key, count)| Count { key, count })
            .collect()
    };
    f.by_topic = list(topic);
    f.by_audience = list(aud);
    f.by_age_band = list(age);
    f.by_gender = list(gender);
    f
}

/// Compares figures, breakdowns as maps (the report orders them most first).
fn assert_visits(got: &VisitFigures, want: &VisitFigures, what: &str) {
    assert_eq!(got.visits, want.visits, "{what}: visits");
    assert_eq!(got.people_reached, want.people_reached, "{what}: people");
    assert_eq!(
        as_map(&got.by_type),
        as_map(&want.by_type),
        "{what}: by type"
    );
    assert_eq!(
        as_map(&got.by_area),
        as_map(&want.by_area),
        "{what}: by area"
    );
    assert_eq!(
        as_map(&got.indicators),
        as_map(&want.indicators),
        "{what}: indicators"
    );
    assert_eq!(got.referrals, want.referrals, "{what}: referrals");
    assert_eq!(
        as_map(&got.referrals_by_kind),
        as_map(&want.referrals_by_kind),
        "{what}: referral kinds"
    );
    assert_eq!(
        as_map(&got.referrals_by_status),
        as_map(&want.referrals_by_status),
        "{what}: referral statuses"
    );
    assert_eq!(got.follow_ups_due, want.follow_ups_due, "{what}: due");
    assert_eq!(
        got.follow_ups_overdue, want.follow_ups_overdue,
        "{what}: overdue"
    );
}

fn assert_workshops(got: &WorkshopFigures, want: &WorkshopFigures, what: &str) {
    assert_eq!(got.workshops, want.workshops, "{what}: workshops");
    assert_eq!(
        as_map(&got.by_topic),
        as_map(&want.by_topic),
        "{what}: topics"
    );
    assert_eq!(
        as_map(&got.by_audience),
        as_map(&want.by_audience),
        "{what}: audiences"
    );
    assert_eq!(got.attendance, want.attendance, "{what}: attendance");
    assert_eq!(got.named, want.named, "{what}: named");
    assert_eq!(got.anonymous, want.anonymous, "{what}: anonymous");
    assert_eq!(
        as_map(&got.by_age_band),
        as_map(&want.by_age_band),
        "{what}: age bands"
    );
    assert_eq!(
        as_map(&got.by_gender),
        as_map(&want.by_gender),
        "{what}: genders"
    );
    assert_eq!(got.feedback_count, want.feedback_count, "{what}: feedback");
    match (got.feedback_average, want.feedback_average) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what}: average {a} != {b}"),
        (a, b) => assert_eq!(a, b, "{what}: average"),
    }
}

/// Two devices' records over three months, merged into the first device's store.
struct Team {
    _dirs: (TempStore, TempStore),
    store: Store,
    ws: String,
    visits: Vec<V>,
    workshops: Vec<W>,
    actors: (String, String),
}

fn seed_device(store: &Store, ws: &str, tag: &str, rng: &mut StdRng, n: usize) -> (Vec<V>, Vec<W>) {
    let actor = store.actor();
    let mut visits = Vec::new();
    // Sep 20 to Dec 10, 2026: four calendar months.
    let start = NOV_1 - 42 * DAY;
    for i in 0..n {
        let at = start + rng.random_range(0..80) * DAY + rng.random_range(0..DAY);
        let area = AREAS.choose(rng).unwrap().to_string();
        let mut inds: Vec<String> = INDICATORS
            .iter()
            .filter(|_| rng.random_bool(0.35))
            .map(|s| s.to_string())
            .collect();
        inds.sort();
        let referrals = (0..rng.random_range(0..3))
            .map(|_| NewReferral {
                kind: KINDS.choose(rng).unwrap().to_string(),
                to: "Service".into(),
                status: *STATUSES.choose(rng).unwrap(),
            })
            .collect();
        let needed = rng.random_bool(0.5);
        let follow_up = FollowUp {
            needed,
            due: (needed && rng.random_bool(0.8))
                .then(|| format!("2026-11-{:02}", rng.random_range(1..=28))),
            done: needed && rng.random_bool(0.3),
        };
        let new = NewVisit {
            place: Place {
                name: format!("Place {tag}{i}"),
                area: area.clone(),
                coordinates: None,
            },
            occurred_at: at,
            visit_type: TYPES.choose(rng).unwrap().to_string(),
            people_reached: rng.random_range(0..12),
            indicators: inds,
            referrals,
            follow_up,
            sensitivity: if rng.random_bool(0.2) {
                Sensitivity::Restricted
            } else {
                Sensitivity::Normal
            },
            notes: format!("note {i}"),
            ..Default::default()
        };
        let id = store.create_visit(ws, &new).unwrap();
        let deleted = rng.random_bool(0.1);
        if deleted {
            store.delete_record(&id).unwrap();
        }
        visits.push(V {
            at,
            area,
            actor: actor.clone(),
            new,
            deleted,
        });
    }
    let mut workshops = Vec::new();
    for i in 0..n / 3 {
        let at = start + rng.random_range(0..80) * DAY;
        let topic = TOPICS.choose(rng).unwrap().to_string();
        let audience = AUDIENCES.choose(rng).unwrap().to_string();
        let area = AREAS.choose(rng).unwrap().to_string();
        let restricted = rng.random_bool(0.2);
        let id = store
            .create_workshop(
                ws,
                &NewWorkshop {
                    title: format!("Workshop {i}"),
                    topic: topic.clone(),
                    occurred_at: at,
                    duration_minutes: 60,
                    venue: "Hall".into(),
                    area: area.clone(),
                    audience: audience.clone(),
                    language: "en".into(),
                    sensitivity: if restricted {
                        Sensitivity::Restricted
                    } else {
                        Sensitivity::Normal
                    },
                    ..Default::default()
                },
            )
            .unwrap();
        let mut named = Vec::new();
        for j in 0..rng.random_range(0..5) {
            let band = rng
                .random_bool(0.8)
                .then(|| BANDS.choose(rng).unwrap().to_string());
            let gender = rng
                .random_bool(0.8)
                .then(|| GENDERS.choose(rng).unwrap().to_string());
            let a = store
                .check_in(
                    &id,
                    &NewAttendee {
                        name: format!("Person {j}"),
                        age_band: band.clone(),
                        gender: gender.clone(),
                        ..Default::default()
                    },
                )
                .unwrap();
            if rng.random_bool(0.25) {
                store.withdraw_attendee(&id, &a).unwrap();
            } else {
                named.push((band, gender));
            }
        }
        let mut tallies: BTreeMap<(String, String), i64> = BTreeMap::new();
        for _ in 0..rng.random_range(0..8) {
            let b = BANDS.choose(rng).unwrap().to_string();
            let g = GENDERS.choose(rng).unwrap().to_string();
            store.add_to_tally(&id, &b, &g, 1).unwrap();
            *tallies.entry((b, g)).or_default() += 1;
        }
        let scores: Vec<u8> = (0..rng.random_range(0..4))
            .map(|_| rng.random_range(1..=5))
            .collect();
        for s in &scores {
            store.add_feedback(&id, *s, "useful").unwrap();
        }
        let deleted = rng.random_bool(0.1);
        if deleted {
            store.delete_record(&id).unwrap();
        }
        workshops.push(W {
            at,
            area,
            topic,
            audience,
            actor: actor.clone(),
            named,
            tallies: tallies.into_iter().map(|((b, g), n)| (b, g, n)).collect(),
            scores,
            deleted,
            restricted,
        });
    }
    (visits, workshops)
}

fn team() -> Team {
    let mut rng = StdRng::seed_from_u64(7);
    let (a_dir, a, ws) = store_with_workspace();
    let b_dir = temp_path();
    let b = open(&b_dir.path);
    // The second device joins with an invite and gets the workspace as a bundle of changes,
    // the way two phones with no network exchange them.
    join(&b, &a, &ws);
    b.import_changes(&a.export_changes(None).unwrap()).unwrap();
    let (mut visits, mut workshops) = seed_device(&a, &ws, "A", &mut rng, 60);
    let (v2, w2) = seed_device(&b, &ws, "B", &mut rng, 45);
    visits.extend(v2);
    workshops.extend(w2);
    a.import_changes(&b.export_changes(None).unwrap()).unwrap();
    Team {
        actors: (a.actor(), b.actor()),
        _dirs: (a_dir, b_dir),
        store: a,
        ws,
        visits,
        workshops,
    }
}

#[test]
fn report_figures_match_the_team_records_overall_and_per_month() {
    let t = team();
    let today = "2026-11-15";
    let filter = ReportFilter {
        today: Some(today.into()),
        ..Default::default()
    };
    let r = t.store.report(&filter).unwrap();
    assert_eq!(r.today, today);
    let all_v: Vec<&V> = t.visits.iter().collect();
    let all_w: Vec<&W> = t.workshops.iter().collect();
    assert_visits(&r.visits, &expected_visits(&all_v, today), "all");
    assert_workshops(&r.workshops, &expected_workshops(&all_w), "all");
    assert!(r.visits.visits > 50 && r.workshops.attendance > 20);

    // Every month between the first and the last record, each with its own figures.
    let months: Vec<&str> = r.months.iter().map(|m| m.month.as_str()).collect();
    assert_eq!(months, ["2026-09", "2026-10", "2026-11", "2026-12"]);
    for m in &r.months {
        let vs: Vec<&V> = t
            .visits
            .iter()
            .filter(|v| month_of(v.at) == m.month)
            .collect();
        let ws: Vec<&W> = t
            .workshops
            .iter()
            .filter(|w| month_of(w.at) == m.month)
            .collect();
        assert_visits(&m.visits, &expected_visits(&vs, today), &m.month);
        assert_workshops(&m.workshops, &expected_workshops(&ws), &m.month);
    }
    // Breakdowns come most first.
    let counts: Vec<i64> = r.visits.by_area.iter().map(|c| c.count).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
}

#[test]
fn report_filters_by_period_area_topic_and_worker() {
    let t = team();
    let today = "2026-11-15";
    // October only, in the Port area.
    let oct = ReportFilter {
        workspace_id: Some(t.ws.clone()),
        from: Some(NOV_1 - 9 * 3_600_000 - 31 * DAY),
        to: Some(NOV_1 - 9 * 3_600_000),
        area: Some("Port".into()),
        today: Some(today.into()),
        ..Default::default()
    };
    let r = t.store.report(&oct).unwrap();
    let vs: Vec<&V> = t
        .visits
        .iter()
        .filter(|v| month_of(v.at) == "2026-10" && v.area == "Port")
        .collect();
    let ws: Vec<&W> = t
        .workshops
        .iter()
        .filter(|w| month_of(w.at) == "2026-10" && w.area == "Port")
        .collect();
    assert_visits(&r.visits, &expected_visits(&vs, today), "october port");
    assert_workshops(&r.workshops, &expected_workshops(&ws), "october port");
    assert_eq!(r.months.len(), 1);

    // A topic narrows workshops and leaves visits alone.
    let topic = ReportFilter {
        topic: Some("online_safety".into()),
        today: Some(today.into()),
        ..Default::default()
    };
    let r = t.store.report(&topic).unwrap();
    let ws: Vec<&W> = t
        .workshops
        .iter()
        .filter(|w| w.topic == "online_safety")
        .collect();
    assert_workshops(&r.workshops, &expected_workshops(&ws), "topic");
    assert_eq!(
        r.visits.visits,
        t.visits.iter().filter(|v| !v.deleted).count() as i64
    );

    // The second device's records only.
    for actor in [&t.actors.0, &t.actors.1] {
        let by = ReportFilter {
            worker: Some(actor.clone()),
            today: Some(today.into()),
            ..Default::default()
        };
        let r = t.store.report(&by).unwrap();
        let vs: Vec<&V> = t.visits.iter().filter(|v| &v.actor == actor).collect();
        let ws: Vec<&W> = t.workshops.iter().filter(|w| &w.actor == actor).collect();
        assert_visits(&r.visits, &expected_visits(&vs, today), "worker");
        assert_workshops(&r.workshops, &expected_workshops(&ws), "worker");
    }
}

#[test]
fn an_empty_store_reports_zeros_and_bad_filters_are_refused() {
    let (_t, s, _ws) = store_with_workspace();
    let r = s.report(&ReportFilter::default()).unwrap();
    assert_eq!(r.visits, VisitFigures::default());
    assert_eq!(r.workshops, WorkshopFigures::default());
    assert!(r.months.is_empty());
    for bad in [
        ReportFilter {
            from: Some(NOV_1),
            to: Some(NOV_1),
            ..Default::default()
        },
        ReportFilter {
            today: Some("15/11/2026".into()),
            ..Default::default()
        },
        ReportFilter {
            worker: Some("not an actor".into()),
            ..Default::default()
        },
        ReportFilter {
            workspace_id: Some("x".into()),
            ..Default::default()
        },
    ] {
        assert!(
            matches!(s.report(&bad), Err(Error::InvalidInput { .. })),
            "{bad:?}"
        );
    }
}

fn read_csv(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn csv_export_leaves_restricted_records_out_unless_asked() {
    let t = team();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("csv");
    let summary = t.store.export_csv(&out, &ExportOptions::default()).unwrap();
    let normal_v: Vec<&V> = t
        .visits
        .iter()
        .filter(|v| !v.deleted && v.new.sensitivity == Sensitivity::Normal)
        .collect();
    let normal_w = t
        .workshops
        .iter()
        .filter(|w| !w.deleted && !w.restricted)
        .count();
    let restricted = t
        .visits
        .iter()
        .filter(|v| !v.deleted && v.new.sensitivity == Sensitivity::Restricted)
        .count()
        + t.workshops
            .iter()
            .filter(|w| !w.deleted && w.restricted)
            .count();
    assert_eq!(summary.visits as usize, normal_v.len());
    assert_eq!(summary.workshops as usize, normal_w);
    assert_eq!(summary.restricted_left_out as usize, restricted);
    assert!(summary.tables.contains(&"report_monthly.csv".to_string()));

    let rows = read_csv(&out.join("visits.csv"));
    assert_eq!(rows.len(), normal_v.len());
    let places: Vec<&str> = rows.iter().map(|r| r["place"].as_str()).collect();
    for v in &t.visits {
        let exported = places.contains(&v.new.place.name.as_str());
        let expected = !v.deleted && v.new.sensitivity == Sensitivity::Normal;
        assert_eq!(exported, expected, "{}", v.new.place.name);
    }
    assert!(!rows[0].contains_key("notes"));
    let people: i64 = rows
        .iter()
        .map(|r| r["people_reached"].parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        people,
        normal_v
            .iter()
            .map(|v| i64::from(v.new.people_reached))
            .sum::<i64>()
    );
    let refs = read_csv(&out.join("referrals.csv"));
    assert_eq!(
        refs.len(),
        normal_v
            .iter()
            .map(|v| v.new.referrals.len())
            .sum::<usize>()
    );
    assert_eq!(read_csv(&out.join("workshops.csv")).len(), normal_w);

    // Asked for explicitly: restricted records and notes go out too.
    let all = dir.path().join("all");
    let opts = ExportOptions {
        include_restricted: true,
        include_notes: true,
        ..Default::default()
    };
    let summary = t.store.export_csv(&all, &opts).unwrap();
    assert_eq!(summary.restricted_left_out, 0);
    let rows = read_csv(&all.join("visits.csv"));
    assert_eq!(rows.len(), t.visits.iter().filter(|v| !v.deleted).count());
    assert!(rows.iter().all(|r| r["notes"].starts_with("note ")));

    // Report tables: the monthly figures match the report.
    let monthly = read_csv(&out.join("report_monthly.csv"));
    let r = t.store.report(&ReportFilter::default()).unwrap();
    assert_eq!(monthly.len(), r.months.len());
    for (row, m) in monthly.iter().zip(&r.months) {
        assert_eq!(row["month"], m.month);
        assert_eq!(row["visits"], m.visits.visits.to_string());
        assert_eq!(row["attendance"], m.workshops.attendance.to_string());
    }
}

#[test]
fn text_that_a_spreadsheet_would_run_as_a_formula_is_exported_as_text() {
    let (_t, s, ws) = store_with_workspace();
    s.create_visit(&ws, &visit("=HYPERLINK(\"http://x\")", "North", NOV_1))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    s.export_csv(dir.path(), &ExportOptions::default()).unwrap();
    let rows = read_csv(&dir.path().join("visits.csv"));
    assert_eq!(rows[0]["place"], "'=HYPERLINK(\"http://x\")");
}

#[test]
fn xlsx_export_holds_a_sheet_per_table_with_the_same_rows() {
    use calamine::{Reader, Xlsx, open_workbook};
    let t = team();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.xlsx");
    let summary = t
        .store
        .export_xlsx(&path, &ExportOptions::default())
        .unwrap();
    let mut book: Xlsx<_> = open_workbook(&path).unwrap();
    let sheets = book.sheet_names();
    assert_eq!(sheets, summary.tables);
    for name in [
        "visits",
        "workshops",
        "report_summary",
        "report_visits_by_type",
    ] {
        assert!(sheets.contains(&name.to_string()), "{name}");
    }
    let visits = book.worksheet_range("visits").unwrap();
    assert_eq!(visits.height() - 1, summary.visits as usize);
    let restricted: Vec<String> = t
        .visits
        .iter()
        .filter(|v| v.new.sensitivity == Sensitivity::Restricted)
        .map(|v| v.new.place.name.clone())
        .collect();
    for row in visits.rows().skip(1) {
        let place = row[2].to_string();
        assert!(!restricted.contains(&place), "{place} is restricted");
    }
    let by_type = book.worksheet_range("report_visits_by_type").unwrap();
    let r = t.store.report(&ReportFilter::default()).unwrap();
    let total: f64 = by_type
        .rows()
        .skip(1)
        .map(|row| calamine::DataType::as_f64(&row[1]).unwrap_or(0.0))
        .sum();
    assert_eq!(total as i64, r.visits.visits);
}
