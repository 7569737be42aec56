//! The leaderboard admin route: archived results (`/admin/leaderboards/archive`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{profiles, store, BOARD_NAMES};
use crate::dialect::gift::{self, Gift};
use crate::dialect::AppId;
use crate::dialect::GET;
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    r.add::<ArchiveQuery, ArchiveView, _, _>(
        RouteDoc {
            path: "/admin/leaderboards/archive",
            methods: GET,
            tag: "admin",
            summary: "Archived leaderboard results",
            description: "`app_id` (default `default`), `board` one of `points`, `steps`, `invites`, `period` `YYYY-MM-DD` (default: the newest archived). Boards are archived by the daily jobs just after midnight (business time): yesterday's steps and invites, and the points board as it stood then. 404 when nothing is archived for that period.",
        },
        archive_view,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct ArchiveQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// `points`, `steps` or `invites`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub board: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub period: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ArchiveView {
    pub app_id: String,
    pub board: String,
    pub period: String,
    pub archived_at: String,
    pub entries: Vec<ArchivedEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct ArchivedEntry {
    pub rank: i64,
    /// Platform user id.
    pub user_id: String,
    pub nick: String,
    pub avatar: String,
    pub score: i64,
    /// When the user reached the score, business time.
    pub reached_at: String,
}

async fn archive_view(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ArchiveQuery, Gift>,
) -> Result<HttpResponse, Failure<Gift>> {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let board = p.board.ok_or_else(|| AppError::missing("board"))?;
    if !BOARD_NAMES.contains(&board.as_str()) {
        return Err(AppError::invalid("board must be one of points, steps, invites").into());
    }
    if let Some(period) = &p.period {
        if chrono::NaiveDate::parse_from_str(period, "%Y-%m-%d").is_err() {
            return Err(AppError::invalid("period must be YYYY-MM-DD").into());
        }
    }
    let db = &state.stores.db;
    let (period, archived_at) =
        store::archive_head(db, app_id.as_str(), board.as_str(), p.period.clone())
            .await?
            .ok_or_else(|| {
                AppError::NotFound("no archived results for that board and period".into())
            })?;
    let rows = store::archived_rows(db, app_id.as_str(), board.as_str(), period.as_str()).await?;
    let mut entries = Vec::with_capacity(rows.len());
    let ids: Vec<i64> = rows.iter().map(|r| r.user_id).collect();
    let profiles = profiles(db, &ids).await?;
    for r in &rows {
        let p = profiles.get(&r.user_id).cloned().unwrap_or_default();
        entries.push(ArchivedEntry {
            rank: r.place,
            user_id: p.uid,
            nick: p.nick,
            avatar: p.avatar,
            score: r.score,
            reached_at: state.clock.format_datetime(r.reached_at),
        });
    }
    Ok(gift::ok(json!(ArchiveView {
        app_id,
        board,
        period,
        archived_at: state.clock.format_datetime(archived_at),
        entries,
    })))
}
