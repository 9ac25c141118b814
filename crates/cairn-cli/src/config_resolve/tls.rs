//! `cairn serve`'s TLS settings (`--tls-cert`, `--tls-key`, `--tls-client-ca`,
//! `--allow-plaintext`), resolved like every other setting: flag, else `CAIRN_*` variable, else
//! config file key, else off. Only their shape is checked here (a certificate needs its key, a
//! client CA needs a certificate, no empty path); the files themselves are read and checked by
//! the server, which refuses to start naming the file and what is wrong with it.

use std::ffi::OsString;
use std::path::PathBuf;

use cairn_server::tls::TlsFiles;

use super::{Given, Lower, Setting};
use crate::cli::ServeArgs;
use crate::config_error::ConfigError;

pub(super) const TLS_CERT: Setting = Setting {
    flag: "--tls-cert",
    var: "CAIRN_TLS_CERT",
    file_key: "tls_cert",
};
pub(super) const TLS_KEY: Setting = Setting {
    flag: "--tls-key",
    var: "CAIRN_TLS_KEY",
    file_key: "tls_key",
};
pub(super) const TLS_CLIENT_CA: Setting = Setting {
    flag: "--tls-client-ca",
    var: "CAIRN_TLS_CLIENT_CA",
    file_key: "tls_client_ca",
};
pub(super) const ALLOW_PLAINTEXT: Setting = Setting {
    flag: "--allow-plaintext",
    var: "CAIRN_ALLOW_PLAINTEXT",
    file_key: "allow_plaintext",
};

/// The TLS files, if TLS is configured, and whether plaintext may bind a non-loopback address.
///
/// # Errors
/// [`ConfigError::InvalidValue`] naming the flag, variable or key: an empty path, a certificate
/// without its key (or the other way round), a client CA without a certificate, or an
/// `allow_plaintext` other than true or false; [`ConfigError::NotUnicode`].
pub(super) fn resolve<E: Fn(&str) -> Option<OsString>>(
    args: &ServeArgs,
    lower: &Lower<'_, E>,
) -> Result<(Option<TlsFiles>, bool), ConfigError> {
    let path = |flag: Option<&str>, setting: &Setting| {
        lower
            .pick(flag, setting)?
            .map(|given| {
                if given.text.is_empty() {
                    return Err(invalid(&given, "the path must not be empty"));
                }
                Ok((PathBuf::from(&given.text), given))
            })
            .transpose()
    };
    let cert = path(args.tls.tls_cert.as_deref(), &TLS_CERT)?;
    let key = path(args.tls.tls_key.as_deref(), &TLS_KEY)?;
    let client_ca = path(args.tls_client_ca.as_deref(), &TLS_CLIENT_CA)?;
    let allow_plaintext = lower
        .pick(args.allow_plaintext.then_some("true"), &ALLOW_PLAINTEXT)?
        .map(|given| match given.text.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid(&given, "expected true or false")),
        })
        .transpose()?
        .unwrap_or(false);
    let tls = match (cert, key) {
        (Some((cert, _)), Some((key, _))) => Some(TlsFiles {
            cert,
            key,
            client_ca: client_ca.map(|(path, _)| path),
        }),
        (Some((_, given)), None) => {
            return Err(invalid(
                &given,
                "a TLS certificate needs its key (--tls-key)",
            ));
        }
        (None, Some((_, given))) => {
            return Err(invalid(
                &given,
                "a TLS key needs its certificate (--tls-cert)",
            ));
        }
        (None, None) => {
            if let Some((_, given)) = client_ca {
                return Err(invalid(
                    &given,
                    "a client CA needs the node's own certificate and key (--tls-cert, --tls-key)",
                ));
            }
            None
        }
    };
    Ok((tls, allow_plaintext))
}

fn invalid(given: &Given, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        origin: given.origin.clone(),
        value: given.text.clone(),
        reason: reason.to_string(),
    }
}
