//! Huawei's `SDK-HMAC-SHA256` request signing (API Gateway AK/SK authentication) as pure functions of a request.
//!
//! No Rust crate signs for Huawei's gateway, so this follows the algorithm of Huawei's signing guide and SDKs
//! (`shared/scm-api.md` section 5), one function per step so that each can be checked against the published
//! vectors:
//!
//! 1. [`canonical_request`]: method, [`canonical_uri`] (always ending in `/`), [`canonical_query`] (encoded,
//!    sorted), the signed headers as `name:trimmed-value` lines, their names joined by `;`, and the hex SHA-256
//!    of the exact body bytes;
//! 2. [`string_to_sign`]: the algorithm name, the `X-Sdk-Date` value and the hex SHA-256 of the canonical request;
//! 3. [`signature`]: hex HMAC-SHA256 of the string to sign, keyed by the secret key itself (no key derivation);
//! 4. [`authorization`]: `SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`.
//!
//! The secret key enters only [`signature`]; nothing here logs or formats it.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::Url;
use sha2::{Digest, Sha256};

/// The `Authorization` scheme and the first line of the string to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// Header carrying the signing time; always signed.
pub const DATE_HEADER: &str = "X-Sdk-Date";

/// Everything but the unreserved characters `A-Z a-z 0-9 - _ . ~` is percent-encoded (upper-case hex).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The parts of a request that its signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The URL the request goes to; only its path and query are signed (the host is signed as a header).
    pub url: &'a Url,
    /// The headers to sign, as sent; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes sent (empty when there is no body).
    pub body: &'a [u8],
}

/// `X-Sdk-Date` for `now`: UTC as `YYYYMMDDTHHMMSSZ`.
pub fn sdk_date(now: jiff::Timestamp) -> String {
    now.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// The URL path with every segment re-encoded and a trailing `/` added, which exists only in the signed form.
pub fn canonical_uri(url: &Url) -> String {
    let mut uri = url
        .path()
        .split('/')
        .map(|segment| encode(&percent_decode_str(segment).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The query as encoded `key=value` pairs sorted by key, then value; empty without a query.
pub fn canonical_query(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| (encode(&key), encode(&value)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-cased header names, sorted, with trimmed values.
fn sorted_headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    sorted.sort();
    sorted
}

/// The `SignedHeaders` value: lower-cased names, sorted, joined by `;`.
pub fn signed_headers(headers: &[(&str, &str)]) -> String {
    sorted_headers(headers)
        .into_iter()
        .map(|(name, _)| name)
        .collect::<Vec<_>>()
        .join(";")
}

/// Lower-case hex SHA-256.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The six lines of the canonical request, joined by `\n`.
pub fn canonical_request(parts: &SignedParts<'_>) -> String {
    let canonical_headers: String = sorted_headers(parts.headers)
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    [
        parts.method.to_ascii_uppercase(),
        canonical_uri(parts.url),
        canonical_query(parts.url),
        canonical_headers,
        signed_headers(parts.headers),
        hex_sha256(parts.body),
    ]
    .join("\n")
}

/// `SDK-HMAC-SHA256\n{date}\n{hex SHA-256 of the canonical request}`.
pub fn string_to_sign(date: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{date}\n{}", hex_sha256(canonical_request.as_bytes()))
}

/// Hex HMAC-SHA256 of `string_to_sign` keyed by the secret key's bytes.
pub fn signature(secret_key: &str, string_to_sign: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value for a request whose `X-Sdk-Date` header (among `parts.headers`) is `date`.
pub fn authorization(access_key: &str, secret_key: &str, date: &str, parts: &SignedParts<'_>) -> String {
    let to_sign = string_to_sign(date, &canonical_request(parts));
    format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={}",
        signed_headers(parts.headers),
        signature(secret_key, &to_sign)
    )
}

#[cfg(test)]
mod tests {
    //! The published vectors of `shared/scm-api.md` section 5.2, step by step.

    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    /// Go SDK `signer_test.go`: only `x-sdk-date` is signed (the `TEST_UNDERSCORE` header is skipped by the SDK).
    #[test]
    fn go_sdk_vector_g1() {
        let url = url("https://example.huaweicloud.com/path?limit=1");
        let headers = [("X-Sdk-Date", "20060102T150405Z")];
        let parts = SignedParts {
            method: "GET",
            url: &url,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&parts);
        assert_eq!(
            canonical,
            format!("GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n{EMPTY_SHA256}")
        );
        assert_eq!(
            hex_sha256(canonical.as_bytes()),
            "85c3b7730f308aee452b16138a42a914397e43a8f0d732dfa521c0ef2afa98a4"
        );
        assert_eq!(
            authorization("AccessKey", "SecretKey", "20060102T150405Z", &parts),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
    }

    /// Python SDK `test_signer.py`: the signer adds and signs `Host`.
    #[test]
    fn python_sdk_vector_p1() {
        let url = url("https://service.endpoint.myhuaweicloud.com/resources?size=1");
        let headers = [
            ("X-Sdk-Date", "20200608T023900Z"),
            ("Host", "service.endpoint.myhuaweicloud.com"),
        ];
        let parts = SignedParts {
            method: "GET",
            url: &url,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            hex_sha256(canonical_request(&parts).as_bytes()),
            "de94dd1e1ccdb730b403ce35d7e14f7c7b04337f6def1c3a3a2ba936852b133f"
        );
        assert_eq!(
            authorization("AccessKey", "SecretKey", "20200608T023900Z", &parts),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, \
             Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
        );
    }

    /// Java SDK `TestAKSKSigner.java`, the official signing guide's example: every intermediate value.
    #[test]
    fn official_guide_vector_j0() {
        let url = url(
            "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs\
             ?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
        );
        // Deliberately unsorted and mixed case: ordering and lower-casing are the signer's job.
        let headers = [
            ("X-Sdk-Date", "20191115T033655Z"),
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
        ];
        let parts = SignedParts {
            method: "GET",
            url: &url,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&parts);
        assert_eq!(
            canonical,
            "GET\n\
             /v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n\
             limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n\
             content-type:application/json\n\
             host:service.region.example.com\n\
             x-sdk-date:20191115T033655Z\n\
             \n\
             content-type;host;x-sdk-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign("20191115T033655Z", &canonical);
        assert_eq!(
            to_sign,
            "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
        assert_eq!(
            signature("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", &to_sign),
            "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
        assert_eq!(
            authorization(
                "QTWAOYTTINDUT2QVKYUC",
                "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
                "20191115T033655Z",
                &parts
            ),
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, \
             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    /// The SDKs' shared query test: encoding, sorting by key, repeated keys sorted by value.
    #[test]
    fn query_encoding_matches_the_sdk_tests() {
        let url = url(
            "https://x/?test=%E4%B8%80%20(%26%3D%3F!%23%25.*)&limit=1&path=/tmp/123&multi=3&multi=1&multi=2&enable=true",
        );
        assert_eq!(
            canonical_query(&url),
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
        assert_eq!(canonical_query(&self::url("https://x/p")), "");
    }

    #[test]
    fn uri_gets_a_trailing_slash_and_reencoded_segments() {
        assert_eq!(
            canonical_uri(&url("https://x/v3/scm/certificates/scs1554192131150/push")),
            "/v3/scm/certificates/scs1554192131150/push/"
        );
        assert_eq!(canonical_uri(&url("https://x")), "/");
        assert_eq!(canonical_uri(&url("https://x/a%20b/c*/")), "/a%20b/c%2A/");
    }

    #[test]
    fn body_bytes_and_every_header_value_change_the_signature() {
        let url = url("https://scm.example.com/v3/scm/certificates/scs1554192131150/push");
        let sign = |body: &[u8], project: &str| {
            let headers = [("X-Sdk-Date", "20261125T120000Z"), ("X-Project-Id", project)];
            let parts = SignedParts {
                method: "POST",
                url: &url,
                headers: &headers,
                body,
            };
            authorization("AK", "SK", "20261125T120000Z", &parts)
        };
        let base = sign(b"{}", "p1");
        assert_ne!(base, sign(b"{}\n", "p1"), "the exact body bytes are signed");
        assert_ne!(base, sign(b"{}", "p2"));
        assert_eq!(base, sign(b"{}", " p1 "), "values are trimmed before signing");
        assert!(!base.contains("SK,") && base.contains("SignedHeaders=x-project-id;x-sdk-date"));
    }

    #[test]
    fn sdk_date_is_utc_in_the_compact_form() {
        let ts: jiff::Timestamp = "2019-11-15T03:36:55Z".parse().unwrap();
        assert_eq!(sdk_date(ts), "20191115T033655Z");
    }
}
