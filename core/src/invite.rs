//! Invites: how a device joins a workspace. An in-person invite code carries the workspace's
//! keys and, for a workspace on a sync server, the server's address and a fresh one-time
//! enrolment token. It is passed in person (shown as a QR code or read out as text), never
//! through the server, which must not learn the keys.
//!
//! An invite to be approved carries no key: only the server's address, the one-time token and
//! a short verification secret. The joining device proves with it that the public keys it
//! enrolled are its own, and a coordinator's device, which made the invite, checks that proof
//! and seals the workspace keys to the new device (`approve_join`).
//!
//! Every invite through a server carries such a one-time secret, which expires with the
//! enrolment token, and the hash of the team log entry that was the log's head when it was
//! made: the joining device trusts the log the server shows only if it holds that entry, so
//! its trust starts from what it was shown in person. An invite never changes a workspace
//! this device already belongs to.

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use waymark_protocol as proto;
use zeroize::Zeroizing;

use crate::crypto;
use crate::error::{Error, Result, StorageError};
use crate::model::Workspace;
use crate::store::{Store, invite_secrets, keys, memberships, now_ms, team_lookups, workspaces};
use crate::sync::Enrollment;
use crate::sync::http::Call;
use crate::validate;

/// Every invite code starts with this; the rest is base32 (QR alphanumeric mode friendly).
pub(crate) const PREFIX: &str = "WAYMARK1";
/// Longest invite lifetime accepted.
const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Serialize, Deserialize)]
pub(crate) struct InviteBody {
    pub(crate) workspace: String,
    pub(crate) name: String,
    pub(crate) keys: Vec<(u32, ByteBuf)>,
    pub(crate) server: Option<ServerPart>,
    /// The verification secret the joining device proves its keys with (invites through a
    /// server); an invite to be approved carries it and no keys.
    #[serde(default)]
    pub(crate) verify: Option<ByteBuf>,
    /// Signing keys the inviter accepts workspace keys from (itself among them): the joining
    /// device learns its coordinators in person, not from the server (used when the invite
    /// names no team log entry).
    #[serde(default)]
    pub(crate) signers: Vec<ByteBuf>,
    /// The team log entry (index and hash) the joining device must find in the log.
    #[serde(default)]
    pub(crate) log: Option<(u64, ByteBuf)>,
    /// The role the joining device is invited for (`member` when absent).
    #[serde(default)]
    pub(crate) role: Option<String>,
}

/// Length of an approval invite's verification secret: short enough for a QR code, too long
/// to guess during the invite's lifetime.
const VERIFY_SECRET_LEN: usize = 10;

#[derive(Serialize, Deserialize)]
pub(crate) struct ServerPart {
    url: String,
    token: String,
    expires_at: i64,
}

pub(crate) fn encode(body: &InviteBody) -> Result<String> {
    let mut bytes = Zeroizing::new(Vec::new());
    ciborium::into_writer(body, &mut *bytes).map_err(|source| StorageError::Encode {
        what: "encoding",
        source,
    })?;
    Ok(format!("{PREFIX}{}", BASE32_NOPAD.encode(&bytes)))
}

pub(crate) fn decode(code: &str) -> Result<InviteBody> {
    // People copy codes with spaces, line breaks and lower case; accept all of those.
    let cleaned: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let rest = cleaned
        .strip_prefix(PREFIX)
        .ok_or_else(|| Error::InvalidInvite("this is not a Waymark invite code".into()))?;
    let bytes = Zeroizing::new(
        BASE32_NOPAD
            .decode(rest.as_bytes())
            .map_err(|_| Error::InvalidInvite("the code is damaged or incomplete".into()))?,
    );
    let body: InviteBody = ciborium::from_reader(bytes.as_slice())
        .map_err(|_| Error::InvalidInvite("the code is damaged or incomplete".into()))?;
    validate::id("workspace", &body.workspace)
        .map_err(|_| Error::InvalidInvite("the code names no valid workspace".into()))?;
    let approval = body.verify.is_some() && body.server.is_some();
    if body.signers.iter().any(|k| k.len() != 32) {
        return Err(Error::InvalidInvite(
            "the code is damaged or incomplete".into(),
        ));
    }
    if body.log.as_ref().is_some_and(|(_, h)| h.len() != 32)
        || body
            .role
            .as_deref()
            .is_some_and(|r| !proto::roles::is_known(r))
    {
        return Err(Error::InvalidInvite(
            "the code is damaged or incomplete".into(),
        ));
    }
    if let Some(v) = &body.verify
        && v.len() != VERIFY_SECRET_LEN
    {
        return Err(Error::InvalidInvite(
            "the code's verification part is damaged".into(),
        ));
    }
    if (body.keys.is_empty() && !approval)
        || body
            .keys
            .iter()
            .any(|(_, k)| crypto::key_from_bytes(k).is_none())
    {
        return Err(Error::InvalidInvite("the code carries no valid key".into()));
    }
    Ok(body)
}

impl Store {
    /// Creates an invite code for another device to join `workspace` as a member, to be passed
    /// in person: it carries the workspace keys.
    ///
    /// For a workspace connected to a sync server this asks the server for a one-time
    /// enrolment token valid for `ttl_seconds`; otherwise the code lets the other device
    /// exchange bundles with this one (`export_changes` / `import_changes`).
    pub fn create_invite(&self, workspace: &str, ttl_seconds: u64) -> Result<String> {
        self.issue_invite(workspace, ttl_seconds, false, proto::roles::MEMBER)
    }

    /// Creates an invite code, passed in person, for another device to join `workspace` with
    /// `role` (`coordinator` or `member`; only a coordinator may invite a coordinator). The
    /// workspace must sync with a server.
    pub fn create_invite_with_role(
        &self,
        workspace: &str,
        ttl_seconds: u64,
        role: &str,
    ) -> Result<String> {
        if !proto::roles::is_known(role) {
            return Err(Error::invalid("role", "must be coordinator or member"));
        }
        self.issue_invite(workspace, ttl_seconds, false, role)
    }

    /// Creates an invite code that carries no key: the device that joins with it waits until a
    /// coordinator's device approves it (`pending_joins`, `approve_join`). The workspace must
    /// sync with a server; the code is valid for `ttl_seconds`.
    pub fn create_approval_invite(&self, workspace: &str, ttl_seconds: u64) -> Result<String> {
        self.issue_invite(workspace, ttl_seconds, true, proto::roles::MEMBER)
    }

    fn issue_invite(
        &self,
        workspace: &str,
        ttl_seconds: u64,
        approval: bool,
        role: &str,
    ) -> Result<String> {
        validate::id("workspace_id", workspace)?;
        if ttl_seconds == 0 || ttl_seconds > MAX_TTL_SECONDS {
            return Err(Error::invalid(
                "ttl_seconds",
                "must be between 1 s and 30 days",
            ));
        }
        let membership = self.membership(workspace).ok();
        let server = match &membership {
            None if approval || role != proto::roles::MEMBER => {
                return Err(Error::invalid(
                    "workspace_id",
                    "this invite needs a workspace that syncs with a server",
                ));
            }
            None => None,
            Some(m) => {
                let _one_at_a_time = self.sync_guard();
                let server = self.server(&m.url, Some(m.token.clone()))?;
                // The invite names the log's head: know it (and, for a coordinator whose team
                // has no log yet, start it).
                self.refresh_team(&server, m)?;
                Some(server)
            }
        };
        let (name, all_keys, signers, anchor) = self.read(|c| {
            let name = workspaces::name(c, workspace)?
                .ok_or_else(|| Error::not_found(format!("workspace {workspace}")))?;
            let all: Vec<(u32, ByteBuf)> = keys::all(c, workspace)?
                .into_iter()
                .map(|(epoch, key)| (epoch, ByteBuf::from(key)))
                .collect();
            let anchor = team_lookups::log_head(c, workspace)?;
            // Coordinators of the log when there is one; else those this device learnt.
            let signers = match anchor {
                Some(_) => team_lookups::coordinator_keys(c, workspace)?,
                None => team_lookups::trusted_signers(c, workspace)?,
            };
            let signers: Vec<ByteBuf> = signers.into_iter().map(ByteBuf::from).collect();
            Ok((name, all, signers, anchor))
        })?;
        let (server_part, verify) = match (server, membership) {
            (Some(server), Some(m)) => {
                let resp = server.post::<_, proto::InviteResponse>(
                    Call::Device,
                    proto::PATH_INVITES,
                    &proto::InviteRequest {
                        ttl_seconds,
                        role: Some(role.to_string()),
                    },
                )?;
                // The joining device proves with this secret that the keys the server lists
                // for it are its own; the server never sees it. It admits one device, once,
                // until the token expires.
                let secret: [u8; VERIFY_SECRET_LEN] = rand::random();
                self.with_writer(|w| {
                    invite_secrets::insert_secret(
                        w.conn(),
                        workspace,
                        &secret,
                        resp.body.expires_at,
                        approval,
                        role,
                    )
                })?;
                (
                    Some(ServerPart {
                        url: m.url,
                        token: resp.body.enrollment_token,
                        expires_at: resp.body.expires_at,
                    }),
                    Some(ByteBuf::from(secret.to_vec())),
                )
            }
            _ => (None, None),
        };
        encode(&InviteBody {
            workspace: workspace.to_string(),
            name,
            keys: if approval { Vec::new() } else { all_keys },
            server: server_part,
            verify,
            signers,
            log: anchor.map(|(idx, hash)| (u64::try_from(idx).unwrap_or(0), ByteBuf::from(hash))),
            role: Some(role.to_string()),
        })
    }

    /// Joins the workspace of an invite code: enrols with its server (if it has one) and keeps
    /// the workspace keys. Records arrive with the next `sync()` (or bundle import).
    ///
    /// A workspace this device already belongs to is refused (`InvalidInput`): an invite
    /// never changes a membership's server, keys or trust.
    pub fn join(&self, code: &str) -> Result<Workspace> {
        let body = decode(code)?;
        self.check_joinable(&body)?;
        let enrolled = match &body.server {
            None => None,
            Some(s) => {
                if s.expires_at * 1000 < now_ms() {
                    return Err(Error::InviteExpired);
                }
                let vouched = body
                    .signers
                    .iter()
                    .filter_map(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
                    .collect();
                let anchor = body.log.as_ref().and_then(|(idx, hash)| {
                    <[u8; 32]>::try_from(hash.as_slice())
                        .ok()
                        .map(|h| (*idx, h))
                });
                let enrollment = Enrollment::new(
                    body.verify.as_deref().map(|v| v.as_slice()),
                    vouched,
                    anchor,
                    &self.device_name()?,
                    self.actor_id().to_bytes(),
                );
                let resp = self
                    .server(&s.url, None)?
                    .post::<_, proto::EnrollResponse>(
                        Call::Enroll,
                        proto::PATH_ENROLL,
                        &enrollment.request(&s.token),
                    )?;
                Some((s.url.clone(), resp.body, enrollment))
            }
        };
        self.with_writer(|w| {
            let tx = w.transaction()?;
            workspaces::insert_named(&tx, &body.workspace, &body.name)?;
            for (epoch, key) in &body.keys {
                let key = crypto::key_from_bytes(key)
                    .ok_or_else(|| Error::InvalidInvite("the code carries no valid key".into()))?;
                keys::insert(&tx, &body.workspace, *epoch, &key)?;
            }
            if let Some((url, e, enrollment)) = &enrolled {
                crate::sync::add_membership(&tx, &body.workspace, url, e, enrollment)?;
            }
            tx.commit()?;
            Ok(())
        })?;
        Ok(Workspace {
            id: body.workspace,
            name: body.name,
        })
    }

    /// Refuses an invite for a workspace this store already has, unless it only connects a
    /// workspace kept without a server to one, with the very keys this store holds.
    fn check_joinable(&self, body: &InviteBody) -> Result<()> {
        self.read(|c| {
            if !workspaces::exists(c, &body.workspace)? {
                return Ok(());
            }
            let member = memberships::exists(c, &body.workspace)?;
            if member || body.server.is_none() {
                return Err(Error::invalid(
                    "code",
                    "this device already belongs to the invite's workspace; an invite cannot \
                     change its server, keys or team",
                ));
            }
            for (epoch, key) in &body.keys {
                if let Some(mine) = keys::at_epoch(c, &body.workspace, *epoch)?
                    && mine.as_slice() != key.as_slice()
                {
                    return Err(Error::Tampered(
                        "the invite carries another key than this device holds for its workspace"
                            .into(),
                    ));
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn damaged_codes_say_what_is_wrong() {
        let body = InviteBody {
            workspace: "0123456789abcdef0123456789abcdef".into(),
            name: "Team".into(),
            keys: vec![(0, ByteBuf::from(vec![1u8; 32]))],
            server: None,
            verify: None,
            signers: Vec::new(),
            log: None,
            role: None,
        };
        let code = encode(&body).unwrap();
        assert!(decode(&code).is_ok());
        assert!(decode(&code.to_lowercase()).is_ok(), "case does not matter");
        let spaced: String = code.chars().flat_map(|c| [c, ' ']).collect();
        assert!(decode(&spaced).is_ok(), "spaces do not matter");
        let invalid = |c: &str| assert!(matches!(decode(c), Err(Error::InvalidInvite(_))), "{c}");
        invalid("hello");
        invalid("WAYMARK1");
        invalid(&code[..code.len() / 2]);
        invalid(&format!("{code}1"));
        invalid(&code.replace(PREFIX, "WAYMARK2"));
    }
}
