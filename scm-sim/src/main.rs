//! `scm-sim`: runs the Huawei Cloud SCM simulator as a standalone HTTP server for local demos.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use scm_sim::{DEMO_ACCESS_KEY, DEMO_CERTIFICATES, DEMO_SECRET_KEY, DEMO_TOKEN, Sim, SimConfig};
use tracing_subscriber::EnvFilter;

/// Fake Huawei Cloud SCM API (certificate push, batch push, deploy, deployed resources, list, show, import, delete)
/// with a `/sim/` control API.
#[derive(Parser)]
#[command(name = "scm-sim", version, about)]
struct Args {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Valid X-Auth-Token (repeatable); defaults to the built-in demo token.
    // Values are hidden from --help so that a token set in the environment is not echoed.
    #[arg(
        long = "token",
        env = "SCM_SIM_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// Accepted access key pair for SDK-HMAC-SHA256 signed requests, as AK:SK (repeatable); defaults to the demo pair.
    #[arg(
        long = "access-key",
        env = "SCM_SIM_ACCESS_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    // Parsed in `config`, not by clap, whose errors would repeat the value and with it the secret key.
    access_keys: Vec<String>,
    /// Token that authenticates but gets 403 APIGW.0302 (repeatable).
    #[arg(long = "forbidden-token")]
    forbidden_tokens: Vec<String>,
    /// Known certificate id (repeatable); defaults to the built-in demo set.
    #[arg(long = "certificate")]
    certificates: Vec<String>,
    /// Delay in milliseconds added before every SCM API answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer 400 SCM.0028 to a repeat of an already successful push.
    #[arg(long)]
    reject_duplicate_push: bool,
    /// Ignore the list's `content` keyword, like an endpoint that predates it (every certificate is listed).
    #[arg(long)]
    list_ignores_content: bool,
    /// Log output format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Output format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the global subscriber, writing to stderr; `RUST_LOG` overrides the default `info` level.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Stdout carries only the startup line that scripts wait for.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `try_init` fails only when a subscriber is already installed, and logs then go to that one.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `AK:SK`; the error never repeats the value, which holds a secret key.
fn parse_access_key(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((ak, sk)) if !ak.is_empty() && !sk.is_empty() => Ok((ak.to_owned(), sk.to_owned())),
        _ => Err("expected ACCESS_KEY:SECRET_KEY".to_owned()),
    }
}

impl Args {
    fn config(&self) -> Result<SimConfig, String> {
        let tokens: Vec<String> = self.tokens.iter().filter(|t| !t.is_empty()).cloned().collect();
        Ok(SimConfig {
            tokens: if tokens.is_empty() {
                vec![DEMO_TOKEN.to_owned()]
            } else {
                tokens
            },
            forbidden_tokens: self.forbidden_tokens.clone(),
            access_keys: if self.access_keys.is_empty() {
                vec![(DEMO_ACCESS_KEY.to_owned(), DEMO_SECRET_KEY.to_owned())]
            } else {
                self.access_keys
                    .iter()
                    .map(|pair| parse_access_key(pair))
                    .collect::<Result<_, _>>()?
            },
            certificates: if self.certificates.is_empty() {
                DEMO_CERTIFICATES.iter().map(|id| (*id).to_owned()).collect()
            } else {
                self.certificates.clone()
            },
            latency: Duration::from_millis(self.latency_ms),
            reject_duplicate_push: self.reject_duplicate_push,
            chaos: None,
            list_ignores_content: self.list_ignores_content,
        })
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    init_logging(args.log_format);
    let addr = SocketAddr::new(args.bind, args.port);
    let sim = Sim::start(args.config()?, addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    // Printed on stdout (logs go to stderr) so scripts can wait for this exact line.
    println!("scm-sim listening on {}", sim.url());
    tracing::info!(addr = %sim.addr(), "scm-sim started");
    shutdown_signal().await?;
    tracing::info!("scm-sim shutting down");
    sim.shutdown();
    sim.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn empty_token_list_falls_back_to_the_demo_token() {
        let args = Args::parse_from(["scm-sim", "--token", ""]);
        let config = args.config().unwrap();
        assert_eq!(config.tokens, vec![DEMO_TOKEN.to_owned()]);
        assert_eq!(config.certificates.len(), DEMO_CERTIFICATES.len());
        assert_eq!(
            config.access_keys,
            vec![(DEMO_ACCESS_KEY.to_owned(), DEMO_SECRET_KEY.to_owned())]
        );
        assert_eq!(args.port, 18080);
        assert_eq!(args.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn access_keys_are_pairs_and_a_malformed_one_is_refused_without_echo() {
        let args = Args::parse_from(["scm-sim", "--access-key", "AK1:SK:with:colons"]);
        assert_eq!(
            args.config().unwrap().access_keys,
            vec![("AK1".to_owned(), "SK:with:colons".to_owned())]
        );
        let args = Args::parse_from(["scm-sim", "--access-key", "onlysecretpart"]);
        let error = args.config().unwrap_err();
        assert!(
            error.contains("ACCESS_KEY:SECRET_KEY") && !error.contains("onlysecretpart"),
            "{error}"
        );
    }
}
