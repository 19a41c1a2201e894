"""Anonymous tips from an app's point of view: a coordinator sets up the tip page; a tip sent
through it (here by the tipster's side of the bindings, which seals exactly as the page does)
reaches the coordinator at sync as a restricted record, searchable, and never a member's phone;
the coordinator replies, and the tipster reads the reply with the receipt code; the tip becomes
a visit. The server's files keep none of the words."""

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import ChangeRecorder, bus_station_visit, join_team, open_store
from waymark import (
    RecordKind,
    Sensitivity,
    TipFields,
    TipPageLanguage,
    WaymarkError,
    read_tip_replies,
    send_tip,
)


def all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


async def test_a_tip_reaches_the_coordinator_who_replies_and_turns_it_into_a_visit(tmp_path, server):
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("North district outreach")
    _, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, server.url, token)
    await coordinator.sync()
    amina = await join_team(coordinator, team.id, tmp_path / "amina.db", "Amina")

    with pytest.raises(WaymarkError.NotPermitted):
        amina.set_tip_page(team.id, [], False)
    page = coordinator.set_tip_page(team.id, [], False)
    assert page.url.startswith(server.url + "/t/") and not page.published
    # The workspace's languages (its labels are in English and Spanish), with built-in words.
    assert [l.code for l in page.languages] == ["en", "es"]
    assert page.languages[1].send == "Enviar"
    await coordinator.sync()
    assert coordinator.tip_page(team.id).published

    heard = ChangeRecorder()
    handle = coordinator.add_change_listener(heard)
    code = await send_tip(
        page.url,
        TipFields(
            what="Three teenagers sleeping in the back of the Jade garment workshop",
            place="Industrial road 9",
            time="Every night this week",
            contact="",
            language="en",
        ),
    )
    assert len(code.replace("-", "")) == 20

    await coordinator.sync()
    tips = coordinator.tips(team.id)
    assert len(tips) == 1
    tip = tips[0]
    assert tip.what.startswith("Three teenagers") and tip.place == "Industrial road 9"
    assert tip.id in heard.ids()
    hits = coordinator.search("Jade garment", 10)
    assert [(h.id, h.kind, h.sensitivity) for h in hits] == [
        (tip.id, RecordKind.TIP, Sensitivity.RESTRICTED)
    ]
    await amina.sync()
    assert amina.tips(team.id) == [] and amina.search("Jade garment", 10) == []

    assert await read_tip_replies(page.url, code) == []
    coordinator.reply_to_tip(tip.id, "Thank you. A team will go there tomorrow.")
    await coordinator.sync()
    answers = await read_tip_replies(page.url, code)
    assert [a.text for a in answers] == ["Thank you. A team will go there tomorrow."]
    # Another code reads nothing: replies open only with the receipt they were sealed to.
    assert await read_tip_replies(page.url, "aaaaa-bbbbb-ccccc-ddddd") == []

    visit_id = coordinator.tip_to_visit(tip.id, bus_station_visit(notes="From an anonymous tip"))
    assert coordinator.get_tip(tip.id).visit_id == visit_id
    handle.cancel()

    stored = all_bytes(server.data_dir)
    for words in [b"Jade garment", b"Industrial road", b"go there tomorrow"]:
        assert words not in stored


async def test_the_page_speaks_the_languages_it_is_given(tmp_path, server):
    coordinator = await open_store(tmp_path / "coordinator.db", name="Coordinator")
    team = coordinator.create_workspace("Équipe nord")
    _, token = server.workspace_and_token()
    await coordinator.connect_workspace(team.id, server.url, token)
    await coordinator.sync()
    words = dict(
        title="Signaler", intro="Chiffré dans ce navigateur.", what="Quoi ?", place="Où ?",
        time="Quand ?", contact="Contact", send="Envoyer", sent="Envoyé.", check="Lire",
        no_reply="Rien.", failed="Échec.",
    )
    french = TipPageLanguage(code="fr", **words)
    page = coordinator.set_tip_page(team.id, [french], False)
    await coordinator.sync()
    html = urllib.request.urlopen(page.url).read().decode()
    assert "Chiffré dans ce navigateur." in html
    moved = coordinator.set_tip_page(team.id, [french], True)
    assert moved.url != page.url
    await coordinator.sync()
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(page.url)
    assert gone.value.code == 404
    with pytest.raises(WaymarkError.InvalidInput):
        coordinator.set_tip_page(team.id, [TipPageLanguage(code="", **words)], False)
