"""Two phones of a team syncing through a real `waymark-server` process."""

import asyncio
import time

import pytest

from helpers import ChangeRecorder, ProgressRecorder, bus_station_visit, open_store, school_workshop, attendee
from waymark import CancellationToken, SyncPhase, VisitFilter, WaymarkError, WorkshopFilter


async def connected_pair(tmp_path, server):
    """Ana's phone with a workspace on the server, and Luis's phone joined by invite."""
    ana = await open_store(tmp_path / "ana.db", name="Ana")
    luis = await open_store(tmp_path / "luis.db", name="Luis")
    team = ana.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await ana.connect_workspace(team.id, server.url, token)
    code = await ana.create_invite(team.id, 3600)
    joined = await luis.join(code)
    assert (joined.id, joined.name) == (team.id, "North district outreach")
    return ana, luis, team


async def test_two_phones_editing_one_note_offline_both_keep_their_words_after_sync(tmp_path, server):
    ana, luis, team = await connected_pair(tmp_path, server)
    visit_id = ana.create_visit(team.id, bus_station_visit(notes="Two men waiting."))
    workshop_id = ana.create_workshop(team.id, school_workshop())
    ana.check_in(workshop_id, attendee("María"))
    assert (await ana.sync()).pushed > 0
    pulled = await luis.sync()
    assert visit_id in pulled.changed and workshop_id in pulled.changed
    assert luis.get_visit(visit_id).notes == "Two men waiting."

    # Offline, both add to the same note.
    ana.set_visit_notes(visit_id, "Two men waiting. One holds no passport.")
    luis.set_visit_notes(visit_id, "Two men waiting by gate 3.")
    luis.check_in(workshop_id, attendee("Jorge", gender="male"))
    for _ in range(2):
        await ana.sync()
        await luis.sync()

    for store in (ana, luis):
        notes = store.get_visit(visit_id).notes
        assert "One holds no passport." in notes
        assert "by gate 3" in notes
    assert ana.get_visit(visit_id) == luis.get_visit(visit_id)
    assert ana.list_visits(VisitFilter()) == luis.list_visits(VisitFilter())
    assert ana.list_workshops(WorkshopFilter()) == luis.list_workshops(WorkshopFilter())
    assert ana.attendance(workshop_id).named == 2
    assert ana.pending_changes(team.id) == 0
    assert ana.set_aside_blobs() == []


async def test_sync_reports_progress_while_it_pushes_and_pulls(tmp_path, server):
    ana, luis, team = await connected_pair(tmp_path, server)
    for i in range(5):
        ana.create_visit(team.id, bus_station_visit(notes=f"Visit number {i}."))

    pushing = ProgressRecorder()
    report = await ana.sync(listener=pushing)
    push = [p for p in pushing.snapshot() if p.phase == SyncPhase.PUSH]
    assert push, "progress was reported while pushing"
    assert push[-1].blobs_done == report.pushed
    assert all(p.workspace_id == team.id for p in push)
    assert all(p.blobs_done <= p.blobs_total for p in push)

    pulling = ProgressRecorder()
    report = await luis.sync(listener=pulling)
    pull = [p for p in pulling.snapshot() if p.phase == SyncPhase.PULL]
    assert pull and pull[-1].blobs_done == report.pulled > 0
    assert pull[-1].bytes_done > 0


async def test_a_cancelled_sync_raises_cancelled_and_the_next_sync_completes(tmp_path, server):
    ana, luis, team = await connected_pair(tmp_path, server)
    visit_id = ana.create_visit(team.id, bus_station_visit())
    await ana.sync()

    already = CancellationToken()
    already.cancel()
    assert already.is_cancelled()
    with pytest.raises(WaymarkError.Cancelled):
        await luis.sync(cancel=already)

    # Cancelled from the progress callback: stops at the next request.
    token = CancellationToken()
    with pytest.raises(WaymarkError.Cancelled):
        await luis.sync(listener=ProgressRecorder(cancel_with=token), cancel=token)

    await luis.sync()
    assert luis.get_visit(visit_id).notes == ana.get_visit(visit_id).notes


async def test_the_change_listener_hears_which_records_a_sync_brought(tmp_path, server):
    ana, luis, team = await connected_pair(tmp_path, server)
    visit_id = ana.create_visit(team.id, bus_station_visit())
    await ana.sync()

    heard = ChangeRecorder()
    handle = luis.add_change_listener(heard)
    report = await luis.sync()
    assert visit_id in heard.ids()
    assert set(report.changed) <= set(heard.ids())
    handle.cancel()


async def test_an_invite_cannot_be_used_twice(tmp_path, server):
    ana, _, team = await connected_pair(tmp_path, server)
    code = await ana.create_invite(team.id, 3600)
    other = await open_store(tmp_path / "other.db")
    await other.join(code)
    third = await open_store(tmp_path / "third.db")
    with pytest.raises(WaymarkError.InviteUsed):
        await third.join(code)


async def test_an_unreachable_server_is_a_network_error_and_nothing_is_lost(tmp_path, server):
    ana, _, team = await connected_pair(tmp_path, server)
    visit_id = ana.create_visit(team.id, bus_station_visit())
    server.stop()
    with pytest.raises(WaymarkError.Network):
        await ana.sync()
    assert ana.pending_changes(team.id) > 0
    assert ana.get_visit(visit_id).people_reached == 4


async def test_a_long_sync_leaves_the_event_loop_free_for_the_ui(tmp_path, server):
    ana, _, team = await connected_pair(tmp_path, server)
    for i in range(100):
        ana.create_visit(team.id, bus_station_visit(notes=f"Visit number {i}."))

    ticks = []

    async def ui():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(ui())
    await asyncio.sleep(0.01)
    started = time.monotonic()
    report = await ana.sync()
    took = time.monotonic() - started
    ticker.cancel()
    during = [t for t in ticks if t >= started]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert report.pushed > 0
    assert len(during) >= 3 and max(gaps) < took * 0.8, (
        f"the event loop kept running while the sync worked ({took:.3f}s, "
        f"{len(during)} ticks, longest pause {max(gaps, default=took):.3f}s)"
    )
