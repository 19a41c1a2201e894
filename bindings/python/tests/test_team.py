"""A team's security from an app's point of view: approving a join, revoking a phone (which
rotates the workspace key), and a wiped phone telling the server it is gone."""

from helpers import bus_station_visit, open_store
from waymark import WaymarkError, send_revocation


async def coordinator_with_workspace(tmp_path, server):
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, server.url, token)
    await coordinator.sync()
    return coordinator, team


async def test_a_phone_joins_without_the_key_in_the_code_once_the_coordinator_approves(tmp_path, server):
    coordinator, team = await coordinator_with_workspace(tmp_path, server)
    visit_id = coordinator.create_visit(team.id, bus_station_visit(notes="For the team."))
    await coordinator.sync()

    code = await coordinator.create_approval_invite(team.id, 600)
    luis = await open_store(tmp_path / "luis.db", name="Luis")
    await luis.join(code)
    shown_on_luis = luis.verification_code(team.id)
    await luis.sync()
    try:
        luis.get_visit(visit_id)
        raise AssertionError("readable before approval")
    except WaymarkError.NotFound:
        pass

    pending = await coordinator.pending_joins(team.id)
    assert [(p.name, p.verified, p.verification_code) for p in pending] == [("Luis", True, shown_on_luis)]
    await coordinator.approve_join(team.id, pending[0].device_id)
    await luis.sync()
    assert luis.get_visit(visit_id).notes == "For the team."
    assert await coordinator.pending_joins(team.id) == []
    members = {m.name: m for m in coordinator.team(team.id)}
    assert members["Coordinator"].is_this_device and members["Coordinator"].role == "coordinator"
    assert members["Luis"].role == "member" and members["Luis"].verified


async def test_revoking_a_phone_stops_it_and_members_cannot_revoke_others(tmp_path, server):
    coordinator, team = await coordinator_with_workspace(tmp_path, server)
    phones = []
    for name in ("Ana", "Ben"):
        phone = await open_store(tmp_path / f"{name}.db", name=name)
        await phone.join(await coordinator.create_invite(team.id, 600))
        await phone.sync()
        phones.append(phone)
    ana, ben = phones
    await coordinator.sync()
    await ana.sync()
    ben_id = next(m.device_id for m in ana.team(team.id) if m.name == "Ben")
    try:
        await ana.revoke_device(team.id, ben_id)
        raise AssertionError("a member revoked another phone")
    except WaymarkError.NotPermitted:
        pass

    await coordinator.revoke_device(team.id, ben_id)
    try:
        await ben.sync()
        raise AssertionError("a revoked phone synced")
    except WaymarkError.DeviceRevoked:
        pass
    later = coordinator.create_visit(team.id, bus_station_visit(notes="After Ben left."))
    await coordinator.sync()
    await ana.sync()
    assert ana.get_visit(later).notes == "After Ben left."
    assert next(m for m in ana.team(team.id) if m.name == "Ben").revoked


async def test_a_wiped_phone_tells_the_server_and_is_revoked(tmp_path, server):
    coordinator, team = await coordinator_with_workspace(tmp_path, server)
    ana = await open_store(tmp_path / "ana.db", name="Ana")
    await ana.join(await coordinator.create_invite(team.id, 600))
    await ana.sync()

    report = await ana.wipe()
    assert [p.workspace_id for p in report.pending_revocations] == [team.id]
    for pending in report.pending_revocations:
        await send_revocation(pending)
        await send_revocation(pending)  # repeating it is harmless
    await coordinator.sync()
    assert next(m for m in coordinator.team(team.id) if m.name == "Ana").revoked
