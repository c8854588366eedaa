//! Command line: `certpush-operator run` and `certpush-operator crd`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::leader::LeaderConfig;
use crate::scm::client::{DEFAULT_BURST, DEFAULT_ENDPOINT, DEFAULT_QPS};
use crate::source::ClusterName;
use crate::telemetry::LogFormat;

/// Pushes Huawei Cloud SCM certificates to CDN, WAF and ELB from CertificatePush resources.
#[derive(Parser, Debug)]
#[command(name = "certpush-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
// Parsed once at startup; boxing RunArgs would only make every use of it noisier.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the controller against the cluster from kubeconfig or the in-cluster config.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions (CertificatePush, SCMAccount, ClusterSCMAccount) as YAML documents.
    Crd(CrdArgs),
}

/// Flags of `crd`.
#[derive(Args, Debug, Clone)]
pub struct CrdArgs {
    /// Write each CRD into its own file in this directory (as `crds/` holds them) instead of printing them.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

/// Flags of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Base URL of the SCM API (http:// only for simulators); overrides --scm-region.
    #[arg(long, env = "SCM_ENDPOINT")]
    pub scm_endpoint: Option<String>,

    /// The Huawei Cloud site of the SCM account, by its SCM region: cn-north-4 (Chinese mainland, the default),
    /// ap-southeast-1 (international), eu-west-101 (Europe), my-kualalumpur-1 (Kuala Lumpur).
    #[arg(long, env = "SCM_REGION", value_enum)]
    pub scm_region: Option<ScmRegion>,

    /// PEM file with extra CA certificates to trust for the SCM endpoint (and the IAM endpoint).
    #[arg(long, env = "SCM_CA_FILE")]
    pub scm_ca_file: Option<PathBuf>,

    /// Base URL of IAM, asked for the account (domain) id of access keys given without domainId or projectId, as
    /// Huawei's SDK does (GET /v3/auth/domains, signed with the key); default: the IAM endpoint of the SCM endpoint's
    /// site (https://iam.{region}.myhuaweicloud.com), none for eu-west-101 or a custom --scm-endpoint, where such keys
    /// are refused naming domainId. http:// only with --allow-insecure-endpoint.
    #[arg(long, env = "IAM_ENDPOINT")]
    pub iam_endpoint: Option<String>,

    /// Watch only this namespace; repeat it (or list them comma-separated in WATCH_NAMESPACE) to watch several, each
    /// with its own watches, so a Role in each is all the RBAC needed (default: all namespaces).
    #[arg(long = "namespace", env = "WATCH_NAMESPACE", value_delimiter = ',', value_parser = namespace_name)]
    pub namespaces: Vec<String>,

    /// How many CertificatePushes are reconciled at once (a reconcile waiting for an SCM rate-limit token holds
    /// one; most of a reconcile is waiting on the API server and SCM, so many fit).
    #[arg(long, env = "CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// /readyz fails once a watch has been failing for this many seconds.
    #[arg(long, env = "UNREADY_AFTER_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub unready_after_seconds: u64,

    /// /healthz fails once a watch has been failing for this many seconds.
    #[arg(long, env = "UNHEALTHY_AFTER_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub unhealthy_after_seconds: u64,

    /// Requests per second to SCM for each account (access key or token), across its objects and requests; a 429
    /// halves that account's rate for a while.
    #[arg(long, env = "SCM_QPS", default_value_t = DEFAULT_QPS, value_parser = clap::value_parser!(u32).range(1..))]
    pub scm_qps: u32,

    /// Requests of one account to SCM that may go out at once before --scm-qps applies.
    #[arg(long, env = "SCM_BURST", default_value_t = DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub scm_burst: u32,

    /// Accept an `http://` --scm-endpoint (a local simulator): without it the operator refuses to start rather than
    /// send credentials and private keys unencrypted.
    #[arg(long, env = "ALLOW_INSECURE_ENDPOINT")]
    pub allow_insecure_endpoint: bool,

    /// Longest wait for one SCM request, answer included; a push that times out may still have landed, and is
    /// recorded as an unknown outcome.
    #[arg(long, env = "SCM_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub scm_timeout: Duration,

    /// Reconcile every CertificatePush this often, beside the watches, as a backstop (an up-to-date object costs no
    /// request); `0` turns it off.
    #[arg(long, env = "RESYNC_PERIOD", default_value = "10m", value_parser = parse_period)]
    pub resync_period: Duration,

    /// Honour the re-push annotation at most once per this interval for each object (counted from its last
    /// attempt), so an annotation changed in a loop cannot flood SCM; `0` turns it off.
    #[arg(long, env = "MIN_REPUSH_INTERVAL", default_value = "30s", value_parser = parse_period)]
    pub min_repush_interval: Duration,

    /// Handle only the CertificatePushes whose spec.controllerName is this name (those naming none belong to the
    /// default name), so two installations never push the same objects.
    #[arg(long, env = "CONTROLLER_NAME", default_value = crate::crd::DEFAULT_CONTROLLER_NAME, value_parser = parse_controller_name)]
    pub controller_name: String,

    /// This cluster's name, required when operators of several clusters share an SCM account: it goes into the name
    /// of every import, so that no operator finds, reuses or deletes another cluster's import of an object of the
    /// same namespace and name. Lowercase letters, digits and '-', at most 24; none by default, leaving import names
    /// as they were.
    #[arg(long, env = "CLUSTER_NAME", default_value = "", value_parser = ClusterName::parse)]
    pub cluster_name: ClusterName,

    /// Ask SCM where each pushed certificate is deployed (status.inUse) at most this often, and after each push,
    /// for the objects that import or deploy (a plain certificateId push costs no such question); questions of one
    /// credential are batched, 50 certificates per request; at least 1m, `0` turns it off.
    #[arg(long, env = "IN_USE_REFRESH", default_value = "1h", value_parser = parse_in_use_refresh)]
    pub in_use_refresh: Duration,

    /// Secret holding this installation's key for `status.credentialsDigest` (an HMAC, so readers of status
    /// cannot confirm a guessed credential); created with a random key when missing.
    #[arg(long, env = "DIGEST_KEY_SECRET", default_value = "certpush-operator-digest-key")]
    pub digest_key_secret: String,

    /// Read Secrets (credentialsRef, sourceSecretRef, SCMAccounts' credentials) only in this namespace; repeat it
    /// (or list them comma-separated in SECRET_NAMESPACES) for several. --cluster-resource-namespace is always
    /// read. Default: every watched namespace. With it the operator needs no Secret access elsewhere, and objects
    /// elsewhere that name a Secret are told so (CredentialsNotFound, InvalidSource).
    #[arg(long = "secret-namespace", env = "SECRET_NAMESPACES", value_delimiter = ',', value_parser = namespace_name)]
    pub secret_namespaces: Vec<String>,

    /// Namespace where the credentials Secrets of ClusterSCMAccounts are read, like cert-manager's
    /// --cluster-resource-namespace (default: POD_NAMESPACE, else --namespace, else "default").
    #[arg(long, env = "CLUSTER_RESOURCE_NAMESPACE", value_parser = namespace_name)]
    pub cluster_resource_namespace: Option<String>,

    /// Namespace of --digest-key-secret (default: POD_NAMESPACE, else --namespace, else "default").
    #[arg(long, env = "DIGEST_KEY_NAMESPACE")]
    pub digest_key_namespace: Option<String>,

    /// Take part in leader election: only the holder of the Lease reconciles, so several replicas can run for
    /// failover.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,

    /// Name of the leader election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "certpush-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (default: POD_NAMESPACE, else --namespace, else "default").
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long the Lease stays valid after its last renewal; others take over after this.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// The leader stops acting when its renewal has not landed for this long (shorter than --lease-duration).
    #[arg(long, env = "RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,

    /// How often the leader renews the Lease and a standby tries to take it.
    #[arg(long, env = "RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

/// An SCM site, named by the region of its endpoint: SCM is one endpoint per site, not per region.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScmRegion {
    /// Chinese-mainland site.
    #[value(name = "cn-north-4")]
    CnNorth4,
    /// International site (Hong Kong and the other regions outside the Chinese mainland and Europe).
    #[value(name = "ap-southeast-1")]
    ApSoutheast1,
    /// Europe site (myhuaweicloud.eu).
    #[value(name = "eu-west-101")]
    EuWest101,
    /// Kuala Lumpur region site.
    #[value(name = "my-kualalumpur-1")]
    MyKualalumpur1,
}

impl ScmRegion {
    /// The documented SCM endpoint of this site.
    pub fn endpoint(self) -> &'static str {
        match self {
            ScmRegion::CnNorth4 => DEFAULT_ENDPOINT,
            ScmRegion::ApSoutheast1 => "https://scm.ap-southeast-1.myhuaweicloud.com",
            ScmRegion::EuWest101 => "https://scm.eu-west-101.myhuaweicloud.eu",
            ScmRegion::MyKualalumpur1 => "https://scm.my-kualalumpur-1.myhuaweicloud.com",
        }
    }
}

/// Whether `text` is a DNS label (RFC 1123): what the API server accepts as a namespace, and spec.controllerName.
fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A DNS label, the form of spec.controllerName.
fn parse_controller_name(text: &str) -> Result<String, String> {
    is_dns_label(text)
        .then(|| text.to_owned())
        .ok_or_else(|| "must be lowercase letters, digits and '-' (at most 63), as spec.controllerName".to_owned())
}

/// Durations such as `15s`, `1m` or `1m30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from(signed).map_err(|_| "must not be negative".to_owned())
}

/// A [`parse_duration`] where a bare `0` also means zero, for periods that `0` turns off.
fn parse_period(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// `--in-use-refresh`: 0 (off) or at least a minute, so a typo cannot turn it into a loop of SCM requests.
fn parse_in_use_refresh(text: &str) -> Result<Duration, String> {
    match parse_period(text)? {
        d if !d.is_zero() && d < Duration::from_secs(60) => {
            Err("must be 0 (off) or at least 1m: each refresh is an SCM request per 50 certificates".to_owned())
        }
        d => Ok(d),
    }
}

/// A [`parse_duration`] that is not zero.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).and_then(|d| {
        if d.is_zero() {
            Err("must be more than 0s".to_owned())
        } else {
            Ok(d)
        }
    })
}

/// A namespace name as the API server accepts it, so a typo fails at start, not as a 404 later.
fn namespace_name(value: &str) -> Result<String, String> {
    is_dns_label(value).then(|| value.to_owned()).ok_or_else(|| {
        format!(
            "{value:?} is not a namespace name (lowercase letters, digits and '-', at most 63, starting and ending \
             with a letter or digit)"
        )
    })
}

impl RunArgs {
    /// Builds the process wiring these flags describe: clients, metrics, admin server, leader election, shutdown.
    pub async fn runtime(self) -> Result<crate::runtime::Runtime, crate::runtime::StartupError> {
        crate::runtime::Runtime::build(self).await
    }

    /// The SCM endpoint: --scm-endpoint, else --scm-region's, else the Chinese-mainland site's.
    pub fn endpoint(&self) -> String {
        self.scm_endpoint
            .clone()
            .unwrap_or_else(|| self.scm_region.map_or(DEFAULT_ENDPOINT, ScmRegion::endpoint).to_owned())
    }

    /// The namespaces to watch, each once, in the order given; empty for all namespaces.
    pub fn watched_namespaces(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.namespaces.iter().filter(|ns| seen.insert(*ns)).cloned().collect()
    }

    /// The namespace of the operator's own objects when no flag names one: the Pod's, else the (first) watched one.
    fn own_namespace(&self, flag: &Option<String>) -> String {
        flag.clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|v| !v.is_empty()))
            .or_else(|| self.namespaces.first().cloned())
            .unwrap_or_else(|| "default".into())
    }

    /// The namespace of --digest-key-secret.
    pub fn digest_key_namespace(&self) -> String {
        self.own_namespace(&self.digest_key_namespace)
    }

    /// Namespace of ClusterSCMAccounts' Secrets.
    pub fn cluster_resource_namespace(&self) -> String {
        self.own_namespace(&self.cluster_resource_namespace)
    }

    /// The only namespaces whose Secrets are read: --secret-namespace and --cluster-resource-namespace, sorted,
    /// each once; None without --secret-namespace (every watched namespace).
    pub fn secret_namespaces(&self) -> Option<Vec<String>> {
        if self.secret_namespaces.is_empty() {
            return None;
        }
        let mut listed = self.secret_namespaces.clone();
        listed.push(self.cluster_resource_namespace());
        listed.sort();
        listed.dedup();
        Some(listed)
    }

    /// The leader election settings, when `--leader-elect` is on.
    pub fn leader_config(&self) -> Option<LeaderConfig> {
        self.leader_elect.then(|| {
            let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
            // A fresh suffix per process: a restarted Pod is a new candidate, not the holder it replaced.
            let host = env("POD_NAME")
                .or_else(|| env("HOSTNAME"))
                .unwrap_or_else(|| "certpush-operator".into());
            LeaderConfig {
                lease_name: self.lease_name.clone(),
                lease_namespace: self.own_namespace(&self.lease_namespace),
                identity: format!("{host}-{:08x}", rand::random::<u32>()),
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_defaults_match_the_contract() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["certpush-operator", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.endpoint(), "https://scm.cn-north-4.myhuaweicloud.com");
        assert_eq!(
            args.iam_endpoint, None,
            "derived from the SCM endpoint's site by the client"
        );
        assert_eq!(args.concurrency, 64);
        assert!(args.namespaces.is_empty());
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.metrics_addr.to_string(), "0.0.0.0:8080");
        assert_eq!((args.unready_after_seconds, args.unhealthy_after_seconds), (60, 600));
        assert!(!args.leader_elect && args.leader_config().is_none());
        assert_eq!((args.scm_qps, args.scm_burst), (10, 20));
        assert_eq!(args.scm_timeout, crate::scm::REQUEST_TIMEOUT);
        assert_eq!(args.resync_period, Duration::from_secs(600));
        assert_eq!(args.min_repush_interval, Duration::from_secs(30));
        assert_eq!(args.in_use_refresh, Duration::from_secs(3600));
        // A refresh under a minute is a typo, not a wish: refused at start; 0 still turns it off.
        for (value, ok) in [("10s", false), ("59s", false), ("0", true), ("0s", true), ("1m", true)] {
            let parsed = Cli::try_parse_from(["certpush-operator", "run", "--in-use-refresh", value]);
            assert_eq!(parsed.is_ok(), ok, "--in-use-refresh {value}");
        }
        assert_eq!(args.controller_name, "certpush-operator");
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--controller-name", "Team_B"]).is_err());
        assert_eq!(args.lease_name, "certpush-operator");
        assert_eq!(args.digest_key_secret, "certpush-operator-digest-key");
        let durations = (args.lease_duration, args.renew_deadline, args.retry_period);
        assert_eq!(
            durations,
            (Duration::from_secs(15), Duration::from_secs(10), Duration::from_secs(2))
        );
    }

    /// The `run` flags parsed from `extra`.
    fn run_args(extra: &[&str]) -> RunArgs {
        let Command::Run(args) = Cli::try_parse_from([&["certpush-operator", "run"], extra].concat())
            .unwrap()
            .command
        else {
            panic!("expected run")
        };
        args
    }

    #[test]
    fn digest_key_namespace_is_the_flag_else_the_watched_one() {
        let parse = run_args;
        assert_eq!(parse(&["--digest-key-namespace", "ops"]).digest_key_namespace(), "ops");
        // POD_NAMESPACE is not set in unit tests (the Pod sets it, and the chart passes the flag anyway).
        if std::env::var_os("POD_NAMESPACE").is_none() {
            assert_eq!(parse(&["--namespace", "team-a"]).digest_key_namespace(), "team-a");
            let several = parse(&["--namespace", "team-b", "--namespace", "team-a"]);
            assert_eq!(several.digest_key_namespace(), "team-b");
            assert_eq!(parse(&[]).digest_key_namespace(), "default");
        }
    }

    #[test]
    fn namespace_repeats_and_each_is_watched_once() {
        let watched = |extra: &[&str]| run_args(extra).watched_namespaces();
        assert!(watched(&[]).is_empty());
        assert_eq!(
            watched(&[
                "--namespace",
                "team-a",
                "--namespace",
                "team-b",
                "--namespace",
                "team-a"
            ]),
            ["team-a", "team-b"]
        );
        assert_eq!(watched(&["--namespace", "team-a,team-b"]), ["team-a", "team-b"]);
        for bad in ["Team-A", "team_a", "-a", ""] {
            let parsed = Cli::try_parse_from(["certpush-operator", "run", "--namespace", bad]);
            assert!(parsed.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn scm_region_picks_its_sites_endpoint_and_scm_endpoint_wins() {
        let parse = |extra: &[&str]| run_args(extra).endpoint();
        assert_eq!(
            parse(&["--scm-region", "ap-southeast-1"]),
            "https://scm.ap-southeast-1.myhuaweicloud.com"
        );
        assert_eq!(
            parse(&["--scm-region", "eu-west-101"]),
            "https://scm.eu-west-101.myhuaweicloud.eu"
        );
        assert_eq!(
            parse(&["--scm-region", "my-kualalumpur-1"]),
            "https://scm.my-kualalumpur-1.myhuaweicloud.com"
        );
        let both = ["--scm-region", "eu-west-101", "--scm-endpoint", "http://127.0.0.1:9"];
        assert_eq!(parse(&both), "http://127.0.0.1:9");
        let error = Cli::try_parse_from(["certpush-operator", "run", "--scm-region", "cn-east-3"]).unwrap_err();
        assert!(error.to_string().contains("ap-southeast-1"), "{error}");
    }

    #[test]
    fn scm_timeout_takes_a_duration_and_refuses_zero() {
        let parse = |value: &str| Cli::try_parse_from(["certpush-operator", "run", "--scm-timeout", value]);
        let Command::Run(args) = parse("1m30s").unwrap().command else {
            panic!("expected run")
        };
        assert_eq!(args.scm_timeout, Duration::from_secs(90));
        let error = parse("0s").unwrap_err().to_string();
        assert!(error.contains("must be more than 0s"), "{error}");
        assert!(parse("soon").is_err());
    }

    #[test]
    fn resync_period_takes_a_duration_and_zero_turns_it_off() {
        let parse = |value: &str| Cli::try_parse_from(["certpush-operator", "run", "--resync-period", value]);
        let period = |value| match parse(value).unwrap().command {
            Command::Run(args) => args.resync_period,
            Command::Crd(_) => panic!("expected run"),
        };
        assert_eq!(period("1h30m"), Duration::from_secs(5400));
        assert_eq!(period("0s"), Duration::ZERO);
        assert_eq!(period("0"), Duration::ZERO);
        assert!(parse("-1m").is_err());
        assert!(parse("often").is_err());
    }

    #[test]
    fn leader_election_flags_make_a_valid_config() {
        let cli = Cli::try_parse_from([
            "certpush-operator",
            "run",
            "--leader-elect",
            "--lease-namespace",
            "ops",
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "3s",
            "--retry-period",
            "1s",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        let config = args.leader_config().expect("leader election on");
        assert_eq!(config.lease_namespace, "ops");
        assert!(config.validate().is_ok());
        let other = args.leader_config().unwrap();
        assert_ne!(config.identity, other.identity, "each process is its own candidate");
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--lease-duration", "soon"]).is_err());
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--scm-qps", "0"]).is_err());
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--metrics-addr", "nope"]).is_err());
    }

    /// Issue 29: the cluster name goes into import names, so a value that would not fit, or could run into the
    /// namespace after it, is refused at start with the reason, not at the first import.
    #[test]
    fn cluster_name_is_none_by_default_and_checked_at_start() {
        // CLUSTER_NAME is not set in unit tests (the chart passes the flag).
        if std::env::var_os("CLUSTER_NAME").is_none() {
            assert_eq!(run_args(&[]).cluster_name, ClusterName::default());
        }
        assert_eq!(
            run_args(&["--cluster-name", "prod-eu-1"]).cluster_name.as_str(),
            "prod-eu-1"
        );
        for (bad, why) in [
            ("Prod", "lowercase letters, digits and '-'"),
            ("prod_eu", "lowercase letters, digits and '-'"),
            ("-prod", "starting and ending with a letter or digit"),
            ("a-very-long-cluster-name-1", "at most 24"),
        ] {
            let flag = format!("--cluster-name={bad}");
            let error = Cli::try_parse_from(["certpush-operator", "run", &flag]).unwrap_err();
            let text = error.to_string();
            assert!(text.contains("--cluster-name") && text.contains(why), "{bad:?}: {text}");
        }
    }
}
