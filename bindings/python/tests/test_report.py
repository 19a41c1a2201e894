"""A coordinator's figures and exports through the generated Python bindings: the report's
numbers are computed here from the records the test made, and exports leave restricted records
out unless asked for."""

import csv

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
    ExportOptions,
    Place,
    ReportFilter,
    Sensitivity,
    WaymarkError,
)

DAY = 24 * HOUR


def counts(cs):
    return {c.key: c.count for c in cs}


async def test_report_counts_visits_people_referrals_follow_ups_and_attendance(tmp_path):
    store = await open_store(tmp_path / "coordinator.db")
    team = store.create_workspace("North district outreach")
    visits = [
        bus_station_visit(),  # North, 4 people, 1 referral, follow-up due 2026-11-08
        market_visit(),  # South, 11 people
        market_visit(occurred_at=NOV_1 - 10 * DAY, people_reached=3, indicators=["debt_bondage"]),
        bus_station_visit(sensitivity=Sensitivity.RESTRICTED, people_reached=2),
    ]
    for v in visits:
        store.create_visit(team.id, v)
    gone = store.create_visit(team.id, market_visit(people_reached=40))
    store.delete_record(gone)

    shop = store.create_workshop(team.id, school_workshop())
    store.check_in(shop, attendee("Ana"))
    left = store.check_in(shop, attendee("Luis", gender="male"))
    store.withdraw_attendee(shop, left)
    store.check_in(shop, attendee("Eva", age_band=None, gender=None))
    for _ in range(5):
        store.add_to_tally(shop, "12_17", "male", 1)
    store.add_feedback(shop, 5, "Very clear")
    store.add_feedback(shop, 2, "Too short")

    report = store.report(ReportFilter(today="2026-11-10"))
    v, w = report.visits, report.workshops
    assert v.visits == len(visits)
    assert v.people_reached == sum(x.people_reached for x in visits)
    assert counts(v.by_area) == {"North": 2, "South": 2}
    assert counts(v.by_type) == {"transit_point": 2, "worksite_visit": 2}
    expected_indicators = {}
    for x in visits:
        for i in x.indicators:
            expected_indicators[i] = expected_indicators.get(i, 0) + 1
    assert counts(v.indicators) == expected_indicators
    assert v.referrals == 2 and counts(v.referrals_by_kind) == {"shelter": 2}
    assert counts(v.referrals_by_status) == {"made": 2}
    # Both bus station visits need a follow-up due 2026-11-08: open, and overdue on the 10th.
    assert (v.follow_ups_due, v.follow_ups_overdue) == (2, 2)

    assert w.workshops == 1
    assert (w.named, w.anonymous, w.attendance) == (2, 5, 7)
    assert counts(w.by_age_band) == {"12_17": 6, "unknown": 1}
    assert counts(w.by_gender) == {"female": 1, "male": 5, "not_recorded": 1}
    assert w.feedback_count == 2 and abs(w.feedback_average - 3.5) < 1e-9

    assert [m.month for m in report.months] == ["2026-10", "2026-11"]
    october = report.months[0]
    assert october.visits.visits == 1 and october.visits.people_reached == 3
    assert october.workshops.workshops == 0

    # A period and an area narrow every figure.
    north_nov = store.report(ReportFilter(since=NOV_1 - 9 * HOUR, area="North", today="2026-11-01"))
    assert north_nov.visits.visits == 2 and north_nov.visits.follow_ups_overdue == 0
    assert north_nov.workshops.attendance == 7

    try:
        store.report(ReportFilter(since=NOV_1, until=NOV_1))
        raise AssertionError("an empty period was accepted")
    except WaymarkError.InvalidInput as e:
        assert e.field == "to"


async def test_exports_leave_restricted_records_out_unless_asked(tmp_path):
    store = await open_store(tmp_path / "coordinator.db")
    team = store.create_workspace("North district outreach")
    store.create_visit(team.id, bus_station_visit())
    store.create_visit(
        team.id,
        market_visit(place=Place(name="Safe house 3", area="South"), sensitivity=Sensitivity.RESTRICTED),
    )

    out = tmp_path / "csv"
    summary = await store.export_csv(str(out), ExportOptions(filter=ReportFilter()))
    assert (summary.visits, summary.restricted_left_out) == (1, 1)
    assert "visits.csv" in summary.tables and "report_summary.csv" in summary.tables
    with open(out / "visits.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["place"] for r in rows] == ["Central bus station, north gate"]

    everything = tmp_path / "all"
    summary = await store.export_csv(
        str(everything), ExportOptions(filter=ReportFilter(), include_restricted=True)
    )
    with open(everything / "visits.csv", newline="") as f:
        places = sorted(r["place"] for r in csv.DictReader(f))
    assert places == ["Central bus station, north gate", "Safe house 3"]

    book = tmp_path / "team.xlsx"
    summary = await store.export_xlsx(str(book), ExportOptions(filter=ReportFilter()))
    assert summary.tables[:3] == ["visits", "referrals", "workshops"]
    assert book.read_bytes()[:2] == b"PK"
