//! SCM credentials taken from a Kubernetes Secret.
//!
//! Only IAM tokens exist today; AK/SK signing (`SDK-HMAC-SHA256`) is meant to become a second
//! `Credentials` variant read from the same Secret, applied in [`Credentials::authorize`].

use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use reqwest::header::HeaderValue;
use sha2::{Digest, Sha256};

use crate::crd::CredentialsRef;

/// Huawei documents 32 characters as the shortest valid X-Auth-Token.
pub const MIN_TOKEN_LEN: usize = 32;

/// Credentials for one SCM request; never cached beyond one reconcile.
pub enum Credentials {
    /// An IAM token sent as `X-Auth-Token`.
    Token(HeaderValue),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
        }
    }
}

/// Why usable credentials could not be read from the Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret or the key is missing.
    #[error("{0}")]
    NotFound(String),
    /// The value is present but cannot be a valid token.
    #[error("{0}")]
    Invalid(String),
}

impl Credentials {
    /// Reads the token from `secret` (None when the Secret does not exist); never echoes secret data in errors.
    pub fn from_secret(secret: Option<&Secret>, reference: &CredentialsRef) -> Result<Self, CredentialsError> {
        let name = &reference.name;
        let key = &reference.token_key;
        let secret =
            secret.ok_or_else(|| CredentialsError::NotFound(format!("Secret {name:?} not found in this namespace")))?;
        let raw = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| CredentialsError::NotFound(format!("Secret {name:?} has no key {key:?}")))?;
        let text = std::str::from_utf8(&raw.0)
            .map_err(|_| CredentialsError::Invalid(format!("key {key:?} of Secret {name:?} is not UTF-8 text")))?;
        let token = text.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(CredentialsError::Invalid(format!(
                "key {key:?} of Secret {name:?} holds {} characters; an IAM token has at least {MIN_TOKEN_LEN}",
                token.chars().count()
            )));
        }
        let mut value = HeaderValue::from_str(token).map_err(|_| {
            CredentialsError::Invalid(format!(
                "key {key:?} of Secret {name:?} contains characters not allowed in a token"
            ))
        })?;
        // Keeps the value out of reqwest's and hyper's Debug output.
        value.set_sensitive(true);
        Ok(Credentials::Token(value))
    }

    /// A fingerprint of the exact credential material sent, for status: a stall caused by a rejected credential
    /// lifts only when this changes, not on edits of the Secret's labels or annotations.
    ///
    /// SHA-256 over the whole value (never a prefix) behind a fixed label, so it cannot be turned back into
    /// the token and does not match a plain hash of it published elsewhere.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"certpush-operator credentials digest v1\0");
        match self {
            Credentials::Token(token) => {
                hash.update(b"token\0");
                hash.update(token.as_bytes());
            }
        }
        format!("sha256:{}", hex::encode(hash.finalize()))
    }

    /// Adds the authentication headers to a request.
    pub fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Token(token) => request.header("X-Auth-Token", token.clone()),
        }
    }

    /// Removes any copy of the secret from text that came back from the server before it is stored or logged.
    pub fn redact(&self, text: &str) -> String {
        match self {
            Credentials::Token(token) => match token.to_str() {
                Ok(t) if text.contains(t) => text.replace(t, "<redacted>"),
                _ => text.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(key.to_string(), ByteString(value.to_vec()))])),
            ..Default::default()
        }
    }

    fn reference() -> CredentialsRef {
        CredentialsRef {
            name: "scm".into(),
            token_key: "token".into(),
        }
    }

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn missing_secret_and_missing_key_are_not_found() {
        let e = Credentials::from_secret(None, &reference()).unwrap_err();
        assert!(
            matches!(e, CredentialsError::NotFound(ref m) if m.contains("\"scm\" not found")),
            "{e:?}"
        );
        let e = Credentials::from_secret(Some(&secret("other", GOOD.as_bytes())), &reference()).unwrap_err();
        assert!(
            matches!(e, CredentialsError::NotFound(ref m) if m.contains("no key \"token\"")),
            "{e:?}"
        );
    }

    #[test]
    fn short_token_is_invalid_after_trimming_and_never_echoed() {
        let value = format!("  {}\n", &GOOD[..31]);
        let e = Credentials::from_secret(Some(&secret("token", value.as_bytes())), &reference()).unwrap_err();
        match e {
            CredentialsError::Invalid(m) => {
                assert!(m.contains("31 characters"), "{m}");
                assert!(!m.contains(&GOOD[..31]));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn token_is_trimmed_redacted_in_debug_and_in_text() {
        let value = format!("{GOOD}\n");
        let creds = Credentials::from_secret(Some(&secret("token", value.as_bytes())), &reference()).unwrap();
        let Credentials::Token(ref v) = creds;
        assert_eq!(v.to_str().unwrap(), GOOD);
        assert!(!format!("{creds:?}").contains(GOOD));
        assert_eq!(creds.redact(&format!("bad token {GOOD}!")), "bad token <redacted>!");
    }

    #[test]
    fn digest_follows_the_credential_only_and_hides_it() {
        let read =
            |value: &str| Credentials::from_secret(Some(&secret("token", value.as_bytes())), &reference()).unwrap();
        let a = read(GOOD);
        let mut labelled = secret("token", GOOD.as_bytes());
        labelled.metadata.labels = Some(BTreeMap::from([("team".to_string(), "edge".to_string())]));
        labelled.metadata.resource_version = Some("99".into());
        let same = Credentials::from_secret(Some(&labelled), &reference()).unwrap();
        assert_eq!(a.digest(), same.digest(), "metadata is not credential material");
        assert_eq!(
            a.digest(),
            read(&format!(" {GOOD}\n")).digest(),
            "the trimmed value is what is sent"
        );
        // The last character differs: the whole value is hashed, not a prefix.
        let other = format!("{}X", &GOOD[..GOOD.len() - 1]);
        assert_ne!(a.digest(), read(&other).digest());
        let d = a.digest();
        assert!(d.starts_with("sha256:") && d.len() == 7 + 64, "{d}");
        assert!(!d.contains(GOOD) && !d.contains(&hex::encode(GOOD)));
    }

    #[test]
    fn non_utf8_and_header_unsafe_tokens_are_invalid() {
        let e = Credentials::from_secret(Some(&secret("token", &[0xff; 40])), &reference()).unwrap_err();
        assert!(matches!(e, CredentialsError::Invalid(_)));
        let with_newline = format!("{GOOD}\n{GOOD}");
        let e = Credentials::from_secret(Some(&secret("token", with_newline.as_bytes())), &reference()).unwrap_err();
        assert!(matches!(e, CredentialsError::Invalid(_)));
    }
}
