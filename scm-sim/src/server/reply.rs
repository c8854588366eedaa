//! What handlers answer: [`SimReply`], turned into HTTP with what the call record needs, and the gateway's and SCM's
//! error answers shared by both APIs.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::record::RequestId;
use crate::wire::ErrorBody;

/// Response extension asking the connection loop to close the connection instead of answering.
#[derive(Clone, Copy)]
pub(super) struct DropConnection;

/// Response extension: what the [`Call`](crate::Call) record needs from a handler's answer.
#[derive(Clone, Default)]
pub(super) struct Recorded {
    pub(super) error_code: Option<String>,
    /// Certificate id from the path, or the one an import created.
    pub(super) certificate_id: Option<String>,
}

/// A response before it is turned into HTTP, carrying what the call record needs.
pub(super) struct SimReply {
    status: StatusCode,
    body: Bytes,
    content_type: Option<&'static str>,
    retry_after: Option<u64>,
    recorded: Recorded,
    /// Close the connection instead of answering.
    drop_connection: bool,
}

impl SimReply {
    /// A bodiless answer, e.g. 204 for a push that landed.
    pub(super) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: Bytes::new(),
            content_type: None,
            retry_after: None,
            recorded: Recorded::default(),
            drop_connection: false,
        }
    }

    /// No answer at all: the connection is closed.
    pub(super) fn dropped() -> Self {
        Self {
            drop_connection: true,
            ..Self::empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }

    /// A JSON answer with this body.
    pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Self {
        // Bodies are JSON values and plain structs of strings and numbers, which always serialise.
        let body = serde_json::to_vec(body).expect("a JSON body serialises");
        Self {
            body: Bytes::from(body),
            content_type: Some("application/json"),
            ..Self::empty(status)
        }
    }

    /// Records the error code the body carries.
    pub(super) fn with_error_code(mut self, code: &str) -> Self {
        self.recorded.error_code = Some(code.to_owned());
        self
    }

    /// Records which certificate the call was about.
    pub(super) fn about(mut self, certificate_id: &str) -> Self {
        self.recorded.certificate_id = Some(certificate_id.to_owned());
        self
    }

    /// SCM service errors carry no request id in the body.
    pub(super) fn scm_error(status: StatusCode, code: &str, msg: &str) -> Self {
        Self::error(status, code, msg, None)
    }

    /// API gateway errors repeat the request id in the body.
    pub(super) fn gateway_error(status: StatusCode, code: &str, msg: &str, request_id: &RequestId) -> Self {
        Self::error(status, code, msg, Some(request_id.0.clone()))
    }

    /// The error body both SCM and the gateway use, recorded under its code.
    fn error(status: StatusCode, code: &str, msg: &str, request_id: Option<String>) -> Self {
        let body = ErrorBody {
            error_code: code.to_owned(),
            error_msg: msg.to_owned(),
            request_id,
        };
        Self::json(status, &body).with_error_code(code)
    }

    /// SCM's catch-all for a request it cannot accept (400 `SCM.0005`).
    pub(super) fn bad_request(msg: &str) -> Self {
        Self::scm_error(StatusCode::BAD_REQUEST, "SCM.0005", msg)
    }

    /// A fault's raw body, labelled JSON only when it parses as JSON.
    pub(super) fn raw(status: StatusCode, body: String, retry_after: Option<u64>) -> Self {
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        let content_type = match (&parsed, body.is_empty()) {
            (_, true) => None,
            (Some(_), false) => Some("application/json"),
            (None, false) => Some("text/plain; charset=utf-8"),
        };
        let error_code = parsed
            .as_ref()
            .and_then(|v| v.get("error_code"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Self {
            body: Bytes::from(body),
            content_type,
            retry_after,
            recorded: Recorded {
                error_code,
                certificate_id: None,
            },
            ..Self::empty(status)
        }
    }
}

impl IntoResponse for SimReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        match self.content_type {
            Some(content_type) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            None => {
                headers.remove(CONTENT_TYPE);
            }
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self.recorded);
        if self.drop_connection {
            response.extensions_mut().insert(DropConnection);
        }
        response
    }
}

/// The gateway's 404 for a path or method it does not route (`APIGW.0101`).
pub(super) fn not_an_api(request_id: &RequestId) -> SimReply {
    SimReply::gateway_error(
        StatusCode::NOT_FOUND,
        "APIGW.0101",
        "The API does not exist or has not been published in the environment.",
        request_id,
    )
}

/// A body too large or cut off before any handler saw it: 413 with SCM's parameter error.
pub(super) fn body_unreadable() -> SimReply {
    SimReply::scm_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "SCM.0005",
        "Incorrect request parameter.",
    )
}
