//! Verification of `SDK-HMAC-SHA256` signatures, the way Huawei's API gateway checks AK/SK requests.
//!
//! Written apart from the operator's signer on purpose (own canonicalisation code, `ring` instead of RustCrypto), so
//! that a mistake in the signer cannot be mirrored here and pass the tests: both are checked against the published
//! vectors instead of against each other.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use ring::{digest, hmac};

/// How far `X-Sdk-Date` may be from the server's clock, as the gateway allows.
const MAX_CLOCK_SKEW_SECONDS: i64 = 15 * 60;

/// The request as received, for verification.
pub(crate) struct Received<'a> {
    pub method: &'a str,
    /// Path as received (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...` header.
#[derive(Debug, PartialEq)]
pub(crate) struct Authorization<'a> {
    pub access_key: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Parses the header; `None` when it is not an `SDK-HMAC-SHA256` authorization.
pub(crate) fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("SDK-HMAC-SHA256 ")?;
    let mut fields = BTreeMap::new();
    for part in rest.split(", ") {
        let (name, value) = part.split_once('=')?;
        fields.insert(name, value);
    }
    Some(Authorization {
        access_key: fields.get("Access")?,
        signed_headers: fields.get("SignedHeaders")?,
        signature: fields.get("Signature")?,
    })
}

/// Why a signature was refused; the text follows the gateway's 401 `APIGW.0301` messages.
pub(crate) fn verify(
    received: &Received<'_>,
    authorization: &Authorization<'_>,
    secret_key: &str,
    now: jiff::Timestamp,
) -> Result<(), &'static str> {
    let date = header(received.headers, "x-sdk-date").ok_or("verify aksk signature fail: no X-Sdk-Date")?;
    let signed_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .ok_or("verify aksk signature fail: malformed X-Sdk-Date")?;
    if (now.as_second() - signed_at.timestamp().as_second()).abs() > MAX_CLOCK_SKEW_SECONDS {
        return Err("verify aksk signature fail: X-Sdk-Date is more than 15 minutes off");
    }
    let names: Vec<&str> = authorization.signed_headers.split(';').collect();
    if !names.contains(&"x-sdk-date") {
        return Err("verify aksk signature fail: x-sdk-date is not signed");
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = header(received.headers, name).ok_or("verify aksk signature fail: a signed header is missing")?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical_request = [
        received.method.to_owned(),
        canonical_uri(received.path),
        canonical_query(received.query.unwrap_or_default()),
        canonical_headers,
        authorization.signed_headers.to_owned(),
        sha256_hex(received.body),
    ]
    .join("\n");
    let string_to_sign = format!("SDK-HMAC-SHA256\n{date}\n{}", sha256_hex(canonical_request.as_bytes()));
    let expected = decode_hex(authorization.signature).ok_or("verify aksk signature fail")?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret_key.as_bytes());
    // Constant-time comparison, as a real verifier must do.
    hmac::verify(&key, string_to_sign.as_bytes(), &expected).map_err(|_| "verify aksk signature fail")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `%XX` decoding; `+` stays literal in paths, becomes a space in queries (`plus_is_space`).
pub(crate) fn unescape(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes.get(i + 1..i + 3).and_then(|pair| {
            let digit = |b: u8| char::from(b).to_digit(16);
            Some(digit(pair[0])? * 16 + digit(pair[1])?)
        });
        match bytes[i] {
            b'%' if hex_pair.is_some() => {
                out.extend(hex_pair.and_then(|v| u8::try_from(v).ok()));
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Unreserved bytes stay, everything else becomes upper-case `%XX`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_uri(path: &str) -> String {
    let mut uri: String = path
        .split('/')
        .map(|segment| escape(&unescape(segment, false)))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (escape(&unescape(name, true)), escape(&unescape(value, true)))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(entries: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in entries {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// The official guide's example (vector J0 of `shared/scm-api.md`), as a gateway would receive it.
    #[test]
    fn accepts_the_official_guide_example_and_refuses_any_change() {
        let received_headers = headers(&[
            ("content-type", "application/json"),
            ("host", "service.region.example.com"),
            ("x-sdk-date", "20191115T033655Z"),
        ]);
        let authorization = "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, \
                             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe";
        let parsed = parse_authorization(authorization).unwrap();
        assert_eq!(parsed.access_key, "QTWAOYTTINDUT2QVKYUC");
        let received = Received {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: Some("limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"),
            headers: &received_headers,
            body: b"",
        };
        let sk = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";
        let then: jiff::Timestamp = "2019-11-15T03:40:00Z".parse().unwrap();
        assert_eq!(verify(&received, &parsed, sk, then), Ok(()));

        assert!(verify(&received, &parsed, "wrong", then).is_err(), "wrong secret key");
        let changed_body = Received {
            body: b"{}",
            ..received
        };
        assert!(
            verify(&changed_body, &parsed, sk, then).is_err(),
            "body not signed like this"
        );
        let changed_query = Received {
            query: Some("limit=3&marker=13551d6b-755d-4757-b956-536f674975c0"),
            ..received
        };
        assert!(verify(&changed_query, &parsed, sk, then).is_err(), "query changed");
        let later: jiff::Timestamp = "2019-11-15T03:52:00Z".parse().unwrap();
        assert!(
            verify(&received, &parsed, sk, later).is_err(),
            "more than 15 minutes late"
        );
    }

    /// Go SDK vector G1: only `x-sdk-date` signed, headers it does not sign are ignored.
    #[test]
    fn accepts_the_go_sdk_vector() {
        let received_headers = headers(&[("x-sdk-date", "20060102T150405Z"), ("host", "example.huaweicloud.com")]);
        let received = Received {
            method: "GET",
            path: "/path",
            query: Some("limit=1"),
            headers: &received_headers,
            body: b"",
        };
        let parsed = parse_authorization(
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
        )
        .unwrap();
        let then: jiff::Timestamp = "2006-01-02T15:04:05Z".parse().unwrap();
        assert_eq!(verify(&received, &parsed, "SecretKey", then), Ok(()));
    }

    #[test]
    fn query_canonicalisation_matches_the_sdk_tests() {
        assert_eq!(
            canonical_query(
                "test=%E4%B8%80%20(%26%3D%3F!%23%25.*)&limit=1&path=/tmp/123&multi=3&multi=1&multi=2&enable=true"
            ),
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
        assert_eq!(canonical_uri("/a%20b/c*"), "/a%20b/c%2A/");
        assert_eq!(canonical_uri(""), "/");
    }

    #[test]
    fn malformed_authorization_headers_are_not_parsed() {
        for bad in [
            "Bearer x",
            "SDK-HMAC-SHA256 Access=a, SignedHeaders=x-sdk-date",
            "SDK-HMAC-SHA256 garbage",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }
}
