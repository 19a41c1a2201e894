"""A team's security from an app's point of view: approving a join, revoking a phone (which
rotates the workspace key), a wiped phone telling the server it is gone, and a server that lies
about the team being caught."""

import re

import pytest

from helpers import bus_station_visit, join_team, open_store
from waymark import AlertKind, TeamTrust, WaymarkError, send_revocation


async def coordinator_with_workspace(tmp_path, server, url=None):
    """The coordinator's phone with a workspace on `server`, reached at `url` (default: the
    server's own) for good: a membership keeps the URL it was made with."""
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, url or server.url, token)
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
    assert re.fullmatch(r"\d{4} \d{4} \d{4}", shown_on_luis), shown_on_luis
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


async def test_a_coordinator_revokes_and_rotates_in_one_call(tmp_path, server):
    coordinator, team = await coordinator_with_workspace(tmp_path, server)
    ana = await join_team(coordinator, team.id, tmp_path / "ana.db", "Ana")
    ben = await join_team(coordinator, team.id, tmp_path / "ben.db", "Ben")
    await ana.sync()
    before = coordinator.team_status(team.id)
    assert before.trust == TeamTrust.VERIFIED() and before.role == "coordinator"
    assert ana.team_status(team.id).epoch == before.epoch

    ben_id = next(m.device_id for m in coordinator.team(team.id) if m.name == "Ben")
    await coordinator.revoke_device(team.id, ben_id)
    after = coordinator.team_status(team.id)
    assert after.epoch == before.epoch + 1, "the same call rotated the workspace key"
    assert not after.rotation_due
    assert after.log_length > before.log_length

    later = coordinator.create_visit(team.id, bus_station_visit(notes="After Ben left."))
    await coordinator.sync()
    await ana.sync()
    assert ana.team_status(team.id).epoch == after.epoch
    assert ana.get_visit(later).notes == "After Ben left."

    with pytest.raises(WaymarkError.DeviceRevoked):
        await ben.sync()
    with pytest.raises(WaymarkError.NotFound):
        ben.get_visit(later)


async def test_a_hostile_server_is_reported_and_sync_resumes_when_it_stops(tmp_path, server, hostile_server):
    coordinator, team = await coordinator_with_workspace(tmp_path, server, url=hostile_server.url)
    ana = await join_team(coordinator, team.id, tmp_path / "ana.db", "Ana")
    assert ana.team_status(team.id).trust == TeamTrust.VERIFIED()
    # A newcomer joins: the team changed, so each phone reads the team log at its next sync
    # (and the newcomer's whole view of the team comes from this server).
    newcomer = await open_store(tmp_path / "newcomer.db", name="Newcomer")
    await newcomer.join(await coordinator.create_invite(team.id, 600))

    hostile_server.attack("forge-log")
    for phone in (ana, newcomer):
        with pytest.raises(WaymarkError.HostileServer) as refused:
            await phone.sync()
        assert refused.value.reason
        status = phone.team_status(team.id)
        assert status.trust.is_attacked() and status.trust.reason, status.trust
        assert {a.kind for a in status.alerts} & {AlertKind.FORK, AlertKind.FORGED}, status.alerts

    hostile_server.attack("none")
    await ana.sync()
    status = ana.team_status(team.id)
    assert status.trust == TeamTrust.VERIFIED()
    assert status.alerts, "what the server did stays on record"
    await newcomer.sync()
    await coordinator.sync()
    await newcomer.sync()
    assert newcomer.team_status(team.id).trust == TeamTrust.VERIFIED()
