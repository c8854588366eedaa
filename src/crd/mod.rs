//! The custom resources: [`CertificatePush`] (what to push where) and the accounts it pushes with
//! ([`SCMAccount`], [`ClusterSCMAccount`]), with the references they share.
//!
//! Doc comments on these types become the CRDs' OpenAPI descriptions, and so `kubectl explain` text.
//! Field constraints live in the OpenAPI schema (pattern, enum, lengths); rules across fields are CEL rules with a
//! message that says what to fix (validation rules are GA since Kubernetes 1.29; the chart needs 1.33). Reconcile
//! checks them again (`InvalidSpec`) for objects stored before a rule existed.

mod account;
mod certificate_push;

pub use account::*;
pub use certificate_push::*;

/// Conditions are Kubernetes' own metav1.Condition, with the schema k8s-openapi generates for it. That schema
/// lacks the enum and length rules kubebuilder adds to the Go type; only the operator writes status, and its
/// values come from `status` (TRUE/FALSE/UNKNOWN and `Reason`), so nothing is lost in practice.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every resource this operator serves.
pub const GROUP: &str = "scm.certpush.dev";
/// Key looked up in the credentials Secret when `credentialsRef.tokenKey` is not set.
pub const DEFAULT_TOKEN_KEY: &str = "token";

/// Reference to the Secret in the same namespace that holds SCM credentials: either an IAM token (under tokenKey), or
/// an access key pair (keys accessKey and secretKey, optionally projectId or domainId, and securityToken for
/// temporary keys) that signs every request. There is deliberately no namespace field: a CertificatePush can never
/// read another namespace's Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Name of the Secret in the CertificatePush's namespace.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Key in the Secret's data that holds an IAM token (X-Auth-Token, at least 32 characters); not used by a Secret
    /// that holds an access key pair instead.
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub token_key: String,
}

impl CredentialsRef {
    /// Why this reference cannot name a Secret key, for objects the schema did not check.
    pub fn check(&self) -> Result<(), String> {
        if !is_secret_name(&self.name) {
            return Err(format!(
                "{:?} is not a Secret name (lowercase letters, digits, '-' and '.')",
                self.name
            ));
        }
        if !is_secret_key(&self.token_key) {
            return Err(format!(
                "credentialsRef.tokenKey {:?} is not a Secret key (letters, digits, '-', '_', '.')",
                self.token_key
            ));
        }
        Ok(())
    }
}

/// A DNS-1123 subdomain, the form of every Secret name.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&name.len()) && name.split('.').all(label)
}

/// The form of a key in a Secret's data.
fn is_secret_key(key: &str) -> bool {
    (1..=253).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn default_token_key() -> String {
    DEFAULT_TOKEN_KEY.to_string()
}

/// The string serde writes for a unit enum variant: the one spelling of an enum's wire form, reused by Display.
pub fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The unit enum variant serde reads from `name`, if any.
pub fn from_wire_name<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Every CRD this operator serves, in the order `certpush-operator crd` prints them, each with the file under
/// `crds/` that holds it.
pub fn crds() -> Vec<(
    &'static str,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
)> {
    use kube::CustomResourceExt;
    vec![
        ("certificatepush.yaml", CertificatePush::crd()),
        ("scmaccount.yaml", SCMAccount::crd()),
        ("clusterscmaccount.yaml", ClusterSCMAccount::crd()),
    ]
}

/// Every CRD as YAML documents, exactly as `certpush-operator crd` prints them and `crds/` holds them.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut docs = Vec::new();
    for (_, crd) in crds() {
        docs.push(serde_saphyr::to_string(&crd)?);
    }
    Ok(docs.join("---\n"))
}

/// Prints every CRD, or writes each into its file in `dir`.
pub fn write_crds(dir: Option<&std::path::Path>) -> Result<(), String> {
    let Some(dir) = dir else {
        let yaml = crd_yaml().map_err(|e| format!("rendering the CRDs: {e}"))?;
        print!("{yaml}");
        return Ok(());
    };
    for (file, crd) in crds() {
        let yaml = serde_saphyr::to_string(&crd).map_err(|e| format!("rendering {file}: {e}"))?;
        let path = dir.join(file);
        std::fs::write(&path, yaml).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_strings_come_from_serde() {
        assert_eq!(TargetService::Cdn.to_string(), "CDN");
        assert_eq!(from_wire_name::<TargetService>("ELB"), Some(TargetService::Elb));
        assert_eq!(from_wire_name::<TargetService>("elb"), None);
    }

    #[test]
    fn committed_crds_match_generated() {
        for (file, crd) in crds() {
            let path = format!("{}/crds/{file}", env!("CARGO_MANIFEST_DIR"));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == serde_saphyr::to_string(&crd).unwrap(),
                "{path} is stale: run `make crd`"
            );
        }
    }
}
