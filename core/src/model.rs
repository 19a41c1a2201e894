//! The records a user works with: field visits, awareness workshops, workspace settings, and
//! the filters, summaries, conflicts and history entries read back from a store.
//!
//! Times are milliseconds since the Unix epoch (UTC); calendar dates (a follow-up's due date)
//! are `YYYY-MM-DD` strings. Taxonomy values (visit types, indicators, topics, ...) are the
//! stable keys of the workspace settings, e.g. `debt_bondage`.

/// Whether a record may be shown and exported freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sensitivity {
    /// Visible to the whole team, included in exports and reports.
    #[default]
    Normal,
    /// Identifies a victim, a minor or an ongoing case: excluded from exports unless asked for.
    Restricted,
}

/// Where a referral stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReferralStatus {
    /// Proposed, not yet made.
    #[default]
    Suggested,
    /// The person was referred.
    Made,
    /// The receiving service took the case.
    Accepted,
    /// The service was delivered.
    Completed,
    /// The person or the service declined.
    Declined,
}

/// The kind of a record document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A field visit.
    Visit,
    /// An awareness workshop.
    Workshop,
    /// A workspace's settings (taxonomies, device names).
    Settings,
    /// An anonymous tip from the workspace's tip page (restricted to coordinators).
    Tip,
}

/// A point, rounded to the precision the worker chose (fewer decimals reveal less).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    /// Latitude in degrees, -90..=90.
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    pub lon: f64,
    /// Decimal places kept, 0..=6 (2 is about 1 km, 4 about 10 m).
    pub precision: u8,
}

/// Where a visit happened.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Place {
    /// A name the team recognises ("Central bus station, north gate").
    pub name: String,
    /// The area used for filters and reports (district, neighbourhood).
    pub area: String,
    /// Optional coordinates.
    pub coordinates: Option<Coordinates>,
}

/// A referral to create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewReferral {
    /// Referral kind key (`shelter`, `legal_aid`, ...).
    pub kind: String,
    /// To whom (organisation or service).
    pub to: String,
    /// Initial status.
    pub status: ReferralStatus,
}

/// A referral made on a visit.
#[derive(Debug, Clone, PartialEq)]
pub struct Referral {
    /// Stable id within the visit.
    pub id: String,
    /// Referral kind key.
    pub kind: String,
    /// To whom.
    pub to: String,
    /// Current status.
    pub status: ReferralStatus,
}

/// Whether and when a visit needs following up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FollowUp {
    /// A follow-up is needed.
    pub needed: bool,
    /// Due date, `YYYY-MM-DD`.
    pub due: Option<String>,
    /// The follow-up was done.
    pub done: bool,
}

/// A field visit to record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewVisit {
    /// Where.
    pub place: Place,
    /// When (ms since epoch).
    pub occurred_at: i64,
    /// Visit type key (`street_outreach`, ...).
    pub visit_type: String,
    /// People reached, as the worker counted them.
    pub people_reached: u32,
    /// Risk indicator keys observed.
    pub indicators: Vec<String>,
    /// Referrals made.
    pub referrals: Vec<NewReferral>,
    /// Follow-up.
    pub follow_up: FollowUp,
    /// Free tags.
    pub tags: Vec<String>,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Free-text notes.
    pub notes: String,
}

/// A field visit as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// Record id.
    pub id: String,
    /// Workspace it belongs to.
    pub workspace_id: String,
    /// Where.
    pub place: Place,
    /// When (ms since epoch).
    pub occurred_at: i64,
    /// Visit type key.
    pub visit_type: String,
    /// People reached (one of the values if devices disagree: see `conflicts`).
    pub people_reached: u32,
    /// Risk indicator keys, sorted.
    pub indicators: Vec<String>,
    /// Referrals, by id.
    pub referrals: Vec<Referral>,
    /// Follow-up.
    pub follow_up: FollowUp,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Notes.
    pub notes: String,
    /// Deleted (tombstoned).
    pub deleted: bool,
    /// When the record was created (ms since epoch).
    pub created_at: i64,
    /// Some field holds concurrent values from different devices.
    pub has_conflicts: bool,
}

/// One change to a visit; several can be applied in one call (one commit).
#[derive(Debug, Clone, PartialEq)]
pub enum VisitEdit {
    /// Rename the place.
    PlaceName(String),
    /// Change the area.
    Area(String),
    /// Set or clear the coordinates.
    Coordinates(Option<Coordinates>),
    /// Change when it happened.
    OccurredAt(i64),
    /// Change the visit type.
    VisitType(String),
    /// Change the number of people reached.
    PeopleReached(u32),
    /// Mark an indicator as observed.
    AddIndicator(String),
    /// Unmark an indicator.
    RemoveIndicator(String),
    /// Change a referral's status.
    ReferralStatus {
        /// Referral id.
        referral_id: String,
        /// New status.
        status: ReferralStatus,
    },
    /// Change to whom a referral was made.
    ReferralTo {
        /// Referral id.
        referral_id: String,
        /// New recipient.
        to: String,
    },
    /// Set whether a follow-up is needed.
    FollowUpNeeded(bool),
    /// Set or clear the follow-up due date (`YYYY-MM-DD`).
    FollowUpDue(Option<String>),
    /// Mark the follow-up done or not.
    FollowUpDone(bool),
    /// Add a tag.
    AddTag(String),
    /// Remove a tag.
    RemoveTag(String),
    /// Change sensitivity.
    Sensitivity(Sensitivity),
    /// Replace the notes with this full text (merged character by character).
    Notes(String),
}

/// Which follow-ups a visit list should keep.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUpFilter {
    /// Needed and not done.
    Open,
    /// Open and due on or before this date (`YYYY-MM-DD`).
    DueBy(String),
    /// Open and due strictly before this date (`YYYY-MM-DD`, usually today).
    OverdueOn(String),
}

/// Filters for listing visits; empty fields do not filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VisitFilter {
    /// Only this workspace.
    pub workspace_id: Option<String>,
    /// Occurred at or after (ms).
    pub from: Option<i64>,
    /// Occurred before (ms).
    pub to: Option<i64>,
    /// Only this area.
    pub area: Option<String>,
    /// Only this visit type.
    pub visit_type: Option<String>,
    /// Only visits where this indicator was observed.
    pub indicator: Option<String>,
    /// Follow-up state.
    pub follow_up: Option<FollowUpFilter>,
    /// Include tombstoned visits.
    pub include_deleted: bool,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Skip this many (paging).
    pub offset: Option<u32>,
}

/// A visit as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitSummary {
    /// Record id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// When.
    pub occurred_at: i64,
    /// Place name.
    pub place_name: String,
    /// Area.
    pub area: String,
    /// Visit type key.
    pub visit_type: String,
    /// People reached.
    pub people_reached: u32,
    /// Indicator keys, sorted.
    pub indicators: Vec<String>,
    /// Follow-up.
    pub follow_up: FollowUp,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Some field holds concurrent values.
    pub has_conflicts: bool,
    /// Tombstoned.
    pub deleted: bool,
}

/// An awareness workshop to record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewWorkshop {
    /// Title.
    pub title: String,
    /// Topic key (`safe_migration`, ...).
    pub topic: String,
    /// When it started (ms since epoch).
    pub occurred_at: i64,
    /// Duration in minutes.
    pub duration_minutes: u32,
    /// Venue.
    pub venue: String,
    /// Area for filters and reports.
    pub area: String,
    /// Audience key (`students`, ...).
    pub audience: String,
    /// Language it was held in (e.g. `en`, `es`).
    pub language: String,
    /// Facilitators' names or ids.
    pub facilitators: Vec<String>,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Notes.
    pub notes: String,
}

/// A named attendee to check in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewAttendee {
    /// Name as given (may be a first name or a nickname).
    pub name: String,
    /// Age band key.
    pub age_band: Option<String>,
    /// Gender key.
    pub gender: Option<String>,
    /// Contact detail; recorded only with consent.
    pub contact: Option<String>,
    /// The attendee consented to their contact being recorded.
    pub consent: bool,
}

/// A named attendee as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Attendee {
    /// Attendee id within the workshop.
    pub id: String,
    /// Name.
    pub name: String,
    /// Age band key.
    pub age_band: Option<String>,
    /// Gender key.
    pub gender: Option<String>,
    /// Contact (present only if consent was given).
    pub contact: Option<String>,
    /// When consent was recorded (ms), if given.
    pub consent_at: Option<i64>,
    /// When they were checked in (ms).
    pub checked_in_at: i64,
    /// Withdrawn (they left, or asked to be removed): kept, but not counted. One who asked for
    /// their data to be removed (`Store::remove_attendee_data`) keeps no name or contact, in any
    /// version of the record.
    pub withdrawn: bool,
    /// The attendee this one was marked the same person as (`Store::merge_attendees`), as
    /// `workshop_id:attendee_id`.
    pub same_as: Option<String>,
}

/// An anonymous head count for one age band and gender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Age band key.
    pub age_band: String,
    /// Gender key.
    pub gender: String,
    /// People counted.
    pub count: i64,
}

/// Feedback collected at a workshop.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// Feedback id.
    pub id: String,
    /// Score 1..=5.
    pub score: u8,
    /// Comment.
    pub comment: String,
    /// When (ms).
    pub at: i64,
}

/// An awareness workshop as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Workshop {
    /// Record id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Title.
    pub title: String,
    /// Topic key.
    pub topic: String,
    /// When (ms).
    pub occurred_at: i64,
    /// Duration in minutes.
    pub duration_minutes: u32,
    /// Venue.
    pub venue: String,
    /// Area.
    pub area: String,
    /// Audience key.
    pub audience: String,
    /// Language.
    pub language: String,
    /// Facilitators, sorted.
    pub facilitators: Vec<String>,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Notes.
    pub notes: String,
    /// Named attendees (withdrawn ones included, flagged), by check-in time.
    pub attendees: Vec<Attendee>,
    /// Anonymous tallies with a non-zero count.
    pub tallies: Vec<Tally>,
    /// Feedback, by time.
    pub feedback: Vec<Feedback>,
    /// Tombstoned.
    pub deleted: bool,
    /// When the record was created (ms).
    pub created_at: i64,
    /// Some field holds concurrent values.
    pub has_conflicts: bool,
}

/// One change to a workshop's own fields.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkshopEdit {
    /// Title.
    Title(String),
    /// Topic key.
    Topic(String),
    /// Start time (ms).
    OccurredAt(i64),
    /// Duration in minutes.
    DurationMinutes(u32),
    /// Venue.
    Venue(String),
    /// Area.
    Area(String),
    /// Audience key.
    Audience(String),
    /// Language.
    Language(String),
    /// Add a facilitator.
    AddFacilitator(String),
    /// Remove a facilitator.
    RemoveFacilitator(String),
    /// Sensitivity.
    Sensitivity(Sensitivity),
    /// Replace the notes with this full text (merged character by character).
    Notes(String),
}

/// Filters for listing workshops; empty fields do not filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkshopFilter {
    /// Only this workspace.
    pub workspace_id: Option<String>,
    /// Held at or after (ms).
    pub from: Option<i64>,
    /// Held before (ms).
    pub to: Option<i64>,
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this area.
    pub area: Option<String>,
    /// Include tombstoned workshops.
    pub include_deleted: bool,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: Option<u32>,
}

/// A workshop as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkshopSummary {
    /// Record id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Title.
    pub title: String,
    /// Topic key.
    pub topic: String,
    /// When (ms).
    pub occurred_at: i64,
    /// Area.
    pub area: String,
    /// Audience key.
    pub audience: String,
    /// Attendance counted: named (not withdrawn) plus anonymous tallies.
    pub attendance: i64,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Some field holds concurrent values.
    pub has_conflicts: bool,
    /// Tombstoned.
    pub deleted: bool,
}

/// A count per key (age band, gender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The key.
    pub key: String,
    /// How many.
    pub count: i64,
}

/// A workshop's attendance with totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Attendance {
    /// Named attendees, withdrawn ones included and flagged.
    pub attendees: Vec<Attendee>,
    /// Anonymous tallies with a non-zero count.
    pub tallies: Vec<Tally>,
    /// Named attendees not withdrawn.
    pub named: i64,
    /// Named attendees withdrawn.
    pub withdrawn: i64,
    /// Unique people among the named attendees not withdrawn: attendees marked as the same
    /// person (`Store::merge_attendees`, e.g. checked in twice at the door) count once.
    pub unique_people: i64,
    /// Sum of anonymous tallies.
    pub anonymous: i64,
    /// named + anonymous.
    pub total: i64,
    /// Totals per age band (named not withdrawn + anonymous); unrecorded bands count as `unknown`.
    pub by_age_band: Vec<Count>,
    /// Totals per gender; unrecorded as `not_recorded`.
    pub by_gender: Vec<Count>,
}

/// A full-text search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Record id.
    pub id: String,
    /// Visit or workshop.
    pub kind: RecordKind,
    /// Workspace.
    pub workspace_id: String,
    /// Place name or workshop title.
    pub title: String,
    /// A short excerpt around the match, with matches in `[` `]`.
    pub snippet: String,
    /// Sensitivity, so apps can hide restricted hits until unlocked.
    pub sensitivity: Sensitivity,
}

/// An anonymous tip sent through the workspace's tip page, as coordinators' devices keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    /// Record id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// When the server received it, unix milliseconds rounded down to the hour (all the server
    /// keeps).
    pub received_at: i64,
    /// When the tipster's browser says it was sent (its own clock, not checked), ISO-8601.
    pub sent_at: String,
    /// The language the tipster read the page in.
    pub language: String,
    /// What happened, in the tipster's words.
    pub what: String,
    /// Where.
    pub place: String,
    /// When.
    pub time: String,
    /// How to reach the tipster, if they said.
    pub contact: String,
    /// The team's replies to the tipster, oldest first.
    pub replies: Vec<TipReply>,
    /// The visit it was turned into, if it was.
    pub visit_id: Option<String>,
    /// Tombstone.
    pub deleted: bool,
}

/// A reply a coordinator left for a tipster (sealed to the tipster on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipReply {
    /// Reply id.
    pub id: String,
    /// What was said.
    pub text: String,
    /// When, unix milliseconds.
    pub sent_at: i64,
    /// The device that wrote it (Automerge actor, hex).
    pub author: String,
}

/// A value of a field, as shown in conflicts.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Floating point.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// No value.
    Null,
}

/// Who wrote something: the device's Automerge actor, and its name if the workspace knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Actor id (hex).
    pub actor: String,
    /// The device's name from the workspace settings.
    pub device_name: Option<String>,
}

/// One of the concurrent values of a field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictValue {
    /// The value.
    pub value: FieldValue,
    /// Who wrote it.
    pub author: Author,
}

/// A field that holds concurrent values after a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Field path, e.g. `people_reached` or `referrals/<id>/status`.
    pub field: String,
    /// The value currently shown (the deterministic winner).
    pub current: FieldValue,
    /// All concurrent values, the current one included.
    pub values: Vec<ConflictValue>,
}

/// One change in a record's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// Change hash (hex).
    pub change: String,
    /// When the author's device made it (ms, device clock).
    pub at: i64,
    /// Who.
    pub author: Author,
    /// Top-level fields touched, sorted.
    pub fields: Vec<String>,
}

/// A workspace known to this store.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// Workspace id.
    pub id: String,
    /// Its name (from the settings document).
    pub name: String,
}

/// A label in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Language code (`en`, `es`, ...).
    pub lang: String,
    /// Text.
    pub text: String,
}

/// One entry of a taxonomy.
#[derive(Debug, Clone, PartialEq)]
pub struct TaxonomyEntry {
    /// Stable key.
    pub key: String,
    /// Labels by language, sorted by language.
    pub labels: Vec<Label>,
    /// Hidden from pickers but kept for old records.
    pub archived: bool,
    /// Display order.
    pub order: i64,
}

/// A named list of keys with labels (visit types, risk indicators, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Taxonomy {
    /// Taxonomy name (`visit_types`, `risk_indicators`, `referral_kinds`, `workshop_topics`,
    /// `audiences`, `age_bands`, `genders`).
    pub name: String,
    /// Entries by order, then key.
    pub entries: Vec<TaxonomyEntry>,
}

/// A workspace's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub name: String,
    /// Taxonomies, by name.
    pub taxonomies: Vec<Taxonomy>,
    /// Devices known to the workspace: (actor hex, name), by name.
    pub devices: Vec<(String, String)>,
}

/// One change to workspace settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingsEdit {
    /// Rename the workspace.
    Rename(String),
    /// Add an entry (or un-archive it) with its labels.
    AddEntry {
        /// Taxonomy name.
        taxonomy: String,
        /// New key.
        key: String,
        /// Labels.
        labels: Vec<Label>,
    },
    /// Set one label.
    SetLabel {
        /// Taxonomy name.
        taxonomy: String,
        /// Entry key.
        key: String,
        /// Language.
        lang: String,
        /// Text.
        text: String,
    },
    /// Archive or restore an entry.
    Archive {
        /// Taxonomy name.
        taxonomy: String,
        /// Entry key.
        key: String,
        /// Archived.
        archived: bool,
    },
}

/// What an import changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    /// Documents that gained changes, by id (sorted).
    pub changed: Vec<String>,
    /// Documents whose chunks were all already known.
    pub unchanged: u32,
    /// Documents left out, with why: they carried changes written as another device than the
    /// one that signed the bundle (they arrive through sync from their authors instead).
    pub refused: Vec<RefusedDocument>,
}

/// A document an import left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefusedDocument {
    /// Its id.
    pub doc_id: String,
    /// Why.
    pub reason: String,
}
