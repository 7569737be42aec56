//! `points-engine`: the server and its operator commands (`points-engine --help`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use points_engine::config::{self, Settings};
use points_engine::startup::Application;
use points_engine::{db::Db, telemetry};

/// Points ledger and live activities backend for mini-programs and apps. Settings come from the
/// environment (and the `POINTS_CONFIG` file); see the README's "Configuration".
#[derive(Parser)]
#[command(name = "points-engine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (what no command runs).
    Serve,
    /// Apply the database migrations and print the ones applied.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE, safe while the server runs.
    Backup {
        /// The new file to write (it must not exist).
        file: PathBuf,
    },
    /// Print the OpenAPI document of every route (what `/openapi.json` serves).
    Openapi,
    /// The settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective settings, secrets redacted, and warn about unknown POINTS_* keys.
    Check,
}

fn main() -> ExitCode {
    // Arguments first: `--help` and `--version` answer whatever the settings hold.
    let cli = Cli::parse();
    let outcome = actix_web::rt::System::new().block_on(run(cli));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("points-engine: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Openapi) = cli.command {
        // The document depends on no setting.
        let doc = points_engine::startup::openapi();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let vars = config::env_vars()?;
    let settings = Settings::from_vars(&vars).context("reading settings")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(settings.log_json);
            for key in config::unknown_keys(&vars) {
                tracing::warn!(%key, "unknown setting ignored (see `points-engine config check`)");
            }
            let app = Application::build(settings).await?;
            tracing::info!(address = %app.address(), "points-engine listening");
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let db = Db::connect(&settings.database_url, 2).await?;
            let before = db.applied_migrations().await;
            db.migrate().await?;
            let after = db.applied_migrations().await;
            let new: Vec<_> = after.iter().filter(|m| !before.contains(m)).collect();
            if new.is_empty() {
                println!(
                    "database up to date: {} migrations applied before",
                    after.len()
                );
            } else {
                println!("applied {} migrations:", new.len());
                for (version, description) in new {
                    println!("  {version} {description}");
                }
            }
            Ok(())
        }
        Command::Backup { file } => {
            let db = Db::connect(&settings.database_url, 2).await?;
            db.backup_to(&file).await?;
            println!("backup written to {}", file.display());
            Ok(())
        }
        Command::Openapi => unreachable!("answered before the settings are read"),
        Command::Config {
            action: ConfigAction::Check,
        } => {
            println!("{settings:#?}");
            let unknown = config::unknown_keys(&vars);
            for key in &unknown {
                println!("warning: {key} is not a setting (misspelt?); it is ignored");
            }
            Ok(())
        }
    }
}
