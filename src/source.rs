//! A `kubernetes.io/tls` Secret as a certificate to import into SCM, checked locally before anything is sent.
//!
//! The checks are the ones SCM would otherwise answer with a 400 after the private key has already travelled:
//! the PEM parses, the private key belongs to the leaf, the leaf is within its validity window, each chain
//! certificate issued the one before it, and the parts fit SCM's field limits. The private key is held only in
//! [`TlsSource`], whose `Debug` never shows it, and is read only to build the import request.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::crd::SourceSecretStatus;

/// Secret key holding the PEM certificate chain, leaf first (as cert-manager writes it).
pub const TLS_CRT: &str = "tls.crt";
/// Secret key holding the PEM private key.
pub const TLS_KEY: &str = "tls.key";
/// SCM's limit on the `certificate` field of an import, in characters.
pub const MAX_CERTIFICATE_CHARS: usize = 4096;
/// SCM's limit on `certificate_chain`.
pub const MAX_CHAIN_CHARS: usize = 8192;
/// SCM's limit on `private_key`.
pub const MAX_KEY_CHARS: usize = 4096;
/// Largest `tls.crt` read: checked before any parsing, so a hostile Secret costs no more than this.
pub const MAX_TLS_CRT_BYTES: usize = 64 * 1024;
/// Largest `tls.key` read.
pub const MAX_TLS_KEY_BYTES: usize = 16 * 1024;
/// Most certificates in `tls.crt`, leaf included.
pub const MAX_CHAIN_CERTIFICATES: usize = 10;
/// The Secret type a source must have.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// SCM's certificate names: 3 to 63 of `[A-Za-z0-9_.-]`.
pub const MAX_NAME_CHARS: usize = 63;

/// A validated certificate with its key, ready to import; `Debug` never shows the key.
#[derive(Debug)]
pub struct TlsSource {
    /// Lower-case hex SHA-256 of the leaf's DER: what identifies the certificate across renewals.
    pub fingerprint: String,
    /// End of the leaf's validity.
    pub not_after: Timestamp,
    /// The leaf's subject common name and DNS names: where SCM's `domain` of its import comes from.
    pub domains: Vec<String>,
    /// The leaf as PEM.
    pub certificate: String,
    /// The rest of the chain as PEM, in order; empty when the Secret holds only the leaf.
    pub chain: String,
    private_key: SecretString,
}

impl TlsSource {
    /// The private key PEM, for the import request body only.
    pub fn private_key_pem(&self) -> SecretString {
        self.private_key.clone()
    }

    /// Reads and checks `secret` (None when it does not exist) at `now`; the error's message is for status and never
    /// contains key material.
    pub fn from_secret(secret: Option<&Secret>, name: &str, now: Timestamp) -> Result<Self, SourceError> {
        let secret = secret.ok_or_else(|| format!("source Secret {name:?} not found in this namespace"))?;
        let type_ = secret.type_.as_deref().unwrap_or("Opaque");
        if type_ != TLS_SECRET_TYPE {
            return Err(format!("source Secret {name:?} is of type {type_:?}, not {TLS_SECRET_TYPE:?}").into());
        }
        let data = secret.data.as_ref();
        let get = |key: &str| {
            data.and_then(|d| d.get(key))
                .map(|v| v.0.as_slice())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("source Secret {name:?} has no {key:?} (expected a kubernetes.io/tls Secret)"))
        };
        let (crt, key) = (get(TLS_CRT)?, get(TLS_KEY)?);
        parse(crt, key, now).map_err(|problem| SourceError {
            message: format!("source Secret {name:?}: {}", problem.message),
            ..problem
        })
    }
}

/// The certificate read from a source TLS Secret, with the Secret's identity for status.
#[derive(Debug)]
pub struct Source {
    /// The checked certificate and key.
    pub tls: TlsSource,
    /// Which Secret (and version of it) the certificate came from.
    pub secret: SourceSecretStatus,
}

impl Source {
    /// `tls` as read from the Secret `name` (`secret`, when it exists).
    pub fn new(tls: TlsSource, name: &str, secret: Option<&Secret>) -> Self {
        let meta = secret.map(|s| &s.metadata);
        Self {
            tls,
            secret: SourceSecretStatus {
                name: name.to_owned(),
                uid: meta.and_then(|m| m.uid.clone()),
                resource_version: meta.and_then(|m| m.resource_version.clone()),
            },
        }
    }
}

/// Why the certificate of a source Secret cannot be imported, or not yet; never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// For status, Events and logs.
    pub message: String,
    /// When the leaf becomes valid, if that is all that stands in the way: every other check passed.
    pub valid_from: Option<Timestamp>,
}

impl From<String> for SourceError {
    fn from(message: String) -> Self {
        Self {
            message,
            valid_from: None,
        }
    }
}

/// Parses and checks a PEM chain and key. A leaf that is not valid yet is checked in every other way first, so that
/// waiting for its `notBefore` is all that is left to do.
pub fn parse(crt: &[u8], key: &[u8], now: Timestamp) -> Result<TlsSource, SourceError> {
    let (source, not_before) = parse_at(crt, key, now)?;
    if now < not_before {
        return Err(SourceError {
            message: format!("the certificate is not valid before {not_before}"),
            valid_from: Some(not_before),
        });
    }
    Ok(source)
}

/// Every check of [`parse`] but `notBefore`, which it returns.
fn parse_at(crt: &[u8], key: &[u8], now: Timestamp) -> Result<(TlsSource, Timestamp), String> {
    // Sizes first: nothing is parsed from a value larger than any real certificate or key.
    for (field, length, max) in [
        (TLS_CRT, crt.len(), MAX_TLS_CRT_BYTES),
        (TLS_KEY, key.len(), MAX_TLS_KEY_BYTES),
    ] {
        if length > max {
            return Err(format!("{field} is {length} bytes; at most {max} bytes are read"));
        }
    }
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .take(MAX_CHAIN_CERTIFICATES + 1)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{TLS_CRT} is not valid PEM"))?;
    if ders.is_empty() {
        return Err(format!("{TLS_CRT} holds no CERTIFICATE block"));
    }
    if ders.len() > MAX_CHAIN_CERTIFICATES {
        return Err(format!(
            "{TLS_CRT} holds more than {MAX_CHAIN_CERTIFICATES} certificates; at most {MAX_CHAIN_CERTIFICATES} (the \
             leaf and its issuers) are accepted"
        ));
    }
    let mut parsed = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| format!("certificate {} in {TLS_CRT} is not a valid X.509 certificate", i + 1))?;
        parsed.push(cert);
    }
    // Each certificate must be issued by the next one: SCM refuses a chain out of order (SCM.0079).
    for (i, pair) in parsed.windows(2).enumerate() {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            return Err(format!(
                "{TLS_CRT} is out of order: certificate {} was not issued by certificate {} (the leaf must come \
                 first, then each issuer)",
                i + 1,
                i + 2
            ));
        }
    }
    let leaf = &parsed[0];
    let validity = leaf.validity();
    let not_before = Timestamp::from_second(validity.not_before.timestamp()).map_err(|e| e.to_string())?;
    let not_after = Timestamp::from_second(validity.not_after.timestamp()).map_err(|e| e.to_string())?;
    if now > not_after {
        return Err(format!("the certificate expired at {not_after}"));
    }

    // Only the key's kind and whether it matches are ever reported, never its content.
    let key_der = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
        format!("{TLS_KEY} holds no unencrypted PKCS#1, SEC1 or PKCS#8 private key (encrypted keys are not supported)")
    })?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|_| {
        format!("{TLS_KEY} holds a key of a type that cannot be used (RSA, ECDSA P-256/P-384 or Ed25519)")
    })?;
    let certified = rustls::sign::CertifiedKey::new(vec![ders[0].clone()], signing_key);
    certified
        .keys_match()
        .map_err(|_| format!("the private key in {TLS_KEY} does not belong to the certificate in {TLS_CRT}"))?;

    let pem = |der: &CertificateDer<'_>| pem_block("CERTIFICATE", der);
    let certificate = pem(&ders[0]);
    let chain: String = ders[1..].iter().map(pem).collect();
    // The key checked above, encoded again: whatever else tls.key holds (other blocks, comments) never leaves.
    let private_key = SecretString::from(key_pem(&key_der));
    for (field, length, max) in [
        ("the certificate", certificate.len(), MAX_CERTIFICATE_CHARS),
        ("the chain", chain.len(), MAX_CHAIN_CHARS),
        ("the private key", private_key.expose_secret().len(), MAX_KEY_CHARS),
    ] {
        if length > max {
            return Err(format!(
                "{field} is {length} characters as PEM; SCM accepts at most {max}"
            ));
        }
    }
    let common_names = leaf.subject().iter_common_name().filter_map(|cn| cn.as_str().ok());
    let mut domains: Vec<String> = common_names.map(str::to_owned).collect();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                domains.push((*dns).to_owned());
            }
        }
    }
    let source = TlsSource {
        fingerprint: hex::encode(Sha256::digest(&ders[0])),
        not_after,
        domains,
        certificate,
        chain,
        private_key,
    };
    Ok((source, not_before))
}

/// `key` as the PEM block of its kind.
fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem_block(label, key.secret_der()).trim_end().to_owned()
}

/// A PEM block with 64-character lines.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Most characters of a `--cluster-name`: it goes whole into every import name, so that two clusters' names always
/// differ there, and what is left of [`MAX_NAME_CHARS`] still shows some of the namespace and name.
pub const MAX_CLUSTER_NAME_CHARS: usize = 24;

/// `--cluster-name`: the cluster whose operator made an import, when one SCM account serves the operators of several
/// clusters. Empty (the default) for an account that serves one cluster: import names are then what they were before
/// cluster names existed, so an installation keeps finding its own imports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterName(String);

impl ClusterName {
    /// `text` if it is empty (no cluster name) or a DNS label (lowercase letters, digits and `-`, starting and ending
    /// with a letter or digit) of at most [`MAX_CLUSTER_NAME_CHARS`]; the error says why not.
    pub fn parse(text: &str) -> Result<Self, String> {
        let label = text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if !label {
            return Err(format!(
                "{text:?} is not a cluster name: lowercase letters, digits and '-', starting and ending with a letter \
                 or digit"
            ));
        }
        if text.len() > MAX_CLUSTER_NAME_CHARS {
            return Err(format!(
                "{text:?} is {} characters long; a cluster name has at most {MAX_CLUSTER_NAME_CHARS} (it goes into \
                 every import name, which SCM limits to {MAX_NAME_CHARS})",
                text.len()
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name; empty when none was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClusterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SCM name of the import of certificate `fingerprint` for the CertificatePush `namespace/name` of the cluster
/// `cluster`: deterministic, so that a crash between import and status write finds the first import instead of
/// creating a second one, and unambiguous: a hash of the namespace and name (apart, so `a-b`/`c` and `a`/`b-c`
/// differ) follows a readable prefix, so two objects never share (and later delete) one import.
///
/// A cluster name goes first, whole, and ends at a `_`, which no cluster, namespace or object name holds: names of
/// two clusters differ in that prefix whatever follows, and none equals a name without a cluster (which has no `_`).
/// So an operator searching for its earlier import never finds, reuses and later deletes another cluster's, even of
/// the same namespace, name and certificate. Without a cluster name the name is exactly what it was before.
pub fn import_name(cluster: &ClusterName, namespace: &str, name: &str, fingerprint: &str) -> String {
    let fp = &fingerprint[..fingerprint.len().min(16)];
    let identity = hex::encode(Sha256::digest(format!("{namespace}/{name}")));
    let cluster = match cluster.as_str() {
        "" => String::new(),
        // ClusterName bounds its length, so the prefix always fits whole.
        cluster => format!("{cluster}_"),
    };
    let room = MAX_NAME_CHARS - "cpush--".len() - 8 - 1 - fp.len() - cluster.len();
    let readable: String = format!("{namespace}-{name}").chars().take(room).collect();
    format!("cpush-{cluster}{readable}-{}-{fp}", &identity[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// Within the test leaf's validity (2026-01-01 to 2026-04-01).
    fn now() -> Timestamp {
        "2026-02-01T00:00:00Z".parse().unwrap()
    }

    /// A CA, and a leaf it signed, as PEM: (leaf cert, leaf key, CA cert).
    fn chain() -> (String, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
        leaf_params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2026, 4, 1);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        (leaf.pem(), leaf_key.serialize_pem(), ca.pem())
    }

    #[test]
    fn a_leaf_with_its_chain_and_key_is_accepted_and_split() {
        let (leaf, key, ca) = chain();
        let source = parse(format!("{leaf}{ca}").as_bytes(), key.as_bytes(), now()).unwrap();
        assert_eq!(source.certificate.trim(), leaf.trim());
        assert_eq!(source.chain.trim(), ca.trim());
        assert_eq!(source.fingerprint.len(), 64);
        assert_eq!(source.not_after, "2026-04-01T00:00:00Z".parse().unwrap());
        assert!(
            source.domains.contains(&"www.example.com".to_owned()),
            "{:?}",
            source.domains
        );
        let debug = format!("{source:?}");
        assert!(
            !debug.contains("PRIVATE KEY") && debug.contains("[REDACTED]"),
            "{debug}"
        );
    }

    /// Defects: sizes were checked only after parsing (a 900 KiB Secret was parsed by every reconcile that read it),
    /// a chain could hold any number of certificates, a Secret of any type was read, and the key sent to SCM was
    /// tls.key as written, extra PEM blocks included.
    #[test]
    fn hostile_sources_are_refused_before_parsing_and_only_the_checked_key_is_sent() {
        let (leaf, key, ca) = chain();
        let huge = "A".repeat(MAX_TLS_CRT_BYTES + 1);
        let error = parse(huge.as_bytes(), key.as_bytes(), now()).unwrap_err().message;
        assert!(error.contains("at most 65536 bytes"), "{error}");
        let big_key = "A".repeat(MAX_TLS_KEY_BYTES + 1);
        let error = parse(leaf.as_bytes(), big_key.as_bytes(), now()).unwrap_err().message;
        assert!(
            error.contains("tls.key") && error.contains("at most 16384 bytes"),
            "{error}"
        );
        let long_chain = format!("{leaf}{}", ca.repeat(MAX_CHAIN_CERTIFICATES));
        let error = parse(long_chain.as_bytes(), key.as_bytes(), now()).unwrap_err().message;
        assert!(error.contains("more than 10 certificates"), "{error}");

        let padded = format!("# a comment\n{key}\n{leaf}");
        let source = parse(leaf.as_bytes(), padded.as_bytes(), now()).unwrap();
        let sent = source.private_key_pem();
        assert_eq!(sent.expose_secret(), key.trim());
        assert!(!sent.expose_secret().contains("CERTIFICATE"));

        let secret = |type_: Option<&str>| Secret {
            type_: type_.map(str::to_owned),
            data: Some(
                [(TLS_CRT, &leaf), (TLS_KEY, &key)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(TlsSource::from_secret(Some(&secret(Some(TLS_SECRET_TYPE))), "web-tls", now()).is_ok());
        let error = TlsSource::from_secret(Some(&secret(Some("Opaque"))), "web-tls", now()).unwrap_err();
        assert!(error.message.contains("not \"kubernetes.io/tls\""), "{}", error.message);
        assert!(TlsSource::from_secret(Some(&secret(None)), "web-tls", now()).is_err());
    }

    #[test]
    fn every_local_problem_is_reported_without_key_material() {
        let (leaf, key, ca) = chain();
        let (_, other_key, _) = chain();
        let cases = [
            (format!("{ca}{leaf}"), key.clone(), "out of order"),
            (leaf.clone(), other_key.clone(), "does not belong"),
            ("not pem".to_owned(), key.clone(), "no CERTIFICATE"),
            (leaf.clone(), "not a key".to_owned(), "no unencrypted"),
        ];
        for (crt, key_pem, expected) in cases {
            let error = parse(crt.as_bytes(), key_pem.as_bytes(), now())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{expected}: {error}");
            assert!(!error.contains("PRIVATE KEY"), "{error}");
        }
        let error = parse(leaf.as_bytes(), key.as_bytes(), "2026-04-02T00:00:00Z".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("expired"), "{error}");
        let error = parse(leaf.as_bytes(), key.as_bytes(), "2025-12-31T00:00:00Z".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("not valid before"), "{error}");
    }

    /// Defect: a leaf not valid yet was refused like a broken one, with nothing saying when it would do.
    #[test]
    fn a_leaf_not_valid_yet_says_from_when_once_everything_else_is_right() {
        let (leaf, key, _) = chain();
        let early: Timestamp = "2025-12-31T00:00:00Z".parse().unwrap();
        let error = parse(leaf.as_bytes(), key.as_bytes(), early).unwrap_err();
        assert_eq!(error.valid_from, Some("2026-01-01T00:00:00Z".parse().unwrap()));
        // Anything else wrong is reported first: waiting would not fix it.
        let (_, other_key, _) = chain();
        let error = parse(leaf.as_bytes(), other_key.as_bytes(), early).unwrap_err();
        assert!(
            error.valid_from.is_none() && error.message.contains("does not belong"),
            "{error:?}"
        );
        let secret = Secret {
            data: Some(
                [(TLS_CRT, &leaf), (TLS_KEY, &key)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            type_: Some(TLS_SECRET_TYPE.into()),
            ..Secret::default()
        };
        let error = TlsSource::from_secret(Some(&secret), "web-tls", early).unwrap_err();
        assert!(
            error.valid_from.is_some() && error.message.starts_with("source Secret \"web-tls\""),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_secret_or_key_names_what_is_expected() {
        let error = TlsSource::from_secret(None, "web-tls", now()).unwrap_err().to_string();
        assert!(error.contains("\"web-tls\" not found"), "{error}");
        let empty = Secret {
            type_: Some(TLS_SECRET_TYPE.into()),
            ..Secret::default()
        };
        let error = TlsSource::from_secret(Some(&empty), "web-tls", now())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tls.crt") && error.contains("kubernetes.io/tls"),
            "{error}"
        );
    }

    /// Defect: `cpush-<ns>-<name>-<fp>` was the same for namespace `a-b`/object `c` and namespace `a`/object `b-c`, so
    /// two objects importing one certificate shared an import (and one's deletion removed the other's).
    #[test]
    fn import_names_differ_for_every_namespace_and_name() {
        let fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let none = ClusterName::default();
        assert_ne!(
            import_name(&none, "team-a", "web", fp),
            import_name(&none, "team", "a-web", fp)
        );
        assert_ne!(import_name(&none, "n", "x-y", fp), import_name(&none, "n-x", "y", fp));
    }

    #[test]
    fn import_names_are_deterministic_valid_and_bounded() {
        let fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let identity = hex::encode(Sha256::digest("web/www"));
        // Without a cluster name, exactly the name imports had before cluster names existed: an installation that
        // upgrades still finds the import an answer was lost for.
        let none = ClusterName::default();
        assert_eq!(
            import_name(&none, "web", "www", fp),
            format!("cpush-web-www-{}-0123456789abcdef", &identity[..8])
        );
        let long = import_name(&none, &"n".repeat(63), &"x".repeat(253), fp);
        assert_eq!(long.len(), MAX_NAME_CHARS, "{long}");
        assert_eq!(long, import_name(&none, &"n".repeat(63), &"x".repeat(253), fp));
        assert_ne!(long, import_name(&none, &"n".repeat(63), &"y".repeat(253), fp));
        let east = ClusterName::parse("east").unwrap();
        assert_eq!(
            import_name(&east, "web", "www", fp),
            format!("cpush-east_web-www-{}-0123456789abcdef", &identity[..8])
        );
        let longest = ClusterName::parse(&"c".repeat(MAX_CLUSTER_NAME_CHARS)).unwrap();
        let long_in_cluster = import_name(&longest, &"n".repeat(63), &"x".repeat(253), fp);
        assert_eq!(long_in_cluster.len(), MAX_NAME_CHARS, "{long_in_cluster}");
        assert!(
            long_in_cluster.starts_with(&format!("cpush-{longest}_n")),
            "the cluster whole, then some of the namespace: {long_in_cluster}"
        );
        for name in [
            import_name(&none, "web", "www", fp),
            long,
            import_name(&east, "web", "www", fp),
            long_in_cluster,
        ] {
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
                "{name}"
            );
        }
    }

    /// Issue 29: two clusters whose operators share an SCM account, each with a CertificatePush of the same
    /// namespace and name importing the same certificate, had one import name, so a search for an earlier import (a
    /// lost answer) found the other cluster's, and the next renewal deleted it.
    #[test]
    fn import_names_of_two_clusters_never_meet() {
        let fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cluster = |name: &str| ClusterName::parse(name).unwrap();
        let names = [
            import_name(&ClusterName::default(), "web", "www", fp),
            import_name(&cluster("east"), "web", "www", fp),
            import_name(&cluster("west"), "web", "www", fp),
        ];
        assert!(
            names[0] != names[1] && names[1] != names[2] && names[0] != names[2],
            "{names:?}"
        );
        // A '-' in the cluster name cannot make one cluster's name another's: cluster "a-b" with namespace "c" and
        // cluster "a" with namespace "b-c" read alike without the '_' that ends the cluster.
        assert_ne!(
            import_name(&cluster("a-b"), "c", "web", fp),
            import_name(&cluster("a"), "b-c", "web", fp)
        );
        // Nor a name cut to fit: the cluster is never cut, the readable part after it is.
        let long = |c: &str| import_name(&cluster(c), &"n".repeat(63), &"x".repeat(253), fp);
        assert_ne!(long("east"), long("west"));
        // Nor a name without a cluster: none holds a '_' (a '.' would not do: object names may hold one).
        assert_ne!(
            import_name(&cluster("a-b"), "c", "web", fp),
            import_name(&ClusterName::default(), "a", "b.c-web", fp)
        );
        assert!(!names[0].contains('_'));
    }

    #[test]
    fn a_cluster_name_is_a_short_dns_label_or_none() {
        assert_eq!(ClusterName::parse("").unwrap(), ClusterName::default());
        for good in ["east", "prod-eu-1", "a", "0", &"c".repeat(MAX_CLUSTER_NAME_CHARS)] {
            assert_eq!(ClusterName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["East", "a_b", "a.b", "-a", "a-", "a b", "a/b", "é"] {
            let error = ClusterName::parse(bad).unwrap_err();
            assert!(error.contains("lowercase letters, digits and '-'"), "{bad:?}: {error}");
        }
        let error = ClusterName::parse(&"c".repeat(MAX_CLUSTER_NAME_CHARS + 1)).unwrap_err();
        assert!(error.contains("at most 24"), "{error}");
    }
}
