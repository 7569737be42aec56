//! Operational routes: health, readiness, metrics, the OpenAPI document and the docs page.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::dialect::GET;
use crate::http::{ApiDoc, Empty, RouteDoc, Routes};
use crate::state::AppState;

/// The OpenAPI document, serialized once at start-up.
pub struct OpenApiJson(pub String);

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::bare(cfg, doc);
    let tag = "service";
    r.add::<Empty, Health, _, _>(
        RouteDoc {
            path: "/healthz",
            methods: GET,
            tag,
            summary: "Liveness",
            description: "200 while the process serves requests.",
        },
        healthz,
    );
    r.add::<Empty, Health, _, _>(
        RouteDoc {
            path: "/readyz",
            methods: GET,
            tag,
            summary: "Readiness",
            description: "200 when the database answers and takes writes (a write that changes nothing, rolled back) and the ledger actor runs; 503 otherwise, with the `problems`. `redis` reports the optional Redis (`ok`, `down: ...` or `not configured`) without affecting readiness.",
        },
        readyz,
    );
    r.add_text::<Empty, _, _>(
        RouteDoc {
            path: "/metrics",
            methods: GET,
            tag,
            summary: "Prometheus metrics",
            description: "Text exposition format.",
        },
        "text/plain",
        metrics,
    );
    r.add::<Empty, Empty, _, _>(
        RouteDoc {
            path: "/openapi.json",
            methods: GET,
            tag,
            summary: "This OpenAPI document",
            description: "Every route the server answers.",
        },
        openapi_json,
    );
    r.add_text::<Empty, _, _>(
        RouteDoc {
            path: "/docs",
            methods: GET,
            tag,
            summary: "Interactive API docs",
            description: "Swagger UI over `/openapi.json` (redirects to `/docs/`).",
        },
        "text/html",
        docs,
    );
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// How long `/readyz` waits for the database, and for Redis: together well under a second.
const READY_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(600);
const READY_REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut problems = Vec::new();
    // A database that does not answer at all is as unready as one that refuses: the answer
    // comes within a second either way.
    let db = &state.stores.db;
    let check = async { db.ping().await.and(db.probe_write().await) };
    match tokio::time::timeout(READY_DB_TIMEOUT, check).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database: {e:#}")),
        Err(_) => problems.push(format!(
            "database: no answer within {} ms",
            READY_DB_TIMEOUT.as_millis()
        )),
    }
    if !state.ledger.connected() {
        problems.push("ledger actor stopped".into());
    }
    // Redis is optional and never the source of truth: without it this node still serves every
    // route correctly, so it is reported but does not make the node unready.
    let redis = match &state.redis {
        None => "not configured".to_string(),
        Some(redis) => match tokio::time::timeout(READY_REDIS_TIMEOUT, redis.ping()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("down: {e}"),
            Err(_) => format!(
                "down: no answer within {} ms",
                READY_REDIS_TIMEOUT.as_millis()
            ),
        },
    };
    if problems.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready", "redis": redis}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "problems": problems, "redis": redis}))
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn openapi_json(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}

async fn docs() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/docs/"))
        .finish()
}
