"""Bad input raises the exception an app can act on; internal errors never kill the process;
change listeners hear every write until their handle is cancelled or released."""

import gc
import os

import pytest

from helpers import ChangeRecorder, attendee, bus_station_visit, open_store, school_workshop
from waymark import (
    InternalError,
    Place,
    VisitEdit,
    WaymarkError,
    WaymarkStore,
    debug_force_internal_error,
    debug_force_internal_error_async,
    debug_force_panic,
)

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


async def test_opening_a_store_with_another_key_raises_wrong_key_and_leaves_it_readable(tmp_path):
    key = os.urandom(32)
    store = await open_store(tmp_path / "phone.db", key)
    team = store.create_workspace("Team")
    visit_id = store.create_visit(team.id, bus_station_visit())
    del store

    with pytest.raises(WaymarkError.WrongKey):
        await WaymarkStore.open(str(tmp_path / "phone.db"), os.urandom(32))
    reopened = await WaymarkStore.open(str(tmp_path / "phone.db"), key)
    assert reopened.get_visit(visit_id).people_reached == 4


async def test_a_key_of_the_wrong_length_is_invalid_input_naming_the_key(tmp_path):
    with pytest.raises(WaymarkError.InvalidInput) as e:
        await WaymarkStore.open(str(tmp_path / "phone.db"), b"short")
    assert e.value.field == "key"


async def test_a_bad_field_is_invalid_input_naming_the_field_and_nothing_is_written(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    with pytest.raises(WaymarkError.InvalidInput) as e:
        store.create_visit(team.id, bus_station_visit(place=Place(name="", area="North")))
    assert e.value.field == "place.name"
    assert e.value.reason

    workshop_id = store.create_workshop(team.id, school_workshop())
    with pytest.raises(WaymarkError.InvalidInput) as e:
        store.add_feedback(workshop_id, 9, "out of range")
    assert e.value.field == "feedback.score"
    with pytest.raises(WaymarkError.InvalidInput) as e:
        store.check_in(workshop_id, attendee("Ana", age_band="Not A Key!"))
    assert e.value.field == "attendee.age_band"
    assert store.get_workshop(workshop_id).attendees == []
    assert store.get_workshop(workshop_id).feedback == []


async def test_an_unknown_id_is_not_found(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    with pytest.raises(WaymarkError.NotFound):
        store.get_visit(UNKNOWN_ID)
    with pytest.raises(WaymarkError.NotFound):
        store.update_visit(UNKNOWN_ID, [VisitEdit.PEOPLE_REACHED(count=3)])
    with pytest.raises(WaymarkError.NotFound):
        store.create_visit(UNKNOWN_ID, bus_station_visit())
    # A workshop's id does not name a visit.
    workshop_id = store.create_workshop(team.id, school_workshop())
    with pytest.raises(WaymarkError.NotFound):
        store.get_visit(workshop_id)


async def test_a_garbage_invite_code_is_invalid_invite(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    for code in ["hello", "WAYMARK1", ""]:
        with pytest.raises(WaymarkError.InvalidInvite):
            await store.join(code)


async def test_a_garbage_bundle_is_corrupt_and_imports_nothing(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    store.create_visit(team.id, bus_station_visit())
    with pytest.raises(WaymarkError.Corrupt):
        await store.import_changes(b"this is not a bundle")
    with pytest.raises(WaymarkError.Corrupt):
        await store.export_changes(b"nor a checkpoint")
    assert len(store.search("recruiter", 10)) == 1


async def test_every_error_is_a_waymark_error_with_a_message():
    with pytest.raises(WaymarkError) as e:
        debug_force_internal_error()
    assert isinstance(e.value, WaymarkError.Internal)
    assert "forced internal error" in e.value.reason


async def test_a_panic_inside_the_library_surfaces_as_an_exception_and_the_process_goes_on(tmp_path):
    with pytest.raises(WaymarkError.Internal):
        debug_force_internal_error()
    with pytest.raises(WaymarkError.Internal):
        await debug_force_internal_error_async()
    # A panic outside our guard is still caught by uniffi.
    with pytest.raises(InternalError):
        debug_force_panic()

    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Still working")
    assert store.get_visit(store.create_visit(team.id, bus_station_visit())).people_reached == 4


async def test_change_listeners_hear_each_write_until_their_handle_is_cancelled(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    heard = ChangeRecorder()
    handle = store.add_change_listener(heard)

    visit_id = store.create_visit(team.id, bus_station_visit())
    store.set_visit_notes(visit_id, "Edited.")
    workshop_id = store.create_workshop(team.id, school_workshop())
    store.check_in(workshop_id, attendee("María"))
    store.add_to_tally(workshop_id, "18_24", "female", 1)
    assert heard.snapshot() == [[visit_id], [visit_id], [workshop_id], [workshop_id], [workshop_id]]

    # A failed write changes nothing and is not announced.
    with pytest.raises(WaymarkError.InvalidInput):
        store.add_feedback(workshop_id, 0, "")
    assert len(heard.snapshot()) == 5

    handle.cancel()
    handle.cancel()  # idempotent
    store.delete_record(visit_id)
    assert len(heard.snapshot()) == 5


async def test_releasing_a_listener_handle_unregisters_the_listener(tmp_path):
    store = await open_store(tmp_path / "phone.db")
    team = store.create_workspace("Team")
    kept, released = ChangeRecorder(), ChangeRecorder()
    kept_handle = store.add_change_listener(kept)
    store.add_change_listener(released)  # handle dropped at once
    gc.collect()

    visit_id = store.create_visit(team.id, bus_station_visit())
    assert kept.ids() == [visit_id]
    assert released.ids() == []
    kept_handle.cancel()


async def test_an_import_announces_the_records_it_changed(tmp_path):
    ana = await open_store(tmp_path / "ana.db")
    luis = await open_store(tmp_path / "luis.db")
    team = ana.create_workspace("Team")
    visit_id = ana.create_visit(team.id, bus_station_visit())
    await luis.join(await ana.create_invite(team.id, 3600))

    heard = ChangeRecorder()
    handle = luis.add_change_listener(heard)
    report = await luis.import_changes(await ana.export_changes())
    assert visit_id in report.changed
    assert heard.snapshot()[-1] == report.changed
    handle.cancel()
