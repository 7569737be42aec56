//! `points-engine [serve|migrate]`: run the server (default) or only apply migrations.

use anyhow::Context;
use points_engine::config::Settings;
use points_engine::startup::Application;
use points_engine::{db::Db, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("reading settings")?;
    telemetry::init(settings.log_json);
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = Application::build(settings).await?;
            tracing::info!(address = %app.address(), "points-engine listening");
            app.run_until_stopped().await
        }
        Some("migrate") => {
            let db = Db::connect(&settings.database_url, 2).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; usage: points-engine [serve|migrate]")
        }
    }
}
