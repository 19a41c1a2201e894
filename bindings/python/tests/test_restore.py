"""The operator restores the server from last night's backup: phones notice, send again what the
server lost and pull from where the logs still agree, so every phone, and one that joins later,
has every record; a phone the restored server no longer knows keeps what it has not sent."""

from helpers import bus_station_visit, join_team, open_store
from waymark import AlertKind, VisitFilter, WaymarkError


async def team_of(tmp_path, server, *names):
    """The coordinator's phone with a workspace on `server`, and phones admitted to it."""
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, server.url, token)
    await coordinator.sync()
    phones = [await join_team(coordinator, team.id, tmp_path / f"{n}.db", n) for n in names]
    return coordinator, team, phones


def notes_of(store):
    return sorted(store.get_visit(v.id).notes for v in store.list_visits(VisitFilter()))


async def test_after_a_restore_every_phone_and_a_new_one_have_every_record(tmp_path, server):
    coordinator, team, (ana, ben) = await team_of(tmp_path, server, "Ana", "Ben")
    for phone in (ana, ben, coordinator):
        await phone.sync()
    server.backup(tmp_path / "backup.sqlite3")

    ana.create_visit(team.id, bus_station_visit(notes="After the backup."))
    await ana.sync()
    server.restore(tmp_path / "backup.sqlite3")
    ben.create_visit(team.id, bus_station_visit(notes="After the restore."))
    await ben.sync()

    report = await ana.sync()
    assert report.resent >= 1
    assert AlertKind.REWOUND in [a.kind for a in ana.team_status(team.id).alerts]
    for phone in (ben, coordinator):
        await phone.sync()
    newcomer = await join_team(coordinator, team.id, tmp_path / "chidi.db", "Chidi")

    for phone in (coordinator, ana, ben, newcomer):
        assert notes_of(phone) == ["After the backup.", "After the restore."]


async def test_a_phone_the_restored_server_does_not_know_keeps_what_it_recorded(tmp_path, server):
    coordinator, team, _ = await team_of(tmp_path, server)
    server.backup(tmp_path / "backup.sqlite3")
    late = await join_team(coordinator, team.id, tmp_path / "dara.db", "Dara")

    server.restore(tmp_path / "backup.sqlite3")
    late.create_visit(team.id, bus_station_visit(notes="Recorded by a phone the server forgot."))
    pending = late.pending_changes(team.id)
    assert pending > 0
    for _ in range(2):
        try:
            await late.sync()
            raise AssertionError("a phone the server does not know synced")
        except WaymarkError.DeviceUnknown:
            pass
        assert late.pending_changes(team.id) == pending
    assert notes_of(late) == ["Recorded by a phone the server forgot."]
