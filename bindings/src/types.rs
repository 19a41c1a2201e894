//! The records and enums that cross the boundary, mirroring `waymark_core`'s model, and every
//! conversion between the two, in both directions, in this one file.
//!
//! Field names follow the core, except where a core name is a keyword in a target language
//! (`from`/`to` in filters become `since`/`until`) or an enum variant would shadow a type of
//! the same name in Kotlin (`SetCoordinates`, `SetReferralStatus`, `SetSensitivity`). Tuple
//! variants of the core become variants with named fields, which read better in every
//! language. Times are milliseconds since the Unix epoch (UTC); dates are `YYYY-MM-DD`.

use waymark_core as wc;

/// Converts a value of one side into the other; implemented for every mirrored type and
/// lifted through `Vec` and `Option`.
trait Cv<T> {
    fn cv(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Cv<$t> for $t {
            fn cv(self) -> $t {
                self
            }
        }
    )*};
}
same!(String, bool, u8, u32, u64, i64, f64);

impl<A: Cv<B>, B> Cv<Vec<B>> for Vec<A> {
    fn cv(self) -> Vec<B> {
        self.into_iter().map(Cv::cv).collect()
    }
}

impl<A: Cv<B>, B> Cv<Option<B>> for Option<A> {
    fn cv(self) -> Option<B> {
        self.map(Cv::cv)
    }
}

/// `From` in both directions (and `Cv`) for a record whose fields have the same names on
/// both sides; destructuring without `..` makes a field added on either side a compile error.
macro_rules! mirror {
    ($core:path => $ffi:ident { $($f:ident),* $(,)? }) => {
        impl From<$core> for $ffi {
            fn from(v: $core) -> Self {
                let $core { $($f),* } = v;
                $ffi { $($f: $f.cv()),* }
            }
        }
        impl From<$ffi> for $core {
            fn from(v: $ffi) -> Self {
                let $ffi { $($f),* } = v;
                $core { $($f: $f.cv()),* }
            }
        }
        impl Cv<$ffi> for $core {
            fn cv(self) -> $ffi {
                self.into()
            }
        }
        impl Cv<$core> for $ffi {
            fn cv(self) -> $core {
                self.into()
            }
        }
    };
}

/// `From` in both directions (and `Cv`) for a field-less enum with the same variants.
macro_rules! mirror_enum {
    ($core:path => $ffi:ident { $($v:ident),* $(,)? }) => {
        impl From<$core> for $ffi {
            fn from(v: $core) -> Self {
                use $core as C;
                match v { $(C::$v => $ffi::$v),* }
            }
        }
        impl From<$ffi> for $core {
            fn from(v: $ffi) -> Self {
                use $core as C;
                match v { $($ffi::$v => C::$v),* }
            }
        }
        impl Cv<$ffi> for $core {
            fn cv(self) -> $ffi {
                self.into()
            }
        }
        impl Cv<$core> for $ffi {
            fn cv(self) -> $core {
                self.into()
            }
        }
    };
}

/// Implements `Cv` in both directions from hand-written `From` impls.
macro_rules! cv_from {
    ($core:path => $ffi:ident) => {
        impl Cv<$ffi> for $core {
            fn cv(self) -> $ffi {
                self.into()
            }
        }
        impl Cv<$core> for $ffi {
            fn cv(self) -> $core {
                self.into()
            }
        }
    };
}

// ---- small enums ----

/// Whether a record may be shown and exported freely.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sensitivity {
    /// Visible to the whole team, included in exports and reports.
    #[default]
    Normal,
    /// Identifies a victim, a minor or an ongoing case: excluded from exports unless asked for.
    Restricted,
}
mirror_enum!(wc::Sensitivity => Sensitivity { Normal, Restricted });

/// Where a referral stands.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
mirror_enum!(wc::ReferralStatus => ReferralStatus { Suggested, Made, Accepted, Completed, Declined });

/// The kind of a record document.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
mirror_enum!(wc::RecordKind => RecordKind { Visit, Workshop, Settings, Tip });

/// Which half of a sync is running.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncPhase {
    /// Sending local changes.
    Push,
    /// Receiving others' changes.
    Pull,
}
mirror_enum!(wc::SyncPhase => SyncPhase { Push, Pull });

// ---- visits ----

/// A point, rounded to the precision the worker chose (fewer decimals reveal less).
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Coordinates {
    /// Latitude in degrees, -90..=90.
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    pub lon: f64,
    /// Decimal places kept, 0..=6 (2 is about 1 km, 4 about 10 m).
    pub precision: u8,
}
mirror!(wc::Coordinates => Coordinates { lat, lon, precision });

/// Where a visit happened.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Place {
    /// A name the team recognises ("Central bus station, north gate").
    pub name: String,
    /// The area used for filters and reports (district, neighbourhood).
    pub area: String,
    /// Optional coordinates.
    #[uniffi(default)]
    pub coordinates: Option<Coordinates>,
}
mirror!(wc::Place => Place { name, area, coordinates });

/// A referral to create.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct NewReferral {
    /// Referral kind key (`shelter`, `legal_aid`, ...).
    pub kind: String,
    /// To whom (organisation or service).
    pub to: String,
    /// Initial status.
    pub status: ReferralStatus,
}
mirror!(wc::NewReferral => NewReferral { kind, to, status });

/// A referral made on a visit.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::Referral => Referral { id, kind, to, status });

/// Whether and when a visit needs following up.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct FollowUp {
    /// A follow-up is needed.
    #[uniffi(default)]
    pub needed: bool,
    /// Due date, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub due: Option<String>,
    /// The follow-up was done.
    #[uniffi(default)]
    pub done: bool,
}
mirror!(wc::FollowUp => FollowUp { needed, due, done });

/// A field visit to record.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct NewVisit {
    /// Where.
    pub place: Place,
    /// When (ms since epoch).
    pub occurred_at: i64,
    /// Visit type key (`street_outreach`, ...).
    pub visit_type: String,
    /// People reached, as the worker counted them.
    #[uniffi(default)]
    pub people_reached: u32,
    /// Risk indicator keys observed.
    #[uniffi(default)]
    pub indicators: Vec<String>,
    /// Referrals made.
    #[uniffi(default)]
    pub referrals: Vec<NewReferral>,
    /// Follow-up.
    #[uniffi(default)]
    pub follow_up: FollowUp,
    /// Free tags.
    #[uniffi(default)]
    pub tags: Vec<String>,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Free-text notes.
    #[uniffi(default)]
    pub notes: String,
}
mirror!(wc::NewVisit => NewVisit {
    place, occurred_at, visit_type, people_reached, indicators, referrals, follow_up, tags,
    sensitivity, notes,
});

/// A field visit as stored.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::Visit => Visit {
    id, workspace_id, place, occurred_at, visit_type, people_reached, indicators, referrals,
    follow_up, tags, sensitivity, notes, deleted, created_at, has_conflicts,
});

/// One change to a visit; several can be applied in one call (one commit).
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum VisitEdit {
    /// Rename the place.
    PlaceName {
        /// New place name.
        name: String,
    },
    /// Change the area.
    Area {
        /// New area.
        area: String,
    },
    /// Set or clear the coordinates.
    SetCoordinates {
        /// New coordinates, or none.
        coordinates: Option<Coordinates>,
    },
    /// Change when it happened.
    OccurredAt {
        /// New time (ms).
        at: i64,
    },
    /// Change the visit type.
    VisitType {
        /// New visit type key.
        visit_type: String,
    },
    /// Change the number of people reached.
    PeopleReached {
        /// New count.
        count: u32,
    },
    /// Mark an indicator as observed.
    AddIndicator {
        /// Indicator key.
        indicator: String,
    },
    /// Unmark an indicator.
    RemoveIndicator {
        /// Indicator key.
        indicator: String,
    },
    /// Change a referral's status.
    SetReferralStatus {
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
    FollowUpNeeded {
        /// Needed.
        needed: bool,
    },
    /// Set or clear the follow-up due date (`YYYY-MM-DD`).
    FollowUpDue {
        /// Due date, or none.
        due: Option<String>,
    },
    /// Mark the follow-up done or not.
    FollowUpDone {
        /// Done.
        done: bool,
    },
    /// Add a tag.
    AddTag {
        /// The tag.
        tag: String,
    },
    /// Remove a tag.
    RemoveTag {
        /// The tag.
        tag: String,
    },
    /// Change sensitivity.
    SetSensitivity {
        /// New sensitivity.
        sensitivity: Sensitivity,
    },
    /// Replace the notes with this full text (merged character by character).
    Notes {
        /// The full new text.
        text: String,
    },
}

impl From<VisitEdit> for wc::VisitEdit {
    fn from(e: VisitEdit) -> Self {
        use wc::VisitEdit as C;
        match e {
            VisitEdit::PlaceName { name } => C::PlaceName(name),
            VisitEdit::Area { area } => C::Area(area),
            VisitEdit::SetCoordinates { coordinates } => C::Coordinates(coordinates.cv()),
            VisitEdit::OccurredAt { at } => C::OccurredAt(at),
            VisitEdit::VisitType { visit_type } => C::VisitType(visit_type),
            VisitEdit::PeopleReached { count } => C::PeopleReached(count),
            VisitEdit::AddIndicator { indicator } => C::AddIndicator(indicator),
            VisitEdit::RemoveIndicator { indicator } => C::RemoveIndicator(indicator),
            VisitEdit::SetReferralStatus {
                referral_id,
                status,
            } => C::ReferralStatus {
                referral_id,
                status: status.into(),
            },
            VisitEdit::ReferralTo { referral_id, to } => C::ReferralTo { referral_id, to },
            VisitEdit::FollowUpNeeded { needed } => C::FollowUpNeeded(needed),
            VisitEdit::FollowUpDue { due } => C::FollowUpDue(due),
            VisitEdit::FollowUpDone { done } => C::FollowUpDone(done),
            VisitEdit::AddTag { tag } => C::AddTag(tag),
            VisitEdit::RemoveTag { tag } => C::RemoveTag(tag),
            VisitEdit::SetSensitivity { sensitivity } => C::Sensitivity(sensitivity.into()),
            VisitEdit::Notes { text } => C::Notes(text),
        }
    }
}

impl From<wc::VisitEdit> for VisitEdit {
    fn from(e: wc::VisitEdit) -> Self {
        use wc::VisitEdit as C;
        match e {
            C::PlaceName(name) => VisitEdit::PlaceName { name },
            C::Area(area) => VisitEdit::Area { area },
            C::Coordinates(c) => VisitEdit::SetCoordinates {
                coordinates: c.cv(),
            },
            C::OccurredAt(at) => VisitEdit::OccurredAt { at },
            C::VisitType(visit_type) => VisitEdit::VisitType { visit_type },
            C::PeopleReached(count) => VisitEdit::PeopleReached { count },
            C::AddIndicator(indicator) => VisitEdit::AddIndicator { indicator },
            C::RemoveIndicator(indicator) => VisitEdit::RemoveIndicator { indicator },
            C::ReferralStatus {
                referral_id,
                status,
            } => VisitEdit::SetReferralStatus {
                referral_id,
                status: status.into(),
            },
            C::ReferralTo { referral_id, to } => VisitEdit::ReferralTo { referral_id, to },
            C::FollowUpNeeded(needed) => VisitEdit::FollowUpNeeded { needed },
            C::FollowUpDue(due) => VisitEdit::FollowUpDue { due },
            C::FollowUpDone(done) => VisitEdit::FollowUpDone { done },
            C::AddTag(tag) => VisitEdit::AddTag { tag },
            C::RemoveTag(tag) => VisitEdit::RemoveTag { tag },
            C::Sensitivity(s) => VisitEdit::SetSensitivity {
                sensitivity: s.into(),
            },
            C::Notes(text) => VisitEdit::Notes { text },
        }
    }
}
cv_from!(wc::VisitEdit => VisitEdit);

/// Which follow-ups a visit list should keep.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum FollowUpFilter {
    /// Needed and not done.
    Open,
    /// Open and due on or before this date.
    DueBy {
        /// `YYYY-MM-DD`.
        date: String,
    },
    /// Open and due strictly before this date (usually today).
    OverdueOn {
        /// `YYYY-MM-DD`.
        date: String,
    },
}

impl From<FollowUpFilter> for wc::FollowUpFilter {
    fn from(f: FollowUpFilter) -> Self {
        match f {
            FollowUpFilter::Open => wc::FollowUpFilter::Open,
            FollowUpFilter::DueBy { date } => wc::FollowUpFilter::DueBy(date),
            FollowUpFilter::OverdueOn { date } => wc::FollowUpFilter::OverdueOn(date),
        }
    }
}

impl From<wc::FollowUpFilter> for FollowUpFilter {
    fn from(f: wc::FollowUpFilter) -> Self {
        match f {
            wc::FollowUpFilter::Open => FollowUpFilter::Open,
            wc::FollowUpFilter::DueBy(date) => FollowUpFilter::DueBy { date },
            wc::FollowUpFilter::OverdueOn(date) => FollowUpFilter::OverdueOn { date },
        }
    }
}
cv_from!(wc::FollowUpFilter => FollowUpFilter);

/// Filters for listing visits; empty fields do not filter.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct VisitFilter {
    /// Only this workspace.
    #[uniffi(default)]
    pub workspace_id: Option<String>,
    /// Occurred at or after (ms). (`from` in the core.)
    #[uniffi(default)]
    pub since: Option<i64>,
    /// Occurred before (ms). (`to` in the core.)
    #[uniffi(default)]
    pub until: Option<i64>,
    /// Only this area.
    #[uniffi(default)]
    pub area: Option<String>,
    /// Only this visit type.
    #[uniffi(default)]
    pub visit_type: Option<String>,
    /// Only visits where this indicator was observed.
    #[uniffi(default)]
    pub indicator: Option<String>,
    /// Follow-up state.
    #[uniffi(default)]
    pub follow_up: Option<FollowUpFilter>,
    /// Include tombstoned visits.
    #[uniffi(default)]
    pub include_deleted: bool,
    /// At most this many (default 100).
    #[uniffi(default)]
    pub limit: Option<u32>,
    /// Skip this many (paging).
    #[uniffi(default)]
    pub offset: Option<u32>,
}

impl From<VisitFilter> for wc::VisitFilter {
    fn from(f: VisitFilter) -> Self {
        let VisitFilter {
            workspace_id,
            since,
            until,
            area,
            visit_type,
            indicator,
            follow_up,
            include_deleted,
            limit,
            offset,
        } = f;
        wc::VisitFilter {
            workspace_id,
            from: since,
            to: until,
            area,
            visit_type,
            indicator,
            follow_up: follow_up.cv(),
            include_deleted,
            limit,
            offset,
        }
    }
}

/// A visit as listed.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::VisitSummary => VisitSummary {
    id, workspace_id, occurred_at, place_name, area, visit_type, people_reached, indicators,
    follow_up, sensitivity, has_conflicts, deleted,
});

// ---- workshops ----

/// An awareness workshop to record.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct NewWorkshop {
    /// Title.
    pub title: String,
    /// Topic key (`safe_migration`, ...).
    pub topic: String,
    /// When it started (ms since epoch).
    pub occurred_at: i64,
    /// Duration in minutes.
    #[uniffi(default)]
    pub duration_minutes: u32,
    /// Venue.
    #[uniffi(default)]
    pub venue: String,
    /// Area for filters and reports.
    #[uniffi(default)]
    pub area: String,
    /// Audience key (`students`, ...).
    #[uniffi(default)]
    pub audience: String,
    /// Language it was held in (e.g. `en`, `es`).
    #[uniffi(default)]
    pub language: String,
    /// Facilitators' names or ids.
    #[uniffi(default)]
    pub facilitators: Vec<String>,
    /// Sensitivity.
    pub sensitivity: Sensitivity,
    /// Notes.
    #[uniffi(default)]
    pub notes: String,
}
mirror!(wc::NewWorkshop => NewWorkshop {
    title, topic, occurred_at, duration_minutes, venue, area, audience, language, facilitators,
    sensitivity, notes,
});

/// A named attendee to check in.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct NewAttendee {
    /// Name as given (may be a first name or a nickname).
    pub name: String,
    /// Age band key.
    #[uniffi(default)]
    pub age_band: Option<String>,
    /// Gender key.
    #[uniffi(default)]
    pub gender: Option<String>,
    /// Contact detail; recorded only with consent.
    #[uniffi(default)]
    pub contact: Option<String>,
    /// The attendee consented to their contact being recorded.
    #[uniffi(default)]
    pub consent: bool,
}
mirror!(wc::NewAttendee => NewAttendee { name, age_band, gender, contact, consent });

/// A named attendee as stored.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
    /// Withdrawn (they left, or asked to be removed): kept, but not counted.
    pub withdrawn: bool,
    /// The attendee this one was marked the same person as (`merge_attendees`), as
    /// `workshop_id:attendee_id`.
    pub same_as: Option<String>,
}
mirror!(wc::Attendee => Attendee {
    id, name, age_band, gender, contact, consent_at, checked_in_at, withdrawn, same_as,
});

/// An anonymous head count for one age band and gender.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Age band key.
    pub age_band: String,
    /// Gender key.
    pub gender: String,
    /// People counted.
    pub count: i64,
}
mirror!(wc::Tally => Tally { age_band, gender, count });

/// Feedback collected at a workshop.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::Feedback => Feedback { id, score, comment, at });

/// An awareness workshop as stored.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::Workshop => Workshop {
    id, workspace_id, title, topic, occurred_at, duration_minutes, venue, area, audience,
    language, facilitators, sensitivity, notes, attendees, tallies, feedback, deleted,
    created_at, has_conflicts,
});

/// One change to a workshop's own fields.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum WorkshopEdit {
    /// Title.
    Title {
        /// New title.
        title: String,
    },
    /// Topic key.
    Topic {
        /// New topic key.
        topic: String,
    },
    /// Start time (ms).
    OccurredAt {
        /// New start time (ms).
        at: i64,
    },
    /// Duration in minutes.
    DurationMinutes {
        /// New duration.
        minutes: u32,
    },
    /// Venue.
    Venue {
        /// New venue.
        venue: String,
    },
    /// Area.
    Area {
        /// New area.
        area: String,
    },
    /// Audience key.
    Audience {
        /// New audience key.
        audience: String,
    },
    /// Language.
    Language {
        /// New language code.
        language: String,
    },
    /// Add a facilitator.
    AddFacilitator {
        /// Name or id.
        facilitator: String,
    },
    /// Remove a facilitator.
    RemoveFacilitator {
        /// Name or id.
        facilitator: String,
    },
    /// Sensitivity.
    SetSensitivity {
        /// New sensitivity.
        sensitivity: Sensitivity,
    },
    /// Replace the notes with this full text (merged character by character).
    Notes {
        /// The full new text.
        text: String,
    },
}

impl From<WorkshopEdit> for wc::WorkshopEdit {
    fn from(e: WorkshopEdit) -> Self {
        use wc::WorkshopEdit as C;
        match e {
            WorkshopEdit::Title { title } => C::Title(title),
            WorkshopEdit::Topic { topic } => C::Topic(topic),
            WorkshopEdit::OccurredAt { at } => C::OccurredAt(at),
            WorkshopEdit::DurationMinutes { minutes } => C::DurationMinutes(minutes),
            WorkshopEdit::Venue { venue } => C::Venue(venue),
            WorkshopEdit::Area { area } => C::Area(area),
            WorkshopEdit::Audience { audience } => C::Audience(audience),
            WorkshopEdit::Language { language } => C::Language(language),
            WorkshopEdit::AddFacilitator { facilitator } => C::AddFacilitator(facilitator),
            WorkshopEdit::RemoveFacilitator { facilitator } => C::RemoveFacilitator(facilitator),
            WorkshopEdit::SetSensitivity { sensitivity } => C::Sensitivity(sensitivity.into()),
            WorkshopEdit::Notes { text } => C::Notes(text),
        }
    }
}

impl From<wc::WorkshopEdit> for WorkshopEdit {
    fn from(e: wc::WorkshopEdit) -> Self {
        use wc::WorkshopEdit as C;
        match e {
            C::Title(title) => WorkshopEdit::Title { title },
            C::Topic(topic) => WorkshopEdit::Topic { topic },
            C::OccurredAt(at) => WorkshopEdit::OccurredAt { at },
            C::DurationMinutes(minutes) => WorkshopEdit::DurationMinutes { minutes },
            C::Venue(venue) => WorkshopEdit::Venue { venue },
            C::Area(area) => WorkshopEdit::Area { area },
            C::Audience(audience) => WorkshopEdit::Audience { audience },
            C::Language(language) => WorkshopEdit::Language { language },
            C::AddFacilitator(facilitator) => WorkshopEdit::AddFacilitator { facilitator },
            C::RemoveFacilitator(facilitator) => WorkshopEdit::RemoveFacilitator { facilitator },
            C::Sensitivity(s) => WorkshopEdit::SetSensitivity {
                sensitivity: s.into(),
            },
            C::Notes(text) => WorkshopEdit::Notes { text },
        }
    }
}
cv_from!(wc::WorkshopEdit => WorkshopEdit);

/// Filters for listing workshops; empty fields do not filter.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct WorkshopFilter {
    /// Only this workspace.
    #[uniffi(default)]
    pub workspace_id: Option<String>,
    /// Held at or after (ms). (`from` in the core.)
    #[uniffi(default)]
    pub since: Option<i64>,
    /// Held before (ms). (`to` in the core.)
    #[uniffi(default)]
    pub until: Option<i64>,
    /// Only this topic.
    #[uniffi(default)]
    pub topic: Option<String>,
    /// Only this area.
    #[uniffi(default)]
    pub area: Option<String>,
    /// Include tombstoned workshops.
    #[uniffi(default)]
    pub include_deleted: bool,
    /// At most this many (default 100).
    #[uniffi(default)]
    pub limit: Option<u32>,
    /// Skip this many.
    #[uniffi(default)]
    pub offset: Option<u32>,
}

impl From<WorkshopFilter> for wc::WorkshopFilter {
    fn from(f: WorkshopFilter) -> Self {
        let WorkshopFilter {
            workspace_id,
            since,
            until,
            topic,
            area,
            include_deleted,
            limit,
            offset,
        } = f;
        wc::WorkshopFilter {
            workspace_id,
            from: since,
            to: until,
            topic,
            area,
            include_deleted,
            limit,
            offset,
        }
    }
}

/// A workshop as listed.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::WorkshopSummary => WorkshopSummary {
    id, workspace_id, title, topic, occurred_at, area, audience, attendance, sensitivity,
    has_conflicts, deleted,
});

/// A count per key (age band, gender).
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The key.
    pub key: String,
    /// How many.
    pub count: i64,
}
mirror!(wc::Count => Count { key, count });

/// A workshop's attendance with totals.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Attendance {
    /// Named attendees, withdrawn ones included and flagged.
    pub attendees: Vec<Attendee>,
    /// Anonymous tallies with a non-zero count.
    pub tallies: Vec<Tally>,
    /// Named attendees not withdrawn.
    pub named: i64,
    /// Named attendees withdrawn.
    pub withdrawn: i64,
    /// Unique people among the named attendees not withdrawn (attendees marked as the same
    /// person count once).
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
mirror!(wc::Attendance => Attendance {
    attendees, tallies, named, withdrawn, unique_people, anonymous, total, by_age_band,
    by_gender,
});

// ---- search, conflicts, history ----

/// A full-text search hit.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::SearchHit => SearchHit { id, kind, workspace_id, title, snippet, sensitivity });

/// A value of a field, as shown in conflicts and chosen to resolve them.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text.
    Text {
        /// The text.
        value: String,
    },
    /// Integer.
    Int {
        /// The integer.
        value: i64,
    },
    /// Floating point.
    Float {
        /// The number.
        value: f64,
    },
    /// Boolean.
    Bool {
        /// The flag.
        value: bool,
    },
    /// No value.
    Null,
}

impl From<FieldValue> for wc::FieldValue {
    fn from(v: FieldValue) -> Self {
        match v {
            FieldValue::Text { value } => wc::FieldValue::Text(value),
            FieldValue::Int { value } => wc::FieldValue::Int(value),
            FieldValue::Float { value } => wc::FieldValue::Float(value),
            FieldValue::Bool { value } => wc::FieldValue::Bool(value),
            FieldValue::Null => wc::FieldValue::Null,
        }
    }
}

impl From<wc::FieldValue> for FieldValue {
    fn from(v: wc::FieldValue) -> Self {
        match v {
            wc::FieldValue::Text(value) => FieldValue::Text { value },
            wc::FieldValue::Int(value) => FieldValue::Int { value },
            wc::FieldValue::Float(value) => FieldValue::Float { value },
            wc::FieldValue::Bool(value) => FieldValue::Bool { value },
            wc::FieldValue::Null => FieldValue::Null,
        }
    }
}
cv_from!(wc::FieldValue => FieldValue);

/// Who wrote something: the device's Automerge actor, and its name if the workspace knows it.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Actor id (hex).
    pub actor: String,
    /// The device's name from the workspace settings.
    pub device_name: Option<String>,
}
mirror!(wc::Author => Author { actor, device_name });

/// One of the concurrent values of a field.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct ConflictValue {
    /// The value.
    pub value: FieldValue,
    /// Who wrote it.
    pub author: Author,
}
mirror!(wc::ConflictValue => ConflictValue { value, author });

/// A field that holds concurrent values after a merge.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Field path, e.g. `people_reached` or `referrals/<id>/status`.
    pub field: String,
    /// The value currently shown (the deterministic winner).
    pub current: FieldValue,
    /// All concurrent values, the current one included.
    pub values: Vec<ConflictValue>,
}
mirror!(wc::Conflict => Conflict { field, current, values });

/// One change in a record's history.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
mirror!(wc::HistoryEntry => HistoryEntry { change, at, author, fields });

// ---- workspaces and settings ----

/// A workspace known to this store.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Workspace {
    /// Workspace id.
    pub id: String,
    /// Its name (from the settings document).
    pub name: String,
}
mirror!(wc::Workspace => Workspace { id, name });

/// A label in one language. (`Label` in the core; renamed so it cannot clash with SwiftUI.)
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct TaxonomyLabel {
    /// Language code (`en`, `es`, ...).
    pub lang: String,
    /// Text.
    pub text: String,
}
mirror!(wc::Label => TaxonomyLabel { lang, text });

/// One entry of a taxonomy.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct TaxonomyEntry {
    /// Stable key.
    pub key: String,
    /// Labels by language, sorted by language.
    pub labels: Vec<TaxonomyLabel>,
    /// Hidden from pickers but kept for old records.
    pub archived: bool,
    /// Display order.
    pub order: i64,
}
mirror!(wc::TaxonomyEntry => TaxonomyEntry { key, labels, archived, order });

/// A named list of keys with labels (visit types, risk indicators, ...).
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Taxonomy {
    /// Taxonomy name (`visit_types`, `risk_indicators`, `referral_kinds`, `workshop_topics`,
    /// `audiences`, `age_bands`, `genders`).
    pub name: String,
    /// Entries by order, then key.
    pub entries: Vec<TaxonomyEntry>,
}
mirror!(wc::Taxonomy => Taxonomy { name, entries });

/// A device known to a workspace. (A `(actor, name)` pair in the core.)
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct DeviceName {
    /// The device's Automerge actor id (hex).
    pub actor: String,
    /// Its display name.
    pub name: String,
}

impl Cv<DeviceName> for (String, String) {
    fn cv(self) -> DeviceName {
        let (actor, name) = self;
        DeviceName { actor, name }
    }
}

impl Cv<(String, String)> for DeviceName {
    fn cv(self) -> (String, String) {
        (self.actor, self.name)
    }
}

/// A workspace's settings. (`Settings` in the core; renamed so it cannot clash with SwiftUI.)
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct WorkspaceSettings {
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub name: String,
    /// Taxonomies, by name.
    pub taxonomies: Vec<Taxonomy>,
    /// Devices known to the workspace, by name.
    pub devices: Vec<DeviceName>,
}
mirror!(wc::Settings => WorkspaceSettings { workspace_id, name, taxonomies, devices });

/// One change to workspace settings.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum SettingsEdit {
    /// Rename the workspace.
    Rename {
        /// New name.
        name: String,
    },
    /// Add an entry (or un-archive it) with its labels.
    AddEntry {
        /// Taxonomy name.
        taxonomy: String,
        /// New key.
        key: String,
        /// Labels.
        labels: Vec<TaxonomyLabel>,
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

impl From<SettingsEdit> for wc::SettingsEdit {
    fn from(e: SettingsEdit) -> Self {
        use wc::SettingsEdit as C;
        match e {
            SettingsEdit::Rename { name } => C::Rename(name),
            SettingsEdit::AddEntry {
                taxonomy,
                key,
                labels,
            } => C::AddEntry {
                taxonomy,
                key,
                labels: labels.cv(),
            },
            SettingsEdit::SetLabel {
                taxonomy,
                key,
                lang,
                text,
            } => C::SetLabel {
                taxonomy,
                key,
                lang,
                text,
            },
            SettingsEdit::Archive {
                taxonomy,
                key,
                archived,
            } => C::Archive {
                taxonomy,
                key,
                archived,
            },
        }
    }
}

// ---- exchange and sync ----

/// What an import changed.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    /// Documents that gained changes, by id (sorted).
    pub changed: Vec<String>,
    /// Documents whose chunks were all already known.
    pub unchanged: u32,
    /// Documents left out, with why (changes written as another device than the bundle's
    /// signer; they arrive through sync instead).
    pub refused: Vec<RefusedDocument>,
}
mirror!(wc::ImportReport => ImportReport { changed, unchanged, refused });

/// A document an import left out.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct RefusedDocument {
    /// Its id.
    pub doc_id: String,
    /// Why.
    pub reason: String,
}
mirror!(wc::RefusedDocument => RefusedDocument { doc_id, reason });

/// A blob that could not be opened or applied; it was set aside, not applied.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct SetAside {
    /// Workspace.
    pub workspace_id: String,
    /// Its sequence number on the server.
    pub seq: u64,
    /// The document it claims to belong to (hex).
    pub doc_id: String,
    /// Why it was set aside.
    pub reason: String,
}
mirror!(wc::SetAside => SetAside { workspace_id, seq, doc_id, reason });

/// What one `sync()` did.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct SyncReport {
    /// Blobs pushed (acknowledged by the server).
    pub pushed: u64,
    /// Blobs pulled.
    pub pulled: u64,
    /// Records that changed through pulled blobs, sorted; empty when `changed_all`.
    pub changed: Vec<String>,
    /// More than 10,000 records changed (a first sync into a big workspace): refresh
    /// everything rather than the records listed.
    pub changed_all: bool,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Blobs set aside during this sync.
    pub set_aside: Vec<SetAside>,
    /// Held blobs whose bytes were dropped during this sync (a device keeps at most 16 MiB of
    /// them per workspace, oldest dropped first).
    pub set_aside_dropped: u64,
    /// Records sent again because the server's log was rewound (restored from a backup).
    pub resent: u64,
}
mirror!(wc::SyncReport => SyncReport {
    pushed, pulled, changed, changed_all, bytes_up, bytes_down, duration_ms, set_aside,
    set_aside_dropped, resent,
});

/// Progress of a running sync, for a progress bar.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct SyncProgress {
    /// Workspace being synced.
    pub workspace_id: String,
    /// Push or pull.
    pub phase: SyncPhase,
    /// Blobs done in this phase.
    pub blobs_done: u64,
    /// Blobs known to be due in this phase (pull: as far as the server has told so far).
    pub blobs_total: u64,
    /// Bytes moved in this phase.
    pub bytes_done: u64,
}
mirror!(wc::SyncProgress => SyncProgress {
    workspace_id, phase, blobs_done, blobs_total, bytes_done,
});

/// Converts every element of a list across the boundary (edits in, summaries and hits out).
pub(crate) fn all<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

/// One device of a team, as this device last synced it.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct TeamMember {
    /// The device's id on the server.
    pub device_id: String,
    /// The name it enrolled with.
    pub name: String,
    /// `coordinator` or `member`.
    pub role: String,
    /// True for the device this store runs on.
    pub is_this_device: bool,
    /// True once revoked.
    pub revoked: bool,
    /// True if the team log admits it (a coordinator vouched for its keys): only such devices
    /// receive keys, and only their changes are accepted.
    pub verified: bool,
    /// Its last sync (ms since 1970) as the server last listed it, if known.
    pub last_sync_at: Option<i64>,
}
mirror!(wc::TeamMember => TeamMember {
    device_id, name, role, is_this_device, revoked, verified, last_sync_at,
});

/// A device waiting for a coordinator to admit it.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct PendingJoin {
    /// The device's id on the server.
    pub device_id: String,
    /// The name it enrolled with.
    pub name: String,
    /// Twelve digits derived from the keys the server lists for it; the device itself shows
    /// its own (`verification_code`): they match only if the server did not substitute keys.
    pub verification_code: String,
    /// True if its join proof matches an unused invite this device made: admit it with
    /// `approve_join`. Others can be admitted in person with `confirm_device`.
    pub verified: bool,
}
mirror!(wc::PendingJoin => PendingJoin { device_id, name, verification_code, verified });

/// What kind of misbehaviour of the server a device noticed.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Team history that contradicts the history this device verified.
    Fork,
    /// Less team history than this device verified (rolled back or restored); this device sent
    /// the missing entries back.
    Rollback,
    /// An entry not signed by a coordinator of the team, or breaking the log's rules.
    Forged,
    /// Team history hidden from this device.
    Withheld,
    /// A team log of another team, or started by a device this device never learnt in person.
    WrongTeam,
    /// Keys listed for a device of the team other than those the team log names.
    Substituted,
    /// The server's log was rewound (restored from a backup): this device sent its records
    /// again. Nothing was lost.
    Rewound,
}
mirror_enum!(wc::AlertKind => AlertKind { Fork, Rollback, Forged, Withheld, WrongTeam, Substituted, Rewound });

/// Something this device noticed the server doing to the team's history.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct TeamAlert {
    /// When it was noticed, ms since the Unix epoch.
    pub at_ms: i64,
    /// What kind of misbehaviour.
    pub kind: AlertKind,
    /// What exactly, for people.
    pub detail: String,
}
mirror!(wc::TeamAlert => TeamAlert { at_ms, kind, detail });

/// How far this device trusts what it knows of a workspace's team.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum TeamTrust {
    /// The team log is verified from an anchor shown in person, and admits this device.
    Verified,
    /// The log is verified but does not admit this device yet: its changes wait.
    AwaitingAdmission,
    /// The server has no team log yet: a coordinator's device starts it at its next sync.
    AwaitingLog,
    /// The server's answers contradict what this device verified: sync of the workspace stops.
    Attacked {
        /// What the device noticed.
        reason: String,
    },
}

impl From<wc::TeamTrust> for TeamTrust {
    fn from(v: wc::TeamTrust) -> Self {
        match v {
            wc::TeamTrust::Verified => TeamTrust::Verified,
            wc::TeamTrust::AwaitingAdmission => TeamTrust::AwaitingAdmission,
            wc::TeamTrust::AwaitingLog => TeamTrust::AwaitingLog,
            wc::TeamTrust::Attacked { reason } => TeamTrust::Attacked { reason },
        }
    }
}

impl From<TeamTrust> for wc::TeamTrust {
    fn from(v: TeamTrust) -> Self {
        match v {
            TeamTrust::Verified => wc::TeamTrust::Verified,
            TeamTrust::AwaitingAdmission => wc::TeamTrust::AwaitingAdmission,
            TeamTrust::AwaitingLog => wc::TeamTrust::AwaitingLog,
            TeamTrust::Attacked { reason } => wc::TeamTrust::Attacked { reason },
        }
    }
}
cv_from!(wc::TeamTrust => TeamTrust);

/// What this device knows of a workspace's team and of the server's behaviour.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct TeamStatus {
    /// The workspace.
    pub workspace_id: String,
    /// How far this device trusts what it knows.
    pub trust: TeamTrust,
    /// Entries of the team log this device verified.
    pub log_length: u64,
    /// The key epoch the log is at.
    pub epoch: u32,
    /// This device's role in the log, if admitted.
    pub role: Option<String>,
    /// A device was revoked and no coordinator rotated the key yet.
    pub rotation_due: bool,
    /// What this device noticed the server doing, newest first (at most 50).
    pub alerts: Vec<TeamAlert>,
    /// Held blobs whose bytes were dropped because too many were held.
    pub set_aside_dropped: u64,
}
mirror!(wc::TeamStatus => TeamStatus {
    workspace_id, trust, log_length, epoch, role, rotation_due, alerts, set_aside_dropped,
});

/// What a check-in is for: where the worker is going, with whom, anything else.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckInDetails {
    /// Where ("Karaoke bar on 5th street, back room").
    #[uniffi(default = "")]
    pub place: String,
    /// With whom (a colleague, a contact).
    #[uniffi(default = "")]
    pub with_whom: String,
    /// Anything else the team should know to find the worker.
    #[uniffi(default = "")]
    pub note: String,
}
mirror!(wc::CheckInDetails => CheckInDetails { place, with_whom, note });

/// Where a check-in stands.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInState {
    /// Running: the worker is expected back by `expected_back`.
    Open,
    /// Past its expected time and the grace period without a close: look for the worker.
    Overdue,
    /// Closed with the duress PIN (teammates only; the worker's own phone shows it closed).
    Alarm,
    /// Closed: the worker is safe.
    Closed,
}
mirror_enum!(wc::CheckInState => CheckInState { Open, Overdue, Alarm, Closed });

/// A safety check-in of this device or of a teammate's.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct CheckIn {
    /// Its id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The device of the worker who started it.
    pub device_id: String,
    /// That device's name (empty if unknown).
    pub device_name: String,
    /// Whether this device started it.
    pub own: bool,
    /// When it started, ms since 1970.
    pub started_at: i64,
    /// When the worker expects to be back, ms since 1970.
    pub expected_back: i64,
    /// When it was closed, ms since 1970.
    pub closed_at: Option<i64>,
    /// Where it stands now.
    pub state: CheckInState,
    /// What it is for.
    pub details: CheckInDetails,
    /// Whether the server has its latest update (for one's own: whether the deadline is
    /// watched; false while the phone has no signal, until the next sync).
    pub watched: bool,
}
mirror!(wc::CheckIn => CheckIn {
    id, workspace_id, device_id, device_name, own, started_at, expected_back, closed_at, state,
    details, watched,
});

/// An anonymous tip sent through the workspace's tip page, as coordinators' devices keep it.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    /// Record id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// When the server received it, ms since 1970 rounded down to the hour.
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
mirror!(wc::Tip => Tip {
    id, workspace_id, received_at, sent_at, language, what, place, time, contact, replies,
    visit_id, deleted,
});

/// A reply a coordinator left for a tipster.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct TipReply {
    /// Reply id.
    pub id: String,
    /// What was said.
    pub text: String,
    /// When, ms since 1970.
    pub sent_at: i64,
    /// The device that wrote it (Automerge actor, hex).
    pub author: String,
}
mirror!(wc::TipReply => TipReply { id, text, sent_at, author });

/// The words of the tip page in one language.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct TipPageLanguage {
    /// Language code (`en`, `fr`, ...).
    pub code: String,
    /// The page's title.
    pub title: String,
    /// What the page is for and what happens to a tip.
    pub intro: String,
    /// The field for what happened.
    pub what: String,
    /// The field for where.
    pub place: String,
    /// The field for when.
    pub time: String,
    /// The optional field for how to reach the tipster.
    pub contact: String,
    /// The send button.
    pub send: String,
    /// Shown after sending, above the receipt code.
    pub sent: String,
    /// The field and button to read replies with a receipt code.
    pub check: String,
    /// Shown when a receipt has no reply yet.
    pub no_reply: String,
    /// Shown when sending or reading failed.
    pub failed: String,
}
mirror!(wc::TipPageLanguage => TipPageLanguage {
    code, title, intro, what, place, time, contact, send, sent, check, no_reply, failed,
});

/// The workspace's tip page, as this coordinator's device knows it.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct TipPage {
    /// Workspace.
    pub workspace_id: String,
    /// Where tipsters open it.
    pub url: String,
    /// The fingerprint of the tip key, as the page shows it (print it on posters).
    pub fingerprint: String,
    /// The key epoch of that key.
    pub epoch: u32,
    /// Whether the server was last seen serving it, signed, with this key.
    pub published: bool,
    /// Its words, the first language the default.
    pub languages: Vec<TipPageLanguage>,
}
mirror!(wc::TipPage => TipPage { workspace_id, url, fingerprint, epoch, published, languages });

/// What a tipster says; every field optional, but not all empty.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct TipFields {
    /// What happened.
    pub what: String,
    /// Where.
    pub place: String,
    /// When.
    pub time: String,
    /// How to reach them, if they want to be reached.
    pub contact: String,
    /// The language they write in (`en`, ...).
    pub language: String,
}
mirror!(wc::TipFields => TipFields { what, place, time, contact, language });

/// A reply from the team, as the tipster reads it.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct TipAnswer {
    /// What the team said.
    pub text: String,
    /// When, as the team's device wrote it (ISO-8601).
    pub sent_at: String,
}
mirror!(wc::TipAnswer => TipAnswer { text, sent_at });

/// An attendee of a workshop, as duplicates name it.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Eq)]
pub struct AttendeeRef {
    /// The workshop.
    pub workshop_id: String,
    /// The attendee within it.
    pub attendee_id: String,
    /// Their name.
    pub name: String,
}
mirror!(wc::AttendeeRef => AttendeeRef { workshop_id, attendee_id, name });

/// An attendee who may be the same person as the one being checked in.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct DuplicateMatch {
    /// The attendee already recorded.
    pub attendee: AttendeeRef,
    /// How alike, 0 to 1.
    pub score: f64,
    /// Why: `same_name`, `name_word_order`, `name_typo`, `same_age_band`, `same_gender`,
    /// `same_contact`.
    pub reasons: Vec<String>,
}
mirror!(wc::DuplicateMatch => DuplicateMatch { attendee, score, reasons });

/// Two recorded attendees who may be the same person, not marked as one yet.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct DuplicatePair {
    /// The one checked in first.
    pub first: AttendeeRef,
    /// The other.
    pub second: AttendeeRef,
    /// How alike, 0 to 1.
    pub score: f64,
    /// Why (as `DuplicateMatch.reasons`).
    pub reasons: Vec<String>,
}
mirror!(wc::DuplicatePair => DuplicatePair { first, second, score, reasons });
