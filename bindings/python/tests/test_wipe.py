"""The panic button and the key change through the generated bindings: `wipe()` leaves no file
and a handle that raises `Wiped`, `rekey()` keeps every record and retires the old key."""

import os

import pytest

from helpers import bus_station_visit, market_visit, open_store
from waymark import VisitFilter, WaymarkError, WaymarkStore, destroy_store_files


async def test_wipe_removes_every_file_and_hands_back_what_revoking_the_phone_needs(tmp_path, server):
    store = await open_store(tmp_path / "phone.db", name="Ana")
    team = store.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await store.connect_workspace(team.id, server.url, token)
    store.create_visit(team.id, bus_station_visit())
    store.list_visits(VisitFilter())
    assert (tmp_path / "phone.db-wal").exists()

    report = await store.wipe()
    assert sorted(os.listdir(tmp_path)) == ["server-data"]
    assert report.files_removed == 3
    [pending] = report.pending_revocations
    assert pending.workspace_id == team.id
    assert pending.server_url == server.url
    assert pending.device_id and pending.device_token
    assert pending.device_token not in repr(report)

    with pytest.raises(WaymarkError.Wiped):
        store.list_visits(VisitFilter())
    with pytest.raises(WaymarkError.Wiped):
        store.create_visit(team.id, market_visit())
    with pytest.raises(WaymarkError.Wiped):
        await store.sync()
    with pytest.raises(WaymarkError.Wiped):
        await store.wipe()


async def test_a_copy_taken_before_wipe_opens_with_no_other_key(tmp_path):
    key = os.urandom(32)
    store = await open_store(tmp_path / "phone.db", key=key)
    team = store.create_workspace("North district outreach")
    store.create_visit(team.id, bus_station_visit(notes="The recruiter drives a white van."))
    copy = tmp_path / "seized.db"
    for suffix in ("", "-wal"):
        copy.with_name("seized.db" + suffix).write_bytes((tmp_path / ("phone.db" + suffix)).read_bytes())
    await store.wipe()
    assert b"white van" not in copy.read_bytes()
    with pytest.raises(WaymarkError.WrongKey):
        await WaymarkStore.open(str(copy), os.urandom(32))


async def test_rekey_keeps_every_record_and_the_old_key_no_longer_opens(tmp_path):
    old, new = os.urandom(32), os.urandom(32)
    path = tmp_path / "phone.db"
    store = await open_store(path, key=old)
    team = store.create_workspace("North district outreach")
    ids = [store.create_visit(team.id, v) for v in (bus_station_visit(), market_visit())]
    before = store.list_visits(VisitFilter())

    await store.rekey(new)
    assert store.list_visits(VisitFilter()) == before
    ids.append(store.create_visit(team.id, bus_station_visit(notes="After the key change.")))
    del store

    with pytest.raises(WaymarkError.WrongKey):
        await WaymarkStore.open(str(path), old)
    reopened = await WaymarkStore.open(str(path), new)
    assert sorted(v.id for v in reopened.list_visits(VisitFilter())) == sorted(ids)
    assert reopened.get_visit(ids[-1]).notes == "After the key change."


async def test_rekey_refuses_a_short_key_and_the_store_keeps_its_key(tmp_path):
    key = os.urandom(32)
    store = await open_store(tmp_path / "phone.db", key=key)
    store.create_workspace("North district outreach")
    with pytest.raises(WaymarkError.InvalidInput) as e:
        await store.rekey(b"too short")
    assert e.value.field == "new_key"
    del store
    assert len((await WaymarkStore.open(str(tmp_path / "phone.db"), key)).workspaces()) == 1


async def test_destroy_store_files_clears_a_store_whose_key_is_lost(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    store.create_workspace("North district outreach")
    del store
    with pytest.raises(WaymarkError.WrongKey):
        await WaymarkStore.open(str(tmp_path / "phone.db"), os.urandom(32))
    assert destroy_store_files(str(tmp_path / "phone.db")) >= 1
    assert os.listdir(tmp_path) == []
    fresh = await WaymarkStore.open(str(tmp_path / "phone.db"), os.urandom(32))
    assert fresh.workspaces() == []
