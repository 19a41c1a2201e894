//! The field visit document: layout, creation, edits and reading back.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

use super::*;
use crate::ids::new_id;
use crate::model::{
    Coordinates, FollowUp, NewReferral, NewVisit, Place, Referral, ReferralStatus, Visit, VisitEdit,
};
use crate::validate;

const K_PLACE: &str = "place_name";
const K_AREA: &str = "area";
const K_COORDS: &str = "coordinates";
const K_OCCURRED_AT: &str = "occurred_at";
const K_VISIT_TYPE: &str = "visit_type";
const K_PEOPLE: &str = "people_reached";
pub(crate) const K_INDICATORS: &str = "indicators";
pub(crate) const K_REFERRALS: &str = "referrals";
const K_FU_NEEDED: &str = "follow_up_needed";
const K_FU_DUE: &str = "follow_up_due";
const K_FU_DONE: &str = "follow_up_done";
pub(crate) const K_TAGS: &str = "tags";

impl ReferralStatus {
    /// The stored string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Suggested => "suggested",
            ReferralStatus::Made => "made",
            ReferralStatus::Accepted => "accepted",
            ReferralStatus::Completed => "completed",
            ReferralStatus::Declined => "declined",
        }
    }

    /// Parses a stored string; unknown values read as suggested.
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "made" => ReferralStatus::Made,
            "accepted" => ReferralStatus::Accepted,
            "completed" => ReferralStatus::Completed,
            "declined" => ReferralStatus::Declined,
            _ => ReferralStatus::Suggested,
        }
    }
}

/// Checks a new visit before anything is written.
pub(crate) fn validate_new(v: &NewVisit) -> Result<()> {
    validate::required_line("place.name", &v.place.name)?;
    validate::line("place.area", &v.place.area)?;
    if let Some(c) = &v.place.coordinates {
        validate::coordinates(c)?;
    }
    validate::time("occurred_at", v.occurred_at)?;
    validate::key("visit_type", &v.visit_type)?;
    validate::count("people_reached", v.people_reached)?;
    validate::keys("indicators", &v.indicators)?;
    validate::keys("tags", &v.tags)?;
    v.referrals.iter().try_for_each(validate_referral)?;
    validate_follow_up(&v.follow_up)?;
    validate::notes("notes", &v.notes)
}

/// Checks a referral to add.
pub(crate) fn validate_referral(r: &NewReferral) -> Result<()> {
    validate::key("referral.kind", &r.kind)?;
    validate::line("referral.to", &r.to)
}

fn validate_follow_up(f: &FollowUp) -> Result<()> {
    match &f.due {
        Some(d) => validate::date("follow_up.due", d),
        None => Ok(()),
    }
}

/// Checks one edit before anything is written.
pub(crate) fn validate_edit(e: &VisitEdit) -> Result<()> {
    match e {
        VisitEdit::PlaceName(s) => validate::required_line("place.name", s),
        VisitEdit::Area(s) => validate::line("place.area", s),
        VisitEdit::Coordinates(Some(c)) => validate::coordinates(c),
        VisitEdit::Coordinates(None) => Ok(()),
        VisitEdit::OccurredAt(t) => validate::time("occurred_at", *t),
        VisitEdit::VisitType(k) => validate::key("visit_type", k),
        VisitEdit::PeopleReached(n) => validate::count("people_reached", *n),
        VisitEdit::AddIndicator(k) | VisitEdit::RemoveIndicator(k) => validate::key("indicator", k),
        VisitEdit::ReferralStatus { referral_id, .. } => validate::id("referral_id", referral_id),
        VisitEdit::ReferralTo { referral_id, to } => {
            validate::id("referral_id", referral_id)?;
            validate::line("referral.to", to)
        }
        VisitEdit::FollowUpDue(Some(d)) => validate::date("follow_up.due", d),
        VisitEdit::FollowUpNeeded(_)
        | VisitEdit::FollowUpDue(None)
        | VisitEdit::FollowUpDone(_)
        | VisitEdit::Sensitivity(_) => Ok(()),
        VisitEdit::AddTag(k) | VisitEdit::RemoveTag(k) => validate::key("tag", k),
        VisitEdit::Notes(s) => validate::notes("notes", s),
    }
}

/// Writes a new visit into an empty document.
pub(crate) fn create(doc: &mut AutoCommit, workspace: &str, v: &NewVisit, now: i64) -> Result<()> {
    put_header(doc, RecordKind::Visit, workspace, now)?;
    doc.put(&ROOT, K_PLACE, v.place.name.as_str())?;
    doc.put(&ROOT, K_AREA, v.place.area.as_str())?;
    if let Some(c) = &v.place.coordinates {
        doc.put(&ROOT, K_COORDS, encode_coordinates(c))?;
    }
    doc.put(&ROOT, K_OCCURRED_AT, v.occurred_at)?;
    doc.put(&ROOT, K_VISIT_TYPE, v.visit_type.as_str())?;
    doc.put(&ROOT, K_PEOPLE, i64::from(v.people_reached))?;
    put_set(doc, &ROOT, K_INDICATORS, &v.indicators)?;
    doc.put_object(&ROOT, K_REFERRALS, ObjType::Map)?;
    for r in &v.referrals {
        add_referral(doc, r, now)?;
    }
    doc.put(&ROOT, K_FU_NEEDED, v.follow_up.needed)?;
    if let Some(d) = &v.follow_up.due {
        doc.put(&ROOT, K_FU_DUE, d.as_str())?;
    }
    doc.put(&ROOT, K_FU_DONE, v.follow_up.done)?;
    put_set(doc, &ROOT, K_TAGS, &v.tags)?;
    doc.put(&ROOT, K_SENSITIVITY, v.sensitivity.as_str())?;
    put_text(doc, &ROOT, K_NOTES, &v.notes)?;
    Ok(())
}

/// Adds a referral and returns its id.
pub(crate) fn add_referral(doc: &mut AutoCommit, r: &NewReferral, now: i64) -> Result<String> {
    let referrals = get_obj(doc, &ROOT, K_REFERRALS, ObjType::Map)
        .ok_or_else(|| Error::Corrupt("visit has no referrals map".into()))?;
    let id = new_id();
    let m = doc.put_object(&referrals, id.as_str(), ObjType::Map)?;
    doc.put(&m, "kind", r.kind.as_str())?;
    doc.put(&m, "to", r.to.as_str())?;
    doc.put(&m, "status", r.status.as_str())?;
    doc.put(&m, "created_at", now)?;
    Ok(id)
}

/// Applies one edit.
pub(crate) fn apply(doc: &mut AutoCommit, e: &VisitEdit) -> Result<()> {
    match e {
        VisitEdit::PlaceName(s) => doc.put(&ROOT, K_PLACE, s.as_str())?,
        VisitEdit::Area(s) => doc.put(&ROOT, K_AREA, s.as_str())?,
        VisitEdit::Coordinates(Some(c)) => doc.put(&ROOT, K_COORDS, encode_coordinates(c))?,
        VisitEdit::Coordinates(None) => delete_if_present(doc, K_COORDS)?,
        VisitEdit::OccurredAt(t) => doc.put(&ROOT, K_OCCURRED_AT, *t)?,
        VisitEdit::VisitType(k) => doc.put(&ROOT, K_VISIT_TYPE, k.as_str())?,
        VisitEdit::PeopleReached(n) => doc.put(&ROOT, K_PEOPLE, i64::from(*n))?,
        VisitEdit::AddIndicator(k) => set_member(doc, &ROOT, K_INDICATORS, k, true)?,
        VisitEdit::RemoveIndicator(k) => set_member(doc, &ROOT, K_INDICATORS, k, false)?,
        VisitEdit::ReferralStatus {
            referral_id,
            status,
        } => doc.put(&referral(doc, referral_id)?, "status", status.as_str())?,
        VisitEdit::ReferralTo { referral_id, to } => {
            doc.put(&referral(doc, referral_id)?, "to", to.as_str())?
        }
        VisitEdit::FollowUpNeeded(b) => doc.put(&ROOT, K_FU_NEEDED, *b)?,
        VisitEdit::FollowUpDue(Some(d)) => doc.put(&ROOT, K_FU_DUE, d.as_str())?,
        VisitEdit::FollowUpDue(None) => delete_if_present(doc, K_FU_DUE)?,
        VisitEdit::FollowUpDone(b) => doc.put(&ROOT, K_FU_DONE, *b)?,
        VisitEdit::AddTag(k) => set_member(doc, &ROOT, K_TAGS, k, true)?,
        VisitEdit::RemoveTag(k) => set_member(doc, &ROOT, K_TAGS, k, false)?,
        VisitEdit::Sensitivity(s) => doc.put(&ROOT, K_SENSITIVITY, s.as_str())?,
        VisitEdit::Notes(s) => set_text(doc, &ROOT, K_NOTES, s)?,
    }
    Ok(())
}

fn delete_if_present(doc: &mut AutoCommit, key: &str) -> Result<()> {
    if doc.get(&ROOT, key)?.is_some() {
        doc.delete(&ROOT, key)?;
    }
    Ok(())
}

fn referral(doc: &AutoCommit, id: &str) -> Result<automerge::ObjId> {
    get_obj(doc, &ROOT, K_REFERRALS, ObjType::Map)
        .and_then(|r| get_obj(doc, &r, id, ObjType::Map))
        .ok_or_else(|| Error::not_found(format!("referral {id}")))
}

/// Stores coordinates as one scalar so that concurrent moves never mix one device's latitude
/// with another's longitude; the decimals kept are the precision.
fn encode_coordinates(c: &Coordinates) -> String {
    let p = usize::from(c.precision);
    format!("{:.*},{:.*}", p, c.lat, p, c.lon)
}

fn decode_coordinates(s: &str) -> Option<Coordinates> {
    let (lat, lon) = s.split_once(',')?;
    let precision = lat.split_once('.').map_or(0, |(_, d)| d.len());
    Some(Coordinates {
        lat: lat.parse().ok()?,
        lon: lon.parse().ok()?,
        precision: u8::try_from(precision).ok()?,
    })
}

/// Reads a visit document.
pub(crate) fn read(doc: &AutoCommit, id: &str, h: &Header) -> Visit {
    let root = Fields::of(doc, &ROOT);
    let refs = root.map(K_REFERRALS);
    let mut referrals: Vec<Referral> = refs
        .maps()
        .map(|(rid, m)| Referral {
            kind: m.str("kind").unwrap_or_default(),
            to: m.str("to").unwrap_or_default(),
            status: ReferralStatus::parse(&m.str("status").unwrap_or_default()),
            id: rid.to_string(),
        })
        .collect();
    referrals.sort_by(|a, b| a.id.cmp(&b.id));
    Visit {
        id: id.to_string(),
        workspace_id: h.workspace.clone(),
        place: Place {
            name: root.str(K_PLACE).unwrap_or_default(),
            area: root.str(K_AREA).unwrap_or_default(),
            coordinates: root.str(K_COORDS).and_then(|s| decode_coordinates(&s)),
        },
        occurred_at: root.i64(K_OCCURRED_AT).unwrap_or(h.created_at),
        visit_type: root.str(K_VISIT_TYPE).unwrap_or_default(),
        people_reached: root
            .i64(K_PEOPLE)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        indicators: root.set(K_INDICATORS),
        referrals,
        follow_up: FollowUp {
            needed: root.bool(K_FU_NEEDED).unwrap_or(false),
            due: root.str(K_FU_DUE),
            done: root.bool(K_FU_DONE).unwrap_or(false),
        },
        tags: root.set(K_TAGS),
        sensitivity: Sensitivity::parse(
            &root.str(K_SENSITIVITY).unwrap_or_else(|| "normal".into()),
        ),
        notes: root.text(K_NOTES),
        deleted: h.deleted,
        created_at: h.created_at,
        has_conflicts: has_conflicts(doc),
    }
}
