"""Duplicate attendees from an app's point of view: two educators at one door check the same
people in offline; after they sync, both phones flag the duplicates; marking them as one person
(undoable) makes reports count people beside attendances, as this test counts them itself."""

from helpers import join_team, open_store, school_workshop, NOV_1
from waymark import NewAttendee, ReportFilter

DAY = 86_400_000


def person(name, age_band="18_24", gender="female", contact=None):
    return NewAttendee(name=name, age_band=age_band, gender=gender, contact=contact, consent=contact is not None)


async def test_duplicates_checked_in_on_two_phones_are_flagged_on_both_and_counted_once(tmp_path, server):
    ana = await open_store(tmp_path / "ana.db", name="Ana")
    team = ana.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await ana.connect_workspace(team.id, server.url, token)
    await ana.sync()
    luis = await join_team(ana, team.id, tmp_path / "luis.db", "Luis")
    door = ana.create_workshop(team.id, school_workshop())
    later = ana.create_workshop(team.id, school_workshop(occurred_at=NOV_1 + 40 * DAY))
    await ana.sync()
    await luis.sync()

    # Offline, both at the door; Rosa comes back to the later workshop.
    people_at_door = [("María López", None), ("Rosa Díaz", "+52 555 0101"), ("Kofi Mensah", None)]
    first = {name: ana.check_in(door, person(name, contact=c)) for name, c in people_at_door}
    again = {
        "maria lopez": luis.check_in(door, person("maria lopez")),
        "R. Diaz": luis.check_in(door, person("R. Diaz", contact="+52 (555) 01-01")),
    }
    warned = luis.possible_duplicates(team.id, person("Rosa Diaz", contact="+52 555 0101"))
    assert warned[0].attendee.name == "R. Diaz" and "same_contact" in warned[0].reasons
    rosa_later = luis.check_in(later, person("Rosa Díaz", contact="+52 555 0101"))

    for _ in range(2):
        await ana.sync()
        await luis.sync()

    expected_pairs = {
        frozenset({"María López", "maria lopez"}),
        frozenset({"Rosa Díaz", "R. Diaz"}),
    }
    for phone in (ana, luis):
        pairs = phone.duplicate_attendees(team.id)
        names = {frozenset({p.first.name, p.second.name}) for p in pairs}
        assert expected_pairs <= names, names
        assert all("Kofi" not in n for pair in names for n in pair)

    ana.merge_attendees(door, again["maria lopez"], door, first["María López"])
    luis.merge_attendees(door, again["R. Diaz"], door, first["Rosa Díaz"])
    luis.merge_attendees(later, rosa_later, door, first["Rosa Díaz"])
    for _ in range(2):
        await ana.sync()
        await luis.sync()

    # Counted here: 6 attendances of 3 people (María, Rosa, Kofi); at the door 5 of 3.
    for phone in (ana, luis):
        assert phone.duplicate_attendees(team.id) == []
        report = phone.report(ReportFilter())
        assert (report.workshops.named, report.workshops.unique_people) == (6, 3)
        assert [m.workshops.unique_people for m in report.months] == [3, 1]
        attendance = phone.attendance(door)
        assert (attendance.named, attendance.unique_people) == (5, 3)

    ana.unmerge_attendee(door, again["maria lopez"])
    await ana.sync()
    await luis.sync()
    assert luis.report(ReportFilter()).workshops.unique_people == 4
