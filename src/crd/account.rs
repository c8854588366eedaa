//! The account kinds: `SCMAccount` (used by CertificatePushes of its namespace) and `ClusterSCMAccount` (used by
//! those of the namespaces its conditions allow), like cert-manager's Issuer and ClusterIssuer. An account says
//! which SCM site to talk to, with which credentials and at which rate, so application teams push without holding
//! the keys.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, CredentialsRef};

/// A Huawei Cloud site, named by the region of its SCM endpoint (SCM is one endpoint per site, not per region).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Site {
    /// Chinese-mainland site.
    #[serde(rename = "cn-north-4")]
    CnNorth4,
    /// International site (Hong Kong and the other regions outside the Chinese mainland and Europe).
    #[serde(rename = "ap-southeast-1")]
    ApSoutheast1,
    /// Europe site (myhuaweicloud.eu).
    #[serde(rename = "eu-west-101")]
    EuWest101,
    /// Kuala Lumpur region site.
    #[serde(rename = "my-kualalumpur-1")]
    MyKualalumpur1,
}

impl Site {
    /// The documented SCM endpoint of this site.
    pub fn endpoint(self) -> &'static str {
        match self {
            Site::CnNorth4 => "https://scm.cn-north-4.myhuaweicloud.com",
            Site::ApSoutheast1 => "https://scm.ap-southeast-1.myhuaweicloud.com",
            Site::EuWest101 => "https://scm.eu-west-101.myhuaweicloud.eu",
            Site::MyKualalumpur1 => "https://scm.my-kualalumpur-1.myhuaweicloud.com",
        }
    }
}

/// Requests per second to SCM for one account, replacing the operator's --scm-qps/--scm-burst for it.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests per second (1 to 1000); a 429 from SCM halves it for a while.
    #[schemars(range(min = 1, max = 1000))]
    pub qps: u32,
    /// Requests that may go out at once before qps applies (1 to 1000). Default: twice qps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// The burst in effect: as set, else twice the rate.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.qps.saturating_mul(2))
    }
}

/// Where, as whom and how fast an account talks to SCM; the same for both account kinds.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSettings {
    /// The Huawei Cloud site of the SCM account, by its SCM region: cn-north-4 (Chinese mainland), ap-southeast-1
    /// (international), eu-west-101 (Europe) or my-kualalumpur-1. Exactly one of site and endpoint is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,

    /// Base URL of the SCM API, https (a proxy in front of SCM, for example); plain http only when the operator
    /// runs with --allow-insecure-endpoint (a simulator). Exactly one of site and endpoint is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 512), pattern(r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,

    /// The Secret that holds the account's credentials: an IAM token (under tokenKey), or an access key pair (keys
    /// accessKey and secretKey, optionally projectId or domainId, and securityToken for temporary keys). For an
    /// SCMAccount it is in the account's namespace; for a ClusterSCMAccount in the operator's namespace
    /// (--cluster-resource-namespace).
    pub credentials_ref: CredentialsRef,

    /// The account (domain) ID sent as X-Domain-Id with an access key pair, instead of the Secret's domainId. At
    /// most one of domainId and projectId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub domain_id: Option<String>,

    /// The IAM project ID sent as X-Project-Id with an access key pair, instead of the Secret's projectId. At most
    /// one of domainId and projectId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub project_id: Option<String>,

    /// Enterprise project of certificates imported with this account, and the default of WAF deploy resources
    /// that name none. Unset: SCM's default enterprise project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub enterprise_project_id: Option<String>,

    /// Base URL of the IAM API that tells an access key without domainId (or projectId) its account ID, as
    /// Huawei's SDK asks it. Default: the IAM endpoint of the account's site, or --iam-endpoint when the account's
    /// endpoint is the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 512), pattern(r"^https?://[^\s]+$"))]
    pub iam_endpoint: Option<String>,

    /// Requests per second to SCM with this account's credentials, replacing --scm-qps and --scm-burst for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// The CEL rules both account kinds check on admission (reconcile checks them again).
macro_rules! account_rules {
    () => {
        serde_json::json!([{
            "rule": "has(self.site) != has(self.endpoint)",
            "message": "set exactly one of site (a Huawei Cloud site such as ap-southeast-1) and endpoint (an https URL)"
        }, {
            "rule": "!(has(self.domainId) && has(self.projectId))",
            "message": "set at most one of domainId and projectId"
        }])
    };
}

/// An SCM account for the CertificatePushes of its own namespace (spec.accountRef kind SCMAccount).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "scm.certpush.dev",
    version = "v1alpha1",
    kind = "SCMAccount",
    plural = "scmaccounts",
    singular = "scmaccount",
    namespaced,
    shortname = "scmacct",
    category = "certpush",
    status = "AccountStatus",
    doc = "SCMAccount is a Huawei Cloud SCM account (site, credentials Secret, rate limit) that the CertificatePushes of its namespace use through spec.accountRef, so they need no credentials of their own.",
    printcolumn = r#"{"name":"Site","type":"string","jsonPath":".spec['site','endpoint']"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Used By","type":"integer","jsonPath":".status.usedBy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = account_rules!()))]
pub struct SCMAccountSpec {
    /// Site, credentials and limits.
    #[serde(flatten)]
    pub account: AccountSettings,
}

/// An SCM account for the CertificatePushes of the namespaces its conditions allow (spec.accountRef kind
/// ClusterSCMAccount). Its credentials Secret lives in the operator's namespace, out of the teams' reach.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "scm.certpush.dev",
    version = "v1alpha1",
    kind = "ClusterSCMAccount",
    plural = "clusterscmaccounts",
    singular = "clusterscmaccount",
    shortname = "cscmacct",
    category = "certpush",
    status = "AccountStatus",
    doc = "ClusterSCMAccount is a Huawei Cloud SCM account (site, credentials Secret in the operator's namespace, rate limit) that CertificatePushes of the namespaces allowed by spec.conditions use through spec.accountRef, so application teams push without holding the keys.",
    printcolumn = r#"{"name":"Site","type":"string","jsonPath":".spec['site','endpoint']"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Used By","type":"integer","jsonPath":".status.usedBy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = account_rules!()))]
pub struct ClusterSCMAccountSpec {
    /// Site, credentials and limits.
    #[serde(flatten)]
    pub account: AccountSettings,

    /// Which namespaces may use this account: a CertificatePush may if its namespace matches any one condition
    /// (within a condition, both namespaceSelector and namespaces must match when both are set). Empty (the
    /// default): no namespace may, so an account is never shared by accident. A CertificatePush elsewhere gets
    /// Ready=False reason AccountNotAllowed and nothing is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub conditions: Vec<AccountCondition>,
}

/// Namespaces allowed to use a ClusterSCMAccount.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.namespaceSelector) || has(self.namespaces)",
    "message": "set namespaceSelector, namespaces, or both"
}]))]
pub struct AccountCondition {
    /// Namespaces whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,

    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
}

/// Observed state of an account, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: True when the credentials Secret exists and holds one usable credential (no SCM request is made
    /// just to check it, so a wrong key costs no lockout); False with reason CredentialsNotFound,
    /// InvalidCredentials, InvalidAccount, or Unauthorized once SCM refused the credential (it is not sent again
    /// until it changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// How many CertificatePushes name this account in spec.accountRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<i64>,
}

/// Which kind of account spec.accountRef names.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AccountKind {
    /// A namespaced SCMAccount in the CertificatePush's namespace.
    #[serde(rename = "SCMAccount")]
    Namespaced,
    /// A ClusterSCMAccount that allows the CertificatePush's namespace.
    #[serde(rename = "ClusterSCMAccount")]
    Cluster,
}

/// The account a CertificatePush pushes with.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// SCMAccount (in this namespace) or ClusterSCMAccount.
    pub kind: AccountKind,
    /// The account's name.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

impl std::fmt::Display for AccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", super::wire_name(&self.kind), self.name)
    }
}
