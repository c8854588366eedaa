//! SCM credentials taken from a Kubernetes Secret: an IAM token sent as it is, or an access key pair (AK/SK) that
//! signs every request with [`super::sign`].

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

use super::sign::{self, SignedParts};
use crate::crd::CredentialsRef;

/// Huawei documents 32 characters as the shortest valid X-Auth-Token.
pub const MIN_TOKEN_LEN: usize = 32;
/// Secret key holding the access key id (AK).
pub const ACCESS_KEY: &str = "accessKey";
/// Secret key holding the secret access key (SK).
pub const SECRET_KEY: &str = "secretKey";
/// Optional Secret key: the IAM project id sent as `X-Project-Id`.
pub const PROJECT_ID: &str = "projectId";
/// Optional Secret key: the account (domain) id sent as `X-Domain-Id`.
pub const DOMAIN_ID: &str = "domainId";
/// Optional Secret key: the security token that temporary access keys need (`X-Security-Token`).
pub const SECURITY_TOKEN: &str = "securityToken";

/// The Secret data key holding the [`DigestKey`].
pub const DIGEST_KEY: &str = "key";
/// Bytes of a generated [`DigestKey`]; a key read from a Secret must have at least this many.
pub const DIGEST_KEY_LEN: usize = 32;

/// This installation's key for [`Credentials::digest`], kept in a Secret only the operator reads, so a digest in
/// status says nothing to someone who can guess a credential but not read that Secret. Wiped on drop.
pub struct DigestKey(SecretBox<[u8]>);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(<redacted>)")
    }
}

impl DigestKey {
    /// A fresh random key, for a new installation (and for clients that never write status, such as tests').
    pub fn random() -> Self {
        let bytes: [u8; DIGEST_KEY_LEN] = rand::random();
        Self(SecretBox::new(Box::from(bytes.as_slice())))
    }

    /// The key in the Secret's [`DIGEST_KEY`] entry, or why it cannot be used.
    pub fn from_secret(secret: &Secret) -> Result<Self, String> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(DIGEST_KEY))
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        if bytes.len() < DIGEST_KEY_LEN {
            return Err(format!(
                "its {DIGEST_KEY:?} entry holds {} bytes; the credentials digest key needs at least {DIGEST_KEY_LEN} \
                 (delete the Secret and the operator creates a new one)",
                bytes.len()
            ));
        }
        Ok(Self(SecretBox::new(Box::from(bytes))))
    }

    /// The Secret data that [`DigestKey::from_secret`] reads back, for creating the Secret.
    pub fn to_data(&self) -> std::collections::BTreeMap<String, ByteString> {
        std::collections::BTreeMap::from([(DIGEST_KEY.to_owned(), ByteString(self.0.expose_secret().to_vec()))])
    }
}

/// Credentials for one SCM request; never cached beyond one reconcile. `Debug` shows no key material, and every
/// value is wiped from memory when dropped.
#[derive(Debug)]
pub enum Credentials {
    /// An IAM token sent as `X-Auth-Token` (checked to be a valid header value when read).
    Token(SecretString),
    /// A permanent or temporary access key pair that signs each request (`SDK-HMAC-SHA256`).
    AccessKey(AccessKey),
}

/// An access key pair with the optional scope and security token sent beside it.
#[derive(Debug)]
pub struct AccessKey {
    access_key: SecretString,
    secret_key: SecretString,
    scope: Option<Scope>,
    /// Checked to be a valid header value when read.
    security_token: Option<SecretString>,
}

/// Which IAM scope header accompanies a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// `X-Project-Id`.
    Project(String),
    /// `X-Domain-Id`.
    Domain(String),
}

/// Why usable credentials could not be read from the Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret is missing.
    #[error("{0}")]
    NotFound(String),
    /// The Secret exists but does not hold one usable kind of credentials.
    #[error("{0}")]
    Invalid(String),
}

/// Secret types refused as credentials.
pub const NOT_CREDENTIALS: [&str; 3] = [
    "kubernetes.io/service-account-token",
    "kubernetes.io/tls",
    "kubernetes.io/dockerconfigjson",
];

/// The keys of one Secret, read without ever putting a value into an error message.
struct SecretData<'a> {
    name: &'a str,
    data: Option<&'a std::collections::BTreeMap<String, ByteString>>,
}

impl SecretData<'_> {
    fn has(&self, key: &str) -> bool {
        self.data.is_some_and(|d| d.contains_key(key))
    }

    /// The trimmed text under `key`; `None` when absent or blank.
    fn text(&self, key: &str) -> Result<Option<&str>, CredentialsError> {
        let Some(raw) = self.data.and_then(|d| d.get(key)) else {
            return Ok(None);
        };
        if raw.0.len() > MAX_VALUE_BYTES {
            let problem = format!("is {} bytes; at most {MAX_VALUE_BYTES} bytes are read", raw.0.len());
            return Err(self.invalid(key, &problem));
        }
        let text = std::str::from_utf8(&raw.0).map_err(|_| self.invalid(key, "is not UTF-8 text"))?;
        let text = text.trim();
        // Every credential is visible ASCII; anything else could not be sent (or signed) as it is.
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.invalid(key, "holds characters other than visible ASCII"));
        }
        Ok((!text.is_empty()).then_some(text))
    }

    fn required(&self, key: &str) -> Result<&str, CredentialsError> {
        self.text(key)?.ok_or_else(|| self.invalid(key, "is missing or empty"))
    }

    fn invalid(&self, key: &str, problem: &str) -> CredentialsError {
        CredentialsError::Invalid(format!("key {key:?} of Secret {:?} {problem}", self.name))
    }
}

/// Whether `id` has the form of an IAM project or domain id (up to 64 letters, digits, '-' or '_'): it becomes a
/// header value, so nothing else is sent, whether it came from a Secret or from IAM's answer.
pub fn is_iam_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Largest credential value read from a Secret, checked before anything else is done with it (Huawei's IAM tokens
/// are a few KiB).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// A header value that is never printed by reqwest's or hyper's Debug output.
fn sensitive_header(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl Credentials {
    /// Reads a token or an access key pair from `secret` (None when the Secret does not exist); never echoes
    /// secret data in errors.
    pub fn from_secret(secret: Option<&Secret>, reference: &CredentialsRef) -> Result<Self, CredentialsError> {
        let name = reference.name.as_str();
        let token_key = reference.token_key.as_str();
        let secret = secret.ok_or_else(|| CredentialsError::NotFound(format!("Secret {name:?} not found")))?;
        // Secrets the cluster or other tools write for another purpose: using one would send a ServiceAccount
        // token, a TLS key or registry credentials to SCM.
        if let Some(kind) = secret.type_.as_deref().filter(|t| NOT_CREDENTIALS.contains(t)) {
            return Err(CredentialsError::Invalid(format!(
                "Secret {name:?} is of type {kind}, which never holds SCM credentials; use an Opaque Secret"
            )));
        }
        let data = SecretData {
            name,
            data: secret.data.as_ref(),
        };
        let has_token = data.has(token_key);
        let has_access_key = data.has(ACCESS_KEY) || data.has(SECRET_KEY);
        match (has_token, has_access_key) {
            (true, false) => Self::token(&data, token_key),
            (false, true) => AccessKey::read(&data).map(Credentials::AccessKey),
            (true, true) => Err(CredentialsError::Invalid(format!(
                "Secret {name:?} holds both an IAM token (key {token_key:?}) and an access key pair (keys \
                 {ACCESS_KEY:?}, {SECRET_KEY:?}); keep only one kind"
            ))),
            (false, false) => Err(CredentialsError::Invalid(format!(
                "Secret {name:?} holds neither an IAM token (key {token_key:?}) nor an access key pair (keys \
                 {ACCESS_KEY:?} and {SECRET_KEY:?}, optionally {PROJECT_ID:?} or {DOMAIN_ID:?} and \
                 {SECURITY_TOKEN:?})"
            ))),
        }
    }

    fn token(data: &SecretData<'_>, key: &str) -> Result<Self, CredentialsError> {
        let token = data.text(key)?.unwrap_or_default();
        let length = token.chars().count();
        if length < MIN_TOKEN_LEN {
            return Err(data.invalid(
                key,
                &format!("holds {length} characters; an IAM token has at least {MIN_TOKEN_LEN}"),
            ));
        }
        if sensitive_header(token).is_none() {
            return Err(data.invalid(key, "contains characters not allowed in a token"));
        }
        Ok(Credentials::Token(token.into()))
    }

    /// This credential with an account's `projectId` or `domainId` (at most one) instead of the Secret's scope;
    /// a token carries its scope in itself and is returned as it is.
    pub fn with_scope(self, project_id: Option<&str>, domain_id: Option<&str>) -> Self {
        let scope = match (project_id, domain_id) {
            (Some(project), _) => Scope::Project(project.to_owned()),
            (None, Some(domain)) => Scope::Domain(domain.to_owned()),
            (None, None) => return self,
        };
        match self {
            Credentials::AccessKey(key) => Credentials::AccessKey(AccessKey {
                scope: Some(scope),
                ..key
            }),
            token => token,
        }
    }

    /// A fingerprint of the exact credential material sent, for status: a stall caused by a rejected credential
    /// lifts only when this changes, not on edits of the Secret's labels or annotations.
    ///
    /// HMAC-SHA256 under this installation's `key` over every value (never a prefix), each behind its name: anyone
    /// who can read status but not the key cannot confirm a guessed credential by hashing it.
    pub fn digest(&self, key: &DigestKey) -> String {
        self.digest_at(key, None)
    }

    /// [`Credentials::digest`] of this credential as sent to `endpoint` (None: the operator's own endpoint, which
    /// keeps the digests recorded before accounts existed).
    pub fn digest_at(&self, key: &DigestKey, endpoint: Option<&str>) -> String {
        let mut hash = Hmac::<Sha256>::new_from_slice(key.0.expose_secret()).expect("HMAC takes keys of any length");
        hash.update(b"certpush-operator credentials digest v2\0");
        let mut field = |name: &str, value: &[u8]| {
            hash.update(name.as_bytes());
            hash.update(b"\0");
            hash.update(&u64::try_from(value.len()).unwrap_or(u64::MAX).to_be_bytes());
            hash.update(value);
        };
        match self {
            Credentials::Token(token) => field("token", token.expose_secret().as_bytes()),
            Credentials::AccessKey(key) => {
                field(ACCESS_KEY, key.access_key.expose_secret().as_bytes());
                field(SECRET_KEY, key.secret_key.expose_secret().as_bytes());
                match &key.scope {
                    Some(Scope::Project(id)) => field(PROJECT_ID, id.as_bytes()),
                    Some(Scope::Domain(id)) => field(DOMAIN_ID, id.as_bytes()),
                    None => {}
                }
                if let Some(token) = &key.security_token {
                    field(SECURITY_TOKEN, token.expose_secret().as_bytes());
                }
            }
        }
        if let Some(endpoint) = endpoint {
            field("endpoint", endpoint.as_bytes());
        }
        format!("hmac-sha256:{}", hex::encode(hash.finalize().into_bytes()))
    }

    /// The SCM account this credential acts for, as a digest: the access key id (a wrong secret key is still that
    /// account), or the token. Rate limits are kept per account.
    pub fn account(&self) -> String {
        let id = match self {
            Credentials::Token(token) => token.expose_secret().as_bytes(),
            Credentials::AccessKey(key) => key.access_key.expose_secret().as_bytes(),
        };
        format!("sha256:{}", hex::encode(Sha256::digest(id)))
    }

    /// Whether this is an access key pair whose Secret named neither `projectId` nor `domainId`: SCM requests with it
    /// need the account (domain) id from IAM first ([`super::iam`]), as Huawei's SDK does; only IAM's own question is
    /// sent without one.
    pub fn needs_domain(&self) -> bool {
        matches!(self, Credentials::AccessKey(key) if key.scope.is_none())
    }

    /// This access key pair (one that [`Credentials::needs_domain`]) scoped to the account `domain_id` (which must
    /// have the form of an IAM id), for the requests of one call; None for any other credential.
    pub(crate) fn scoped_to_domain(&self, domain_id: &str) -> Option<Credentials> {
        match self {
            Credentials::AccessKey(key) if key.scope.is_none() && is_iam_id(domain_id) => {
                Some(Credentials::AccessKey(AccessKey {
                    access_key: key.access_key.clone(),
                    secret_key: key.secret_key.clone(),
                    scope: Some(Scope::Domain(domain_id.to_owned())),
                    security_token: key.security_token.clone(),
                }))
            }
            _ => None,
        }
    }

    /// Adds the authentication headers to a finished request: the token, or the signature over it at `now`.
    pub fn authorize(&self, request: &mut reqwest::Request, now: jiff::Timestamp) {
        match self {
            Credentials::Token(token) => {
                if let Some(value) = sensitive_header(token.expose_secret()) {
                    request.headers_mut().insert("X-Auth-Token", value);
                }
            }
            Credentials::AccessKey(key) => key.sign(request, now),
        }
    }

    /// Removes any copy of the secret from text that came back from the server before it is stored or logged.
    pub fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = match self {
            Credentials::Token(token) => vec![token.expose_secret()],
            Credentials::AccessKey(key) => [key.access_key.expose_secret(), key.secret_key.expose_secret()]
                .into_iter()
                .chain(key.security_token.as_ref().map(|t| t.expose_secret()))
                .collect(),
        };
        secrets
            .into_iter()
            .filter(|secret| !secret.is_empty())
            .fold(text.to_string(), |text, secret| text.replace(secret, "<redacted>"))
    }
}

impl AccessKey {
    fn read(data: &SecretData<'_>) -> Result<Self, CredentialsError> {
        let access_key = data.required(ACCESS_KEY)?;
        if access_key.len() > 128 || !access_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(data.invalid(ACCESS_KEY, "is not an access key id (up to 128 letters and digits)"));
        }
        let secret_key = data.required(SECRET_KEY)?;
        if secret_key.len() > 256 || !secret_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(data.invalid(
                SECRET_KEY,
                "is not a secret access key (up to 256 printable ASCII characters)",
            ));
        }
        let id = |key: &str| -> Result<Option<String>, CredentialsError> {
            let Some(id) = data.text(key)? else {
                return Ok(None);
            };
            if !is_iam_id(id) {
                return Err(data.invalid(key, "is not an IAM id (up to 64 letters, digits, '-' or '_')"));
            }
            Ok(Some(id.to_owned()))
        };
        let scope = match (id(PROJECT_ID)?, id(DOMAIN_ID)?) {
            (Some(_), Some(_)) => {
                return Err(CredentialsError::Invalid(format!(
                    "Secret {:?} sets both {PROJECT_ID:?} and {DOMAIN_ID:?}; set at most one",
                    data.name
                )));
            }
            (Some(project), None) => Some(Scope::Project(project)),
            (None, Some(domain)) => Some(Scope::Domain(domain)),
            (None, None) => None,
        };
        let security_token = match data.text(SECURITY_TOKEN)? {
            Some(token) if sensitive_header(token).is_none() => {
                return Err(data.invalid(SECURITY_TOKEN, "contains characters not allowed in a header"));
            }
            token => token.map(SecretString::from),
        };
        Ok(Self {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            scope,
            security_token,
        })
    }

    /// Adds `Host`, `X-Sdk-Date`, the scope and security-token headers, and the `Authorization` that signs them all
    /// with the exact body bytes.
    fn sign(&self, request: &mut reqwest::Request, now: jiff::Timestamp) {
        let url = request.url().clone();
        // Sent explicitly so that the Host the gateway sees is the one signed (hyper keeps a Host that is set).
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let date = sign::sdk_date(now);
        let mut signed: Vec<(&str, HeaderValue)> = Vec::with_capacity(5);
        signed.extend(HeaderValue::from_str(&host).ok().map(|v| ("Host", v)));
        signed.extend(HeaderValue::from_str(&date).ok().map(|v| (sign::DATE_HEADER, v)));
        match &self.scope {
            Some(Scope::Project(id)) => signed.extend(HeaderValue::from_str(id).ok().map(|v| ("X-Project-Id", v))),
            Some(Scope::Domain(id)) => signed.extend(HeaderValue::from_str(id).ok().map(|v| ("X-Domain-Id", v))),
            None => {}
        }
        if let Some(token) = self
            .security_token
            .as_ref()
            .and_then(|t| sensitive_header(t.expose_secret()))
        {
            signed.push(("X-Security-Token", token));
        }
        // Every value came from HeaderValue::from_str, so to_str cannot fail and every header sent is signed.
        let texts: Vec<(&str, &str)> = signed
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (*name, v)))
            .collect();
        let body = request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default();
        let parts = SignedParts {
            method: request.method().as_str(),
            url: &url,
            headers: &texts,
            body,
        };
        let authorization = sign::authorization(
            self.access_key.expose_secret(),
            self.secret_key.expose_secret(),
            &date,
            &parts,
        );
        let request_headers = request.headers_mut();
        for (name, value) in signed {
            request_headers.insert(name, value);
        }
        if let Some(value) = sensitive_header(&authorization) {
            request_headers.insert(reqwest::header::AUTHORIZATION, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;
    use std::sync::LazyLock;

    static KEY: LazyLock<DigestKey> = LazyLock::new(DigestKey::random);

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

    fn secret_with(entries: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn invalid_message(result: Result<Credentials, CredentialsError>) -> String {
        match result {
            Err(CredentialsError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// Defect: a non-ASCII security token was accepted (and then not sent as signed), and credential values of any
    /// size were read.
    #[test]
    fn credential_values_are_visible_ascii_and_bounded_in_size() {
        let key_pair = |token: &str| {
            secret_with(&[
                ("accessKey", "QTWAOYTTINDUT2QVKYUC"),
                ("secretKey", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"),
                ("securityToken", token),
            ])
        };
        let message = invalid_message(Credentials::from_secret(
            Some(&key_pair("tökén-with-umlauts")),
            &reference(),
        ));
        assert!(
            message.contains("securityToken") && message.contains("visible ASCII"),
            "{message}"
        );
        let huge = "a".repeat(MAX_VALUE_BYTES + 1);
        let message = invalid_message(Credentials::from_secret(
            Some(&secret("token", huge.as_bytes())),
            &reference(),
        ));
        assert!(message.contains("at most 8192 bytes"), "{message}");
        assert!(!message.contains(&huge[..64]), "never echoes the value");
        assert!(Credentials::from_secret(Some(&key_pair("FQoGZXIvYXdzEJr")), &reference()).is_ok());
    }

    /// A CertificatePush or an account could name a ServiceAccount token, another workload's TLS Secret or registry
    /// credentials: none is ever sent to SCM, even when it holds a key named like a credential.
    #[test]
    fn secrets_of_other_purposes_are_never_credentials() {
        for kind in NOT_CREDENTIALS {
            let mut typed = secret("token", GOOD.as_bytes());
            typed.type_ = Some(kind.to_owned());
            let m = invalid_message(Credentials::from_secret(Some(&typed), &reference()));
            assert!(m.contains(kind) && !m.contains(GOOD), "{m}");
        }
        let mut opaque = secret("token", GOOD.as_bytes());
        opaque.type_ = Some("Opaque".to_owned());
        assert!(Credentials::from_secret(Some(&opaque), &reference()).is_ok());
    }

    /// An account's projectId or domainId replaces the Secret's scope, and is part of what the digest names.
    #[test]
    fn an_accounts_scope_replaces_the_secrets() {
        let read = || {
            Credentials::from_secret(
                Some(&secret_with(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (PROJECT_ID, "p1")])),
                &reference(),
            )
            .unwrap()
        };
        let scoped = read().with_scope(None, Some("d9"));
        let Credentials::AccessKey(ref key) = scoped else {
            panic!("an access key stays one")
        };
        assert_eq!(key.scope, Some(Scope::Domain("d9".into())));
        assert_ne!(scoped.digest(&KEY), read().digest(&KEY));
        assert_eq!(read().with_scope(None, None).digest(&KEY), read().digest(&KEY));
        let token = || Credentials::from_secret(Some(&secret("token", GOOD.as_bytes())), &reference()).unwrap();
        let scoped = token().with_scope(Some("p2"), None);
        assert_eq!(scoped.digest(&KEY), token().digest(&KEY), "a token keeps its own");
    }

    #[test]
    fn missing_secret_is_not_found_and_a_secret_without_credentials_is_invalid() {
        let e = Credentials::from_secret(None, &reference()).unwrap_err();
        assert!(
            matches!(e, CredentialsError::NotFound(ref m) if m.contains("\"scm\" not found")),
            "{e:?}"
        );
        let m = invalid_message(Credentials::from_secret(
            Some(&secret("other", GOOD.as_bytes())),
            &reference(),
        ));
        for key in ["\"token\"", "\"accessKey\"", "\"secretKey\""] {
            assert!(m.contains(key) && m.contains("neither"), "{m}");
        }
    }

    const AK: &str = "QTWAOYTTINDUT2QVKYUC";
    const SK: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";

    #[test]
    fn both_kinds_at_once_are_invalid_and_name_the_keys() {
        let both = secret_with(&[("token", GOOD), (ACCESS_KEY, AK), (SECRET_KEY, SK)]);
        let m = invalid_message(Credentials::from_secret(Some(&both), &reference()));
        assert!(
            m.contains("both") && m.contains("\"token\"") && m.contains("\"accessKey\""),
            "{m}"
        );
        assert!(!m.contains(GOOD) && !m.contains(SK) && !m.contains(AK));
    }

    #[test]
    fn an_incomplete_or_malformed_access_key_pair_is_invalid_without_echoing_it() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[(ACCESS_KEY, AK)], "\"secretKey\""),
            (&[(SECRET_KEY, SK)], "\"accessKey\""),
            (&[(ACCESS_KEY, "AK/WITH/SLASH"), (SECRET_KEY, SK)], "\"accessKey\""),
            (&[(ACCESS_KEY, AK), (SECRET_KEY, "has space")], "\"secretKey\""),
            (
                &[
                    (ACCESS_KEY, AK),
                    (SECRET_KEY, SK),
                    (PROJECT_ID, "p1"),
                    (DOMAIN_ID, "d1"),
                ],
                "at most one",
            ),
            (
                &[(ACCESS_KEY, AK), (SECRET_KEY, SK), (SECURITY_TOKEN, "a\nb")],
                "\"securityToken\"",
            ),
        ];
        for (entries, expected) in cases {
            let m = invalid_message(Credentials::from_secret(Some(&secret_with(entries)), &reference()));
            assert!(m.contains(expected), "{entries:?}: {m}");
            assert!(!m.contains(SK) && !m.contains(AK), "{m}");
        }
    }

    #[test]
    fn access_key_pair_is_read_trimmed_and_hidden_from_debug_and_text() {
        let with_newlines = format!("{SK}\n");
        let read = Credentials::from_secret(
            Some(&secret_with(&[
                (ACCESS_KEY, AK),
                (SECRET_KEY, &with_newlines),
                (PROJECT_ID, ""),
            ])),
            &reference(),
        )
        .unwrap();
        let Credentials::AccessKey(ref key) = read else {
            panic!("expected an access key, got {read:?}")
        };
        assert_eq!(
            (
                key.access_key.expose_secret(),
                key.secret_key.expose_secret(),
                &key.scope
            ),
            (AK, SK, &None)
        );
        assert!(!format!("{read:?}").contains(SK) && !format!("{read:?}").contains(AK));
        assert_eq!(read.redact(&format!("ak {AK} sk {SK}")), "ak <redacted> sk <redacted>");
    }

    #[test]
    fn access_key_digest_covers_every_field() {
        let digest = |entries: &[(&str, &str)]| {
            Credentials::from_secret(Some(&secret_with(entries)), &reference())
                .unwrap()
                .digest(&KEY)
        };
        let base = digest(&[(ACCESS_KEY, AK), (SECRET_KEY, SK)]);
        let variants = [
            digest(&[(ACCESS_KEY, "QTWAOYTTINDUT2QVKYUD"), (SECRET_KEY, SK)]),
            digest(&[
                (ACCESS_KEY, AK),
                (SECRET_KEY, "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHd"),
            ]),
            digest(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (PROJECT_ID, "p1")]),
            digest(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (DOMAIN_ID, "p1")]),
            digest(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (SECURITY_TOKEN, "t1")]),
        ];
        let mut all = variants.to_vec();
        all.push(base.clone());
        all.sort();
        all.dedup();
        assert_eq!(all.len(), variants.len() + 1, "each field changes the digest");
        assert_eq!(base, digest(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), ("note", "x")]));
    }

    #[test]
    fn a_signed_request_carries_the_signed_headers_and_hides_the_secret_ones() {
        let creds = Credentials::from_secret(
            Some(&secret_with(&[
                (ACCESS_KEY, AK),
                (SECRET_KEY, SK),
                (DOMAIN_ID, "d1"),
                (SECURITY_TOKEN, "st"),
            ])),
            &reference(),
        )
        .unwrap();
        let url = "http://127.0.0.1:8443/v3/scm/certificates/scs1554192131150/push";
        let mut request = reqwest::Request::new(reqwest::Method::POST, url.parse().unwrap());
        *request.body_mut() = Some("{}".into());
        creds.authorize(&mut request, "2026-11-25T12:00:00Z".parse().unwrap());
        let headers = request.headers();
        assert_eq!(headers["host"], "127.0.0.1:8443");
        assert_eq!(headers["x-sdk-date"], "20261125T120000Z");
        assert_eq!(headers["x-domain-id"], "d1");
        assert_eq!(headers["x-security-token"], "st");
        let authorization = headers["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with(&format!(
                "SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-domain-id;x-sdk-date;x-security-token, Signature="
            )),
            "{authorization}"
        );
        assert!(headers["authorization"].is_sensitive() && headers["x-security-token"].is_sensitive());
        assert!(!format!("{request:?}").contains(SK));
    }

    #[test]
    fn only_an_access_key_without_a_scope_needs_a_domain_and_takes_one_of_iam_id_form() {
        let read =
            |entries: &[(&str, &str)]| Credentials::from_secret(Some(&secret_with(entries)), &reference()).unwrap();
        let unscoped = read(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (SECURITY_TOKEN, "st")]);
        assert!(unscoped.needs_domain());
        for scoped in [
            read(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (PROJECT_ID, "p1")]),
            read(&[(ACCESS_KEY, AK), (SECRET_KEY, SK), (DOMAIN_ID, "d1")]),
            read(&[("token", GOOD)]),
        ] {
            assert!(!scoped.needs_domain(), "{scoped:?}");
            assert!(scoped.scoped_to_domain("d2").is_none(), "a scope is never replaced");
        }
        for bad in ["", "d 1", "d/1", "d\n1", &"d".repeat(65)] {
            assert!(unscoped.scoped_to_domain(bad).is_none(), "{bad:?}");
        }
        let scoped = unscoped.scoped_to_domain("0a1b-2c_3d").unwrap();
        assert!(!scoped.needs_domain());
        // The same key, now signed with X-Domain-Id: the account's limits and redaction stay those of the key.
        assert_eq!(scoped.account(), unscoped.account());
        assert_eq!(
            scoped.redact(&format!("{AK} {SK} st")),
            "<redacted> <redacted> <redacted>"
        );
        let mut request = reqwest::Request::new(
            reqwest::Method::GET,
            "https://scm.example/v3/scm/certificates".parse().unwrap(),
        );
        scoped.authorize(&mut request, "2026-11-25T12:00:00Z".parse().unwrap());
        assert_eq!(request.headers()["x-domain-id"], "0a1b-2c_3d");
        assert!(
            request.headers()["authorization"]
                .to_str()
                .unwrap()
                .contains("SignedHeaders=host;x-domain-id;x-sdk-date;x-security-token")
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
        let Credentials::Token(ref v) = creds else {
            panic!("expected a token, got {creds:?}")
        };
        assert_eq!(v.expose_secret(), GOOD);
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
        assert_eq!(a.digest(&KEY), same.digest(&KEY), "metadata is not credential material");
        assert_eq!(
            a.digest(&KEY),
            read(&format!(" {GOOD}\n")).digest(&KEY),
            "the trimmed value is what is sent"
        );
        // The last character differs: the whole value is hashed, not a prefix.
        let other = format!("{}X", &GOOD[..GOOD.len() - 1]);
        assert_ne!(a.digest(&KEY), read(&other).digest(&KEY));
        let d = a.digest(&KEY);
        assert!(d.starts_with("hmac-sha256:") && d.len() == 12 + 64, "{d}");
        assert!(!d.contains(GOOD) && !d.contains(&hex::encode(GOOD)));
    }

    #[test]
    fn digest_cannot_be_confirmed_without_the_installation_key() {
        let creds = Credentials::from_secret(Some(&secret("token", GOOD.as_bytes())), &reference()).unwrap();
        let other = DigestKey::from_secret(&digest_key_secret(&[9; DIGEST_KEY_LEN])).unwrap();
        assert_ne!(
            creds.digest(&KEY),
            creds.digest(&other),
            "the key is part of the digest"
        );
        // A guess hashed the obvious ways does not match what status shows.
        let shown = creds.digest(&KEY);
        for guess in [
            Sha256::digest(GOOD.as_bytes()).to_vec(),
            Sha256::digest(format!("token\0{GOOD}")).to_vec(),
        ] {
            assert!(!shown.contains(&hex::encode(guess)));
        }
    }

    #[test]
    fn digest_key_round_trips_and_a_short_one_is_refused() {
        let fresh = DigestKey::random();
        let stored = Secret {
            data: Some(fresh.to_data()),
            ..Secret::default()
        };
        let read = DigestKey::from_secret(&stored).unwrap();
        let creds = Credentials::from_secret(Some(&secret("token", GOOD.as_bytes())), &reference()).unwrap();
        assert_eq!(creds.digest(&fresh), creds.digest(&read));
        assert!(!format!("{fresh:?}").contains(&format!("{:?}", &stored.data)));
        let short = DigestKey::from_secret(&digest_key_secret(&[1; 8])).unwrap_err();
        assert!(
            short.contains("holds 8 bytes") && short.contains("at least 32"),
            "{short}"
        );
        assert!(DigestKey::from_secret(&Secret::default()).is_err());
    }

    fn digest_key_secret(bytes: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(DIGEST_KEY.to_owned(), ByteString(bytes.to_vec()))])),
            ..Secret::default()
        }
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
