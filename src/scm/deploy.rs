//! SCM's deploy side: deploying a certificate onto resources of a target service, and asking where certificates
//! are deployed. A deployed-resources answer is read strictly: a region SCM could not read (`is_error`) or a count
//! that disagrees with what is listed makes the answer unknown, never "deployed nowhere", so no caller deletes a
//! certificate in use or deploys (and bills) one again on a partial answer.

use std::collections::HashMap;

use super::auth::Credentials;
use super::client::{Call, ScmClient};
use super::outcome::{FailureKind, PushFailure, answer, clip_field};
use super::wire::{DeployRequest, DeployResponse, DeployedResourcesRequest, DeployedResourcesResponse};
use crate::crd::TargetService;

/// Most certificate IDs one deployed-resources request may ask about (SCM's limit); longer lists are asked in
/// chunks of this size.
pub const MAX_DEPLOYED_RESOURCES_IDS: usize = 50;

/// The `error_code` of a deployed-resources answer that could not be read in full: the operator's own code, since
/// SCM answered 200.
pub const IN_USE_UNKNOWN: &str = "InUseUnknown";

/// A resource SCM says a certificate is deployed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// CDN, WAF or ELB.
    pub service: String,
    /// Its region (`global` for CDN).
    pub region: String,
    /// Its ID (the ELB or WAF certificate, or the CDN domain), without the name SCM may append.
    pub resource: String,
}

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} in {}", self.service, self.resource, self.region)
    }
}

/// Where each certificate asked about is deployed, by certificate ID.
pub type Deployed = HashMap<String, Vec<InUse>>;

impl PushFailure {
    /// Whether this is a deployed-resources answer SCM could not complete (a region it could not read).
    pub fn in_use_unknown(&self) -> bool {
        self.error_code.as_deref() == Some(IN_USE_UNKNOWN)
    }
}

/// The ID in a deployed resource's `resource_id`: Huawei's SDK documents it as "resource ID : resource name", so
/// `ID:name` (spaces around the colon or not) and a bare ID both give the ID. No ELB or WAF certificate ID or CDN
/// domain holds a colon.
pub fn resource_key(resource_id: &str) -> &str {
    resource_id.split(':').next().unwrap_or_default().trim()
}

/// Reads a deployed-resources answer for `service` (every service with `None`), or says why it is unknown: the
/// regions SCM could not read, or a certificate whose `total_num` is not what the answer lists.
pub fn read_deployed(answered: DeployedResourcesResponse, service: Option<TargetService>) -> Result<Deployed, String> {
    let mut held = Deployed::new();
    let mut unreadable: Vec<String> = Vec::new();
    for result in answered.results {
        let mut listed = 0u64;
        let mut resources = Vec::new();
        for deployed in &result.deployed_resources {
            let wanted = service.is_none_or(|s| deployed.service.eq_ignore_ascii_case(&s.to_string()));
            for region in &deployed.region_resources {
                listed += region.resources.len() as u64;
                if !wanted {
                    continue;
                }
                if region.is_error {
                    let name = format!("{} in {}", clip_field(&deployed.service), clip_field(&region.region_id));
                    if !unreadable.contains(&name) {
                        unreadable.push(name);
                    }
                }
                resources.extend(region.resources.iter().map(|r| InUse {
                    service: clip_field(&deployed.service),
                    region: clip_field(&region.region_id),
                    resource: clip_field(resource_key(&r.resource_id)),
                }));
            }
        }
        if let Some(total) = result.total_num.filter(|total| *total != listed) {
            return Err(format!(
                "SCM counts {total} resources holding {} but lists {listed}",
                clip_field(&result.certificate_id)
            ));
        }
        held.entry(result.certificate_id).or_default().extend(resources);
    }
    if !unreadable.is_empty() {
        return Err(format!("SCM could not read {}", unreadable.join(", ")));
    }
    Ok(held)
}

/// The failure of an answer [`read_deployed`] found unknown.
fn unknown(why: String) -> PushFailure {
    PushFailure {
        kind: FailureKind::Transient,
        http_status: Some(200),
        error_code: Some(IN_USE_UNKNOWN.to_owned()),
        error_message: format!(
            "{why}: where the certificate is deployed is unknown, so nothing is deleted or deployed again until SCM \
             can say"
        ),
        request_id: None,
        retry_after: None,
        outcome_unknown: false,
    }
}

impl ScmClient {
    /// Deploys a certificate onto resources of one service: the resources that failed, with the target service's
    /// `failure_info` (SCM answers 200 with a per-resource `failure_list`), or why the whole request failed.
    pub async fn deploy(
        &self,
        credentials: &Credentials,
        certificate_id: &str,
        request: &DeployRequest,
    ) -> Result<Vec<(String, String)>, PushFailure> {
        let call = Call::Deploy {
            certificate_id,
            request,
        };
        let answered: DeployResponse = answer(self.call(credentials, call).await, 200, "deploy")?;
        Ok(answered
            .failure_list
            .into_iter()
            .map(|f| {
                let field = |text: &str| credentials.redact(&clip_field(text));
                (field(&f.resource), field(&f.failure_info))
            })
            .collect())
    }

    /// Where each of `certificate_ids` is deployed: the resources SCM lists for it in `service`, or in every service
    /// with `None`. Asked in chunks of [`MAX_DEPLOYED_RESOURCES_IDS`]; any chunk that fails or is unknown fails the
    /// whole question.
    pub async fn deployed_resources(
        &self,
        credentials: &Credentials,
        certificate_ids: &[&str],
        service: Option<TargetService>,
    ) -> Result<Deployed, PushFailure> {
        let mut held = Deployed::new();
        for chunk in certificate_ids.chunks(MAX_DEPLOYED_RESOURCES_IDS) {
            let request = DeployedResourcesRequest {
                certificate_ids: chunk.iter().map(|id| (*id).to_owned()).collect(),
                service_names: vec![service.map_or_else(|| "ALL".to_owned(), |s| s.to_string())],
            };
            let call = Call::DeployedResources(&request);
            let answered: DeployedResourcesResponse =
                answer(self.call(credentials, call).await, 200, "deployed-resources").map_err(|f| match f.kind {
                    FailureKind::Forbidden => PushFailure {
                        error_message: format!(
                            "{} (the IAM user lacks scm:cert:listDeployedResources: where the certificate is deployed \
                             is unknown, so nothing is deleted)",
                            f.error_message
                        ),
                        ..f
                    },
                    _ => f,
                })?;
            for (id, resources) in read_deployed(answered, service).map_err(unknown)? {
                held.entry(id).or_default().extend(resources);
            }
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer_of(value: serde_json::Value) -> DeployedResourcesResponse {
        serde_json::from_value(value).unwrap()
    }

    fn elb(region: &str, is_error: bool, ids: &[&str]) -> serde_json::Value {
        json!({"region_id": region, "is_error": is_error,
               "resources": ids.iter().map(|id| json!({"resource_id": id, "resource_name": "n"})).collect::<Vec<_>>()})
    }

    #[test]
    fn a_resource_is_its_id_whether_or_not_scm_appends_its_name() {
        assert_eq!(resource_key("elb-cert-1"), "elb-cert-1");
        assert_eq!(resource_key("elb-cert-1:my-listener-cert"), "elb-cert-1");
        assert_eq!(resource_key("elb-cert-1 : my listener cert"), "elb-cert-1");
        assert_eq!(resource_key("www.example.com"), "www.example.com");
        let read = read_deployed(
            answer_of(
                json!({"results": [{"certificate_id": "scs1", "total_num": 2, "deployed_resources": [
                {"service": "ELB", "region_resources": [elb("cn-north-4", false, &["e1:first", "e2"])]}]}]}),
            ),
            Some(TargetService::Elb),
        )
        .unwrap();
        let ids: Vec<&str> = read["scs1"].iter().map(|r| r.resource.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
    }

    /// Defect: `is_error` was dropped, so a region SCM could not read counted as one holding nothing, and a
    /// certificate served there could be deleted or deployed (billed) again.
    #[test]
    fn a_region_scm_could_not_read_makes_the_answer_unknown() {
        let value = json!({"results": [{"certificate_id": "scs1", "total_num": 1, "deployed_resources": [
            {"service": "ELB", "region_resources": [elb("cn-north-4", false, &["e1"]), elb("ap-southeast-1", true, &[])]}]}]});
        let why = read_deployed(answer_of(value.clone()), None).unwrap_err();
        assert!(why.contains("ELB in ap-southeast-1"), "{why}");
        assert!(read_deployed(answer_of(value.clone()), Some(TargetService::Elb)).is_err());
        // A region of another service is no concern of a question about one service.
        assert!(read_deployed(answer_of(value), Some(TargetService::Waf)).unwrap()["scs1"].is_empty());
        let failure = unknown(why);
        assert!(failure.in_use_unknown() && failure.kind.is_transient());
    }

    #[test]
    fn a_count_that_disagrees_with_the_list_makes_the_answer_unknown() {
        let value = json!({"results": [{"certificate_id": "scs1", "total_num": 3, "deployed_resources": [
            {"service": "ELB", "region_resources": [elb("cn-north-4", false, &["e1"])]}]}]});
        let why = read_deployed(answer_of(value), None).unwrap_err();
        assert!(why.contains("counts 3") && why.contains("lists 1"), "{why}");
        // An answer without a count is read as listed, and one deployed nowhere is known empty.
        let value = json!({"results": [{"certificate_id": "scs1", "deployed_resources": [
            {"service": "ELB", "region_resources": [elb("cn-north-4", false, &["e1"])]}]},
            {"certificate_id": "scs2", "total_num": 0, "deployed_resources": []}]});
        let read = read_deployed(answer_of(value), None).unwrap();
        assert_eq!(read["scs1"].len(), 1);
        assert!(read["scs2"].is_empty());
    }
}
