//! `points-loadtest`: drives a running points-engine over loopback with one scenario, then prints
//! a markdown table row (or a JSON line) with throughput and latency figures.
//!
//! Every run is bounded by a request count and/or a duration plus the per-request timeout, so it
//! always stops by itself. See `points-loadtest --help` for the scenarios and options.

mod args;
mod report;
mod scenario;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::args::{Command, Scenario};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => options,
        Err(error) => {
            eprintln!("points-loadtest: {error:#}\nrun `points-loadtest --help` for usage");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("points-loadtest: no request succeeded");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("points-loadtest: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the scenario and prints the result; returns whether any request succeeded.
async fn run(options: &args::Options) -> Result<bool> {
    let client = scenario::build_client(options)?;
    let target = Arc::new(scenario::Target::new(client, options));
    target.prepare_users().await?;
    let summary = match options.scenario {
        Scenario::Ledger | Scenario::Trivial | Scenario::Redpack => {
            scenario::closed_loop(Arc::clone(&target), options).await?
        }
        Scenario::LedgerRate => scenario::open_loop(Arc::clone(&target), options).await?,
    };
    target.verify(&summary).await?;
    summary.print(options)?;
    Ok(summary.stats.ok > 0)
}
