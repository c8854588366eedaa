//! The condition reasons the operator writes, and what ends each state: the one table the policy, the status
//! transitions and the README's failure-reason table read.

use serde::{Deserialize, Serialize};

use crate::crd::{from_wire_name, wire_name};
use crate::scm::FailureKind;

/// Every reason the operator writes into conditions; serde's names for the variants are the condition reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// Seen, not pushed yet.
    Pending,
    /// SCM accepted the push.
    Pushed,
    /// The push is done; SCM has not deployed it to every resource of spec.deploy yet.
    Deploying,
    /// The push is done; SCM deployed it to every resource of spec.deploy.
    Deployed,
    /// The push is done; SCM failed to deploy it to some resource of spec.deploy, which is retried alone.
    DeployFailed,
    /// A transient failure; a retry is scheduled.
    Retrying,
    /// The Secret or its key is missing.
    CredentialsNotFound,
    /// The token in the Secret cannot be valid.
    InvalidCredentials,
    /// spec.accountRef names an account that does not exist.
    AccountNotFound,
    /// The ClusterSCMAccount named does not allow the object's namespace.
    AccountNotAllowed,
    /// The account's spec cannot be used.
    InvalidAccount,
    /// SCM answered 401.
    Unauthorized,
    /// SCM's gateway locked the access key after repeated signature failures; tried again once the lock is over.
    CredentialsLocked,
    /// SCM answered 403.
    Forbidden,
    /// SCM answered 404.
    CertificateNotFound,
    /// SCM refused the push.
    PushRejected,
    /// SCM refused a region of targetProjects for good.
    RegionRejected,
    /// The spec names neither or both of certificateId and sourceSecretRef.
    InvalidSpec,
    /// The source TLS Secret is missing or its certificate cannot be imported.
    InvalidSource,
    /// The source TLS Secret's certificate is right in every way but is not valid yet: it is imported and pushed
    /// at its `notBefore`.
    NotYetValid,
}

/// What brings a failure state back to a push, besides a spec change or a new push-requested-at value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lift {
    /// Not a failure.
    None,
    /// Retried on its own, with backoff.
    Backoff,
    /// Any change of the Secret: nothing was sent, so re-reading it costs SCM nothing.
    SecretChange,
    /// A different credential in the Secret (its digest), not a label or annotation edit.
    CredentialChange,
    /// Only a spec change; a stall blamed on the endpoint also lifts when --scm-endpoint changes.
    SpecChange,
}

impl Reason {
    /// Every reason, in the README's order.
    pub const ALL: [Reason; 20] = [
        Reason::Pending,
        Reason::Pushed,
        Reason::Deploying,
        Reason::Deployed,
        Reason::DeployFailed,
        Reason::Retrying,
        Reason::CredentialsNotFound,
        Reason::InvalidCredentials,
        Reason::AccountNotFound,
        Reason::AccountNotAllowed,
        Reason::InvalidAccount,
        Reason::Unauthorized,
        Reason::CredentialsLocked,
        Reason::Forbidden,
        Reason::CertificateNotFound,
        Reason::PushRejected,
        Reason::RegionRejected,
        Reason::InvalidSpec,
        Reason::InvalidSource,
        Reason::NotYetValid,
    ];

    /// Parses a reason read back from status.
    pub fn parse(s: &str) -> Option<Self> {
        from_wire_name(s)
    }

    /// What ends this state; the policy and the README's table both read it from here.
    pub fn lift(self) -> Lift {
        match self {
            // Deploy has its own retries (per resource); for the push these are done.
            Reason::Pending | Reason::Pushed | Reason::Deploying | Reason::Deployed | Reason::DeployFailed => {
                Lift::None
            }
            // Time alone lifts it: the retry is due at the certificate's notBefore.
            // The lock ends on its own (5 minutes); the credential may be right.
            Reason::Retrying | Reason::NotYetValid | Reason::CredentialsLocked => Lift::Backoff,
            // Nothing was sent: the Secrets are read again whenever one changes.
            // An account, its conditions or its Secret may appear or change at any time: read again on each.
            Reason::CredentialsNotFound
            | Reason::InvalidCredentials
            | Reason::InvalidSource
            | Reason::AccountNotFound
            | Reason::AccountNotAllowed
            | Reason::InvalidAccount => Lift::SecretChange,
            // A 404 sent nothing anywhere, and another account's credential may see the certificate.
            Reason::Unauthorized | Reason::Forbidden | Reason::CertificateNotFound => Lift::CredentialChange,
            // A refusal may be SCM refusing a repeat of a push that landed: a new credential must not re-send it.
            // A region SCM does not know stays unknown until targetProjects changes.
            Reason::PushRejected | Reason::RegionRejected | Reason::InvalidSpec => Lift::SpecChange,
        }
    }

    /// Whether this state waits for a human (a changed spec, Secret or re-push annotation).
    pub fn stalls(self) -> bool {
        !matches!(self.lift(), Lift::None | Lift::Backoff)
    }

    /// The causes of this state, as the README's failure table says them.
    fn cause(self) -> &'static str {
        match self {
            Reason::Pending => "seen, not pushed yet",
            Reason::Pushed => "SCM answered HTTP 204",
            Reason::Deploying => "pushed; the deploy to spec.deploy's resources is due or under way",
            Reason::Deployed => "pushed and deployed to every resource of spec.deploy",
            Reason::DeployFailed => "pushed; SCM's deploy failed on some resource, which is retried alone with backoff",
            Reason::Retrying => {
                "nothing sent (connect error), no answer after sending (timeout, reset: the outcome is unknown, \
                 see below), 408, 429 (`APIGW.0308`), 502/503/504, or a 5xx whose code is `APIGW.*`/`APIG.*` or missing; \
                 also the same from IAM asked for the `domainId` of an access key without one (the push is not sent)"
            }
            Reason::CredentialsNotFound => "the Secret does not exist; nothing is sent",
            Reason::InvalidCredentials => {
                "the Secret holds neither a token nor `accessKey`+`secretKey`, or both kinds, or a malformed value \
                 (a token shorter than 32 characters after trimming, an AK that is not letters and digits, \
                 `projectId` and `domainId` together); or an access key without `domainId` or `projectId` whose \
                 account id IAM did not tell (no `--iam-endpoint` for this site, IAM's 403, an empty list: the \
                 message names `domainId`); nothing is sent to SCM"
            }
            Reason::AccountNotFound => {
                "`spec.accountRef` names an SCMAccount (in the object's namespace) or ClusterSCMAccount that does \
                 not exist; nothing is sent"
            }
            Reason::AccountNotAllowed => {
                "the ClusterSCMAccount's `spec.conditions` do not allow the object's namespace (no conditions allow \
                 none); nothing is sent"
            }
            Reason::InvalidAccount => {
                "the account's endpoint is plain http without `--allow-insecure-endpoint`, or not a URL, or it sets \
                 both `domainId` and `projectId`; nothing is sent"
            }
            Reason::Unauthorized => {
                "SCM answered 401 (`APIGW.0301` bad token or signature, unknown AK; `APIGW.0307` expired token), to \
                 this object or to any other request with the same credential, or IAM did when asked for the \
                 `domainId` of an access key without one: it is never sent again (nothing is sent for other objects \
                 that share it) until it changes"
            }
            Reason::CredentialsLocked => {
                "SCM answered 401 `APIGW.0301` saying the access key reached its failure limit (Huawei locks it for \
                 5 minutes after more than five signature failures); nothing is sent with it until the lock is over"
            }
            Reason::Forbidden => {
                "SCM answered 403 (the IAM user lacks `scm:cert:push`); a gateway 403 (`APIGW.*`) holds back every \
                 request with that credential, as a 401 does"
            }
            Reason::CertificateNotFound => "SCM answered 404 (no such certificate)",
            Reason::PushRejected => {
                "any other 4xx, a 5xx with another code (`SCM.*`), a 404 `APIGW.0101` or a 2xx other than 204 \
                 (both: wrong `--scm-endpoint`); also an import SCM refused"
            }
            Reason::RegionRejected => {
                "a batch push's answer refused a region of `targetProjects` for good (for example `Invalid region \
                 id.`); the message names it, and the other regions hold the certificate"
            }
            Reason::InvalidSpec => {
                "the spec sets neither or both of `certificateId` and `sourceSecretRef` (stored before the schema \
                 checked it); nothing is sent"
            }
            Reason::InvalidSource => {
                "the source Secret is missing, or its certificate cannot be imported: PEM that does not parse, a \
                 key that does not belong to the leaf, a leaf outside its validity window, a chain out of order, \
                 or parts longer than SCM accepts; nothing is sent"
            }
            Reason::NotYetValid => {
                "the source Secret's certificate passes every check but its `notBefore` is in the future; nothing is \
                 sent until then"
            }
        }
    }

    /// When this state ends, as the README's failure table says it.
    fn when_lifted(self) -> &'static str {
        match self {
            Reason::NotYetValid => {
                return "yes, at its `notBefore` (plus 10 s for clock skew), or when the Secret changes";
            }
            Reason::AccountNotFound => return "when the account appears or changes",
            Reason::AccountNotAllowed => {
                return "when the account's conditions change (a namespace's new labels: at the next resync)";
            }
            Reason::InvalidAccount => return "when the account changes",
            _ => {}
        }
        match self.lift() {
            Lift::None => "-",
            Lift::Backoff => "yes, with backoff",
            Lift::SecretChange => "when the Secret changes",
            Lift::CredentialChange => "when the credential in the Secret changes (not its labels or annotations)",
            Lift::SpecChange => "when the spec changes; a wrong-endpoint stall also when `--scm-endpoint` changes",
        }
    }

    /// The README's failure-reason table, generated so that the documentation cannot drift from the code.
    pub fn table() -> String {
        let mut out = String::from(
            "| Reason | Cause | Pushed again (besides a spec change or a new re-push annotation) |\n|---|---|---|\n",
        );
        for r in Self::ALL.into_iter().filter(|r| r.lift() != Lift::None) {
            out.push_str(&format!("| `{}` | {} | {} |\n", r, r.cause(), r.when_lifted()));
        }
        out
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&wire_name(self))
    }
}

impl From<FailureKind> for Reason {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Transient | FailureKind::Deferred => Reason::Retrying,
            FailureKind::Unauthorized => Reason::Unauthorized,
            FailureKind::Locked => Reason::CredentialsLocked,
            FailureKind::Forbidden => Reason::Forbidden,
            FailureKind::CertificateNotFound => Reason::CertificateNotFound,
            FailureKind::Rejected => Reason::PushRejected,
            FailureKind::RegionRejected => Reason::RegionRejected,
            FailureKind::InvalidCredentials => Reason::InvalidCredentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_failure_table_is_generated_from_the_code() {
        let readme = include_str!("../../README.md");
        let table = Reason::table();
        assert!(
            readme.contains(&table),
            "README.md's failure-reason table differs from the code; replace it with:\n{table}"
        );
    }

    #[test]
    fn reasons_roundtrip_and_classify() {
        for r in [
            Reason::Unauthorized,
            Reason::Pushed,
            Reason::Retrying,
            Reason::InvalidCredentials,
        ] {
            assert_eq!(Reason::parse(&r.to_string()), Some(r));
        }
        assert!(Reason::PushRejected.stalls() && Reason::CredentialsNotFound.stalls());
        assert!(!Reason::Retrying.stalls() && !Reason::Pushed.stalls());
        // A refusal SCM sent waits for a new credential; a problem found before sending is re-read on any change.
        assert_eq!(Reason::Unauthorized.lift(), Lift::CredentialChange);
        assert_eq!(Reason::InvalidCredentials.lift(), Lift::SecretChange);
    }
}
