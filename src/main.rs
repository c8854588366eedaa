//! The `certpush-operator` binary.

use clap::Parser;

use certpush_operator::cli::{Cli, Command};
use certpush_operator::{controller, crd, install_crypto_provider, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => match crd::write_crds(args.output_dir.as_deref()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            telemetry::init(args.log_format);
            match args.runtime().await {
                Ok(runtime) => {
                    controller::run(runtime).await;
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!(error = %e, "operator failed");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
