//! The awareness workshop document: layout, creation, attendance, feedback and reading back.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};

use super::*;
use crate::ids::new_id;
use crate::model::{Attendee, Feedback, NewAttendee, NewWorkshop, Tally, Workshop, WorkshopEdit};
use crate::validate;

const K_TITLE: &str = "title";
const K_TOPIC: &str = "topic";
const K_OCCURRED_AT: &str = "occurred_at";
const K_DURATION: &str = "duration_minutes";
const K_VENUE: &str = "venue";
const K_AREA: &str = "area";
const K_AUDIENCE: &str = "audience";
const K_LANGUAGE: &str = "language";
pub(crate) const K_FACILITATORS: &str = "facilitators";
pub(crate) const K_ATTENDEES: &str = "attendees";
pub(crate) const K_TALLIES: &str = "tallies";
pub(crate) const K_FEEDBACK: &str = "feedback";

/// Longest a workshop may last, in minutes (a week).
const MAX_DURATION: u32 = 7 * 24 * 60;

/// Checks a new workshop before anything is written.
pub(crate) fn validate_new(w: &NewWorkshop) -> Result<()> {
    validate::required_line("title", &w.title)?;
    validate::key("topic", &w.topic)?;
    validate::time("occurred_at", w.occurred_at)?;
    validate_duration(w.duration_minutes)?;
    validate::line("venue", &w.venue)?;
    validate::line("area", &w.area)?;
    validate::key("audience", &w.audience)?;
    validate_language(&w.language)?;
    w.facilitators
        .iter()
        .try_for_each(|f| validate::required_line("facilitators", f))?;
    validate::notes("notes", &w.notes)
}

fn validate_duration(d: u32) -> Result<()> {
    if d > MAX_DURATION {
        return Err(Error::invalid("duration_minutes", "must be at most a week"));
    }
    Ok(())
}

fn validate_language(l: &str) -> Result<()> {
    if l.is_empty() || l.len() > 35 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::invalid(
            "language",
            "must be a language tag such as en or pt-BR",
        ));
    }
    Ok(())
}

/// Checks one edit before anything is written.
pub(crate) fn validate_edit(e: &WorkshopEdit) -> Result<()> {
    match e {
        WorkshopEdit::Title(s) => validate::required_line("title", s),
        WorkshopEdit::Topic(k) => validate::key("topic", k),
        WorkshopEdit::OccurredAt(t) => validate::time("occurred_at", *t),
        WorkshopEdit::DurationMinutes(d) => validate_duration(*d),
        WorkshopEdit::Venue(s) => validate::line("venue", s),
        WorkshopEdit::Area(s) => validate::line("area", s),
        WorkshopEdit::Audience(k) => validate::key("audience", k),
        WorkshopEdit::Language(l) => validate_language(l),
        WorkshopEdit::AddFacilitator(f) | WorkshopEdit::RemoveFacilitator(f) => {
            validate::required_line("facilitator", f)
        }
        WorkshopEdit::Sensitivity(_) => Ok(()),
        WorkshopEdit::Notes(s) => validate::notes("notes", s),
    }
}

/// Checks an attendee to check in.
pub(crate) fn validate_attendee(a: &NewAttendee) -> Result<()> {
    validate::required_line("attendee.name", &a.name)?;
    if let Some(b) = &a.age_band {
        validate::key("attendee.age_band", b)?;
    }
    if let Some(g) = &a.gender {
        validate::key("attendee.gender", g)?;
    }
    if let Some(c) = &a.contact {
        validate::line("attendee.contact", c)?;
        if !a.consent {
            return Err(Error::invalid(
                "attendee.contact",
                "a contact is recorded only with the attendee's consent",
            ));
        }
    }
    Ok(())
}

/// Checks feedback to record.
pub(crate) fn validate_feedback(score: u8, comment: &str) -> Result<()> {
    if !(1..=5).contains(&score) {
        return Err(Error::invalid("feedback.score", "must be 1 to 5"));
    }
    validate::notes("feedback.comment", comment)
}

/// Checks an anonymous tally tap.
pub(crate) fn validate_tally(age_band: &str, gender: &str, delta: i64) -> Result<()> {
    validate::key("age_band", age_band)?;
    validate::key("gender", gender)?;
    if delta == 0 || delta.abs() > 10_000 {
        return Err(Error::invalid(
            "delta",
            "must be non-zero and at most 10,000 either way",
        ));
    }
    Ok(())
}

/// Writes a new workshop into an empty document.
pub(crate) fn create(
    doc: &mut AutoCommit,
    workspace: &str,
    w: &NewWorkshop,
    now: i64,
) -> Result<()> {
    put_header(doc, RecordKind::Workshop, workspace, now)?;
    doc.put(&ROOT, K_TITLE, w.title.as_str())?;
    doc.put(&ROOT, K_TOPIC, w.topic.as_str())?;
    doc.put(&ROOT, K_OCCURRED_AT, w.occurred_at)?;
    doc.put(&ROOT, K_DURATION, i64::from(w.duration_minutes))?;
    doc.put(&ROOT, K_VENUE, w.venue.as_str())?;
    doc.put(&ROOT, K_AREA, w.area.as_str())?;
    doc.put(&ROOT, K_AUDIENCE, w.audience.as_str())?;
    doc.put(&ROOT, K_LANGUAGE, w.language.as_str())?;
    put_set(doc, &ROOT, K_FACILITATORS, &w.facilitators)?;
    doc.put(&ROOT, K_SENSITIVITY, w.sensitivity.as_str())?;
    put_text(doc, &ROOT, K_NOTES, &w.notes)?;
    doc.put_object(&ROOT, K_ATTENDEES, ObjType::Map)?;
    doc.put_object(&ROOT, K_TALLIES, ObjType::Map)?;
    doc.put_object(&ROOT, K_FEEDBACK, ObjType::Map)?;
    Ok(())
}

/// Applies one edit.
pub(crate) fn apply(doc: &mut AutoCommit, e: &WorkshopEdit) -> Result<()> {
    match e {
        WorkshopEdit::Title(s) => doc.put(&ROOT, K_TITLE, s.as_str())?,
        WorkshopEdit::Topic(k) => doc.put(&ROOT, K_TOPIC, k.as_str())?,
        WorkshopEdit::OccurredAt(t) => doc.put(&ROOT, K_OCCURRED_AT, *t)?,
        WorkshopEdit::DurationMinutes(d) => doc.put(&ROOT, K_DURATION, i64::from(*d))?,
        WorkshopEdit::Venue(s) => doc.put(&ROOT, K_VENUE, s.as_str())?,
        WorkshopEdit::Area(s) => doc.put(&ROOT, K_AREA, s.as_str())?,
        WorkshopEdit::Audience(k) => doc.put(&ROOT, K_AUDIENCE, k.as_str())?,
        WorkshopEdit::Language(l) => doc.put(&ROOT, K_LANGUAGE, l.as_str())?,
        WorkshopEdit::AddFacilitator(f) => set_member(doc, &ROOT, K_FACILITATORS, f, true)?,
        WorkshopEdit::RemoveFacilitator(f) => set_member(doc, &ROOT, K_FACILITATORS, f, false)?,
        WorkshopEdit::Sensitivity(s) => doc.put(&ROOT, K_SENSITIVITY, s.as_str())?,
        WorkshopEdit::Notes(s) => set_text(doc, &ROOT, K_NOTES, s)?,
    }
    Ok(())
}

fn container(doc: &AutoCommit, key: &str) -> Result<automerge::ObjId> {
    get_obj(doc, &ROOT, key, ObjType::Map)
        .ok_or_else(|| Error::corrupt(format!("workshop has no {key} map")))
}

/// Checks an attendee in and returns their id.
pub(crate) fn check_in(doc: &mut AutoCommit, a: &NewAttendee, now: i64) -> Result<String> {
    let attendees = container(doc, K_ATTENDEES)?;
    let id = new_id();
    let m = doc.put_object(&attendees, id.as_str(), ObjType::Map)?;
    doc.put(&m, "name", a.name.as_str())?;
    if let Some(b) = &a.age_band {
        doc.put(&m, "age_band", b.as_str())?;
    }
    if let Some(g) = &a.gender {
        doc.put(&m, "gender", g.as_str())?;
    }
    if let (Some(c), true) = (&a.contact, a.consent) {
        doc.put(&m, "contact", c.as_str())?;
        doc.put(&m, "consent_at", now)?;
    }
    doc.put(&m, "checked_in_at", now)?;
    doc.put(&m, "withdrawn", false)?;
    Ok(id)
}

/// Flags an attendee as withdrawn; they stay in the document so merges never resurrect them.
pub(crate) fn withdraw(doc: &mut AutoCommit, attendee_id: &str) -> Result<()> {
    let attendees = container(doc, K_ATTENDEES)?;
    let m = get_obj(doc, &attendees, attendee_id, ObjType::Map)
        .ok_or_else(|| Error::not_found(format!("attendee {attendee_id}")))?;
    doc.put(&m, "withdrawn", true)?;
    Ok(())
}

/// Withdraws an attendee who asked for their data to be removed: their name and contact go
/// (age band and gender stay, uncounted, as a withdrawn attendee's do).
pub(crate) fn remove_personal_data(doc: &mut AutoCommit, attendee_id: &str) -> Result<()> {
    withdraw(doc, attendee_id)?;
    let attendees = container(doc, K_ATTENDEES)?;
    let m = get_obj(doc, &attendees, attendee_id, ObjType::Map)
        .ok_or_else(|| Error::not_found(format!("attendee {attendee_id}")))?;
    doc.put(&m, "name", "")?;
    for key in ["contact", "consent_at"] {
        if doc.get(&m, key)?.is_some() {
            doc.delete(&m, key)?;
        }
    }
    Ok(())
}

/// Marks an attendee as the same person as `person` (`workshop_id:attendee_id`), or as a
/// person of their own again (`None`).
pub(crate) fn set_same_as(
    doc: &mut AutoCommit,
    attendee_id: &str,
    person: Option<&str>,
) -> Result<()> {
    let attendees = container(doc, K_ATTENDEES)?;
    let m = get_obj(doc, &attendees, attendee_id, ObjType::Map)
        .ok_or_else(|| Error::not_found(format!("attendee {attendee_id}")))?;
    match person {
        Some(p) => doc.put(&m, "same_as", p)?,
        None => {
            if doc.get(&m, "same_as")?.is_some() {
                doc.delete(&m, "same_as")?;
            }
        }
    }
    Ok(())
}

/// Adds `delta` people to the anonymous tally of one age band and gender.
pub(crate) fn tally(doc: &mut AutoCommit, age_band: &str, gender: &str, delta: i64) -> Result<()> {
    let tallies = container(doc, K_TALLIES)?;
    let key = format!("{age_band}|{gender}");
    match doc.get(&tallies, key.as_str())? {
        Some((automerge::Value::Scalar(s), _)) if s.is_counter() => {
            doc.increment(&tallies, key.as_str(), delta)?
        }
        _ => doc.put(&tallies, key.as_str(), ScalarValue::counter(delta))?,
    }
    Ok(())
}

/// Records feedback and returns its id.
pub(crate) fn feedback(doc: &mut AutoCommit, score: u8, comment: &str, now: i64) -> Result<String> {
    let fb = container(doc, K_FEEDBACK)?;
    let id = new_id();
    let m = doc.put_object(&fb, id.as_str(), ObjType::Map)?;
    doc.put(&m, "score", i64::from(score))?;
    doc.put(&m, "comment", comment)?;
    doc.put(&m, "at", now)?;
    Ok(id)
}

/// Reads the attendees, tallies and feedback of a workshop document.
fn read_attendance(doc: &AutoCommit, root: &Fields) -> (Vec<Attendee>, Vec<Tally>, Vec<Feedback>) {
    let mut attendees = Vec::new();
    for (id, m) in root.map(K_ATTENDEES).maps() {
        attendees.push(Attendee {
            name: m.str("name").unwrap_or_default(),
            age_band: m.str("age_band"),
            gender: m.str("gender"),
            contact: m.str("contact"),
            consent_at: m.i64("consent_at"),
            checked_in_at: m.i64("checked_in_at").unwrap_or(0),
            withdrawn: m.bool("withdrawn").unwrap_or(false),
            same_as: m.str("same_as"),
            id: id.to_string(),
        });
    }
    attendees.sort_by(|a, b| (a.checked_in_at, &a.id).cmp(&(b.checked_in_at, &b.id)));

    let mut tallies = Vec::new();
    if let Some(tm) = get_obj(doc, &ROOT, K_TALLIES, ObjType::Map) {
        for key in doc.keys(&tm) {
            let count = get_counter_sum(doc, &tm, &key);
            if let (Some((band, gender)), true) = (key.split_once('|'), count != 0) {
                tallies.push(Tally {
                    age_band: band.to_string(),
                    gender: gender.to_string(),
                    count,
                });
            }
        }
    }

    let mut feedback = Vec::new();
    for (id, m) in root.map(K_FEEDBACK).maps() {
        feedback.push(Feedback {
            score: m
                .i64("score")
                .and_then(|s| u8::try_from(s).ok())
                .unwrap_or(0),
            comment: m.str("comment").unwrap_or_default(),
            at: m.i64("at").unwrap_or(0),
            id: id.to_string(),
        });
    }
    feedback.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    (attendees, tallies, feedback)
}

/// Reads a workshop document.
pub(crate) fn read(doc: &AutoCommit, id: &str, h: &Header) -> Workshop {
    let root = Fields::of(doc, &ROOT);
    let (attendees, tallies, feedback) = read_attendance(doc, &root);
    Workshop {
        id: id.to_string(),
        workspace_id: h.workspace.clone(),
        title: root.str(K_TITLE).unwrap_or_default(),
        topic: root.str(K_TOPIC).unwrap_or_default(),
        occurred_at: root.i64(K_OCCURRED_AT).unwrap_or(h.created_at),
        duration_minutes: root
            .i64(K_DURATION)
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(0),
        venue: root.str(K_VENUE).unwrap_or_default(),
        area: root.str(K_AREA).unwrap_or_default(),
        audience: root.str(K_AUDIENCE).unwrap_or_default(),
        language: root.str(K_LANGUAGE).unwrap_or_default(),
        facilitators: root.set(K_FACILITATORS),
        sensitivity: Sensitivity::parse(
            &root.str(K_SENSITIVITY).unwrap_or_else(|| "normal".into()),
        ),
        notes: root.text(K_NOTES),
        attendees,
        tallies,
        feedback,
        deleted: h.deleted,
        created_at: h.created_at,
        has_conflicts: has_conflicts(doc),
    }
}
