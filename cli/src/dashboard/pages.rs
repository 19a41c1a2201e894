//! The pages: the team's figures, the lists of visits and workshops, a record, the team, the
//! safety check-ins and the tip inbox, each read from the store when asked for, so what they
//! show is as of the last sync.

use askama::Template;
use waymark_core as wc;

use super::views::{self, Choice, Layout, Pager, label, when};
use super::web::{Reply, Req};
use super::{App, Error};
use crate::query;
use crate::words::Words;

/// Most records a list shows.
const PAGE_SIZE: usize = 200;
/// Most records a search looks through.
const SEARCH_LIMIT: u32 = 10_000;

/// The figures page.
#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    layout: Layout,
    describe: String,
    report: String,
    from: String,
    to: String,
    area: String,
    areas: Vec<String>,
    topics: Vec<Choice>,
    workers: Vec<Choice>,
    workspaces: Vec<Choice>,
}

/// The report's figures and charts for the period, area, topic and worker asked for.
pub fn overview(app: &App, req: &Req) -> Result<Reply, Error> {
    let store = &app.store;
    let (from, to) = period(req)?;
    let worker = req
        .q("worker")
        .map(|w| query::worker_actor(store, &w))
        .transpose()
        .map_err(Error::BadRequest)?;
    let filter = wc::ReportFilter {
        workspace_id: req.q("workspace"),
        from,
        to,
        area: req.q("area"),
        topic: req.q("topic"),
        worker: worker.clone(),
        today: None,
    };
    let mut report = store.report(&filter)?;
    // Read at every page: a sync may have brought new labels.
    crate::labels::Labels::load(store, None, app.lang.as_deref())
        .map_err(Error::BadRequest)?
        .report(&mut report);
    let names = query::device_names(store).map_err(Error::BadRequest)?;
    let words = Words::new(app.lang.as_deref().unwrap_or(crate::labels::DEFAULT_LANG));
    let everything = store.report(&wc::ReportFilter::default())?;
    let mut workers: Vec<(String, String)> = names.clone();
    workers.sort_by(|a, b| a.1.cmp(&b.1));
    workers.dedup_by(|a, b| a.0 == b.0);
    page(Overview {
        layout: app.layout("Figures", "overview", req),
        describe: crate::html::describe_filter(&report, &names, &words),
        report: crate::html::sections(&report, &words),
        from: req.q("from").unwrap_or_default(),
        to: req.q("to").unwrap_or_default(),
        area: req.q("area").unwrap_or_default(),
        areas: everything
            .visits
            .by_area
            .into_iter()
            .map(|c| c.key)
            .collect(),
        topics: Choice::list(
            views::taxonomy(store, "workshop_topics"),
            req.q("topic").as_deref(),
        ),
        workers: Choice::list(
            workers.into_iter().map(|(_, n)| (n.clone(), n)).collect(),
            req.q("worker").as_deref(),
        ),
        workspaces: Choice::list(views::workspaces(store), req.q("workspace").as_deref()),
    })
}

/// The period a page's `from` and `to` ask for.
fn period(req: &Req) -> Result<(Option<i64>, Option<i64>), Error> {
    let bound = |name: &str, end: bool| {
        req.q(name)
            .map(|d| query::parse_day(&d, end))
            .transpose()
            .map_err(Error::BadRequest)
    };
    Ok((bound("from", false)?, bound("to", true)?))
}

/// A visit as listed.
struct VisitRow {
    id: String,
    when: String,
    place: String,
    area: String,
    kind: String,
    people: u32,
    indicators: String,
    follow_up: String,
    restricted: bool,
    conflicts: bool,
    snippet: Option<String>,
}

/// The visits page.
#[derive(Template)]
#[template(path = "visits.html")]
struct Visits {
    layout: Layout,
    rows: Vec<VisitRow>,
    pager: Pager,
    hidden: usize,
    searching: bool,
    from: String,
    to: String,
    area: String,
    q: String,
    types: Vec<Choice>,
    indicators: Vec<Choice>,
    follow_ups: Vec<Choice>,
    workspaces: Vec<Choice>,
}

/// Visits with the filters and search the core has; restricted ones only when shown.
pub fn visits(app: &App, req: &Req) -> Result<Reply, Error> {
    let store = &app.store;
    let (from, to) = period(req)?;
    let hits = query::search_ids(store, req.q("q").as_deref(), wc::RecordKind::Visit)
        .map_err(Error::BadRequest)?;
    let follow_up = req.q("follow_up");
    let filter = wc::VisitFilter {
        workspace_id: req.q("workspace"),
        from,
        to,
        area: req.q("area"),
        visit_type: req.q("type"),
        indicator: req.q("indicator"),
        follow_up: match follow_up.as_deref() {
            Some("open") => Some(wc::FollowUpFilter::Open),
            Some("overdue") => Some(wc::FollowUpFilter::OverdueOn(query::today())),
            _ => None,
        },
        include_deleted: false,
        // A search narrows after listing: list everything in the period first.
        limit: hits.as_ref().map(|_| SEARCH_LIMIT),
        offset: None,
    };
    let all = store.list_visits(&filter)?;
    let (all, hidden) = query::narrow(all, hits.as_ref(), app.restricted(), u32::MAX, |v| {
        (&v.id, v.sensitivity)
    });
    let (shown, pager) = Pager::cut(all, req, PAGE_SIZE);
    let rows = shown
        .into_iter()
        .map(|v| VisitRow {
            snippet: hits.as_ref().and_then(|h| h.get(&v.id).cloned()),
            when: when(v.occurred_at),
            place: v.place_name,
            area: v.area,
            kind: label(&v.visit_type),
            people: v.people_reached,
            indicators: v
                .indicators
                .iter()
                .map(|i| label(i))
                .collect::<Vec<_>>()
                .join(", "),
            follow_up: follow_up_text(&v.follow_up),
            restricted: v.sensitivity == wc::Sensitivity::Restricted,
            conflicts: v.has_conflicts,
            id: v.id,
        })
        .collect();
    page(Visits {
        layout: app.layout("Visits", "visits", req),
        rows,
        pager,
        hidden,
        searching: hits.is_some(),
        from: req.q("from").unwrap_or_default(),
        to: req.q("to").unwrap_or_default(),
        area: req.q("area").unwrap_or_default(),
        q: req.q("q").unwrap_or_default(),
        types: Choice::list(
            views::taxonomy(store, "visit_types"),
            req.q("type").as_deref(),
        ),
        indicators: Choice::list(
            views::taxonomy(store, "risk_indicators"),
            req.q("indicator").as_deref(),
        ),
        follow_ups: Choice::list(
            vec![
                ("open".into(), "Open".into()),
                ("overdue".into(), "Overdue".into()),
            ],
            follow_up.as_deref(),
        ),
        workspaces: Choice::list(views::workspaces(store), req.q("workspace").as_deref()),
    })
}

fn follow_up_text(f: &wc::FollowUp) -> String {
    match (f.needed, f.done, &f.due) {
        (false, _, _) => String::new(),
        (true, true, _) => "done".into(),
        (true, false, Some(d)) => format!("due {d}"),
        (true, false, None) => "open".into(),
    }
}

/// A workshop as listed.
struct WorkshopRow {
    id: String,
    when: String,
    title: String,
    topic: String,
    area: String,
    audience: String,
    attendance: i64,
    restricted: bool,
    conflicts: bool,
    snippet: Option<String>,
}

/// The workshops page.
#[derive(Template)]
#[template(path = "workshops.html")]
struct Workshops {
    layout: Layout,
    rows: Vec<WorkshopRow>,
    pager: Pager,
    hidden: usize,
    searching: bool,
    from: String,
    to: String,
    area: String,
    q: String,
    topics: Vec<Choice>,
    workspaces: Vec<Choice>,
}

/// Workshops with the filters and search the core has; restricted ones only when shown.
pub fn workshops(app: &App, req: &Req) -> Result<Reply, Error> {
    let store = &app.store;
    let (from, to) = period(req)?;
    let hits = query::search_ids(store, req.q("q").as_deref(), wc::RecordKind::Workshop)
        .map_err(Error::BadRequest)?;
    let filter = wc::WorkshopFilter {
        workspace_id: req.q("workspace"),
        from,
        to,
        topic: req.q("topic"),
        area: req.q("area"),
        include_deleted: false,
        limit: hits.as_ref().map(|_| SEARCH_LIMIT),
        offset: None,
    };
    let all = store.list_workshops(&filter)?;
    let (all, hidden) = query::narrow(all, hits.as_ref(), app.restricted(), u32::MAX, |w| {
        (&w.id, w.sensitivity)
    });
    let (shown, pager) = Pager::cut(all, req, PAGE_SIZE);
    let rows = shown
        .into_iter()
        .map(|w| WorkshopRow {
            snippet: hits.as_ref().and_then(|h| h.get(&w.id).cloned()),
            when: when(w.occurred_at),
            title: w.title,
            topic: label(&w.topic),
            area: w.area,
            audience: label(&w.audience),
            attendance: w.attendance,
            restricted: w.sensitivity == wc::Sensitivity::Restricted,
            conflicts: w.has_conflicts,
            id: w.id,
        })
        .collect();
    page(Workshops {
        layout: app.layout("Workshops", "workshops", req),
        rows,
        pager,
        hidden,
        searching: hits.is_some(),
        from: req.q("from").unwrap_or_default(),
        to: req.q("to").unwrap_or_default(),
        area: req.q("area").unwrap_or_default(),
        q: req.q("q").unwrap_or_default(),
        topics: Choice::list(
            views::taxonomy(store, "workshop_topics"),
            req.q("topic").as_deref(),
        ),
        workspaces: Choice::list(views::workspaces(store), req.q("workspace").as_deref()),
    })
}

/// One of a conflict's values, with the button that keeps it.
struct ConflictChoice {
    shown: String,
    key: String,
    author: String,
    current: bool,
}

/// A field holding concurrent values.
struct ConflictView {
    field: String,
    label: String,
    values: Vec<ConflictChoice>,
}

/// One change in a record's history.
struct HistoryRow {
    at: String,
    who: String,
    fields: String,
}

/// A named attendee.
struct AttendeeRow {
    name: String,
    age_band: String,
    gender: String,
    contact: String,
    checked_in: String,
    withdrawn: bool,
    same_as: bool,
}

/// A workshop's attendance.
struct AttendanceView {
    named: i64,
    withdrawn: i64,
    unique_people: i64,
    anonymous: i64,
    total: i64,
    attendees: Vec<AttendeeRow>,
    tallies: Vec<(String, String, i64)>,
    feedback: Vec<(u8, String, String)>,
}

/// A record's page (a visit or a workshop).
#[derive(Template)]
#[template(path = "record.html")]
struct Record {
    layout: Layout,
    /// `visits` or `workshops`: where its page and its forms are.
    base: &'static str,
    id: String,
    title: String,
    /// Restricted and not shown: the page says so and shows nothing of it.
    hidden: bool,
    restricted: bool,
    deleted: bool,
    fields: Vec<(&'static str, String)>,
    notes: String,
    referrals: Vec<(String, String, String)>,
    attendance: Option<AttendanceView>,
    conflicts: Vec<ConflictView>,
    history: Vec<HistoryRow>,
}

/// A visit's page: its fields, referrals, follow-up, conflicts and history.
pub fn visit(app: &App, req: &Req, id: &str) -> Result<Reply, Error> {
    let v = app.store.get_visit(id)?;
    let restricted = v.sensitivity == wc::Sensitivity::Restricted;
    let mut r = record(app, req, "visits", id, &v.place.name, restricted, v.deleted)?;
    if !r.hidden {
        r.fields = vec![
            ("When (UTC)", when(v.occurred_at)),
            ("Place", v.place.name.clone()),
            ("Area", v.place.area.clone()),
            (
                "Coordinates",
                v.place
                    .coordinates
                    .map(|c| {
                        format!(
                            "{:.*}, {:.*}",
                            c.precision as usize, c.lat, c.precision as usize, c.lon
                        )
                    })
                    .unwrap_or_default(),
            ),
            ("Type", label(&v.visit_type)),
            ("People reached", v.people_reached.to_string()),
            (
                "Risk indicators",
                v.indicators
                    .iter()
                    .map(|i| label(i))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("Follow-up", follow_up_text(&v.follow_up)),
            ("Tags", v.tags.join(", ")),
            ("Recorded", when(v.created_at)),
        ];
        r.notes = v.notes;
        r.referrals = v
            .referrals
            .iter()
            .map(|f| (label(&f.kind), f.to.clone(), format!("{:?}", f.status)))
            .collect();
    }
    page(r)
}

/// A workshop's page: its fields, attendance, feedback, conflicts and history.
pub fn workshop(app: &App, req: &Req, id: &str) -> Result<Reply, Error> {
    let w = app.store.get_workshop(id)?;
    let restricted = w.sensitivity == wc::Sensitivity::Restricted;
    let mut r = record(app, req, "workshops", id, &w.title, restricted, w.deleted)?;
    if !r.hidden {
        let a = app.store.attendance(id)?;
        r.fields = vec![
            ("When (UTC)", when(w.occurred_at)),
            ("Topic", label(&w.topic)),
            ("Duration", format!("{} minutes", w.duration_minutes)),
            ("Venue", w.venue.clone()),
            ("Area", w.area.clone()),
            ("Audience", label(&w.audience)),
            ("Language", w.language.clone()),
            ("Facilitators", w.facilitators.join(", ")),
            ("Recorded", when(w.created_at)),
        ];
        r.notes = w.notes.clone();
        let opt = |o: &Option<String>| o.as_deref().map(label).unwrap_or_default();
        r.attendance = Some(AttendanceView {
            named: a.named,
            withdrawn: a.withdrawn,
            unique_people: a.unique_people,
            anonymous: a.anonymous,
            total: a.total,
            attendees: a
                .attendees
                .iter()
                .map(|p| AttendeeRow {
                    name: p.name.clone(),
                    age_band: opt(&p.age_band),
                    gender: opt(&p.gender),
                    contact: p.contact.clone().unwrap_or_default(),
                    checked_in: when(p.checked_in_at),
                    withdrawn: p.withdrawn,
                    same_as: p.same_as.is_some(),
                })
                .collect(),
            tallies: a
                .tallies
                .iter()
                .map(|t| (label(&t.age_band), label(&t.gender), t.count))
                .collect(),
            feedback: w
                .feedback
                .iter()
                .map(|f| (f.score, f.comment.clone(), when(f.at)))
                .collect(),
        });
    }
    page(r)
}

/// What the pages of visits and workshops share: conflicts and history, or nothing of the
/// record when it is restricted and restricted records are hidden.
fn record(
    app: &App,
    req: &Req,
    base: &'static str,
    id: &str,
    title: &str,
    restricted: bool,
    deleted: bool,
) -> Result<Record, Error> {
    let hidden = restricted && !app.restricted();
    let mut r = Record {
        layout: app.layout(if hidden { "Restricted record" } else { title }, base, req),
        base,
        id: id.to_string(),
        title: if hidden {
            "Restricted record".into()
        } else {
            title.to_string()
        },
        hidden,
        restricted,
        deleted,
        fields: Vec::new(),
        notes: String::new(),
        referrals: Vec::new(),
        attendance: None,
        conflicts: Vec::new(),
        history: Vec::new(),
    };
    if hidden {
        return Ok(r);
    }
    r.conflicts = app
        .store
        .conflicts(id)?
        .into_iter()
        .map(|c| ConflictView {
            values: c
                .values
                .iter()
                .map(|v| ConflictChoice {
                    shown: views::value_text(&v.value),
                    key: views::value_key(&v.value),
                    author: views::author(&v.author),
                    current: v.value == c.current,
                })
                .collect(),
            label: if c.field.contains('/') {
                c.field.clone()
            } else {
                label(&c.field)
            },
            field: c.field,
        })
        .collect();
    r.history = app
        .store
        .history(id)?
        .into_iter()
        .rev()
        .map(|h| HistoryRow {
            at: when(h.at),
            who: views::author(&h.author),
            fields: h.fields.join(", "),
        })
        .collect();
    Ok(r)
}

/// A device of the team.
struct MemberRow {
    device_id: String,
    name: String,
    role: String,
    state: &'static str,
    this_device: bool,
    revocable: bool,
    /// When it last synced, as the server last listed it.
    last_sync: String,
}

/// A device waiting to be admitted.
struct PendingRow {
    device_id: String,
    name: String,
    code: String,
    /// It joined with an invite this device made (approve); otherwise compare the codes.
    invited_here: bool,
}

/// A workspace's team.
struct TeamView {
    id: String,
    name: String,
    connected: bool,
    trust: String,
    trusted: bool,
    role: String,
    coordinator: bool,
    epoch: u32,
    rotation_due: bool,
    alerts: Vec<(String, String)>,
    members: Vec<MemberRow>,
    pending: Vec<PendingRow>,
    pending_error: Option<String>,
}

/// The team page.
#[derive(Template)]
#[template(path = "team.html")]
struct Team {
    layout: Layout,
    teams: Vec<TeamView>,
}

/// Each workspace's devices, roles and trust, and the devices waiting to be admitted.
pub fn team(app: &App, req: &Req) -> Result<Reply, Error> {
    let store = &app.store;
    let mut teams = Vec::new();
    for ws in store.workspaces()? {
        let Ok(status) = store.team_status(&ws.id) else {
            teams.push(TeamView {
                id: ws.id,
                name: ws.name,
                connected: false,
                trust: String::new(),
                trusted: false,
                role: String::new(),
                coordinator: false,
                epoch: 0,
                rotation_due: false,
                alerts: Vec::new(),
                members: Vec::new(),
                pending: Vec::new(),
                pending_error: None,
            });
            continue;
        };
        let coordinator = status.role.as_deref() == Some("coordinator");
        let (trust, trusted) = match &status.trust {
            wc::TeamTrust::Verified => ("Verified: this computer is admitted".to_string(), true),
            wc::TeamTrust::AwaitingAdmission => (
                "Waiting for a coordinator to admit this computer".to_string(),
                false,
            ),
            wc::TeamTrust::AwaitingLog => (
                "Waiting for a coordinator's device to start the team log".to_string(),
                false,
            ),
            wc::TeamTrust::Attacked { reason } => (
                format!("Sync stopped: the server misbehaves ({reason})"),
                false,
            ),
        };
        let members = store
            .team(&ws.id)?
            .into_iter()
            .filter(|m| m.verified || m.revoked)
            .map(|m| MemberRow {
                state: if m.revoked { "revoked" } else { "admitted" },
                last_sync: m
                    .last_sync_at
                    .map_or_else(|| "not yet".to_string(), views::when),
                revocable: coordinator && !m.revoked && !m.is_this_device,
                this_device: m.is_this_device,
                role: m.role,
                name: m.name,
                device_id: m.device_id,
            })
            .collect();
        let (pending, pending_error) = match store.pending_joins(&ws.id) {
            Ok(p) => (
                p.into_iter()
                    .map(|p| PendingRow {
                        code: views::code_groups(&p.verification_code),
                        invited_here: p.verified,
                        name: p.name,
                        device_id: p.device_id,
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        teams.push(TeamView {
            id: ws.id,
            name: ws.name,
            connected: true,
            trust,
            trusted,
            role: status.role.unwrap_or_default(),
            coordinator,
            epoch: status.epoch,
            rotation_due: status.rotation_due,
            alerts: status
                .alerts
                .iter()
                .map(|a| (when(a.at_ms), a.detail.clone()))
                .collect(),
            members,
            pending,
            pending_error,
        });
    }
    page(Team {
        layout: app.layout("Team", "team", req),
        teams,
    })
}

/// A safety check-in.
struct CheckInRow {
    state: &'static str,
    who: String,
    started: String,
    expected: String,
    closed: String,
    place: String,
    with_whom: String,
    note: String,
    watched: bool,
}

/// The check-ins page.
#[derive(Template)]
#[template(path = "check_ins.html")]
struct CheckIns {
    layout: Layout,
    rows: Vec<CheckInRow>,
}

/// The team's open, overdue and raised check-ins (and those closed in the last day).
pub fn check_ins(app: &App, req: &Req) -> Result<Reply, Error> {
    let mut rows = Vec::new();
    for ws in app.store.workspaces()? {
        // A workspace without a server has no check-ins to show.
        let Ok(list) = app.store.check_ins(&ws.id) else {
            continue;
        };
        rows.extend(list.into_iter().map(|c| CheckInRow {
            state: c.state.as_str(),
            who: c.device_name,
            started: when(c.started_at),
            expected: when(c.expected_back),
            closed: c.closed_at.map(when).unwrap_or_default(),
            place: c.details.place,
            with_whom: c.details.with_whom,
            note: c.details.note,
            watched: c.watched,
        }));
    }
    let urgency = |s: &str| match s {
        "alarm" => 0,
        "overdue" => 1,
        "open" => 2,
        _ => 3,
    };
    rows.sort_by_key(|r| urgency(r.state));
    page(CheckIns {
        layout: app.layout("Check-ins", "check-ins", req),
        rows,
    })
}

/// A tip as listed.
struct TipRow {
    id: String,
    received: String,
    what: String,
    place: String,
    replies: usize,
    visit: Option<String>,
}

/// The tip inbox.
#[derive(Template)]
#[template(path = "tips.html")]
struct Tips {
    layout: Layout,
    rows: Vec<TipRow>,
    hidden: usize,
}

/// Anonymous tips, newest first: tips are restricted records, so shown only with them.
pub fn tips(app: &App, req: &Req) -> Result<Reply, Error> {
    let mut all = Vec::new();
    for ws in app.store.workspaces()? {
        all.extend(app.store.tips(&ws.id)?);
    }
    all.sort_by_key(|t| std::cmp::Reverse(t.received_at));
    let shown = app.restricted();
    let hidden = if shown { 0 } else { all.len() };
    let rows = if shown { all } else { Vec::new() }
        .into_iter()
        .map(|t| TipRow {
            received: when(t.received_at),
            what: t.what,
            place: t.place,
            replies: t.replies.len(),
            visit: t.visit_id,
            id: t.id,
        })
        .collect();
    page(Tips {
        layout: app.layout("Tips", "tips", req),
        rows,
        hidden,
    })
}

/// One tip's page.
#[derive(Template)]
#[template(path = "tip.html")]
struct TipPage {
    layout: Layout,
    id: String,
    hidden: bool,
    fields: Vec<(&'static str, String)>,
    what: String,
    place: String,
    replies: Vec<(String, String)>,
    visit: Option<String>,
    types: Vec<Choice>,
    today: String,
}

/// A tip: what the tipster said, the team's replies, and forms to reply and to turn it into
/// a visit.
pub fn tip(app: &App, req: &Req, id: &str) -> Result<Reply, Error> {
    let t = app.store.get_tip(id)?;
    let hidden = !app.restricted();
    page(TipPage {
        layout: app.layout("Tip", "tips", req),
        id: t.id,
        hidden,
        fields: if hidden {
            Vec::new()
        } else {
            vec![
                ("Received (to the hour, UTC)", when(t.received_at)),
                ("Sent, by the tipster's clock", t.sent_at),
                ("Language", t.language),
                ("When", t.time),
                ("Contact", t.contact),
            ]
        },
        what: if hidden { String::new() } else { t.what },
        place: if hidden { String::new() } else { t.place },
        replies: if hidden {
            Vec::new()
        } else {
            t.replies
                .into_iter()
                .map(|r| (when(r.sent_at), r.text))
                .collect()
        },
        visit: t.visit_id,
        types: Choice::list(views::taxonomy(&app.store, "visit_types"), None),
        today: query::today(),
    })
}

/// A template rendered into a page.
fn page(t: impl Template) -> Result<Reply, Error> {
    Ok(Reply::html(200, t.render()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn words_from_records_cannot_inject_markup_into_a_page() {
        let evil = "<img src=x onerror=alert(1)>\"'&";
        let page = Visits {
            layout: Layout {
                title: evil.into(),
                nav: "visits",
                path: format!("/visits?q={evil}"),
                restricted: false,
                flash: Some(views::Flash::failed(evil)),
                sync_summary: evil.into(),
                syncing: false,
            },
            rows: vec![VisitRow {
                id: evil.into(),
                when: String::new(),
                place: evil.into(),
                area: evil.into(),
                kind: evil.into(),
                people: 1,
                indicators: evil.into(),
                follow_up: String::new(),
                restricted: false,
                conflicts: false,
                snippet: Some(evil.into()),
            }],
            pager: Pager {
                first: 1,
                last: 1,
                total: 2,
                prev: Some(format!("/visits?q={evil}")),
                next: None,
            },
            hidden: 0,
            searching: true,
            from: String::new(),
            to: String::new(),
            area: evil.into(),
            q: evil.into(),
            types: Choice::list(vec![(evil.into(), evil.into())], None),
            indicators: Vec::new(),
            follow_ups: Vec::new(),
            workspaces: Vec::new(),
        }
        .render()
        .unwrap();
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("\"'&"), "{page}");
        assert!(
            page.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{page}"
        );
        assert!(page.contains("href=\"/visits/%3Cimg%20src"), "{page}");
    }
}
