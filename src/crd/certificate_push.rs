//! The `CertificatePush` kind: where one certificate goes, and what became of it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::DEFAULT_TOKEN_KEY;
use super::{AccountRef, Condition, CredentialsRef, is_secret_name, wire_name};

/// Annotation whose new value asks for one more push, bypassing any backoff.
pub const PUSH_REQUESTED_ANNOTATION: &str = "scm.certpush.dev/push-requested-at";
/// The operator name objects without spec.controllerName belong to (`--controller-name`'s default).
pub const DEFAULT_CONTROLLER_NAME: &str = "certpush-operator";

/// Pushes one certificate (held in SCM, or imported from a TLS Secret) to one target service (CDN, WAF or ELB) in
/// one region, once per generation of this spec and once per certificate in the source Secret.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "scm.certpush.dev",
    version = "v1alpha1",
    kind = "CertificatePush",
    plural = "certificatepushes",
    singular = "certificatepush",
    namespaced,
    shortname = "cpush",
    category = "certpush",
    status = "CertificatePushStatus",
    doc = "CertificatePush pushes an SSL certificate to CDN, WAF or ELB in a region: one held in Huawei Cloud SCM, or one imported into SCM from a kubernetes.io/tls Secret and imported and pushed again on every renewal. Deleting it does not remove the pushed copy (SCM has no un-push API).",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.targetService"}"#,
    printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.targetProject"}"#,
    // A JSONPath union: exactly one of the two is set, so the column shows the certificate ID or the Secret.
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec['certificateId','sourceSecretRef.name']"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.accountRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Last Push","type":"date","jsonPath":".status.lastPushTime"}"#,
    // A string, not a date: kubectl shows a date column as an age, and a future one as "<invalid>".
    printcolumn = r#"{"name":"Not After","type":"string","jsonPath":".status.pushed.notAfter"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Imported","type":"string","priority":1,"jsonPath":".status.certificateId"}"#,
    printcolumn = r#"{"name":"Target Certificate","type":"string","priority":1,"jsonPath":".status.targets[*].targetCertificateId"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
// Rules across fields: exactly one certificate source, one region or several, and which fields a deploy resource
// needs (that depends on targetService, outside the resource). No structural oneOf: the API server skips CEL rules
// once it fails, so its bare "oneOf" message would hide these.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.certificateId) != has(self.sourceSecretRef)",
    "message": "set exactly one of certificateId (a certificate already in SCM) and sourceSecretRef (a kubernetes.io/tls Secret to import)"
}, {
    "rule": "has(self.credentialsRef) != has(self.accountRef)",
    "message": "set exactly one of credentialsRef (a Secret in this namespace) and accountRef (an SCMAccount or ClusterSCMAccount)"
}, {
    "rule": "has(self.targetProject) != has(self.targetProjects)",
    "message": "set exactly one of targetProject (one region) and targetProjects (several)"
}, {
    "rule": "!has(self.pushPolicy) || self.pushPolicy == 'Always' || has(self.deploy)",
    "message": "pushPolicy Never deploys only: it needs deploy",
    "fieldPath": ".pushPolicy"
}, {
    "rule": "!has(self.deploy) || has(self.targetProject)",
    "message": "deploy needs targetProject: the resources are in one region",
    "fieldPath": ".deploy"
}, {
    "rule": "!has(self.deploy) || self.deploy.resources.all(r, self.targetService == 'CDN' ? (has(r.domainName) && !has(r.id) && !has(r.type) && !has(r.enterpriseProjectId)) : (has(r.id) && !has(r.domainName) && (self.targetService == 'WAF' ? (has(r.type) && (has(r.enterpriseProjectId) || has(self.accountRef))) : (!has(r.type) && !has(r.enterpriseProjectId)))))",
    "message": "deploy.resources: CDN resources set domainName only; ELB resources set id only; WAF resources set id, type and enterpriseProjectId (\"0\" is the default enterprise project; with accountRef it defaults to the account's)",
    "fieldPath": ".deploy.resources"
}]))]
pub struct CertificatePushSpec {
    /// ID of a certificate already in SCM, exactly 16 letters or digits (for example scs1554192131150). Exactly one
    /// of certificateId and sourceSecretRef is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 16, max = 16), pattern(r"^[A-Za-z0-9]{16}$"))]
    pub certificate_id: Option<String>,

    /// A kubernetes.io/tls Secret in this namespace (for example one cert-manager writes) whose certificate is
    /// imported into SCM and pushed, and imported and pushed again each time the certificate in it changes.
    /// Exactly one of certificateId and sourceSecretRef is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_secret_ref: Option<SourceSecretRef>,

    /// What happens to certificates imported from sourceSecretRef once a renewal replaced them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_policy: Option<ImportPolicy>,

    /// What deleting this CertificatePush does in SCM; it applies only to certificates imported from
    /// sourceSecretRef (a certificateId is never deleted). Retain (the default) leaves SCM alone. Delete also
    /// deletes the certificates it imported, through a finalizer that never blocks deletion for long: after 5
    /// failed attempts (about a minute), or without usable credentials, it publishes a Warning Event naming what is
    /// left in SCM and lets the object go; one still deployed somewhere is left too. Copies already pushed to CDN,
    /// WAF or ELB stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Retain"))]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Cloud service to push the certificate to: CDN, WAF or ELB.
    pub target_service: TargetService,

    /// Region (IAM project name) of the target service, for example cn-north-4: lowercase letters, digits and
    /// '-', at most 63. Exactly one of targetProject and targetProjects is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub target_project: String,

    /// Several regions at once, 1 to 10 (each at most 32 characters), pushed with one SCM batch-push request: a
    /// region that fails is retried alone, a region added later is pushed alone, and Ready needs every region.
    /// status.targets lists each region's copy ID in the target service. Exactly one of targetProject and
    /// targetProjects is set; spec.deploy needs targetProject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(min = 1, max = 10),
        inner(length(min = 1, max = 32), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    pub target_projects: Vec<String>,

    /// Secret in this CertificatePush's namespace that holds the SCM credentials. Exactly one of credentialsRef
    /// and accountRef is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// The SCM account to push with: an SCMAccount in this namespace, or a ClusterSCMAccount whose conditions
    /// allow this namespace. It decides the site, the credentials and the request rate, so this namespace needs
    /// no credentials Secret of its own. Exactly one of credentialsRef and accountRef is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,

    /// The operator that handles this object: one started with --controller-name set to this. Empty: the
    /// operator named certpush-operator (the default), so a second installation with its own name never acts on
    /// objects meant for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub controller_name: Option<String>,

    /// Always (the default): push the certificate to targetService (a copy in its certificate list), then deploy it
    /// if spec.deploy is set. Never: deploy only, adding no copy to the service's list (needs spec.deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_policy: Option<PushPolicy>,

    /// Resources of targetService in targetProject that serve the certificate: after each push (a renewal
    /// included) SCM's deploy replaces the certificate they hold, so clients see it with no further step. Each
    /// resource gets each certificate once (Huawei bills every deploy); a resource that fails is retried alone,
    /// with backoff. Ready is True only when every resource holds the certificate pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySpec>,
}

/// Whether the certificate is pushed to the target service, or only deployed onto spec.deploy's resources.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PushPolicy {
    /// Push (a copy in the service's certificate list), then deploy if spec.deploy is set.
    #[default]
    Always,
    /// Deploy only: no copy is added to the service's certificate list.
    Never,
}

/// Where SCM deploys the certificate: resources of the target service whose certificate is replaced in place.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploySpec {
    /// The resources, 1 to 20 (one SCM deploy request).
    #[schemars(length(min = 1, max = 20))]
    pub resources: Vec<DeployResource>,
}

/// One resource the certificate is deployed to. ELB and WAF: id, the ID of the ELB or WAF certificate whose
/// content is replaced (every listener or host using it, and CCE Ingresses naming it in
/// kubernetes.io/elb.tls-certificate-ids, then serve the new one). CDN: domainName, an accelerated domain the
/// certificate covers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployResource {
    /// ELB or WAF certificate ID (required for ELB and WAF, not allowed for CDN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[-_.a-zA-Z0-9]+$"))]
    pub id: Option<String>,
    /// WAF edition: premium or cloud (required for WAF, not allowed for CDN and ELB).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub waf_type: Option<WafType>,
    /// CDN accelerated domain name (required for CDN, not allowed for ELB and WAF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub domain_name: Option<String>,
    /// Enterprise project of the WAF resource: required for WAF (SCM's deploy refuses a WAF resource without it;
    /// "0" is the default enterprise project), not allowed for CDN and ELB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[-a-zA-Z0-9]+$"))]
    pub enterprise_project_id: Option<String>,
}

/// WAF edition of a deploy resource.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WafType {
    /// Dedicated (premium) WAF.
    #[serde(rename = "premium")]
    Premium,
    /// Cloud WAF.
    #[serde(rename = "cloud")]
    Cloud,
}

impl DeployResource {
    /// What SCM and status name this resource by: the certificate ID for ELB and WAF, the domain for CDN.
    pub fn key(&self) -> &str {
        self.id.as_deref().or(self.domain_name.as_deref()).unwrap_or_default()
    }

    /// Why this resource cannot be deployed to on `service`, if it cannot.
    pub fn problem(&self, service: TargetService, with_account: bool) -> Option<String> {
        let key = self.key();
        match service {
            TargetService::Cdn if self.domain_name.is_none() || self.id.is_some() => Some(format!(
                "deploy resource {key:?}: CDN resources name a domainName and no id"
            )),
            TargetService::Elb | TargetService::Waf if self.id.is_none() || self.domain_name.is_some() => {
                Some(format!(
                    "deploy resource {key:?}: {service} resources name the id of a {service} certificate and no domainName"
                ))
            }
            TargetService::Cdn | TargetService::Elb
                if self.waf_type.is_some() || self.enterprise_project_id.is_some() =>
            {
                Some(format!(
                    "deploy resource {key:?}: type and enterpriseProjectId are for WAF resources only"
                ))
            }
            TargetService::Waf if self.waf_type.is_none() => Some(format!(
                "deploy resource {key:?}: WAF resources name their type, premium or cloud"
            )),
            TargetService::Waf if self.enterprise_project_id.is_none() && !with_account => Some(format!(
                "deploy resource {key:?}: WAF resources name their enterpriseProjectId (\"0\" is the default \
                 enterprise project; with accountRef it defaults to the account's)"
            )),
            _ => None,
        }
    }
}

/// Cloud service that receives the certificate.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TargetService {
    /// Huawei Cloud Content Delivery Network.
    #[serde(rename = "CDN")]
    Cdn,
    /// Huawei Cloud Web Application Firewall.
    #[serde(rename = "WAF")]
    Waf,
    /// Huawei Cloud Elastic Load Balance.
    #[serde(rename = "ELB")]
    Elb,
}

impl std::fmt::Display for TargetService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&wire_name(self))
    }
}

/// A kubernetes.io/tls Secret in the CertificatePush's namespace (keys tls.crt, leaf first, and tls.key).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSecretRef {
    /// Name of the Secret in the CertificatePush's namespace.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// What deleting a CertificatePush does to the certificates it imported.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave SCM alone.
    #[default]
    Retain,
    /// Delete the certificates this CertificatePush imported.
    Delete,
}

/// Most regions one batch-push request takes.
pub const MAX_TARGET_PROJECTS: usize = 10;

/// Finalizer that deletes imported certificates before a CertificatePush with deletionPolicy Delete goes away.
pub const CLEANUP_FINALIZER: &str = "scm.certpush.dev/delete-imported-certificates";

/// Handling of certificates this operator imported.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportPolicy {
    /// Keep the certificate imported before a renewal in SCM. By default it is deleted from SCM once its
    /// successor has been pushed, since SCM limits the number of certificates per account.
    #[serde(default)]
    pub retain_superseded: bool,
}

/// Observed state of a CertificatePush, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatePushStatus {
    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready (always present), Stalled (only while a failure needs a human) and Reconciling (only while a
    /// push is pending or a retry is scheduled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// HTTP status of the last SCM push response (204 on success); absent when no response was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,

    /// Huawei error_code of the last failed push; absent after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,

    /// Huawei error_msg (or a description of the failure) of the last failed push; absent after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,

    /// X-Request-Id of the last SCM response, for Huawei support tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,

    /// When the last successful push happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_push_time: Option<String>,

    /// When the last push attempt happened, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_attempt_time: Option<String>,

    /// Consecutive failed push attempts since the last success; drives the retry backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,

    /// When the next automatic retry of a transient failure is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub next_retry_time: Option<String>,

    /// The metadata.generation whose push succeeded. A push happens when it differs from metadata.generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_generation: Option<i64>,

    /// Last value of the scm.certpush.dev/push-requested-at annotation whose push succeeded or stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_push_request: Option<String>,

    /// Value of the scm.certpush.dev/push-requested-at annotation whose push is being retried after a transient
    /// failure; it becomes lastHandledPushRequest when that push succeeds or stalls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_push_request: Option<String>,

    /// HMAC-SHA256 fingerprint, under this installation's key, of the credential used at the last attempt (never
    /// the credential itself, and no help in confirming a guessed one). A stall caused by a rejected credential
    /// lifts only when the credential in the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_digest: Option<String>,

    /// SCM endpoint of the last attempt. A stall blamed on the endpoint (404 APIGW.0101, or a success code
    /// other than 204) lifts when the operator runs with a different --scm-endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm_endpoint: Option<String>,

    /// ID in SCM of the certificate imported from sourceSecretRef (the one pushed, or being pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,

    /// SHA-256 of the DER of the leaf certificate in sourceSecretRef that the last attempt was about. A different
    /// certificate in the Secret (a renewal) is imported and pushed once; the same one never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_fingerprint: Option<String>,

    /// End of the validity of the certificate in sourceSecretRef this status is about (a renewal being imported or
    /// pushed included); the one serving is pushed.notAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub not_after: Option<String>,

    /// The source Secret the certificate was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_secret: Option<SourceSecretStatus>,

    /// ID in SCM of the imported certificate whose push succeeded; it equals certificateId once a renewal has been
    /// pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_certificate_id: Option<String>,

    /// When an attempt of the current push got no answer after its request was sent, so that push may have
    /// landed in the target service; cleared by a success or a new generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub outcome_unknown_time: Option<String>,

    /// What the last successful push sent where. A spec edit that keeps it (credentialsRef, deletionPolicy,
    /// importPolicy) pushes nothing; a different certificate, service or project is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<PushedTarget>,

    /// Certificates this object imported that a renewal replaced (or that were replaced before their push) and
    /// that SCM has not yet confirmed deleted. Each is recorded here before its delete is sent and retried with
    /// backoff until SCM answers 204 or 404, also across restarts; the finalizer deletes what is left. Empty with
    /// importPolicy.retainSuperseded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_deletions: Vec<PendingDeletion>,

    /// Each region of spec.targetProjects: the certificate pushed there and its copy's ID in the target service,
    /// or why the last batch push to it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["project"]))]
    pub targets: Vec<RegionTarget>,

    /// Where SCM says the certificate pushed is deployed, in every service (deployed by this object, in the console
    /// or by another tool), refreshed every --in-use-refresh and after each push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<InUseStatus>,

    /// Each resource of spec.deploy: the certificate it holds, and a failed deploy's reason and retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["resource"]))]
    pub deployments: Vec<Deployment>,

    /// An import this object sends (or sent) whose answer is not recorded yet: written before the import request,
    /// cleared with the certificateId it returns. Only when one is found here (a crash or a lost answer) is SCM
    /// searched for an earlier import under its name; otherwise the certificate is imported without a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_intent: Option<ImportIntent>,
}

/// An import request about to be or already sent.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportIntent {
    /// The name the certificate is imported under.
    pub name: String,
    /// SHA-256 fingerprint of the certificate imported.
    pub fingerprint: String,
}

/// A certificate in SCM that this object imported, no longer serves, and still has to delete.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingDeletion {
    /// ID in SCM of the certificate to delete.
    pub certificate_id: String,
    /// Failed delete attempts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,
    /// When the next delete attempt is due; absent when it is due now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub next_attempt_time: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What a batch push did in one region of spec.targetProjects.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionTarget {
    /// The region (project name).
    pub project: String,
    /// ID in SCM of the certificate pushed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// ID of the copy in the target service (SCM's cert_id): what an ELB listener, a WAF host or a CCE annotation
    /// names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_certificate_id: Option<String>,
    /// SCM's message for this region: "success", or why the push failed (for example "Invalid region id.").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the certificate was pushed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub push_time: Option<String>,
}

/// Where a certificate is deployed, as SCM's deployed-resources answered.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InUseStatus {
    /// The certificate asked about (the one pushed).
    pub certificate_id: String,
    /// When SCM was asked.
    #[schemars(extend("format" = "date-time"))]
    pub check_time: String,
    /// The resources SCM listed (at most 50 are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<InUseResource>,
    /// Why SCM could not be asked, when it could not (the resources are then those of the last answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One resource a certificate is deployed on.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InUseResource {
    /// CDN, WAF or ELB.
    pub service: String,
    /// Its region (global for CDN).
    pub region: String,
    /// Its ID (an ELB or WAF certificate, or a CDN domain).
    pub resource: String,
}

/// What SCM deployed on one resource of spec.deploy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The resource: its ELB or WAF certificate ID, or its CDN domain.
    pub resource: String,
    /// ID in SCM of the certificate SCM confirmed deployed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// When that deploy was confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub deploy_time: Option<String>,
    /// A certificate whose deploy request was (or is about to be) sent without its answer recorded: written before
    /// the request, so after a crash or a lost answer SCM is asked where that certificate is deployed before it is
    /// deployed again (each deploy is billed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploying_certificate_id: Option<String>,
    /// The certificate this resource's attempts are about: SCM said the resource does not hold it (asked before the
    /// first deploy of each certificate, so one already there, after a re-created object or a resource listed
    /// again, is not deployed and billed twice), or a deploy of it was sent. failureInfo, failedAttempts and
    /// nextAttemptTime count for this certificate only; a renewal starts afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_certificate_id: Option<String>,
    /// Why the last deploy to this resource failed: the target service's failure_info (for example ELB.8902), or
    /// the error of the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_info: Option<String>,
    /// Failed deploys of the current certificate to this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,
    /// When the next deploy to this resource is due after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub next_attempt_time: Option<String>,
}

/// What a successful push sent where.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushedTarget {
    /// ID in SCM of the certificate pushed (spec.certificateId, or the certificate imported from sourceSecretRef).
    pub certificate_id: String,
    /// The service it was pushed to.
    pub target_service: TargetService,
    /// The project (region) it was pushed to; with targetProjects, every region, sorted and comma-separated.
    pub target_project: String,
    /// The metadata.generation of the push.
    pub generation: i64,
    /// True when nothing was pushed (pushPolicy Never): the certificate is only deployed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deploy_only: bool,
    /// End of the validity of the certificate pushed: the one serving, which the expiry gauge reports (a renewal
    /// that failed to import or push does not move it). From the source Secret, or from SCM for certificateId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub not_after: Option<String>,
}

/// Identity of the source Secret read at the last import.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSecretStatus {
    /// Name of the Secret.
    pub name: String,
    /// UID of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// resourceVersion of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Where the certificate to push comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource<'a> {
    /// A certificate already in SCM.
    Id(&'a str),
    /// A kubernetes.io/tls Secret to import, by name.
    Secret(&'a str),
}

impl CertificatePushSpec {
    /// The certificate source, or why the spec names none or both (for objects the schema did not check).
    pub fn source(&self) -> Result<CertificateSource<'_>, String> {
        // The schema checks the same; an object stored before it did (or written around it) is caught here.
        let names = [
            self.credentials_ref.as_ref().map(|r| &r.name),
            self.source_secret_ref.as_ref().map(|r| &r.name),
        ];
        if let Some(name) = names.into_iter().flatten().find(|n| !is_secret_name(n)) {
            return Err(format!(
                "{name:?} is not a Secret name (lowercase letters, digits, '-' and '.')"
            ));
        }
        if let Some(reference) = &self.credentials_ref {
            reference.check()?;
        }
        match (&self.credentials_ref, &self.account_ref) {
            (Some(_), Some(_)) | (None, None) => {
                return Err("set exactly one of credentialsRef and accountRef".into());
            }
            (None, Some(account)) if !is_secret_name(&account.name) => {
                return Err(format!("accountRef.name {:?} is not an object name", account.name));
            }
            _ => {}
        }
        match (self.target_project.is_empty(), self.target_projects.is_empty()) {
            (false, false) => return Err("spec sets both targetProject and targetProjects; set exactly one".into()),
            (true, true) => return Err("spec sets neither targetProject nor targetProjects; set exactly one".into()),
            (true, false) if self.deploy.is_some() => {
                return Err("deploy needs targetProject: the resources are in one region".into());
            }
            _ => {}
        }
        if !self.pushes() && self.deploy.is_none() {
            return Err("pushPolicy Never deploys only: it needs deploy".into());
        }
        if let Some(project) = self.projects().into_iter().find(|p| !is_region(p)) {
            return Err(format!(
                "targetProject {project:?} is not a region name like cn-north-4"
            ));
        }
        if self.target_projects.len() > MAX_TARGET_PROJECTS {
            return Err(format!("targetProjects lists more than {MAX_TARGET_PROJECTS} regions"));
        }
        let mut regions = self.target_projects.clone();
        regions.sort_unstable();
        if let Some(twice) = regions.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("targetProjects lists {:?} twice", twice[0]));
        }
        if let Some(deploy) = &self.deploy {
            if let Some(problem) = deploy
                .resources
                .iter()
                .find_map(|r| r.problem(self.target_service, self.account_ref.is_some()))
            {
                return Err(problem);
            }
            let mut keys: Vec<&str> = deploy.resources.iter().map(DeployResource::key).collect();
            keys.sort_unstable();
            if let Some(twice) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!("deploy resource {:?} is listed twice", twice[0]));
            }
        }
        match (&self.certificate_id, &self.source_secret_ref) {
            (Some(id), None) => Ok(CertificateSource::Id(id)),
            (None, Some(secret)) => Ok(CertificateSource::Secret(&secret.name)),
            (Some(_), Some(_)) => Err("spec sets both certificateId and sourceSecretRef; set exactly one".into()),
            (None, None) => Err("spec sets neither certificateId nor sourceSecretRef; set exactly one".into()),
        }
    }

    /// The regions pushed to: targetProject, or each of targetProjects.
    pub fn projects(&self) -> Vec<&str> {
        if self.target_project.is_empty() {
            self.target_projects.iter().map(String::as_str).collect()
        } else {
            vec![self.target_project.as_str()]
        }
    }

    /// The regions as status.pushed records them: targetProject, or targetProjects sorted and comma-separated.
    pub fn destination_projects(&self) -> String {
        let mut projects = self.projects();
        projects.sort_unstable();
        projects.join(",")
    }

    /// The name of the operator that handles this object (spec.controllerName, else the default).
    pub fn controller(&self) -> &str {
        self.controller_name.as_deref().unwrap_or(DEFAULT_CONTROLLER_NAME)
    }

    /// Whether the certificate is pushed (pushPolicy Always), not only deployed.
    pub fn pushes(&self) -> bool {
        self.push_policy != Some(PushPolicy::Never)
    }

    /// Whether the certificate goes to several regions with batch-push.
    pub fn batch(&self) -> bool {
        !self.target_projects.is_empty()
    }

    /// Whether deletionPolicy is Delete: what the object imported (now, or under a former sourceSecretRef) is
    /// deleted from SCM.
    pub fn deletes(&self) -> bool {
        self.deletion_policy == Some(DeletionPolicy::Delete)
    }

    /// Whether deleting the object deletes what it imported: deletionPolicy Delete with a sourceSecretRef.
    pub fn deletes_imports(&self) -> bool {
        self.deletes() && self.source_secret_ref.is_some()
    }

    /// Whether certificates superseded by a renewal stay in SCM.
    pub fn retain_superseded(&self) -> bool {
        self.import_policy.as_ref().is_some_and(|p| p.retain_superseded)
    }
}

#[cfg(test)]
impl CertificatePushSpec {
    /// Certificate scs1554192131150 to WAF in cn-north-4 with credentials in Secret "scm", for unit tests.
    pub(crate) fn example() -> Self {
        Self {
            controller_name: None,
            push_policy: None,
            certificate_id: Some("scs1554192131150".into()),
            source_secret_ref: None,
            import_policy: None,
            deletion_policy: None,
            target_service: TargetService::Waf,
            target_project: "cn-north-4".into(),
            target_projects: Vec::new(),
            credentials_ref: Some(CredentialsRef {
                name: "scm".into(),
                token_key: DEFAULT_TOKEN_KEY.into(),
            }),
            account_ref: None,
            deploy: None,
        }
    }
}

impl DeploySpec {
    /// Deploys onto the ELB (or WAF) certificates `ids`, with no other field (tests build specs with it).
    pub fn ids(ids: &[&str]) -> Self {
        let resources = ids
            .iter()
            .map(|id| DeployResource {
                id: Some((*id).into()),
                waf_type: None,
                domain_name: None,
                enterprise_project_id: None,
            })
            .collect();
        Self { resources }
    }
}

/// The form of a Huawei region (IAM project name): a DNS label.
fn is_region(project: &str) -> bool {
    (1..=63).contains(&project.len())
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !project.starts_with('-')
        && !project.ends_with('-')
}

impl CertificatePush {
    /// Value of the re-push annotation, if set.
    pub fn push_request(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PUSH_REQUESTED_ANNOTATION))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    fn spec_schema() -> Value {
        let crd = serde_json::to_value(CertificatePush::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    }

    /// The CEL rule checks the same on admission; objects stored around it are refused here (`InvalidSpec`).
    #[test]
    fn deploy_resources_take_the_fields_of_their_service_once_each() {
        let spec = |service: &str, resources: Value| -> CertificatePushSpec {
            serde_json::from_value(json!({
                "certificateId": "scs1554192131150", "targetService": service, "targetProject": "cn-north-4",
                "credentialsRef": {"name": "scm"}, "deploy": {"resources": resources},
            }))
            .unwrap()
        };
        assert!(spec("ELB", json!([{"id": "e1"}, {"id": "e2"}])).source().is_ok());
        assert!(
            spec(
                "WAF",
                json!([{"id": "w1", "type": "premium", "enterpriseProjectId": "0"}])
            )
            .source()
            .is_ok()
        );
        assert!(spec("CDN", json!([{"domainName": "www.example.com"}])).source().is_ok());
        for (service, resources, says) in [
            ("ELB", json!([{"domainName": "www.example.com"}]), "no domainName"),
            ("ELB", json!([{"id": "e1", "type": "cloud"}]), "WAF resources only"),
            ("WAF", json!([{"id": "w1"}]), "premium or cloud"),
            ("WAF", json!([{"id": "w1", "type": "cloud"}]), "enterpriseProjectId"),
            ("CDN", json!([{"id": "e1"}]), "domainName and no id"),
            ("ELB", json!([{"id": "e1"}, {"id": "e1"}]), "listed twice"),
        ] {
            assert!(spec(service, resources.clone()).source().is_err());
            let error = spec(service, resources).source().unwrap_err();
            assert!(error.contains(says), "{service}: {error}");
        }
        let rules = spec_schema()["x-kubernetes-validations"].to_string();
        assert!(rules.contains("has(r.domainName)"), "{rules}");
        assert!(
            rules.contains("(has(r.type) && (has(r.enterpriseProjectId) || has(self.accountRef)))"),
            "{rules}"
        );
        // Deploying only needs something to deploy to.
        let mut never = spec("ELB", json!([{"id": "e1"}]));
        never.push_policy = Some(PushPolicy::Never);
        assert!(never.source().is_ok() && !never.pushes());
        never.deploy = None;
        assert!(never.source().unwrap_err().contains("needs deploy"));
        assert!(
            rules.contains("self.pushPolicy == 'Always' || has(self.deploy)"),
            "{rules}"
        );
    }

    #[test]
    fn one_region_or_several_exactly_once_each() {
        let spec = |extra: Value| -> CertificatePushSpec {
            let mut base =
                json!({"certificateId": "scs1554192131150", "targetService": "ELB", "credentialsRef": {"name": "scm"}});
            base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value(base).unwrap()
        };
        let several = spec(json!({"targetProjects": ["la-south-2", "cn-north-4"]}));
        assert!(several.source().is_ok() && several.batch());
        assert_eq!(several.destination_projects(), "cn-north-4,la-south-2");
        assert_eq!(
            spec(json!({"targetProject": "cn-north-4"})).destination_projects(),
            "cn-north-4"
        );
        for (extra, says) in [
            (json!({}), "neither targetProject nor targetProjects"),
            (
                json!({"targetProject": "cn-north-4", "targetProjects": ["cn-north-4"]}),
                "both",
            ),
            (json!({"targetProjects": ["cn-north-4", "cn-north-4"]}), "twice"),
            (json!({"targetProjects": ["Not A Region"]}), "not a region name"),
            (
                json!({"targetProjects": ["cn-north-4"], "deploy": {"resources": [{"id": "e1"}]}}),
                "deploy needs targetProject",
            ),
        ] {
            let error = spec(extra).source().unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn schema_constrains_certificate_id() {
        let id = &spec_schema()["properties"]["certificateId"];
        assert_eq!(id["pattern"], "^[A-Za-z0-9]{16}$");
        assert_eq!(id["minLength"], 16);
        assert_eq!(id["maxLength"], 16);
    }

    /// Defect: Secret names, the token key and the region were free text, so a name with '/' or a region with
    /// spaces reached the API server's URL or SCM's request body.
    #[test]
    fn names_keys_and_regions_have_their_kubernetes_and_huawei_forms() {
        let props = spec_schema()["properties"].clone();
        let name_pattern = props["credentialsRef"]["properties"]["name"]["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(name_pattern.starts_with("^[a-z0-9]"), "{name_pattern}");
        assert_eq!(
            props["credentialsRef"]["properties"]["tokenKey"]["pattern"],
            "^[-._a-zA-Z0-9]+$"
        );
        assert_eq!(props["targetProject"]["pattern"], "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
        assert_eq!(
            props["sourceSecretRef"]["properties"]["name"]["pattern"],
            name_pattern.as_str()
        );

        let with = |patch: Value| {
            let mut v = json!({"certificateId": "scs1554192131150", "targetService": "WAF",
                "targetProject": "cn-north-4", "credentialsRef": {"name": "scm-credentials.v2"}});
            json_patch_merge(&mut v, &patch);
            serde_json::from_value::<CertificatePushSpec>(v).unwrap()
        };
        assert!(with(json!({})).source().is_ok());
        for (bad, says) in [
            (json!({"credentialsRef": {"name": "../other"}}), "not a Secret name"),
            (json!({"credentialsRef": {"name": "Scm"}}), "not a Secret name"),
            (
                json!({"credentialsRef": {"name": "scm", "tokenKey": "a/b"}}),
                "tokenKey",
            ),
            (json!({"targetProject": "cn north 4"}), "not a region"),
            (json!({"targetProject": "-cn"}), "not a region"),
        ] {
            let error = with(bad.clone()).source().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    fn json_patch_merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    #[test]
    fn schema_constrains_target_service_and_project() {
        let s = spec_schema();
        assert_eq!(s["properties"]["targetService"]["enum"], json!(["CDN", "WAF", "ELB"]));
        assert_eq!(s["properties"]["targetProject"]["minLength"], 1);
        assert_eq!(s["properties"]["targetProject"]["maxLength"], 63);
        let mut required: Vec<String> = serde_json::from_value(s["required"].clone()).unwrap();
        required.sort();
        assert_eq!(required, ["targetService"]);
        // Exactly one of its own Secret and an account, as a CEL rule whose message says what to set.
        let rules = s["x-kubernetes-validations"].to_string();
        assert!(
            rules.contains("has(self.credentialsRef) != has(self.accountRef)"),
            "{rules}"
        );
        // One region or several, exactly one of the two (CEL), each in the region form.
        let rules = s["x-kubernetes-validations"].to_string();
        assert!(
            rules.contains("has(self.targetProject) != has(self.targetProjects)"),
            "{rules}"
        );
        assert_eq!(s["properties"]["targetProjects"]["maxItems"], 10);
        assert_eq!(s["properties"]["targetProjects"]["items"]["maxLength"], 32);
        // Exactly one certificate source, as a CEL rule whose message says what to set (no bare structural oneOf).
        assert!(s.get("oneOf").is_none());
        assert!(
            rules.contains("has(self.certificateId) != has(self.sourceSecretRef)"),
            "{rules}"
        );
        assert!(rules.contains("set exactly one of certificateId"), "{rules}");
        assert_eq!(s["properties"]["deletionPolicy"]["default"], "Retain");
    }

    #[test]
    fn source_is_exactly_one_of_id_and_secret() {
        let spec = |v: serde_json::Value| -> CertificatePushSpec {
            let mut base = json!({"targetService": "WAF", "targetProject": "p", "credentialsRef": {"name": "scm"}});
            base.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
            serde_json::from_value(base).unwrap()
        };
        let id = spec(json!({"certificateId": "scs1554192131150"}));
        assert_eq!(id.source(), Ok(CertificateSource::Id("scs1554192131150")));
        let secret = spec(json!({"sourceSecretRef": {"name": "web-tls"}, "importPolicy": {"retainSuperseded": true}}));
        assert_eq!(secret.source(), Ok(CertificateSource::Secret("web-tls")));
        assert!(secret.retain_superseded() && !id.retain_superseded());
        let both = spec(json!({"certificateId": "scs1554192131150", "sourceSecretRef": {"name": "web-tls"}}));
        assert!(both.source().unwrap_err().contains("both"));
        assert!(spec(json!({})).source().unwrap_err().contains("neither"));
    }

    #[test]
    fn credentials_ref_has_no_namespace_and_defaults_token_key() {
        let r = &spec_schema()["properties"]["credentialsRef"];
        assert!(r["properties"].get("namespace").is_none());
        assert_eq!(r["properties"]["tokenKey"]["default"], "token");
        assert_eq!(r["required"], json!(["name"]));
        let parsed: CredentialsRef = serde_json::from_value(json!({"name": "scm"})).unwrap();
        assert_eq!(parsed.token_key, "token");
    }

    #[test]
    fn conditions_are_a_map_keyed_by_type() {
        let crd = serde_json::to_value(CertificatePush::crd()).unwrap();
        let v = &crd["spec"]["versions"][0];
        let conds = &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conds["x-kubernetes-list-type"], "map");
        assert_eq!(conds["x-kubernetes-list-map-keys"], json!(["type"]));
        assert_eq!(v["subresources"]["status"], json!({}));
    }

    #[test]
    fn crd_names_match_the_api_contract() {
        let crd = CertificatePush::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("certificatepushes.scm.certpush.dev"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["cpush".to_string()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["certpush".to_string()]));
        assert_eq!(crd.spec.scope, "Namespaced");
        let cols: Vec<String> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            cols,
            [
                "Service",
                "Project",
                "Source",
                "Account",
                "Ready",
                "Reason",
                "Last Push",
                "Not After",
                "Age",
                "Imported",
                "Target Certificate",
                "Message"
            ]
        );
    }
}
