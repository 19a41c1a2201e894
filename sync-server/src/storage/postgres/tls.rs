//! TLS to PostgreSQL, chosen by the libpq-style `sslmode` and `sslrootcert` parameters of the
//! database URL.
//!
//! | `sslmode` | connection |
//! | --- | --- |
//! | absent, `disable` | plain TCP (a database on loopback or a private network) |
//! | `prefer` | TLS when the server offers it, else plain |
//! | `require`, `verify-ca`, `verify-full` | TLS or no connection |
//!
//! Whenever TLS is used the server's certificate is verified, chain and host name, against the
//! certificates in `sslrootcert` (a PEM file) or, without it, the Mozilla roots compiled in. We
//! chose that over libpq's `require`, which encrypts without checking who answers: the database
//! holds who works in which workspace and when, and a connection to an impostor would hand it
//! over. An `sslrootcert` with no `sslmode` means `require`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::Config;
use postgres::config::SslMode;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::storage::{StorageError, StorageResult};

/// How connections to the database are made.
#[derive(Clone)]
pub(super) enum Tls {
    /// Plain TCP.
    Off,
    /// TLS with rustls, certificates verified.
    Rustls(MakeRustlsConnect),
}

impl Tls {
    /// Opens one connection with this choice.
    pub(super) fn connect(&self, config: &Config) -> Result<postgres::Client, postgres::Error> {
        match self {
            Tls::Off => config.connect(postgres::NoTls),
            Tls::Rustls(make) => config.connect(make.clone()),
        }
    }

    /// Whether connections may use TLS.
    pub(super) fn enabled(&self) -> bool {
        matches!(self, Tls::Rustls(_))
    }
}

fn invalid(message: String) -> StorageError {
    StorageError::Backend(message.into())
}

/// Parses a database URL (or libpq key=value string) into a connection configuration and the
/// TLS to use. Errors never repeat the URL: it may hold a password.
pub(super) fn parse(url: &str) -> StorageResult<(Config, Tls)> {
    let (rest, mode, root) = take_tls_params(url)?;
    let mut config: Config = rest.parse()?;
    let mode = match (mode.as_deref(), &root) {
        (None, None) | (Some("disable"), _) => {
            config.ssl_mode(SslMode::Disable);
            return Ok((config, Tls::Off));
        }
        (Some("prefer"), _) => SslMode::Prefer,
        (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => SslMode::Require,
        (Some(other), _) => {
            return Err(invalid(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    config.ssl_mode(mode);
    Ok((config, Tls::Rustls(connector(root.as_deref())?)))
}

/// Splits `sslmode` and `sslrootcert` off a URL's query (or a key=value string), since the
/// PostgreSQL client knows neither `sslrootcert` nor the `verify-*` modes.
fn take_tls_params(url: &str) -> StorageResult<(String, Option<String>, Option<PathBuf>)> {
    let (mut mode, mut root) = (None, None);
    if super::is_postgres_url(url) {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| invalid(format!("the URL parameter {key} is not UTF-8")))?;
            match key {
                "sslmode" => mode = Some(value.into_owned()),
                "sslrootcert" => root = Some(PathBuf::from(value.into_owned())),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode, root));
    }
    // key=value form: values with spaces would be quoted, and these two never need it.
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v)),
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// A rustls connector trusting the PEM certificates in `root`, or the Mozilla roots.
fn connector(root: Option<&Path>) -> StorageResult<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match root {
        // libpq's spelling for "the usual public roots".
        None => add_mozilla_roots(&mut roots),
        Some(p) if p.as_os_str() == "system" => add_mozilla_roots(&mut roots),
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(format!("cannot read sslrootcert {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(invalid(format!(
                    "sslrootcert {} holds no usable certificate",
                    path.display()
                )));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn add_mozilla_roots(roots: &mut rustls::RootCertStore) {
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn without_sslmode_the_connection_stays_plain_and_other_parameters_are_kept() {
        let (config, tls) = parse("postgres://app:pw@db:5432/waymark?application_name=x").unwrap();
        assert!(!tls.enabled());
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(config.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn require_and_verify_modes_demand_tls() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let (config, tls) = parse(&format!("postgres://db/w?sslmode={mode}")).unwrap();
            assert!(tls.enabled(), "{mode}");
            assert_eq!(config.get_ssl_mode(), SslMode::Require, "{mode}");
        }
        let (config, tls) = parse("host=db dbname=w sslmode=verify-full").unwrap();
        assert!(tls.enabled());
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn a_missing_root_certificate_or_unknown_mode_is_a_clear_error_without_the_password() {
        let err =
            parse("postgres://app:secret@db/w?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = parse("postgres://app:secret@db/w?sslmode=allow")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("allow") && !err.contains("secret"), "{err}");
    }
}
