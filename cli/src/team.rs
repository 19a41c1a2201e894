//! Running the team from the CLI: create and connect a workspace, invite devices (the code as
//! text and as a QR code drawn in the terminal), list and admit the devices that wait, list the
//! team, and revoke a device.

use serde_json::json;
use waymark_core as wc;

use crate::output::{Out, table};

fn err(e: wc::Error) -> String {
    e.to_string()
}

/// The workspace a command acts on: `--workspace`, or the store's only one.
pub fn one_workspace(store: &wc::Store, given: Option<String>) -> Result<String, String> {
    let all = store.workspaces().map_err(err)?;
    match given {
        Some(w) if all.iter().any(|ws| ws.id == w) => Ok(w),
        Some(w) => Err(format!(
            "no workspace {w} in this store (see `waymark workspaces`)"
        )),
        None => match all.as_slice() {
            [only] => Ok(only.id.clone()),
            [] => Err("the store has no workspace".into()),
            _ => Err("give --workspace ID (the store has several)".into()),
        },
    }
}

/// The workspaces a listing covers: `--workspace`, or every one in the store.
pub fn workspaces(store: &wc::Store, given: Option<&str>) -> Result<Vec<String>, String> {
    let all = store.workspaces().map_err(err)?;
    if let Some(w) = given
        && !all.iter().any(|ws| ws.id == w)
    {
        return Err(format!(
            "no workspace {w} in this store (see `waymark workspaces`)"
        ));
    }
    Ok(all
        .into_iter()
        .filter(|ws| given.is_none_or(|w| w == ws.id))
        .map(|ws| ws.id)
        .collect())
}

/// Creates a workspace and connects it to a sync server with the operator's enrolment token.
/// The caller syncs next.
pub fn create_workspace(
    store: &wc::Store,
    name: &str,
    server: &str,
    token: &str,
) -> Result<wc::Workspace, String> {
    let ws = store.create_workspace(name).map_err(err)?;
    store
        .connect_workspace(&ws.id, server, token)
        .map_err(|e| {
            format!(
                "workspace {} ({}) was created but not connected: {e}",
                ws.name, ws.id
            )
        })?;
    Ok(ws)
}

/// A duration such as `90s`, `30m`, `1h` or `7d` (a bare number is seconds), in seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid --ttl {s:?}: give e.g. 30m, 1h or 7d");
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).filter(|&t| t > 0).ok_or_else(bad)
}

/// What `waymark invite` makes.
pub struct InviteOptions {
    /// `coordinator` or `member`.
    pub role: String,
    /// An invite without keys, to approve once the device joined.
    pub approval: bool,
    /// Validity.
    pub ttl: String,
}

/// Makes an invite code and prints it as text and as a QR code (or as JSON).
pub fn invite(
    store: &wc::Store,
    workspace: &str,
    opts: &InviteOptions,
    json: bool,
) -> Result<(), String> {
    let ttl = parse_ttl(&opts.ttl)?;
    let code = if opts.approval {
        store.create_approval_invite(workspace, ttl)
    } else {
        store.create_invite_with_role(workspace, ttl, &opts.role)
    }
    .map_err(err)?;
    if json {
        Out::print_json(&json!({
            "workspace_id": workspace, "code": code, "role": opts.role,
            "approval": opts.approval, "ttl_seconds": ttl,
        }));
        return Ok(());
    }
    if opts.approval {
        say!(
            "Invite to approve, valid for {}: once the device has joined, compare its \
             confirmation code with `waymark joins` and admit it with `waymark approve`.",
            opts.ttl
        );
    } else {
        say!(
            "Invite as {}, valid for {}: pass it in person, it carries the workspace key.",
            opts.role,
            opts.ttl
        );
    }
    say!("\ncode: {code}\n");
    match qr(&code) {
        Some(drawn) => say!("{drawn}"),
        None => say!("(the code is too long to draw as a QR code: type it instead)"),
    }
    Ok(())
}

/// `text` as a QR code in Unicode half blocks (two modules a character cell), light modules
/// drawn as blocks so that it reads right on a dark terminal, with its quiet zone.
pub fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// The devices waiting for admission in `workspaces`, with their confirmation codes.
pub fn joins(store: &wc::Store, workspaces: &[String], json: bool) -> Result<(), String> {
    let mut all = Vec::new();
    for ws in workspaces {
        for j in store.pending_joins(ws).map_err(err)? {
            all.push((ws.clone(), j));
        }
    }
    if json {
        Out::print_json(&json!(
            all.iter()
                .map(|(ws, j)| json!({
                    "workspace_id": ws, "device_id": j.device_id, "name": j.name,
                    "confirmation_code": j.verification_code,
                    "matches_an_invite": j.verified,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if all.is_empty() {
        say!("no device waits to be admitted");
        return Ok(());
    }
    let mut t = table(&[
        "device",
        "name",
        "confirmation code",
        "joined with",
        "workspace",
    ]);
    for (ws, j) in &all {
        t.add_row(vec![
            j.device_id.clone(),
            j.name.clone(),
            code_groups(&j.verification_code),
            if j.verified {
                "an invite of this device".into()
            } else {
                "no invite of this device".to_string()
            },
            ws.clone(),
        ]);
    }
    say!("{t}");
    say!(
        "Compare each code with the one the device shows, then: waymark approve DEVICE --code CODE"
    );
    Ok(())
}

/// A confirmation code in groups of four digits, as phones show it.
pub fn code_groups(code: &str) -> String {
    let digits: Vec<char> = code.chars().filter(char::is_ascii_digit).collect();
    digits
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Admits a waiting device once the confirmation code the person read from it matches the one
/// the server lists for it: by the invite this device made when its join proof matches one
/// (with that invite's role), or as a member on the codes alone.
pub fn approve(
    store: &wc::Store,
    workspaces: &[String],
    device: &str,
    code: &str,
) -> Result<(), String> {
    let mut found = None;
    for ws in workspaces {
        if let Some(j) = store
            .pending_joins(ws)
            .map_err(err)?
            .into_iter()
            .find(|j| j.device_id == device)
        {
            found = Some((ws.clone(), j));
            break;
        }
    }
    let (ws, join) = found
        .ok_or_else(|| format!("no device {device} waits to be admitted (see `waymark joins`)"))?;
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    if digits(code) != digits(&join.verification_code) {
        return Err(format!(
            "the confirmation code does not match the one the server lists for {device}: not \
             admitted (check the code on the device; if it still differs, do not admit it)"
        ));
    }
    if join.verified {
        store.approve_join(&ws, device).map_err(err)?;
    } else {
        store.confirm_device(&ws, device).map_err(err)?;
    }
    say!(
        "admitted {} ({device}): it receives the team's keys at its next sync",
        join.name
    );
    Ok(())
}

/// The team of each of `workspaces` as this device last synced it.
pub fn team(store: &wc::Store, workspaces: &[String], json: bool) -> Result<(), String> {
    let mut all = Vec::new();
    for ws in workspaces {
        let members = store.team(ws).map_err(err)?;
        all.push((ws.clone(), members));
    }
    if json {
        Out::print_json(&json!(
            all.iter()
                .flat_map(|(ws, ms)| ms.iter().map(move |m| json!({
                    "workspace_id": ws, "device_id": m.device_id, "name": m.name,
                    "role": m.role, "this_device": m.is_this_device, "revoked": m.revoked,
                    "verified": m.verified, "last_sync_at": m.last_sync_at,
                })))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    for (ws, members) in &all {
        let mut t = table(&["device", "name", "role", "status", "last sync"]);
        for m in members {
            let status = match (m.revoked, m.verified) {
                (true, _) => "revoked",
                (false, true) => "admitted",
                (false, false) => "waits for admission",
            };
            let name = if m.is_this_device {
                format!("{} (this device)", m.name)
            } else {
                m.name.clone()
            };
            t.add_row(vec![
                m.device_id.clone(),
                name,
                m.role.clone(),
                status.into(),
                m.last_sync_at
                    .map_or_else(|| "-".into(), crate::output::day),
            ]);
        }
        say!("workspace {ws}\n{t}");
    }
    Ok(())
}

/// Revokes a device of the team it belongs to among `workspaces`.
/// The first of `workspaces` whose team has `device`, with its member entry.
fn find_device(
    store: &wc::Store,
    workspaces: &[String],
    device: &str,
) -> Result<(String, wc::TeamMember), String> {
    for ws in workspaces {
        if let Some(m) = store
            .team(ws)
            .map_err(err)?
            .into_iter()
            .find(|m| m.device_id == device)
        {
            return Ok((ws.clone(), m));
        }
    }
    Err(format!(
        "no device {device} in the team (see `waymark team`)"
    ))
}

/// Makes a device a coordinator or a member, in the team log every device verifies.
pub fn set_role(
    store: &wc::Store,
    workspaces: &[String],
    device: &str,
    role: &str,
) -> Result<(), String> {
    let (ws, member) = find_device(store, workspaces, device)?;
    if member.revoked {
        return Err(format!("{device} is revoked: invite it again instead"));
    }
    store.set_role(&ws, device, role).map_err(err)?;
    say!("{} ({device}) is now a {role}", member.name);
    if member.role == "coordinator" && role != "coordinator" {
        say!(
            "the restricted key was rotated: it cannot read restricted records written from now on"
        );
    }
    Ok(())
}

/// Revokes a device: it can no longer sync, and the workspace key is rotated.
pub fn revoke(store: &wc::Store, workspaces: &[String], device: &str) -> Result<(), String> {
    let (ws, member) = find_device(store, workspaces, device)?;
    if member.revoked {
        return Err(format!("{device} is already revoked"));
    }
    store.revoke_device(&ws, device).map_err(err)?;
    say!(
        "revoked {} ({device}): it can no longer sync, and nothing written from now on can be \
         read with its keys",
        member.name
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_with_their_unit() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn a_qr_code_is_drawn_in_half_blocks() {
        let drawn = qr("WAYMARK-TEST-CODE").unwrap();
        assert!(drawn.lines().count() > 10);
        assert!(drawn.contains('█') || drawn.contains('▀') || drawn.contains('▄'));
    }
}
