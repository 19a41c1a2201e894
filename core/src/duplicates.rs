//! Duplicate attendees: two educators at one door, or a participant who comes to three
//! workshops, must count as one person when funders ask for people reached.
//!
//! Names are compared as keys: decomposed (NFKD) without accents, lower case, punctuation as
//! spaces, words sorted, so "María  LÓPEZ" and "lopez maria" are one key. Two keys one edit
//! apart (a typo: a letter wrong, missing, added, or two swapped) are close, for names longer
//! than four letters. The age band and gender count for a match when both are known and equal,
//! and against it when they differ; the same contact is a match whatever the names.
//!
//! A check-in's lookup does not compare the name with every attendee's: it looks up, in the
//! index of keys, the key and every key one edit away (about a thousand index seeks for a
//! name of twelve letters), and the attendees who left a contact. Flagging the pairs of a whole
//! workspace groups attendees by their key and each key one letter shorter (two keys one edit
//! apart share one of those), and compares only within groups.
//!
//! Marking two attendances as one person (`merge_attendees`) is an edit of the later
//! attendee's workshop like any other (its `same_as` names the first), so it merges across
//! devices and is undone by `unmerge_attendee`. Reports count unique people by following
//! those marks.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::{Error, Result};
use crate::model::{NewAttendee, RecordKind};
use crate::records::workshop;
use crate::store::Store;
use crate::validate;

/// Lowest score reported as a possible duplicate.
const THRESHOLD: f64 = 0.6;
/// Most possible duplicates one lookup returns.
const MAX_MATCHES: usize = 10;
/// Most flagged pairs `duplicate_attendees` returns.
const MAX_PAIRS: usize = 1_000;

/// An attendee of a workshop, as duplicates name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendeeRef {
    /// The workshop.
    pub workshop_id: String,
    /// The attendee within it.
    pub attendee_id: String,
    /// Their name.
    pub name: String,
}

/// An attendee who may be the same person as the one being checked in.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateMatch {
    /// The attendee already recorded.
    pub attendee: AttendeeRef,
    /// How alike, 0 to 1.
    pub score: f64,
    /// Why: `same_name`, `name_word_order`, `name_typo`, `same_age_band`, `same_gender`,
    /// `same_contact`.
    pub reasons: Vec<String>,
}

/// Two recorded attendees who may be the same person, not marked as one yet.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatePair {
    /// The one checked in first.
    pub first: AttendeeRef,
    /// The other.
    pub second: AttendeeRef,
    /// How alike, 0 to 1.
    pub score: f64,
    /// Why (as [`DuplicateMatch::reasons`]).
    pub reasons: Vec<String>,
}

/// A name as compared: no accents, case, punctuation or word order.
pub(crate) fn name_key(name: &str) -> String {
    let mut words: Vec<String> = plain_words(name);
    words.sort();
    words.join(" ")
}

/// The words of a name without accents, case or punctuation, in their order.
fn plain_words(name: &str) -> Vec<String> {
    let plain: String = name
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    plain.split_whitespace().map(str::to_string).collect()
}

/// A contact as compared: digits of a phone number, or an address without case or spaces.
fn contact_key(contact: &str) -> String {
    let digits: String = contact.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 6 && !contact.contains('@') {
        return digits;
    }
    contact
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key and each key one letter shorter: keys one edit apart share one of these.
fn neighbourhood(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut out = Vec::with_capacity(chars.len() + 1);
    out.push(key.to_string());
    if chars.len() > 4 {
        for i in 0..chars.len() {
            let mut s = String::with_capacity(key.len());
            s.extend(chars[..i].iter().chain(&chars[i + 1..]));
            out.push(s);
        }
    }
    out
}

/// Edits allowed between two different keys of this length for them to be close: short names
/// one letter apart are too often different people.
fn allowed_edits(len: usize) -> usize {
    match len {
        0..=4 => 0,
        _ => 1,
    }
}

/// The key and every key one edit away from it (a letter deleted, swapped with the next,
/// replaced or inserted; replaced and inserted letters from a-z, 0-9, a space and the key's
/// own letters), when the key is long enough for typos to count.
fn one_edit_away(key: &str) -> HashSet<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut out = HashSet::new();
    out.insert(key.to_string());
    if allowed_edits(chars.len() + 1) == 0 {
        return out;
    }
    let mut alphabet: BTreeSet<char> = ('a'..='z').chain('0'..='9').chain([' ']).collect();
    alphabet.extend(chars.iter().copied());
    let word = |parts: &[&[char]], middle: Option<char>| -> String {
        let mut s = String::with_capacity(key.len() + 4);
        s.extend(parts[0].iter());
        s.extend(middle);
        s.extend(parts[1].iter());
        s
    };
    for i in 0..=chars.len() {
        let (head, tail) = chars.split_at(i);
        for &c in &alphabet {
            out.insert(word(&[head, tail], Some(c)));
        }
        if let Some((_, rest)) = tail.split_first() {
            out.insert(word(&[head, rest], None));
            for &c in &alphabet {
                out.insert(word(&[head, rest], Some(c)));
            }
            if let Some((&second, after)) = rest.split_first() {
                let mut s: String = head.iter().collect();
                s.push(second);
                s.push(tail[0]);
                s.extend(after.iter());
                out.insert(s);
            }
        }
    }
    out
}

/// One attendee as compared.
struct Person {
    workshop_id: String,
    attendee_id: String,
    name: String,
    key: String,
    age_band: Option<String>,
    gender: Option<String>,
    contact: Option<String>,
    checked_in_at: i64,
}

/// How alike two attendees are, and why; `None` below the threshold.
fn compare(
    a_name: &str,
    a_key: &str,
    a: (&Option<String>, &Option<String>, &Option<String>),
    b: &Person,
) -> Option<(f64, Vec<String>)> {
    let mut reasons = Vec::new();
    let same_contact = match (a.2, &b.contact) {
        (Some(x), Some(y)) => {
            let (x, y) = (contact_key(x), contact_key(y));
            !x.is_empty() && x == y
        }
        _ => false,
    };
    let name = if a_key.is_empty() || b.key.is_empty() {
        0.0
    } else if a_key == b.key {
        match plain_words(a_name) == plain_words(&b.name) {
            true => reasons.push("same_name".to_string()),
            false => reasons.push("name_word_order".to_string()),
        }
        1.0
    } else {
        let len = a_key.chars().count().max(b.key.chars().count());
        let edits = strsim::damerau_levenshtein(a_key, &b.key);
        if edits > allowed_edits(len) {
            0.0
        } else {
            reasons.push("name_typo".to_string());
            1.0 - 0.15 * edits as f64
        }
    };
    let mut score = 0.7 * name;
    for (mine, theirs, why, plus, minus) in [
        (a.0, &b.age_band, "same_age_band", 0.15, 0.3),
        (a.1, &b.gender, "same_gender", 0.15, 0.4),
    ] {
        match (mine, theirs) {
            (Some(x), Some(y)) if x == y => {
                score += plus;
                reasons.push(why.to_string());
            }
            (Some(_), Some(_)) => score -= minus,
            _ => {}
        }
    }
    if same_contact {
        reasons.push("same_contact".to_string());
        score = score.max(0.95);
    }
    (score >= THRESHOLD).then_some((score.min(1.0), reasons))
}

/// Which attendees [`people`] reads.
enum Which<'a> {
    /// All of them.
    All,
    /// Those whose name has this key (through the index of keys).
    Key(&'a str),
    /// Those who left a contact.
    WithContact,
}

/// The named attendees of a workspace who count (their workshop not deleted, not withdrawn).
fn people(c: &Connection, workspace: &str, which: Which<'_>) -> Result<Vec<Person>> {
    const SELECT: &str = "SELECT a.workshop_id, a.id, a.name, a.name_key, a.age_band, a.gender,
            a.contact, a.checked_in_at
         FROM attendees a JOIN workshops k ON k.id = a.workshop_id
         WHERE k.workspace_id = ?1 AND k.deleted = 0 AND a.withdrawn = 0";
    let read = |r: &rusqlite::Row<'_>| {
        Ok(Person {
            workshop_id: r.get(0)?,
            attendee_id: r.get(1)?,
            name: r.get(2)?,
            key: r.get(3)?,
            age_band: r.get(4)?,
            gender: r.get(5)?,
            contact: r.get(6)?,
            checked_in_at: r.get(7)?,
        })
    };
    let rows = match which {
        Which::All => c
            .prepare_cached(SELECT)?
            .query_map(params![workspace], read)?
            .collect::<rusqlite::Result<_>>()?,
        Which::Key(key) => c
            .prepare_cached(&format!("{SELECT} AND a.name_key = ?2"))?
            .query_map(params![workspace, key], read)?
            .collect::<rusqlite::Result<_>>()?,
        Which::WithContact => c
            .prepare_cached(&format!("{SELECT} AND a.contact IS NOT NULL"))?
            .query_map(params![workspace], read)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// The marks attendees carry (`same_as`): whom each attendee marked the same as another was
/// marked the same as, by `workshop_id:attendee_id`.
pub(crate) struct Marks(HashMap<String, String>);

impl Marks {
    /// Every mark in the store (few: only attendees marked as someone else carry one).
    pub(crate) fn read(c: &Connection) -> Result<Marks> {
        let mut st = c.prepare_cached(
            "SELECT workshop_id || ':' || id, same_as FROM attendees WHERE same_as IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Marks(rows.collect::<rusqlite::Result<_>>()?))
    }

    /// The person an attendee (`workshop_id:attendee_id`) is: the end of its chain of marks.
    /// Marks made at once on two devices may form a loop; its smallest member stands for it.
    pub(crate) fn person(&self, attendee: &str) -> String {
        let mut at = attendee.to_string();
        let mut seen = BTreeSet::new();
        while let Some(next) = self.0.get(&at) {
            if !seen.insert(at.clone()) {
                return seen.into_iter().next().unwrap_or(at);
            }
            at = next.clone();
        }
        at
    }
}

impl Store {
    /// Attendees of the workspace who may be the person being checked in, the likeliest
    /// first, with a score and why (at most 10).
    pub fn possible_duplicates(
        &self,
        workspace: &str,
        attendee: &NewAttendee,
    ) -> Result<Vec<DuplicateMatch>> {
        validate::id("workspace_id", workspace)?;
        validate::line("name", &attendee.name)?;
        let key = name_key(&attendee.name);
        let contact = attendee
            .contact
            .as_deref()
            .map(contact_key)
            .filter(|c| !c.is_empty());
        let mut out: Vec<DuplicateMatch> = self.read(|c| {
            let mut candidates = Vec::new();
            if !key.is_empty() {
                for near in one_edit_away(&key) {
                    candidates.extend(people(c, workspace, Which::Key(&near))?);
                }
            }
            if let Some(contact) = &contact {
                let mut seen: HashSet<(String, String)> = candidates
                    .iter()
                    .map(|p| (p.workshop_id.clone(), p.attendee_id.clone()))
                    .collect();
                for p in people(c, workspace, Which::WithContact)? {
                    if p.contact.as_deref().map(contact_key).as_ref() == Some(contact)
                        && seen.insert((p.workshop_id.clone(), p.attendee_id.clone()))
                    {
                        candidates.push(p);
                    }
                }
            }
            let mine = (&attendee.age_band, &attendee.gender, &attendee.contact);
            Ok(candidates
                .into_iter()
                .filter_map(|p| {
                    let (score, reasons) = compare(&attendee.name, &key, mine, &p)?;
                    Some(DuplicateMatch {
                        attendee: AttendeeRef {
                            workshop_id: p.workshop_id,
                            attendee_id: p.attendee_id,
                            name: p.name,
                        },
                        score,
                        reasons,
                    })
                })
                .collect())
        })?;
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(MAX_MATCHES);
        Ok(out)
    }

    /// Pairs of the workspace's attendees who may be the same person and are not marked as
    /// one yet, the likeliest first (at most 1,000): after a sync, those two devices checked
    /// in separately show on both.
    pub fn duplicate_attendees(&self, workspace: &str) -> Result<Vec<DuplicatePair>> {
        validate::id("workspace_id", workspace)?;
        let mut pairs = self.read(|c| {
            let people = people(c, workspace, Which::All)?;
            let marks = Marks::read(c)?;
            // Attendees sharing a near key or a contact are compared; nobody else is.
            let mut blocks: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, p) in people.iter().enumerate() {
                for k in neighbourhood(&p.key) {
                    if !k.is_empty() {
                        blocks.entry(format!("n{k}")).or_default().push(i);
                    }
                }
                if let Some(contact) = p.contact.as_deref().map(contact_key)
                    && !contact.is_empty()
                {
                    blocks.entry(format!("c{contact}")).or_default().push(i);
                }
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for members in blocks.values() {
                for (n, &i) in members.iter().enumerate() {
                    for &j in &members[n + 1..] {
                        let (i, j) = (i.min(j), i.max(j));
                        if i == j || !seen.insert((i, j)) {
                            continue;
                        }
                        let (a, b) = (&people[i], &people[j]);
                        let person = |p: &Person| {
                            marks.person(&format!("{}:{}", p.workshop_id, p.attendee_id))
                        };
                        if person(a) == person(b) {
                            continue;
                        }
                        if let Some((score, reasons)) =
                            compare(&a.name, &a.key, (&a.age_band, &a.gender, &a.contact), b)
                        {
                            let (first, second) = match (a.checked_in_at, &a.attendee_id)
                                <= (b.checked_in_at, &b.attendee_id)
                            {
                                true => (a, b),
                                false => (b, a),
                            };
                            let r = |p: &Person| AttendeeRef {
                                workshop_id: p.workshop_id.clone(),
                                attendee_id: p.attendee_id.clone(),
                                name: p.name.clone(),
                            };
                            out.push(DuplicatePair {
                                first: r(first),
                                second: r(second),
                                score,
                                reasons,
                            });
                        }
                    }
                }
            }
            Ok(out)
        })?;
        pairs.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| {
                (&a.first.attendee_id, &a.second.attendee_id)
                    .cmp(&(&b.first.attendee_id, &b.second.attendee_id))
            })
        });
        pairs.truncate(MAX_PAIRS);
        Ok(pairs)
    }

    /// Marks an attendee as the same person as another (of any workshop of the workspace), so
    /// reports count them once; an edit of the attendee's workshop, merged across devices like
    /// any other and undone by [`Store::unmerge_attendee`].
    pub fn merge_attendees(
        &self,
        workshop_id: &str,
        attendee_id: &str,
        same_as_workshop_id: &str,
        same_as_attendee_id: &str,
    ) -> Result<()> {
        validate::id("attendee_id", attendee_id)?;
        validate::id("same_as_workshop_id", same_as_workshop_id)?;
        validate::id("same_as_attendee_id", same_as_attendee_id)?;
        let target = self.read(|c| {
            let workspace_of = |workshop: &str, attendee: &str| -> Result<String> {
                c.query_row(
                    "SELECT k.workspace_id FROM attendees a JOIN workshops k ON k.id = a.workshop_id
                     WHERE a.workshop_id = ?1 AND a.id = ?2",
                    params![workshop, attendee],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .ok_or_else(|| Error::not_found(format!("attendee {attendee}")))
            };
            let here = workspace_of(workshop_id, attendee_id)?;
            if workspace_of(same_as_workshop_id, same_as_attendee_id)? != here {
                return Err(Error::invalid(
                    "same_as_workshop_id",
                    "the attendees belong to different workspaces",
                ));
            }
            Ok(Marks::read(c)?.person(&format!("{same_as_workshop_id}:{same_as_attendee_id}")))
        })?;
        if target == format!("{workshop_id}:{attendee_id}") {
            return Err(Error::invalid(
                "same_as_attendee_id",
                "an attendee cannot be marked the same as itself",
            ));
        }
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, _| {
            workshop::set_same_as(doc, attendee_id, Some(&target))
        })
    }

    /// Undoes [`Store::merge_attendees`]: the attendee counts as a person of their own again.
    pub fn unmerge_attendee(&self, workshop_id: &str, attendee_id: &str) -> Result<()> {
        validate::id("attendee_id", attendee_id)?;
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, _| {
            workshop::set_same_as(doc, attendee_id, None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_without_accents_case_punctuation_or_word_order() {
        assert_eq!(name_key("María  LÓPEZ-Gómez"), "gomez lopez maria");
        assert_eq!(name_key("lopez gomez, Maria"), "gomez lopez maria");
        assert_eq!(name_key("  "), "");
    }

    #[test]
    fn every_key_one_edit_away_is_looked_up() {
        let near = one_edit_away("maria lopez");
        for typo in [
            "mria lopez",
            "mraia lopez",
            "maria lopes",
            "maria llopez",
            "marialopez",
        ] {
            assert!(near.contains(typo), "{typo}");
        }
        assert!(!near.contains("mario lopes"), "two edits away");
        assert_eq!(one_edit_away("ana"), HashSet::from(["ana".to_string()]));
    }

    #[test]
    fn keys_one_edit_apart_share_a_neighbour() {
        for (a, b) in [
            ("maria lopez", "mria lopez"),
            ("maria lopez", "mraia lopez"),
        ] {
            let na: HashSet<String> = neighbourhood(a).into_iter().collect();
            assert!(neighbourhood(b).iter().any(|k| na.contains(k)), "{a} / {b}");
        }
        assert!(
            !neighbourhood("ana").iter().any(|k| k == "an"),
            "short names need the same key"
        );
    }

    #[test]
    fn contacts_compare_by_their_digits_or_their_address() {
        assert_eq!(contact_key("+52 (555) 010-1"), "525550101");
        assert_eq!(contact_key("Maria@Example.org "), "maria@example.org");
    }
}
