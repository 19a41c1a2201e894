//! Anonymous tips end to end, in headless Chromium against a real server: a tip typed on the
//! served page reaches every coordinator's device as one restricted record (and no member's),
//! while the server's files hold none of its words and the page asked nothing of any other
//! origin; a reply sealed to the tipster is read back on the page with the receipt code; the
//! page saved as a file still works; a server that swaps the published tip key is caught and
//! corrected by the next coordinator's sync; and a coordinator's revocation moves the page to a
//! new key that the former coordinator, with its whole database, cannot open tips with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use support::*;
use waymark_core::*;
use waymark_e2e::browser::Browser;

/// A team of a coordinator, a second coordinator and a member, with a published tip page.
struct TipTeam {
    server: Server,
    /// The first coordinator's phone, the second coordinator's, then Amina's (a member).
    team: Vec<Device>,
    ws: String,
    page: TipPage,
}

fn tip_team(dir: &Path) -> TipTeam {
    let server = Server::start(dir);
    let (_, token) = server.workspace_and_token();
    let (mut team, ws) = team(&server.url(), &token, &["Coordinator", "Amina"]);
    let second = Device::new("Second coordinator");
    let code = team[0]
        .store
        .create_invite_with_role(&ws, 3600, "coordinator")
        .unwrap();
    second.store.join(&code).unwrap();
    second.sync_until_ok();
    team[0].sync_until_ok();
    second.sync_until_ok();
    team.insert(1, second);
    let set = team[0].store.set_tip_page(&ws, &[], false).unwrap();
    assert!(!set.published, "published only once the server has it");
    team[0].sync_until_ok();
    let page = team[0].store.tip_page(&ws).unwrap().unwrap();
    assert!(page.published);
    assert_eq!(page.url, set.url);
    TipTeam {
        server,
        team,
        ws,
        page,
    }
}

/// Fills the page in as a tipster would and sends it; returns the receipt code it shows.
fn send_from_page(browser: &mut Browser, what: &str, place: &str) -> String {
    browser.eval(&format!(
        "document.getElementById('what').value = {};
         document.getElementById('where').value = {};
         document.getElementById('when').value = 'Last night';
         document.getElementById('send').click(); true",
        serde_json::to_string(what).unwrap(),
        serde_json::to_string(place).unwrap(),
    ));
    browser
        .wait_for("document.getElementById('receipt').textContent.trim()")
        .as_str()
        .unwrap()
        .to_string()
}

fn origin(url: &str) -> String {
    url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/")
}

#[test]
fn a_tip_typed_in_the_browser_reaches_coordinators_only_and_the_server_keeps_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = tip_team(&dir.path().join("server"));
    let what = "Girls kept locked above the Orchid massage parlour";
    let place = "Riverside lane 14";

    let mut browser = Browser::launch();
    browser.open(&t.page.url);
    let shown = browser.wait_for("document.getElementById('fingerprint').textContent.trim()");
    assert!(
        shown.as_str().unwrap().contains(&t.page.fingerprint),
        "the page shows the fingerprint coordinators see: {shown} vs {}",
        t.page.fingerprint
    );
    let code = send_from_page(&mut browser, what, place);
    assert!(code.len() >= 20, "a receipt code: {code}");
    if let Ok(dir) = std::env::var("WAYMARK_SCREENSHOTS") {
        browser.screenshot(&Path::new(&dir).join("tip-page.png"));
    }

    // Coordinators' devices open it into one record; a member's holds nothing of it.
    t.team[0].sync_until_ok();
    let tips = t.team[0].store.tips(&t.ws).unwrap();
    assert_eq!(tips.len(), 1);
    let tip = &tips[0];
    assert_eq!((tip.what.as_str(), tip.place.as_str()), (what, place));
    assert_eq!(tip.time, "Last night");
    let hits = t.team[0].store.search("Orchid", 10).unwrap();
    assert!(
        hits.iter().any(|h| h.id == tip.id
            && h.kind == RecordKind::Tip
            && h.sensitivity == Sensitivity::Restricted),
        "{hits:?}"
    );
    t.team[1].sync_until_ok();
    t.team[2].sync_until_ok();
    assert_eq!(t.team[1].store.tips(&t.ws).unwrap(), tips);
    assert!(t.team[2].store.tips(&t.ws).unwrap().is_empty());
    assert!(t.team[2].store.search("Orchid", 10).unwrap().is_empty());

    // Exports leave tips out unless asked for.
    let plain = dir.path().join("export");
    let everything = ExportOptions {
        include_restricted: true,
        include_notes: true,
        ..Default::default()
    };
    let summary = t.team[0].store.export_csv(&plain, &everything).unwrap();
    assert!(!summary.tables.contains(&"tips.csv".to_string()));
    assert!(!contains(&all_bytes(&plain), "Orchid"));
    let asked = dir.path().join("export-tips");
    let with_tips = ExportOptions {
        include_tips: true,
        ..everything
    };
    let summary = t.team[0].store.export_csv(&asked, &with_tips).unwrap();
    assert!(summary.tables.contains(&"tips.csv".to_string()));
    assert!(contains(
        &std::fs::read(asked.join("tips.csv")).unwrap(),
        what
    ));

    // The team answers; the tipster reads it with the code, on the page.
    let reply = "Thank you. We are looking into it; call the hotline if anyone is in danger.";
    t.team[0].store.reply_to_tip(&tip.id, reply).unwrap();
    t.team[0].sync_until_ok();
    t.team[1].sync_until_ok();
    assert_eq!(
        t.team[1].store.get_tip(&tip.id).unwrap().replies[0].text,
        reply
    );
    let mut reader = Browser::launch();
    reader.open(&t.page.url);
    reader.eval(&format!(
        "document.getElementById('code').value = {};
         document.getElementById('check').click(); true",
        serde_json::to_string(&code).unwrap()
    ));
    let shown = reader.wait_for("document.getElementById('replies').textContent.trim()");
    assert!(shown.as_str().unwrap().contains(reply), "{shown}");
    // The core's tipster side reads what the page's script sealed for, and the other way round.
    let answers = read_tip_replies(&t.page.url, &code).unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].text, reply);

    // A wrong code reads nothing.
    reader.eval(
        "document.getElementById('code').value = 'abcde-fghij-kmnpq-rstuv';
         document.getElementById('check').click(); true",
    );
    let none = reader.wait_for(
        "(t => t.includes('Thank you') ? '' : t)(document.getElementById('replies').textContent.trim())",
    );
    assert!(!none.as_str().unwrap().contains(reply));

    // Past the 32 replies the server keeps under one receipt, it refuses more; the team's
    // records go on syncing all the same.
    for n in 1..33 {
        t.team[0]
            .store
            .reply_to_tip(&tip.id, &format!("Reply {n}"))
            .unwrap();
    }
    let marker = t.team[0]
        .store
        .create_visit(&t.ws, &visit("After the replies", "", 1_700_000_000_000))
        .unwrap();
    t.team[0].sync_until_ok();
    t.team[1].sync_until_ok();
    assert!(t.team[1].store.get_visit(&marker).is_ok());
    assert_eq!(read_tip_replies(&t.page.url, &code).unwrap().len(), 32);

    // The tip becomes a visit, which keeps nothing but what the coordinator put in it.
    let visit_id = t.team[0]
        .store
        .tip_to_visit(
            &tip.id,
            &visit(place, "From an anonymous tip", 1_700_000_000_000),
        )
        .unwrap();
    assert_eq!(
        t.team[0].store.get_tip(&tip.id).unwrap().visit_id,
        Some(visit_id.clone())
    );
    assert_eq!(
        t.team[0].store.get_visit(&visit_id).unwrap().place.name,
        place
    );

    // Only the server's origin was ever asked for anything, and nothing went wrong on the page.
    let server = origin(&t.page.url);
    for b in [&browser, &reader] {
        for r in &b.requests {
            assert!(origin(r) == server, "a request elsewhere: {r}");
        }
        assert!(b.console.is_empty(), "console: {:?}", b.console);
    }

    // The server's files hold no word of the tip or the reply, and nothing of the browser.
    t.team[0].sync_until_ok();
    let stored = all_bytes(&t.server.data);
    for needle in [
        "Orchid",
        "Riverside",
        "Last night",
        "hotline",
        "HeadlessChrome",
    ] {
        assert!(!contains(&stored, needle), "the server stored {needle:?}");
    }
}

#[test]
fn the_page_saved_as_a_file_still_sends_tips_to_the_team() {
    let dir = tempfile::tempdir().unwrap();
    let t = tip_team(&dir.path().join("server"));
    let html = reqwest::blocking::get(&t.page.url).unwrap().text().unwrap();
    let saved = dir.path().join("report.html");
    std::fs::write(&saved, html).unwrap();

    let mut browser = Browser::launch();
    let file_url = format!("file://{}", saved.display());
    browser.open(&file_url);
    send_from_page(&mut browser, "A van collects workers at 4am", "Bus depot");
    // It fetched nothing (its key is in the file): it only posted the sealed tip.
    let post = format!("{}/tips", t.page.url);
    for r in &browser.requests {
        assert!(r == &file_url || r == &post, "a request elsewhere: {r}");
    }
    assert!(browser.requests.contains(&post));
    assert!(browser.console.is_empty(), "console: {:?}", browser.console);

    t.team[1].sync_until_ok();
    let tips = t.team[1].store.tips(&t.ws).unwrap();
    assert_eq!(tips.len(), 1);
    assert_eq!(tips[0].what, "A van collects workers at 4am");
}

#[test]
fn a_server_that_swaps_the_tip_key_is_caught_and_corrected_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let t = tip_team(dir.path());
    // A breached server rewrites the published statement to seal tips to a key of its own.
    let db = t.server.data.join("waymark.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (statement, device): (Vec<u8>, String) = conn
        .query_row(
            "SELECT p.statement, d.public_id FROM tip_pages p JOIN devices d ON d.id = p.device",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut forged: waymark_protocol::TipPageStatement =
        waymark_protocol::decode(&statement).unwrap();
    forged.public_key = rand::random();
    conn.execute(
        "UPDATE tip_pages SET statement = ?1",
        [waymark_protocol::encode(&forged)],
    )
    .unwrap();
    drop(conn);
    let served = reqwest::blocking::get(&t.page.url).unwrap().text().unwrap();
    assert!(
        served.contains(&data_encoding::BASE64.encode(&forged.public_key)),
        "the page now seals to the server's key"
    );

    // The second coordinator's next sync notices, says so, and publishes the team's key again.
    t.team[1].sync_until_ok();
    let alerts = t.team[1].store.team_status(&t.ws).unwrap().alerts;
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::Substituted),
        "{alerts:?}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (statement, now_device): (Vec<u8>, String) = conn
        .query_row(
            "SELECT p.statement, d.public_id FROM tip_pages p JOIN devices d ON d.id = p.device",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let repaired: waymark_protocol::TipPageStatement =
        waymark_protocol::decode(&statement).unwrap();
    assert_ne!(repaired.public_key, forged.public_key);
    assert_ne!(
        now_device, device,
        "signed again by the coordinator that noticed"
    );
    assert_eq!(repaired.page, forged.page, "at the same address");

    // Tips sent after that reach the team again.
    let mut browser = Browser::launch();
    browser.open(&t.page.url);
    send_from_page(&mut browser, "Passports taken by the employer", "Farm road");
    t.team[0].sync_until_ok();
    assert_eq!(t.team[0].store.tips(&t.ws).unwrap().len(), 1);
}

#[test]
fn a_former_coordinator_with_its_whole_database_cannot_open_tips_sent_after_its_revocation() {
    use crypto_box::aead::Aead;
    use sha2::Digest;

    let dir = tempfile::tempdir().unwrap();
    let t = tip_team(&dir.path().join("server"));
    let before = t.page.clone();
    let sealed_tips = |t: &TipTeam| -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let server = rusqlite::Connection::open(t.server.data.join("waymark.sqlite3")).unwrap();
        let mut st = server
            .prepare("SELECT ephemeral, nonce, sealed FROM tips ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let fields = |what: &str| TipFields {
        what: what.into(),
        language: "en".into(),
        ..Default::default()
    };
    send_tip(&before.url, &fields("Sent while both were coordinators")).unwrap();
    let earlier = sealed_tips(&t).remove(0);
    t.team[0].sync_until_ok();
    let former = id_of(&t.team[0], &t.ws, "Second coordinator");
    t.team[0].store.revoke_device(&t.ws, &former).unwrap();
    t.team[0].sync_until_ok();
    let page = t.team[0].store.tip_page(&t.ws).unwrap().unwrap();
    assert!(
        page.epoch > before.epoch,
        "{} then {}",
        before.epoch,
        page.epoch
    );
    assert!(page.published);
    assert_eq!(
        page.url, before.url,
        "the page stays where tipsters know it"
    );
    assert_ne!(page.fingerprint, before.fingerprint);

    let what = "The boss keeps our passports in the office safe";
    send_tip(&page.url, &fields(what)).unwrap();
    // What the former coordinator holds: every restricted key it was ever granted, from its own
    // database, and the tip's ciphertext, from the server's.
    let former_db = &t.team[1];
    let conn = rusqlite::Connection::open(former_db.dir.path().join("waymark.db")).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(former_db.key)
    ))
    .unwrap();
    let secrets: Vec<Vec<u8>> = conn
        .prepare("SELECT secret FROM restricted_keys WHERE secret IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!secrets.is_empty(), "it held the keys of its time");
    let opens = |(ephemeral, nonce, sealed): &(Vec<u8>, Vec<u8>, Vec<u8>)| {
        let ephemeral = crypto_box::PublicKey::from_slice(ephemeral).unwrap();
        secrets.iter().any(|restricted| {
            // The tip key's derivation (docs/0008-tips.md), as anyone who knows the design can.
            let digest = sha2::Sha512::new()
                .chain_update(b"waymark/tip-key/v1:")
                .chain_update(restricted)
                .finalize();
            let tip_secret = crypto_box::SecretKey::from_slice(&digest[..32]).unwrap();
            crypto_box::SalsaBox::new(&ephemeral, &tip_secret)
                .decrypt(nonce.as_slice().into(), sealed.as_slice())
                .is_ok()
        })
    };
    assert!(opens(&earlier), "its keys open what was sent in its time");
    let later = sealed_tips(&t);
    assert_eq!(later.len(), 1);
    assert!(!opens(&later[0]), "a former coordinator opened a later tip");
    // The team still reads it.
    t.team[0].sync_until_ok();
    let tips = t.team[0].store.tips(&t.ws).unwrap();
    assert!(tips.iter().any(|tip| tip.what == what), "{tips:?}");
}
