//! Mutable simulator state: credentials, certificates, recorded calls and queued faults.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ring::digest;
use serde_json::{Value, json};

use super::{Call, Copy, Deployment, Fault, FaultAction, SimConfig};

/// What a push is remembered by for duplicate rejection: (certificate, service, project).
pub(super) type PushKey = (String, String, String);

/// Where a deploy binds a certificate: (service, project, resource), the resource being the target service's
/// certificate id for ELB and WAF and the domain for CDN. CDN is global, so its project is always empty.
pub(super) type BindingKey = (String, String, String);

/// A per-resource deploy failure queued by [`super::Sim::fail_deploy`].
#[derive(Clone, Debug)]
pub(super) struct QueuedDeployFailure {
    /// Resource id (ELB, WAF) or domain (CDN) it applies to.
    pub resource: String,
    /// The target service's error code reported in `failure_info`.
    pub failure_info: String,
    /// Deploys of the resource it still fails.
    pub times: u32,
}

/// A certificate the simulator knows; only public metadata, never a private key.
#[derive(Clone, Debug)]
pub(super) struct Certificate {
    pub id: String,
    pub name: String,
    pub domain: String,
    /// `ISSUED` for certificates the simulator was configured with, `UPLOAD` for imported ones.
    pub status: &'static str,
    pub not_before: String,
    pub not_after: String,
    /// SHA-1 of the certificate (DER), lower-case hex, as SCM reports it; made up from the id when there is no
    /// readable certificate.
    pub fingerprint: String,
}

impl Certificate {
    fn new(id: &str, name: String, domain: String, status: &'static str) -> Self {
        let now = jiff::Timestamp::now();
        let not_after = now
            .checked_add(jiff::SignedDuration::from_hours(365 * 24))
            .unwrap_or(now);
        Self {
            id: id.to_owned(),
            name,
            domain,
            status,
            not_before: scm_time(now),
            not_after: scm_time(not_after),
            fingerprint: hex::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, id.as_bytes())),
        }
    }

    /// Entry in the list response.
    pub fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "domain": self.domain,
            "sans": "",
            "signature_algorithm": "SHA256WITHRSA",
            "deploy_support": true,
            "type": self.kind(),
            "brand": self.brand(),
            "expire_time": self.not_after,
            "domain_type": "SINGLE_DOMAIN",
            "validity_period": 12,
            "status": self.status,
            "domain_count": 1,
            "wildcard_count": 0,
            "description": "",
            "domain_id": ACCOUNT_ID,
            "enterprise_project_id": DEFAULT_ENTERPRISE_PROJECT,
        })
    }

    /// Body of the show response.
    pub fn detail(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "order_id": "",
            "name": self.name,
            "type": self.kind(),
            "brand": self.brand(),
            "push_support": "ON",
            "revoke_reason": "",
            "signature_algorithm": "SHA256WITHRSA",
            "issue_time": self.not_before,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "validity_period": 12,
            "validation_method": "DNS",
            "domain_type": "SINGLE_DOMAIN",
            // Only multi-domain certificates have one; Huawei's example answer for a single-domain one has null.
            "multi_domain_type": null,
            "domain": self.domain,
            "sans": "",
            "domain_count": 1,
            "wildcard_count": 0,
            "fingerprint": self.fingerprint,
            "shared": false,
            "description": "",
            "enterprise_project_id": DEFAULT_ENTERPRISE_PROJECT,
            "authentification": [],
        })
    }

    fn kind(&self) -> &'static str {
        if self.status == "UPLOAD" {
            "UPLOAD"
        } else {
            "DV_SSL_CERT"
        }
    }

    fn brand(&self) -> &'static str {
        if self.status == "UPLOAD" { "UPLOAD" } else { "GEOTRUST" }
    }
}

/// The account (domain) id the simulator reports as the owner of every certificate (`domain_id`).
const ACCOUNT_ID: &str = "5e0d7a16c2b94f0e8d3a1b2c4d5e6f70";

/// The enterprise project every certificate is in: the default one.
const DEFAULT_ENTERPRISE_PROJECT: &str = "0";

/// What SCM reads from an uploaded leaf certificate.
struct Leaf {
    not_before: jiff::Timestamp,
    not_after: jiff::Timestamp,
    /// The subject's common name, else the first DNS name.
    domain: String,
    /// SHA-1 of the DER encoding, lower-case hex.
    fingerprint: String,
}

impl Leaf {
    fn read(pem: &str) -> Option<Self> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.trim_start().as_bytes()).ok()?;
        let cert = pem.parse_x509().ok()?;
        let time = |t: x509_parser::time::ASN1Time| jiff::Timestamp::from_second(t.timestamp()).ok();
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let first_dns = || {
            let san = cert.subject_alternative_name().ok().flatten()?;
            san.value.general_names.iter().find_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
        };
        Some(Self {
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
            domain: common_name.or_else(first_dns).unwrap_or_default(),
            fingerprint: hex::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &pem.contents)),
        })
    }
}

/// Timestamps in the `yyyy-MM-dd HH:mm:ss.S` style SCM uses (in UTC here; SCM does not say which zone it uses).
fn scm_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S.0").to_string()
}

/// Signature failures in a row that the gateway tolerates before it locks an access key.
pub(super) const MAX_SIGNATURE_FAILURES: u32 = 5;
/// How long a locked access key stays locked.
pub(super) const LOCK_DURATION: Duration = Duration::from_secs(5 * 60);

/// Everything a request can read or change, behind one mutex.
pub(super) struct State {
    pub tokens: HashSet<String>,
    pub forbidden_tokens: HashSet<String>,
    /// Secret key by access key id.
    pub access_keys: HashMap<String, String>,
    /// Signature failures in a row per access key id, and when the last one happened.
    pub signature_failures: HashMap<String, (u32, Instant)>,
    /// In creation order so that list pagination is stable.
    pub certificates: Vec<Certificate>,
    pub latency: Duration,
    pub reject_duplicate_push: bool,
    /// See [`SimConfig::list_ignores_content`].
    pub list_ignores_content: bool,
    /// How far the simulated gateway's clock is ahead of the real one: it checks signature times and writes the
    /// `Date` header with it, as a gateway would whose clock (or the caller's) is off.
    pub clock_offset: jiff::SignedDuration,
    pub calls: Vec<Call>,
    pub faults: VecDeque<Fault>,
    /// Queued faults for delete calls, kept apart so a push fault never answers a delete.
    pub delete_faults: VecDeque<Fault>,
    /// Queued faults for import calls (`certificate_id` matches the certificate name).
    pub import_faults: VecDeque<Fault>,
    pub pushed: HashSet<PushKey>,
    pub chaos: Option<super::Chaos>,
    /// Random faults in a row per push target, for [`super::Chaos::max_in_a_row`].
    pub chaos_streaks: HashMap<PushKey, u32>,
    /// Queued faults for deploy calls (`certificate_id` matches the certificate deployed).
    pub deploy_faults: VecDeque<Fault>,
    /// Queued faults for batch-push calls (`certificate_id` matches the certificate pushed).
    pub batch_push_faults: VecDeque<Fault>,
    /// Queued faults for deployed-resources calls (`certificate_id` matches any certificate asked about).
    pub deployed_resources_faults: VecDeque<Fault>,
    /// Per-resource deploy failures, used in queue order.
    pub deploy_failures: VecDeque<QueuedDeployFailure>,
    /// Which certificate each bound resource serves now; ordered so that listings are stable.
    pub bindings: BTreeMap<BindingKey, String>,
    /// Successful deploys per (certificate, resource): each one is billed.
    pub deploy_counts: HashMap<(String, String), u32>,
    /// Regions a batch push answers with "Invalid region id.".
    pub failing_regions: HashSet<String>,
    /// Regions deployed-resources cannot read: reported with `is_error`, their bindings hidden.
    pub unreadable_regions: HashSet<String>,
    /// Whether deployed-resources reports a `resource_id` as `{id}:{name}` instead of the bare id.
    pub resource_id_with_name: bool,
    /// Certificates a batch push created in target services, in creation order.
    pub copies: Vec<Copy>,
    /// Domain id IAM reports per access key id, where not [`crate::default_domain_id`].
    pub domains: HashMap<String, String>,
    /// How IAM answers `GET /v3/auth/domains`.
    pub iam_answer: crate::IamAnswer,
}

impl State {
    /// The state a simulator starts with.
    pub fn new(config: SimConfig) -> Self {
        let mut state = Self {
            tokens: HashSet::new(),
            forbidden_tokens: non_empty(config.forbidden_tokens),
            access_keys: HashMap::new(),
            signature_failures: HashMap::new(),
            certificates: Vec::new(),
            latency: config.latency,
            reject_duplicate_push: config.reject_duplicate_push,
            list_ignores_content: config.list_ignores_content,
            clock_offset: jiff::SignedDuration::ZERO,
            calls: Vec::new(),
            faults: VecDeque::new(),
            delete_faults: VecDeque::new(),
            import_faults: VecDeque::new(),
            pushed: HashSet::new(),
            chaos: config.chaos,
            chaos_streaks: HashMap::new(),
            deploy_faults: VecDeque::new(),
            batch_push_faults: VecDeque::new(),
            deployed_resources_faults: VecDeque::new(),
            deploy_failures: VecDeque::new(),
            bindings: BTreeMap::new(),
            deploy_counts: HashMap::new(),
            failing_regions: HashSet::new(),
            unreadable_regions: HashSet::new(),
            resource_id_with_name: false,
            copies: Vec::new(),
            domains: HashMap::new(),
            iam_answer: crate::IamAnswer::default(),
        };
        state.set_tokens(config.tokens);
        state.set_access_keys(config.access_keys);
        for id in &config.certificates {
            state.add_certificate(id);
        }
        state
    }

    /// Replaces the valid tokens.
    pub fn set_tokens(&mut self, tokens: Vec<String>) {
        // An empty token would let a request with an empty header authenticate.
        self.tokens = non_empty(tokens);
    }

    /// Replaces the accepted access key pairs and forgets any lockout.
    pub fn set_access_keys(&mut self, keys: Vec<(String, String)>) {
        // Empty ids or keys would make a trivially forgeable signature acceptable.
        self.access_keys = keys
            .into_iter()
            .filter(|(ak, sk)| !ak.is_empty() && !sk.is_empty())
            .collect();
        self.signature_failures.clear();
    }

    /// Whether the gateway's lock applies: more than [`MAX_SIGNATURE_FAILURES`] failures in a row, the last one
    /// less than [`LOCK_DURATION`] ago.
    pub fn access_key_locked(&self, access_key: &str) -> bool {
        self.signature_failures
            .get(access_key)
            .is_some_and(|(count, last)| *count > MAX_SIGNATURE_FAILURES && last.elapsed() < LOCK_DURATION)
    }

    /// Counts a signature check: a success resets the run of failures.
    pub fn signature_checked(&mut self, access_key: &str, valid: bool) {
        if valid {
            self.signature_failures.remove(access_key);
        } else {
            let entry = self
                .signature_failures
                .entry(access_key.to_owned())
                .or_insert((0, Instant::now()));
            *entry = (entry.0.saturating_add(1), Instant::now());
        }
    }

    /// Makes a configured (`ISSUED`) certificate known; an existing id is left as it is.
    pub fn add_certificate(&mut self, id: &str) {
        if self.certificate(id).is_none() {
            let n = self.certificates.len() + 1;
            self.certificates.push(Certificate::new(
                id,
                format!("sim-cert-{n}"),
                format!("cert{n}.example.com"),
                "ISSUED",
            ));
        }
    }

    /// Adds an imported certificate under a fresh `scs` + 13 digit id and returns the id. Like SCM, it reports the
    /// certificate's own expiry and domain, when `certificate_pem` can be read.
    pub fn import_certificate(&mut self, name: &str, certificate_pem: &str) -> String {
        // Real ids are the upload time in epoch milliseconds; bump on collision to stay unique.
        let mut millis = u64::try_from(jiff::Timestamp::now().as_millisecond())
            .unwrap_or(0)
            .clamp(1_000_000_000_000, 9_999_999_999_999);
        let id = loop {
            let id = format!("scs{millis}");
            if self.certificate(&id).is_none() {
                break id;
            }
            millis += 1;
        };
        let mut certificate = Certificate::new(&id, name.to_owned(), String::new(), "UPLOAD");
        // Tests import placeholder PEM too; those keep the made-up validity.
        if let Some(leaf) = Leaf::read(certificate_pem) {
            certificate.not_before = scm_time(leaf.not_before);
            certificate.not_after = scm_time(leaf.not_after);
            certificate.domain = leaf.domain;
            certificate.fingerprint = leaf.fingerprint;
        }
        self.certificates.push(certificate);
        id
    }

    /// Removes a certificate; false when there was none.
    pub fn remove_certificate(&mut self, id: &str) -> bool {
        let before = self.certificates.len();
        self.certificates.retain(|c| c.id != id);
        self.certificates.len() != before
    }

    /// The certificate with this id, if SCM holds it.
    pub fn certificate(&self, id: &str) -> Option<&Certificate> {
        self.certificates.iter().find(|c| c.id == id)
    }

    /// A random fault for a push to `key`, if chaos is on and the dice say so; a call without one ends the streak.
    pub fn chaos_fault(&mut self, key: PushKey) -> Option<FaultAction> {
        let chaos = self.chaos.clone()?;
        let streak = self.chaos_streaks.entry(key).or_insert(0);
        if *streak >= chaos.max_in_a_row || rand::random::<f64>() >= chaos.rate {
            *streak = 0;
            return None;
        }
        *streak += 1;
        let error = |status, code: &str, msg: &str| FaultAction::Error {
            status,
            error_code: code.to_owned(),
            error_msg: msg.to_owned(),
        };
        let kinds = if chaos.stall_ms > 0 { 5 } else { 4 };
        Some(match rand::random_range(0..kinds) {
            0 => error(503, "APIGW.0613", "The IAM service is currently unavailable."),
            1 => error(429, "APIGW.0308", "The throttling threshold has been reached."),
            2 => FaultAction::Drop,
            3 => FaultAction::Delay { ms: chaos.slow_ms },
            _ => FaultAction::GatewayTimeout { ms: chaos.stall_ms },
        })
    }

    /// Uses up one application of the first queued fault matching a push for `certificate_id`.
    pub fn take_fault(&mut self, certificate_id: &str) -> Option<FaultAction> {
        take_from(&mut self.faults, certificate_id)
    }

    /// Uses up one application of the first queued fault matching a delete of `certificate_id`.
    pub fn take_delete_fault(&mut self, certificate_id: &str) -> Option<FaultAction> {
        take_from(&mut self.delete_faults, certificate_id)
    }

    /// Uses up one application of the first queued fault matching an import named `name`.
    pub fn take_import_fault(&mut self, name: &str) -> Option<FaultAction> {
        take_from(&mut self.import_faults, name)
    }

    /// Uses up one application of the first queued fault matching a deploy of `certificate_id`.
    pub fn take_deploy_fault(&mut self, certificate_id: &str) -> Option<FaultAction> {
        take_from(&mut self.deploy_faults, certificate_id)
    }

    /// Uses up one application of the first queued fault matching a batch push of `certificate_id`.
    pub fn take_batch_push_fault(&mut self, certificate_id: &str) -> Option<FaultAction> {
        take_from(&mut self.batch_push_faults, certificate_id)
    }

    /// Uses up one application of the first queued fault matching a deployed-resources query about any of
    /// `certificate_ids`.
    pub fn take_deployed_resources_fault(&mut self, certificate_ids: &[String]) -> Option<FaultAction> {
        let index = self.deployed_resources_faults.iter().position(|f| {
            f.certificate_id
                .as_deref()
                .is_none_or(|id| certificate_ids.iter().any(|asked| asked == id))
        })?;
        use_once(&mut self.deployed_resources_faults, index)
    }

    /// Uses up one application of the first queued failure for `resource`, returning its `failure_info`.
    pub fn take_deploy_failure(&mut self, resource: &str) -> Option<String> {
        let index = self.deploy_failures.iter().position(|f| f.resource == resource)?;
        let failure = &mut self.deploy_failures[index];
        let info = failure.failure_info.clone();
        failure.times = failure.times.saturating_sub(1);
        if failure.times == 0 {
            self.deploy_failures.remove(index);
        }
        Some(info)
    }

    /// Binds `resource` of `service` in `project` to `certificate_id`, taking it from any certificate it served.
    pub fn bind(&mut self, certificate_id: &str, service: &str, project: &str, resource: &str) {
        // CDN is a global service: a domain is the same resource whatever project a request names.
        let project = if service == "CDN" { "" } else { project };
        self.bindings.insert(
            (service.to_owned(), project.to_owned(), resource.to_owned()),
            certificate_id.to_owned(),
        );
    }

    /// The current bindings as [`Deployment`]s, ordered by service, project and resource.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.bindings
            .iter()
            .map(|((service, project, resource), certificate_id)| Deployment {
                certificate_id: certificate_id.clone(),
                service: service.clone(),
                project: project.clone(),
                resource: resource.clone(),
            })
            .collect()
    }

    /// A fresh id for a certificate created in a target service: 32 lower-case hex digits, like ELB's and WAF's.
    pub fn new_copy_id(&self) -> String {
        loop {
            let id = format!("{:032x}", rand::random::<u128>());
            if self.copies.iter().all(|c| c.copy_id != id) {
                return id;
            }
        }
    }

    /// Forgets calls, faults, earlier pushes, lockouts, deploys (bindings and their billing), failing and unreadable
    /// regions and copies, and reports bare resource ids again; credentials and certificates stay.
    pub fn reset(&mut self) {
        self.calls.clear();
        self.faults.clear();
        self.delete_faults.clear();
        self.import_faults.clear();
        self.deploy_faults.clear();
        self.batch_push_faults.clear();
        self.deployed_resources_faults.clear();
        self.deploy_failures.clear();
        self.pushed.clear();
        self.signature_failures.clear();
        self.bindings.clear();
        self.deploy_counts.clear();
        self.failing_regions.clear();
        self.unreadable_regions.clear();
        self.resource_id_with_name = false;
        self.copies.clear();
        self.iam_answer = crate::IamAnswer::default();
    }

    /// The domain id IAM reports for `access_key`.
    pub fn domain_of(&self, access_key: &str) -> String {
        self.domains
            .get(access_key)
            .cloned()
            .unwrap_or_else(|| crate::default_domain_id(access_key))
    }
}

/// Uses up one application of the first fault in `faults` matching `certificate_id`.
fn take_from(faults: &mut VecDeque<Fault>, certificate_id: &str) -> Option<FaultAction> {
    let index = faults
        .iter()
        .position(|f| f.certificate_id.as_deref().is_none_or(|id| id == certificate_id))?;
    use_once(faults, index)
}

/// Uses up one application of the fault at `index`, removing it when none is left.
fn use_once(faults: &mut VecDeque<Fault>, index: usize) -> Option<FaultAction> {
    let fault = faults.get_mut(index)?;
    let action = fault.action.clone();
    fault.times = fault.times.saturating_sub(1);
    if fault.times == 0 {
        faults.remove(index);
    }
    Some(action)
}

fn non_empty(values: Vec<String>) -> HashSet<String> {
    values.into_iter().filter(|v| !v.is_empty()).collect()
}
