//! Anonymous tips (docs/0008-tips.md), as far as the server decides anything about them: which
//! signed page statements it publishes, the page's HTML, and what it accepts from a tipster's
//! browser. The routes are in `api::tips`; the storage in each backend.
//!
//! The server never opens a tip: the page seals it in the browser to the team's tip key, and
//! the server checks only the sizes of what it keeps.

use std::collections::HashSet;
use std::sync::LazyLock;

use base64::Engine as _;
use serde::Serialize;
use waymark_protocol::{
    PublicKey, TipPageRequest, TipPageStatement, TipSubmission, decode, limits, tip_labels,
};

use crate::storage::{NewTip, StorageError, StorageResult, TipReply};

/// Most languages one tip page carries.
pub const MAX_TIP_LANGUAGES: usize = 16;
/// Longest language code of a tip page, in characters.
pub const MAX_LANGUAGE_CODE_CHARS: usize = 16;
/// Longest label of a tip page, in characters.
pub const MAX_LABEL_CHARS: usize = 2_000;
/// Shortest sealed tip or reply: the 16-byte authentication tag of an empty message.
pub const MIN_SEALED_BYTES: usize = 16;

/// The page's template: the HTML, style and script around the configuration.
const TEMPLATE: &str = include_str!("../assets/tip-page.html");
/// TweetNaCl-js 1.0.3, inlined into the page (see `assets/tweetnacl/README.md`).
const TWEETNACL: &str = include_str!("../assets/tweetnacl/nacl.min.js");
/// Where the template takes the configuration.
const CONFIG_MARK: &str = "{{config}}";
/// Where the template takes TweetNaCl.
const NACL_MARK: &str = "{{nacl}}";

/// Standard base64 with padding: what browsers' `btoa` writes.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Whether `page` is a tip page path: [`limits::TIP_PAGE_CHARS`] characters of lowercase
/// base32 (`a-z`, `2-7`).
pub fn is_page_path(page: &str) -> bool {
    page.len() == limits::TIP_PAGE_CHARS
        && page
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// Unix seconds rounded down to the hour: all the server keeps of when a tip arrived.
pub fn received_hour(now: i64) -> i64 {
    now - now.rem_euclid(3600)
}

/// Checks a tip page statement published by device `caller_id` of `workspace_id`, whose
/// enrolled Ed25519 key is `sign_key` (both backends call it inside the write that stores the
/// page); every refusal is [`StorageError::Invalid`]. The request must name the caller and
/// carry its signature of the statement's bytes; the statement is at most
/// [`limits::MAX_TIP_STATEMENT_BYTES`] of CBOR [`TipPageStatement`] naming the caller's
/// workspace, a page path ([`is_page_path`]), a tip key that is not all zeros, and 1 to
/// [`MAX_TIP_LANGUAGES`] languages with distinct codes of 1 to [`MAX_LANGUAGE_CODE_CHARS`]
/// characters, whose labels are [`tip_labels::ALL`] names of at most [`MAX_LABEL_CHARS`]
/// characters. Returns the statement.
pub fn check_tip_page(
    request: &TipPageRequest,
    caller_id: &str,
    workspace_id: &str,
    sign_key: &PublicKey,
) -> StorageResult<TipPageStatement> {
    let invalid = |why: String| Err(StorageError::Invalid(why));
    if request.device_id != caller_id {
        return invalid(
            "device_id must be the calling device: a device publishes only what it signed".into(),
        );
    }
    if request.statement.len() > limits::MAX_TIP_STATEMENT_BYTES {
        return invalid(format!(
            "the statement is {} bytes, at most {} are allowed",
            request.statement.len(),
            limits::MAX_TIP_STATEMENT_BYTES
        ));
    }
    let Ok(signature) = <[u8; 64]>::try_from(request.signature.as_slice()) else {
        return invalid(format!(
            "signature must be 64 bytes, it has {}",
            request.signature.len()
        ));
    };
    let verified = ed25519_dalek::VerifyingKey::from_bytes(sign_key).is_ok_and(|key| {
        key.verify_strict(
            &request.statement,
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .is_ok()
    });
    if !verified {
        return invalid("the signature does not verify with the calling device's key".into());
    }
    let statement: TipPageStatement = decode(&request.statement)
        .map_err(|err| StorageError::Invalid(format!("the statement is not one: {err}")))?;
    if statement.workspace_id != workspace_id {
        return invalid("the statement names another workspace".into());
    }
    if !is_page_path(&statement.page) {
        return invalid(format!(
            "page must be {} characters of lowercase base32 (a-z, 2-7)",
            limits::TIP_PAGE_CHARS
        ));
    }
    if statement.public_key.iter().all(|b| *b == 0) {
        return invalid("public_key must not be all zeros".into());
    }
    if statement.languages.is_empty() || statement.languages.len() > MAX_TIP_LANGUAGES {
        return invalid(format!(
            "a page has 1 to {MAX_TIP_LANGUAGES} languages, this one {}",
            statement.languages.len()
        ));
    }
    let mut codes = HashSet::new();
    for (index, language) in statement.languages.iter().enumerate() {
        let chars = language.code.chars().count();
        if chars == 0
            || chars > MAX_LANGUAGE_CODE_CHARS
            || language.code.chars().any(char::is_control)
        {
            return invalid(format!(
                "language {index}: its code must be 1 to {MAX_LANGUAGE_CODE_CHARS} characters"
            ));
        }
        if !codes.insert(language.code.as_str()) {
            return invalid(format!("language {index}: its code is given twice"));
        }
        for (name, text) in &language.labels {
            if !tip_labels::ALL.contains(&name.as_str()) {
                return invalid(format!(
                    "language {index}: no label is called {:?} (known: {})",
                    name.chars().take(40).collect::<String>(),
                    tip_labels::ALL.join(", ")
                ));
            }
            if text.chars().count() > MAX_LABEL_CHARS {
                return invalid(format!(
                    "language {index}: label {name} is longer than {MAX_LABEL_CHARS} characters"
                ));
            }
        }
    }
    Ok(statement)
}

/// Decodes a tip as a browser posts it (JSON [`TipSubmission`]): an epoch, and in base64 with
/// padding a 32-byte one-time key, a 24-byte nonce and 16 to [`limits::MAX_TIP_SEALED_BYTES`]
/// sealed bytes. The error says what was wrong.
pub fn decode_submission(body: &[u8]) -> Result<NewTip, String> {
    let posted: TipSubmission = serde_json::from_slice(body).map_err(|err| {
        format!("the body must be JSON {{\"epoch\", \"ephemeral\", \"nonce\", \"sealed\"}}: {err}")
    })?;
    let ephemeral = fixed_base64::<32>("ephemeral", &posted.ephemeral)?;
    let nonce = fixed_base64::<24>("nonce", &posted.nonce)?;
    // Bounded before decoding: base64 takes 4 characters for 3 bytes.
    if posted.sealed.len() > limits::MAX_TIP_SEALED_BYTES.div_ceil(3) * 4 {
        return Err(format!(
            "sealed must be at most {} bytes",
            limits::MAX_TIP_SEALED_BYTES
        ));
    }
    let sealed = BASE64
        .decode(&posted.sealed)
        .map_err(|_| "sealed must be standard base64 with padding".to_owned())?;
    if !(MIN_SEALED_BYTES..=limits::MAX_TIP_SEALED_BYTES).contains(&sealed.len()) {
        return Err(format!(
            "sealed must be {MIN_SEALED_BYTES} to {} bytes, it has {}",
            limits::MAX_TIP_SEALED_BYTES,
            sealed.len()
        ));
    }
    Ok(NewTip {
        epoch: posted.epoch,
        ephemeral,
        nonce,
        sealed,
    })
}

fn fixed_base64<const N: usize>(field: &str, text: &str) -> Result<[u8; N], String> {
    BASE64
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| format!("{field} must be {N} bytes in standard base64 with padding"))
}

/// The JSON of `GET /t/{page}/replies/{lookup}`: `{"replies":[{"ephemeral","nonce","sealed"}]}`,
/// base64 with padding, oldest first.
pub fn replies_json(replies: &[TipReply]) -> String {
    #[derive(Serialize)]
    struct Reply {
        ephemeral: String,
        nonce: String,
        sealed: String,
    }
    #[derive(Serialize)]
    struct Replies {
        replies: Vec<Reply>,
    }
    let replies = Replies {
        replies: replies
            .iter()
            .map(|r| Reply {
                ephemeral: BASE64.encode(r.ephemeral),
                nonce: BASE64.encode(r.nonce),
                sealed: BASE64.encode(&r.sealed),
            })
            .collect(),
    };
    serde_json::to_string(&replies).unwrap_or_else(|_| "{\"replies\":[]}".to_owned())
}

/// The page before and after its configuration, TweetNaCl inlined: assembled once.
static PAGE_PARTS: LazyLock<(String, String)> = LazyLock::new(|| {
    let page = TEMPLATE.replacen(NACL_MARK, TWEETNACL, 1);
    match page.split_once(CONFIG_MARK) {
        Some((before, after)) => (before.to_owned(), after.to_owned()),
        None => (page, String::new()),
    }
});

/// The tip page of `statement`, posting to the server at `server` (an absolute URL without a
/// trailing slash, or empty for the page's own origin). Everything the statement says goes
/// into the page as JSON inside a `<script type="application/json">`, with `<`, `>` and `&`
/// escaped so that no label can end the element; the page's script shows it as text only.
pub fn render_page(statement: &TipPageStatement, server: &str) -> String {
    #[derive(Serialize)]
    struct Config<'a> {
        server: &'a str,
        page: &'a str,
        epoch: u32,
        public_key: String,
        max_sealed: usize,
        languages: &'a [waymark_protocol::TipPageLanguage],
    }
    let config = Config {
        server,
        page: &statement.page,
        epoch: statement.epoch,
        public_key: BASE64.encode(statement.public_key),
        max_sealed: limits::MAX_TIP_SEALED_BYTES,
        languages: &statement.languages,
    };
    let json = serde_json::to_string(&config).unwrap_or_else(|_| "{}".to_owned());
    let (before, after) = &*PAGE_PARTS;
    let mut page = String::with_capacity(before.len() + json.len() + after.len() + 64);
    page.push_str(before);
    for c in json.chars() {
        match c {
            '<' => page.push_str("\\u003c"),
            '>' => page.push_str("\\u003e"),
            '&' => page.push_str("\\u0026"),
            // Valid in JSON, but not in JavaScript before ES2019: kept out for old browsers.
            '\u{2028}' => page.push_str("\\u2028"),
            '\u{2029}' => page.push_str("\\u2029"),
            c => page.push(c),
        }
    }
    page.push_str(after);
    page
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use ed25519_dalek::{Signer as _, SigningKey};
    use waymark_protocol::{TipPageLanguage, encode};

    use super::*;

    fn statement() -> TipPageStatement {
        TipPageStatement {
            workspace_id: "ws1".into(),
            page: "abcdefghijklmnopqrstuvwxyz".into(),
            epoch: 2,
            public_key: [7; 32],
            languages: vec![TipPageLanguage {
                code: "en".into(),
                labels: BTreeMap::from([("title".into(), "Tell us".into())]),
            }],
            signed_at: 1,
        }
    }

    fn signed(key: &SigningKey, statement: &TipPageStatement) -> TipPageRequest {
        let bytes = encode(statement);
        TipPageRequest {
            signature: key.sign(&bytes).to_bytes().to_vec(),
            statement: bytes,
            device_id: "dev1".into(),
        }
    }

    #[test]
    fn page_paths_are_26_lowercase_base32_characters() {
        assert!(is_page_path("abcdefghijklmnopqrstuvwxyz"));
        assert!(is_page_path("234567abcdefghijklmnopqrst"));
        for bad in [
            "abcdefghijklmnopqrstuvwxy",
            "abcdefghijklmnopqrstuvwxyza",
            "Abcdefghijklmnopqrstuvwxyz",
            "abcdefghijklmnopqrstuvwxy1",
            "abcdefghijklmnopqrstuvwxy8",
            "abcdefghijklmnopqrstuvwxy/",
            "abcdefghijklmnopqrstuvwxyé",
        ] {
            assert!(!is_page_path(bad), "{bad}");
        }
    }

    #[test]
    fn the_hour_is_all_that_is_kept_of_the_time() {
        assert_eq!(received_hour(7_200), 7_200);
        assert_eq!(received_hour(7_199), 3_600);
        assert_eq!(received_hour(1_765_000_123), 1_764_997_200);
    }

    #[test]
    fn a_statement_is_checked_against_the_callers_key_and_workspace() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let pk = key.verifying_key().to_bytes();
        let good = signed(&key, &statement());
        assert_eq!(
            check_tip_page(&good, "dev1", "ws1", &pk).unwrap(),
            statement()
        );
        let refused = |request: &TipPageRequest, needle: &str| {
            let err = check_tip_page(request, "dev1", "ws1", &pk).unwrap_err();
            assert!(
                matches!(&err, StorageError::Invalid(m) if m.contains(needle)),
                "{err} lacks {needle:?}"
            );
        };
        refused(
            &TipPageRequest {
                device_id: "dev2".into(),
                ..good.clone()
            },
            "device_id",
        );
        let mut flipped = good.clone();
        flipped.signature[0] ^= 1;
        refused(&flipped, "signature");
        refused(
            &signed(&SigningKey::from_bytes(&[4; 32]), &statement()),
            "signature",
        );
        refused(
            &TipPageRequest {
                signature: vec![0; 63],
                ..good.clone()
            },
            "64 bytes",
        );
        refused(
            &signed(
                &key,
                &TipPageStatement {
                    workspace_id: "ws2".into(),
                    ..statement()
                },
            ),
            "another workspace",
        );
        for page in [
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "short",
            "abcdefghijklmnopqrstuvwxy1",
        ] {
            refused(
                &signed(
                    &key,
                    &TipPageStatement {
                        page: page.into(),
                        ..statement()
                    },
                ),
                "base32",
            );
        }
        refused(
            &signed(
                &key,
                &TipPageStatement {
                    public_key: [0; 32],
                    ..statement()
                },
            ),
            "public_key",
        );
        let language = |code: &str, label: &str, text: String| TipPageLanguage {
            code: code.into(),
            labels: BTreeMap::from([(label.into(), text)]),
        };
        for (languages, needle) in [
            (vec![], "1 to 16 languages"),
            (
                (0..17)
                    .map(|i| language(&format!("l{i}"), "title", "t".into()))
                    .collect(),
                "1 to 16 languages",
            ),
            (vec![language("", "title", "t".into())], "code"),
            (vec![language(&"x".repeat(17), "title", "t".into())], "code"),
            (
                vec![
                    language("en", "title", "t".into()),
                    language("en", "intro", "i".into()),
                ],
                "twice",
            ),
            (vec![language("en", "script", "t".into())], "no label"),
            (vec![language("en", "intro", "x".repeat(2_001))], "2000"),
        ] {
            refused(
                &signed(
                    &key,
                    &TipPageStatement {
                        languages,
                        ..statement()
                    },
                ),
                needle,
            );
        }
        let mut big = statement();
        big.languages = (0..16)
            .map(|i| TipPageLanguage {
                code: format!("l{i}"),
                labels: tip_labels::ALL
                    .iter()
                    .map(|n| ((*n).to_owned(), "é".repeat(2_000)))
                    .collect(),
            })
            .collect();
        refused(&signed(&key, &big), "at most 65536");
        let mut not_cbor = good.clone();
        not_cbor.statement = b"not a statement".to_vec();
        not_cbor.signature = key.sign(&not_cbor.statement).to_bytes().to_vec();
        refused(&not_cbor, "not one");
    }

    #[test]
    fn submissions_are_base64_of_the_right_sizes() {
        let body = |ephemeral: &[u8], nonce: &[u8], sealed: &[u8]| {
            serde_json::json!({
                "epoch": 3,
                "ephemeral": BASE64.encode(ephemeral),
                "nonce": BASE64.encode(nonce),
                "sealed": BASE64.encode(sealed),
            })
            .to_string()
        };
        let tip = decode_submission(body(&[1; 32], &[2; 24], &[3; 16]).as_bytes()).unwrap();
        assert_eq!(
            tip,
            NewTip {
                epoch: 3,
                ephemeral: [1; 32],
                nonce: [2; 24],
                sealed: vec![3; 16],
            }
        );
        let largest = vec![9; limits::MAX_TIP_SEALED_BYTES];
        assert_eq!(
            decode_submission(body(&[1; 32], &[2; 24], &largest).as_bytes())
                .unwrap()
                .sealed,
            largest
        );
        for (bad, needle) in [
            (body(&[1; 31], &[2; 24], &[3; 16]), "ephemeral"),
            (body(&[1; 32], &[2; 23], &[3; 16]), "nonce"),
            (body(&[1; 32], &[2; 24], &[3; 15]), "sealed"),
            (
                body(&[1; 32], &[2; 24], &[3; limits::MAX_TIP_SEALED_BYTES + 1]),
                "sealed",
            ),
            (
                body(&[1; 32], &[2; 24], &[3; 16]).replace('=', ""),
                "base64",
            ),
            (
                serde_json::json!({"epoch": 1, "ephemeral": "!!", "nonce": "", "sealed": ""})
                    .to_string(),
                "ephemeral",
            ),
            (r#"{"epoch":1}"#.to_owned(), "JSON"),
            ("not json".to_owned(), "JSON"),
        ] {
            let err = decode_submission(bad.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{err} lacks {needle:?}");
        }
    }

    #[test]
    fn the_vendored_tweetnacl_is_the_published_one() {
        use sha2::{Digest, Sha512};
        // What assets/tweetnacl/README.md says and how it was checked.
        assert_eq!(
            hex::encode(Sha512::digest(TWEETNACL.as_bytes())),
            "637b87e8b248d91069e846efca89b5feff8c422b57241352b2145c4f12879f4b\
             0bd0349ff86fbc28ad5566c5edce55fdc5dd7b806362eb531d61d718fb9ea837"
        );
        // Inlined in a <script>: nothing in it may end the element.
        assert!(!TWEETNACL.contains("</") && !TWEETNACL.contains("<!--"));
    }

    #[test]
    fn no_label_can_close_the_config_or_reach_the_markup() {
        let mut hostile = statement();
        hostile.languages[0].labels.insert(
            "intro".into(),
            "</script><script>alert(1)</script><!-- & \u{2028}".into(),
        );
        let page = render_page(&hostile, "https://tips.example.org");
        let config = page
            .split("<script type=\"application/json\" id=\"tip-config\">")
            .nth(1)
            .unwrap()
            .split("</script>")
            .next()
            .unwrap();
        assert!(!config.contains('<') && !config.contains('>') && !config.contains('&'));
        let parsed: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(
            parsed["languages"][0]["labels"]["intro"],
            "</script><script>alert(1)</script><!-- & \u{2028}"
        );
        assert_eq!(parsed["server"], "https://tips.example.org");
        assert_eq!(parsed["page"], hostile.page);
        assert_eq!(parsed["epoch"], 2);
        assert_eq!(parsed["public_key"], BASE64.encode([7; 32]));
        assert!(!page.contains(CONFIG_MARK) && !page.contains(NACL_MARK));
        assert!(page.contains("nacl"));
    }
}
