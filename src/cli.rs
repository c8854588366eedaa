//! Command line: `certpush-operator run` and `certpush-operator crd`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::scm::client::DEFAULT_ENDPOINT;
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
pub enum Command {
    /// Run the controller against the cluster from kubeconfig or the in-cluster config.
    Run(RunArgs),
    /// Print the CertificatePush CustomResourceDefinition as YAML.
    Crd,
}

/// Flags of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Base URL of the SCM API (http:// only for simulators).
    #[arg(long, env = "SCM_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub scm_endpoint: String,

    /// PEM file with extra CA certificates to trust for the SCM endpoint.
    #[arg(long, env = "SCM_CA_FILE")]
    pub scm_ca_file: Option<PathBuf>,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// How many CertificatePushes are reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
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
        assert_eq!(args.scm_endpoint, "https://scm.cn-north-4.myhuaweicloud.com");
        assert_eq!(args.concurrency, 16);
        assert_eq!(args.namespace, None);
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.metrics_addr.to_string(), "0.0.0.0:8080");
        assert_eq!((args.unready_after_seconds, args.unhealthy_after_seconds), (60, 600));
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["certpush-operator", "run", "--metrics-addr", "nope"]).is_err());
    }
}
