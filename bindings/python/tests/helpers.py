"""What the tests share: opening stores and recording typical visits and workshops."""

import os
import threading

from waymark import (
    ChangeListener,
    SyncProgressListener,
    FollowUp,
    NewAttendee,
    NewReferral,
    NewVisit,
    NewWorkshop,
    Place,
    ReferralStatus,
    Sensitivity,
    WaymarkStore,
)

# 2026-11-01T09:00:00Z in ms.
NOV_1 = 1_793_523_600_000
HOUR = 3_600_000


async def open_store(path, key=None, name=None):
    """Opens a store at `path` (a fresh random key unless given), optionally naming the device."""
    store = await WaymarkStore.open(str(path), key if key is not None else os.urandom(32))
    if name:
        store.set_device_name(name)
    return store


async def join_team(coordinator, workspace_id, path, name):
    """A phone that joins with an in-person invite of `coordinator` and is admitted into the
    team log: it reads at once, but its own changes go out only once the coordinator's next
    sync has admitted it, which its own next sync then learns."""
    phone = await open_store(path, name=name)
    await phone.join(await coordinator.create_invite(workspace_id, 600))
    await phone.sync()
    await coordinator.sync()
    await phone.sync()
    return phone


def bus_station_visit(notes="Two young men waiting for a recruiter.", **overrides):
    fields = dict(
        place=Place(name="Central bus station, north gate", area="North"),
        occurred_at=NOV_1,
        visit_type="transit_point",
        people_reached=4,
        indicators=["deception"],
        referrals=[NewReferral(kind="shelter", to="Casa Esperanza", status=ReferralStatus.MADE)],
        follow_up=FollowUp(needed=True, due="2026-11-08"),
        sensitivity=Sensitivity.NORMAL,
        notes=notes,
    )
    fields.update(overrides)
    return NewVisit(**fields)


def market_visit(**overrides):
    fields = dict(
        place=Place(name="Fish market loading bay", area="South"),
        occurred_at=NOV_1 + 2 * HOUR,
        visit_type="worksite_visit",
        people_reached=11,
        indicators=["retention_of_documents", "isolation"],
        sensitivity=Sensitivity.NORMAL,
        notes="Workers say their passports are kept by the foreman.",
    )
    fields.update(overrides)
    return NewVisit(**fields)


def school_workshop(**overrides):
    fields = dict(
        title="Safe migration at San Rafael school",
        topic="safe_migration",
        occurred_at=NOV_1 + 24 * HOUR,
        duration_minutes=90,
        venue="San Rafael secondary school",
        area="North",
        audience="students",
        language="es",
        facilitators=["Ana", "Luis"],
        sensitivity=Sensitivity.NORMAL,
        notes="Students asked many questions about job offers online.",
    )
    fields.update(overrides)
    return NewWorkshop(**fields)


def attendee(name, age_band="12_17", gender="female"):
    return NewAttendee(name=name, age_band=age_band, gender=gender)


class _Recorder:
    def __init__(self):
        self.calls = []
        self._lock = threading.Lock()

    def _record(self, item):
        with self._lock:
            self.calls.append(item)

    def snapshot(self):
        with self._lock:
            return list(self.calls)


class ChangeRecorder(_Recorder, ChangeListener):
    """A change listener that remembers which ids it was told about."""

    def on_change(self, record_ids):
        self._record(list(record_ids))

    def ids(self):
        return [i for call in self.snapshot() for i in call]


class ProgressRecorder(_Recorder, SyncProgressListener):
    """A sync progress listener that remembers every report; can cancel a sync on the first."""

    def __init__(self, cancel_with=None):
        super().__init__()
        self.cancel_with = cancel_with

    def on_progress(self, progress):
        self._record(progress)
        if self.cancel_with is not None:
            self.cancel_with.cancel()
