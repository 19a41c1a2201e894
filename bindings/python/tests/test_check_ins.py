"""Staff safety check-ins from an app's point of view: a worker starts one before a visit; past
its time the server raises the alarm (the operator's hook runs, teammates see it overdue with
the details they need to look for her); a close with the duress PIN raises it too, while her
own phone shows a safe close."""

import time

import pytest

from helpers import ChangeRecorder, join_team, open_store
from waymark import CheckInDetails, CheckInState, WaymarkError


def now_ms():
    return int(time.time() * 1000)


def wait_for_alerts(server, n, timeout=30):
    started = time.time()
    while True:
        lines = server.alerts.read_text().splitlines() if server.alerts.exists() else []
        if len(lines) >= n:
            return lines
        assert time.time() - started < timeout, f"the alert hook did not run: {lines}"
        time.sleep(0.1)


async def pair(tmp_path, server):
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("North district outreach")
    server_ws, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, server.url, token)
    await coordinator.sync()
    amina = await join_team(coordinator, team.id, tmp_path / "amina.db", "Amina")
    return coordinator, amina, team, server_ws


def find(store, workspace_id, check_in_id):
    return next(c for c in store.check_ins(workspace_id) if c.id == check_in_id)


async def test_an_overdue_check_in_reaches_the_coordinator_and_the_hook(tmp_path, watching_server):
    coordinator, amina, team, server_ws = await pair(tmp_path, watching_server)
    heard = ChangeRecorder()
    handle = coordinator.add_change_listener(heard)
    details = CheckInDetails(place="Golden Lotus karaoke", with_whom="Joseph", note="Back room")
    started = await amina.start_check_in(team.id, now_ms() + 1500, details)
    assert started.watched and started.own and started.state == CheckInState.OPEN

    await coordinator.sync()
    seen = find(coordinator, team.id, started.id)
    assert seen.state == CheckInState.OPEN and seen.details == details and seen.device_name == "Amina"

    assert wait_for_alerts(watching_server, 1) == [f"overdue {server_ws} Amina 0 {started.id}"]
    await coordinator.sync()
    overdue = find(coordinator, team.id, started.id)
    assert overdue.state == CheckInState.OVERDUE
    assert overdue.details.place == "Golden Lotus karaoke"
    assert started.id in heard.ids()
    handle.cancel()


async def test_a_duress_close_looks_safe_on_the_phone_and_raises_the_alarm(tmp_path, watching_server):
    coordinator, amina, team, server_ws = await pair(tmp_path, watching_server)
    amina.set_duress_pin("4711")
    hour = now_ms() + 3_600_000
    safe = await amina.start_check_in(team.id, hour, CheckInDetails(place="Market"))
    forced = await amina.start_check_in(team.id, hour, CheckInDetails(place="Port"))
    safe = await amina.close_check_in(safe.id, "1234")
    forced = await amina.close_check_in(forced.id, "4711")
    assert safe.state == forced.state == CheckInState.CLOSED
    assert [c.state for c in amina.check_ins(team.id)] == [CheckInState.CLOSED] * 2

    assert wait_for_alerts(watching_server, 1) == [f"alarm {server_ws} Amina 0 {forced.id}"]
    await coordinator.sync()
    assert find(coordinator, team.id, forced.id).state == CheckInState.ALARM
    assert find(coordinator, team.id, safe.id).state == CheckInState.CLOSED

    with pytest.raises(WaymarkError.InvalidInput):
        await amina.extend_check_in(forced.id, hour)
