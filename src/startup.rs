//! Wiring: database, stores, the ledger actor, routes and the listener.
//!
//! [`Application::build`] binds the listener and reads back the real port, so tests start the
//! whole server on port 0 and talk to it over HTTP.

use std::net::TcpListener;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use points_actors::{LedgerActor, LedgerLimits, LedgerStore};

use crate::clock::BizClock;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::db::Db;
use crate::facades::{admin, center, export, giftpoint, miniapp, open, service};
use crate::http::ApiDoc;
use crate::metrics::Metrics;
use crate::state::{AppState, Caches};
use crate::store::Stores;

/// A built server, bound and ready to run.
pub struct Application {
    port: u16,
    host: String,
    server: Server,
    ledger: Addr<LedgerActor>,
    cluster: Arc<Cluster>,
    /// This process's claim on a SQLite file, held until the server has stopped.
    _sqlite: Option<crate::db::SqliteClaim>,
}

/// Registers every route of every dialect, recording each in `doc`.
pub fn register_routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    service::routes(cfg, doc);
    giftpoint::routes(cfg, doc);
    center::routes(cfg, doc);
    open::routes(cfg, doc);
    miniapp::routes(cfg, doc);
    admin::routes(cfg, doc);
    export::routes(cfg, doc);
    crate::activities::routes(cfg, doc);
    crate::ws::routes(cfg, doc);
    crate::fulfilment::routes(cfg, doc);
    crate::features::routes(cfg, doc);
}

/// What a request no route takes answers: 405 with `Allow` on a known path asked with another
/// method, 404 elsewhere.
async fn no_route(
    req: actix_web::HttpRequest,
    methods: web::Data<crate::http::MethodTable>,
) -> HttpResponse {
    match methods.allow(req.path()) {
        Some(allow) => HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow.clone()))
            .json(serde_json::json!({
                "error": "METHOD_NOT_ALLOWED",
                "message": format!("{} answers {allow}", req.path()),
            })),
        None => HttpResponse::NotFound()
            .json(serde_json::json!({"error": "NOT_FOUND", "message": "no such route"})),
    }
}

/// Every route [`register_routes`] registers, documented.
fn route_doc() -> ApiDoc {
    let mut doc = ApiDoc::default();
    // `App::configure` runs the closure at once; the app itself is dropped.
    let _ = App::new().configure(|cfg| register_routes(cfg, &mut doc));
    doc
}

/// The OpenAPI document of every route [`register_routes`] registers.
/// CORS for the H5 pages at `origins` (`POINTS_CORS_ORIGINS`): their browsers may call every
/// route with any request header and read `X-Request-Id` and `Retry-After`; no cookies are
/// involved (sessions travel in headers). A request from another origin is served without CORS
/// headers, so its browser withholds the answer; clients that are not browsers are unaffected.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(["x-request-id", "retry-after"])
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The OpenAPI document of every route.
pub fn openapi() -> serde_json::Value {
    route_doc().document(
        "Points ledger and live activities behind four API dialects: 000 gift points \
         (`/v2/*`, `/core/*`), 001 points center (`/center/*`), 002 open integral \
         (`/api/v1/open/swan/integral/*`), 003 mini-program (`/api/*/`), plus the admin API \
         (`/admin/*`, in the 000 envelope). Each answer is documented in its dialect's \
         envelope, refusals included.",
    )
}

/// This node's address and id: the settings', or derived from the bound address.
fn identity(settings: &Settings, local: std::net::SocketAddr) -> (String, String) {
    let addr = settings
        .node_addr
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let node_id = settings
        .node_id
        .clone()
        .unwrap_or_else(|| Cluster::id_of_addr(&addr));
    (addr, node_id)
}

/// This node: in a cluster when the settings name Postgres and Redis, else a single node.
fn node(settings: &Settings, db: &Db, addr: String, node_id: String) -> Cluster {
    match (&db.hot_pg, settings.cluster()) {
        (Some(pool), true) => {
            tracing::info!(
                node_id,
                addr,
                "cluster mode: activities are owned by leases"
            );
            Cluster::clustered(node_id, addr, settings.lease_ttl, pool.clone())
        }
        _ => Cluster::single(node_id, addr),
    }
}

impl Application {
    /// Connects, migrates, starts the ledger actor and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        if settings.dev_login {
            tracing::warn!(
                "POINTS_DEV_LOGIN is on: anyone can log in as any dev_* user. Never enable it in production."
            );
        }
        tracing::info!(settings = ?settings, "starting");
        // Bound first: a port in use stops the start before anything is created.
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let (addr, node_id) = identity(&settings, local);
        // On Postgres every connection names its node, so `pg_stat_activity` tells them apart.
        let url = crate::db::with_application_name(
            &settings.database_url,
            &format!("points-engine {node_id}"),
        );
        let db = Db::connect(&url, settings.db_max_connections).await?;
        let sqlite = db.claim_single_process()?;
        db.migrate().await?;
        let stores = Stores::new(db);
        let metrics = Arc::new(Metrics::new().context("creating metrics")?);

        let ledger_store: Arc<dyn LedgerStore> = Arc::new(stores.ledger.clone());
        let limits = LedgerLimits {
            commits_in_flight_max: settings.ledger_pipeline.unwrap_or(1),
            ..settings.ledger
        };
        let ledger_metrics = metrics.ledger.clone();
        // The ledger runs on the system arbiter (the thread that runs `main`), which otherwise
        // only accepts connections: HTTP workers have threads of their own, so a busy worker
        // never delays a commit. On a graceful stop the ledger outlives the workers and is
        // drained last.
        let ledger = LedgerActor::new(ledger_store, limits, Some(ledger_metrics)).start();

        let redis_client = match &settings.redis_url {
            Some(url) => Some(
                redis::Client::open(url.as_str())
                    .map_err(|e| anyhow::anyhow!("REDIS_URL is invalid: {e}"))?,
            ),
            None => None,
        };
        let redis = match &redis_client {
            Some(client) => {
                let redis = crate::state::Redis::new(client.clone());
                if let Err(e) = redis.ping().await {
                    tracing::warn!(error = %e, "Redis unreachable at start-up; will retry when used");
                }
                Some(redis)
            }
            None => None,
        };

        let hub = Arc::new(crate::runtime::hub::Hub::default());
        hub.start_ticker();

        // The leaderboards listen to the ledger before they read the database: a commit that
        // lands between the two reaches them as a notification, and the merge keeps the newer.
        let clock = BizClock::new(settings.timezone);
        let day_of: points_actors::leaderboard::DayOf = Arc::new(move |ms| clock.format_date(ms));
        let board_changed = Arc::new(tokio::sync::Notify::new());
        let leaderboard = points_actors::leaderboard::LeaderboardActor::new(day_of)
            .notify_changes(Arc::clone(&board_changed))
            .start();
        ledger.do_send(points_actors::Listen(leaderboard.clone().recipient()));
        // With several nodes, frames and the other nodes' changes come through Redis. The bus
        // notes where the stream of changes ends before the boards read the database.
        let bus = match (&redis_client, &stores.db.hot_pg, settings.cluster()) {
            (Some(client), Some(pool), true) => {
                let database: String = sqlx::query_scalar("SELECT current_database()")
                    .fetch_one(pool)
                    .await
                    .context("reading the database's name")?;
                let bus = crate::cluster::bus::Bus::start(
                    node_id.clone(),
                    &database,
                    client.clone(),
                    Arc::clone(&hub),
                    leaderboard.clone(),
                    metrics.cluster.clone(),
                )
                .await;
                ledger.do_send(points_actors::Listen(bus.listener()));
                Some(bus)
            }
            _ => None,
        };
        crate::activities::leaderboard::rebuild(&stores.db, &clock, &leaderboard)
            .await
            .context("rebuilding the leaderboards")?;

        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        let cluster = Arc::new(
            node(&settings, &stores.db, addr, node_id).with_metrics(metrics.cluster.clone()),
        );
        cluster.spawn_keeper();
        let limiter = crate::limits::Limiter::new(
            settings.rate_limits.clone(),
            bus.as_ref().map(|b| b.limit_prefix().to_string()),
        )
        .with_relay_token(crate::limits::middleware::relay_token(
            settings.admin_key.as_deref(),
        ));
        let state = web::Data::new(AppState {
            clock: BizClock::new(settings.timezone),
            settings: settings.clone(),
            stores,
            ledger: ledger.clone(),
            http,
            metrics: Arc::clone(&metrics),
            caches: Caches::default(),
            redis,
            activities: Arc::default(),
            fulfilment_wake: Arc::default(),
            hub: Arc::clone(&hub),
            leaderboard,
            cluster: Arc::clone(&cluster),
            bus,
            limiter,
            sockets: Arc::new(crate::runtime::sockets::Connections::with_gauge(
                metrics.ws_connections.clone(),
            )),
        });
        let sweeping = state.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(crate::limits::SWEEP_INTERVAL);
            loop {
                every.tick().await;
                sweeping.limiter.sweep();
            }
        });
        crate::activities::leaderboard::spawn(state.clone(), board_changed);
        let mut lost = cluster.lost();
        let stepping_down = state.clone();
        actix_web::rt::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match lost.recv().await {
                    Ok(activity) => crate::activities::step_down(&stepping_down, &activity),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "lost leases missed; their actors stop at their next fenced commit"
                        );
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        if settings.jobs {
            crate::jobs::spawn(state.clone());
        }
        let wake = Arc::clone(&state.fulfilment_wake);
        let watcher = crate::fulfilment::OrderWatcher(Arc::clone(&wake)).start();
        ledger.do_send(points_actors::Listen(watcher.recipient()));
        crate::fulfilment::spawn(state.clone(), wake);

        let doc = serde_json::to_string(&openapi()).context("serializing the OpenAPI document")?;
        let doc = web::Data::new(service::OpenApiJson(doc));
        let metrics_data = web::Data::new(metrics);
        let methods = web::Data::new(crate::http::MethodTable(route_doc().methods));
        let cors_origins = settings.cors_origins.clone();

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(doc.clone())
                .app_data(metrics_data.clone())
                .wrap(from_fn(crate::limits::middleware::rate_limit))
                .wrap(from_fn(crate::cluster::forward::relay))
                .wrap(actix_web::middleware::Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(from_fn(crate::metrics::track))
                .configure(|cfg| register_routes(cfg, &mut ApiDoc::default()))
                .service(
                    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                        .config(utoipa_swagger_ui::Config::from("/openapi.json")),
                )
                .app_data(methods.clone())
                .default_service(web::to(no_route))
        })
        .workers(settings.workers)
        .listen(listener)
        .context("starting the HTTP server")?
        .run();
        Ok(Application {
            port: local.port(),
            host: local.ip().to_string(),
            server,
            ledger,
            cluster,
            _sqlite: sqlite,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` the server listens on.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or [`Application::handle`]'s stop), waits for in-flight
    /// requests, then drains the ledger so every queued change is committed or answered.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("HTTP server failed")?;
        if self
            .ledger
            .send(points_actors::ledger::Drain)
            .await
            .is_err()
        {
            tracing::warn!("ledger stopped before it could be drained");
        }
        if let Err(e) = self.cluster.leave().await {
            tracing::warn!(error = %e, "could not give up this node's leases; they run out by themselves");
        }
        tracing::info!("stopped; ledger drained");
        Ok(())
    }
}
