"""Forgetting from an app's point of view: a name typed into a note and redacted, a record
erased, an attendee who asked to be removed: gone from every phone, history included."""

from helpers import attendee, bus_station_visit, join_team, open_store, school_workshop
from waymark import NewAttendee, WaymarkError

NAME = "Zainab Okonkwo-Quadri"


async def pair(tmp_path, server):
    """The coordinator's phone with a workspace, and Ana's phone admitted to it."""
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, server.url, token)
    await coordinator.sync()
    ana = await join_team(coordinator, team.id, tmp_path / "ana.db", "Ana")
    return coordinator, ana, team


async def test_a_redacted_name_and_an_erased_record_are_gone_from_every_phone(tmp_path, server):
    coordinator, ana, team = await pair(tmp_path, server)
    typed = ana.create_visit(team.id, bus_station_visit(notes=f"Met {NAME} at gate 3."))
    doomed = ana.create_visit(team.id, bus_station_visit(notes="Her brother's address."))
    await ana.sync()
    await coordinator.sync()
    assert coordinator.search(NAME, 10)

    ana.set_visit_notes(typed, "Met a young woman at gate 3.")
    ana.redact_record(typed, "notes")
    ana.erase_record(doomed)
    await ana.sync()
    await coordinator.sync()

    for phone in (ana, coordinator):
        assert phone.get_visit(typed).notes == "Met a young woman at gate 3."
        assert len(phone.history(typed)) == 1
        assert phone.search(NAME, 10) == []
        assert phone.search("brother", 10) == []
        assert phone.get_visit(doomed).deleted
        assert phone.get_visit(doomed).notes == ""
    try:
        ana.redact_record(typed, "password")
        raise AssertionError("redacted a field records do not have")
    except WaymarkError.InvalidInput:
        pass


async def test_an_attendee_who_asks_to_be_removed_leaves_no_name_or_contact(tmp_path, server):
    coordinator, ana, team = await pair(tmp_path, server)
    workshop = ana.create_workshop(team.id, school_workshop())
    maria = ana.check_in(
        workshop,
        NewAttendee(name="María Lopez", age_band="18_24", gender="female", contact="+52 555 0101", consent=True),
    )
    ana.check_in(workshop, attendee("Jorge"))
    await ana.sync()
    await coordinator.sync()

    ana.remove_attendee_data(workshop, maria)
    await ana.sync()
    await coordinator.sync()
    for phone in (ana, coordinator):
        people = {a.id: a for a in phone.get_workshop(workshop).attendees}
        assert people[maria].withdrawn and people[maria].name == "" and people[maria].contact is None
        assert [a.name for a in people.values() if not a.withdrawn] == ["Jorge"]
        assert phone.search("Lopez", 10) == []
        assert len(phone.history(workshop)) == 1
