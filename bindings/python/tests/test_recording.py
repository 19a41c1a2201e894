"""An outreach team's day on one or two phones, offline, through the generated Python bindings."""

from helpers import (
    NOV_1,
    HOUR,
    attendee,
    bus_station_visit,
    market_visit,
    open_store,
    school_workshop,
)
from waymark import (
    FieldValue,
    FollowUpFilter,
    RecordKind,
    ReferralStatus,
    SettingsEdit,
    TaxonomyLabel,
    VisitEdit,
    VisitFilter,
    WorkshopEdit,
    WorkshopFilter,
)


async def test_a_recorded_visit_reads_back_exactly_as_typed_and_survives_reopening(tmp_path):
    key = b"\x07" * 32
    store = await open_store(tmp_path / "phone.db", key)
    team = store.create_workspace("North district outreach")
    visit_id = store.create_visit(team.id, bus_station_visit())

    visit = store.get_visit(visit_id)
    assert visit.workspace_id == team.id
    assert visit.place.name == "Central bus station, north gate"
    assert visit.people_reached == 4
    assert visit.indicators == ["deception"]
    assert [(r.kind, r.to, r.status) for r in visit.referrals] == [
        ("shelter", "Casa Esperanza", ReferralStatus.MADE)
    ]
    assert visit.follow_up.needed and visit.follow_up.due == "2026-11-08"
    assert visit.notes == "Two young men waiting for a recruiter."
    assert not visit.deleted and not visit.has_conflicts

    del store
    reopened = await open_store(tmp_path / "phone.db", key)
    assert reopened.get_visit(visit_id) == visit
    assert [w.name for w in reopened.workspaces()] == ["North district outreach"]


async def test_visits_are_listed_newest_first_and_filtered_by_area_indicator_and_follow_up(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    station = store.create_visit(team.id, bus_station_visit())
    market = store.create_visit(team.id, market_visit())

    assert [v.id for v in store.list_visits(VisitFilter())] == [market, station]
    assert [v.id for v in store.list_visits(VisitFilter(area="North"))] == [station]
    assert [v.id for v in store.list_visits(VisitFilter(indicator="isolation"))] == [market]
    assert [v.id for v in store.list_visits(VisitFilter(since=NOV_1 + HOUR))] == [market]
    assert [v.id for v in store.list_visits(VisitFilter(until=NOV_1 + HOUR))] == [station]
    open_follow_ups = store.list_visits(VisitFilter(follow_up=FollowUpFilter.OPEN()))
    assert [v.id for v in open_follow_ups] == [station]
    overdue = store.list_visits(VisitFilter(follow_up=FollowUpFilter.OVERDUE_ON(date="2026-11-09")))
    assert [v.id for v in overdue] == [station]

    store.update_visit(station, [VisitEdit.FOLLOW_UP_DONE(done=True), VisitEdit.ADD_TAG(tag="night")])
    assert store.list_visits(VisitFilter(follow_up=FollowUpFilter.OPEN())) == []
    assert store.get_visit(station).tags == ["night"]

    store.delete_record(market)
    assert [v.id for v in store.list_visits(VisitFilter())] == [station]
    assert {v.id for v in store.list_visits(VisitFilter(include_deleted=True))} == {station, market}
    assert store.get_visit(market).deleted


async def test_a_workshop_counts_named_attendees_and_anonymous_tallies(tmp_path):
    store = await open_store(tmp_path / "tablet.db")
    team = store.create_workspace("Team")
    ws_id = store.create_workshop(team.id, school_workshop())
    maria = store.check_in(ws_id, attendee("María"))
    store.check_in(ws_id, attendee("Jorge", gender="male"))
    store.check_in(ws_id, attendee("Lucía"))
    store.withdraw_attendee(ws_id, maria)
    for _ in range(3):
        store.add_to_tally(ws_id, "18_24", "female", 1)
    store.add_to_tally(ws_id, "18_24", "male", 2)
    feedback = store.add_feedback(ws_id, 5, "Very useful, now I know what to check in an offer.")
    store.update_workshop(ws_id, [WorkshopEdit.DURATION_MINUTES(minutes=100)])

    attendance = store.attendance(ws_id)
    assert (attendance.named, attendance.withdrawn, attendance.anonymous, attendance.total) == (2, 1, 5, 7)
    assert {(c.key, c.count) for c in attendance.by_gender} == {("female", 4), ("male", 3)}

    workshop = store.get_workshop(ws_id)
    assert workshop.duration_minutes == 100
    assert workshop.facilitators == ["Ana", "Luis"]
    assert [a.name for a in workshop.attendees] == ["María", "Jorge", "Lucía"]
    assert [a.withdrawn for a in workshop.attendees] == [True, False, False]
    assert [(f.id, f.score) for f in workshop.feedback] == [(feedback, 5)]

    listed = store.list_workshops(WorkshopFilter(topic="safe_migration"))
    assert [(w.id, w.attendance) for w in listed] == [(ws_id, 7)]
    assert store.list_workshops(WorkshopFilter(area="South")) == []


async def test_search_finds_notes_titles_and_feedback_and_says_what_kind_of_record(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    visit_id = store.create_visit(team.id, market_visit())
    ws_id = store.create_workshop(team.id, school_workshop())

    hits = store.search("passports", 10)
    assert [(h.id, h.kind) for h in hits] == [(visit_id, RecordKind.VISIT)]
    assert "[passports]" in hits[0].snippet
    assert [h.id for h in store.search("san rafael", 10)] == [ws_id]
    assert store.search("nothing-like-this", 10) == []


async def test_workspace_settings_carry_taxonomies_and_labels_that_can_be_extended(tmp_path):
    store = await open_store(tmp_path / "phone.db", name="Ana's phone")
    team = store.create_workspace("Team")
    store.update_settings(
        team.id,
        [
            SettingsEdit.ADD_ENTRY(
                taxonomy="visit_types",
                key="market_outreach",
                labels=[TaxonomyLabel(lang="en", text="Market outreach")],
            ),
            SettingsEdit.RENAME(name="North team"),
        ],
    )
    settings = store.settings(team.id)
    assert settings.name == "North team"
    visit_types = next(t for t in settings.taxonomies if t.name == "visit_types")
    entry = next(e for e in visit_types.entries if e.key == "market_outreach")
    assert entry.labels == [TaxonomyLabel(lang="en", text="Market outreach")]
    assert [d.name for d in settings.devices] == ["Ana's phone"]
    assert store.device_name() == "Ana's phone"


async def test_two_phones_exchanging_bundles_offline_see_a_conflict_they_can_resolve(tmp_path):
    ana = await open_store(tmp_path / "ana.db", name="Ana")
    luis = await open_store(tmp_path / "luis.db", name="Luis")
    team = ana.create_workspace("Team")
    visit_id = ana.create_visit(team.id, bus_station_visit())

    code = await ana.create_invite(team.id, 3600)
    assert (await luis.join(code)).id == team.id
    report = await luis.import_changes(await ana.export_changes())
    assert visit_id in report.changed
    assert luis.get_visit(visit_id).people_reached == 4

    # Both correct the head count, offline, to different numbers.
    ana.update_visit(visit_id, [VisitEdit.PEOPLE_REACHED(count=5)])
    luis.update_visit(visit_id, [VisitEdit.PEOPLE_REACHED(count=7)])
    await luis.import_changes(await ana.export_changes(await luis.checkpoint()))
    await ana.import_changes(await luis.export_changes(await ana.checkpoint()))

    for store in (ana, luis):
        assert store.get_visit(visit_id).has_conflicts
        [conflict] = store.conflicts(visit_id)
        assert conflict.field == "people_reached"
        assert sorted(v.value.value for v in conflict.values) == [5, 7]
        assert {v.author.actor for v in conflict.values} == {ana.actor(), luis.actor()}

    ana.resolve_conflict(visit_id, "people_reached", FieldValue.INT(value=7))
    await luis.import_changes(await ana.export_changes(await luis.checkpoint()))
    for store in (ana, luis):
        assert store.conflicts(visit_id) == []
        assert store.get_visit(visit_id).people_reached == 7

    history = ana.history(visit_id)
    assert len(history) >= 3
    assert "people_reached" in history[-1].fields


async def test_rebuilding_the_lists_from_the_records_changes_nothing_a_user_sees(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    store.create_visit(team.id, bus_station_visit())
    store.create_visit(team.id, market_visit())
    before = store.list_visits(VisitFilter())
    await store.rebuild_projections()
    assert store.list_visits(VisitFilter()) == before
    assert len(store.search("recruiter", 10)) == 1
