//! The 000 `v2/pick/*` routes of the morning check-in: request and answer shapes, thin handlers
//! and their route docs.

use actix_web::web;
use points_actors::morning::{CheckIn, MORNING_STREAK_CYCLE_DAYS};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::store::{self, ResultRow};
use super::{config, decide, period_at, refusal, sign_up, view_round, Mode};
use crate::clock::now_ms;
use crate::clock::Moment;
use crate::dialect::gift::{ok, own_user, Gift, Reply};
use crate::dialect::{AppId, GET_POST};
use crate::error::AppError;
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

/// Registers the 000 `v2/pick/*` routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 morning check-in";
    r.add::<PickReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/v2/pick/sign.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡报名: sign up for tomorrow's round",
            description: "Bearer token; `user_id` must be the caller. Pays the app's `ticket` for the round of the next business day (period `YYYYMMDD`), once per round. Answers `[]` after the commit. 402 ticket not affordable; 410 already signed up (or the round is closed); 429 busy.",
        },
        sign,
    );
    r.add::<PickReq, PickShow, _, _>(
        RouteDoc {
            path: "/v2/pick/show.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡首页: the round the caller should act on",
            description: "Bearer token; `user_id` must be the caller, `app_id` optional. `period`: today's round while the caller is signed up for it and the window is open (`btn_callback` `PICK`, `btn_click` until checked in), otherwise tomorrow's (`SIGN`, `btn_click` until signed up). `pool` = stakes × the app's coefficient, `pick_sum` = sign-ups, `diff_sum` = sign-ups not yet checked in, `is_pop` = an unseen settled result waits for `pop.json`.",
        },
        show,
    );
    r.add::<PickReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/v2/pick/pick.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡: check in to today's round",
            description: "Bearer token; `user_id` must be the caller. Inside the app's window (default 05:30-08:30 business time), once. Refusals (`status:false`, code 410): before the window (not started), after it (ended), not signed up, already checked in. Answers `[]` after the commit.",
        },
        pick,
    );
    r.add::<PickReq, PickPop, _, _>(
        RouteDoc {
            path: "/v2/pick/pop.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡结果弹窗: the caller's latest settled result",
            description: "Bearer token; `user_id` must be the caller. Checked in: `{is_combo_pick, pub_points}` (`is_combo_pick`: the payout fell on a streak day, every 7th consecutive check-in). Signed up but missed: `status:false`, code 410, with a sentence. Marks the result as seen (`show`'s `is_pop` turns false). No settled round yet: code 410.",
        },
        pop,
    );
    r.add::<PickRankReq, PickRank, _, _>(
        RouteDoc {
            path: "/v2/pick/rank.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡榜: lark, lucky and diligent",
            description: "No token needed (the request names no user); `app_id` (default `default`). `lark`: earliest check-in of today's round; `lucky`: top payout of the latest settled round; `diligent`: longest running streak (users who checked in in the latest settled round); ties go to the earliest check-in. Each `{nick, avatar, desc}`; empty nick and avatar when nobody qualifies. Live state on websocket topic `morning:<app_id>`.",
        },
        rank,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct PickReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PickRankReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PickShow {
    /// The round to act on, `YYYYMMDD`.
    pub period: String,
    pub pool: i64,
    pub pick_sum: i64,
    pub diff_sum: i64,
    pub btn_desc: String,
    /// `SIGN` or `PICK`.
    pub btn_callback: String,
    pub btn_click: bool,
    pub desc: String,
    pub is_pop: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PickPop {
    pub is_combo_pick: bool,
    pub pub_points: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PickRankItem {
    pub nick: String,
    pub avatar: String,
    pub desc: String,
}

#[derive(Serialize, ToSchema)]
pub struct PickRank {
    pub lark: PickRankItem,
    pub lucky: PickRankItem,
    pub diligent: PickRankItem,
}

async fn sign(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let period = period_at(&state, now_ms(), 1);
    sign_up(&state, &s.app_id, &period, s.user_id).await?;
    Ok(ok(json!([])))
}

async fn pick(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let cfg = config(&state, &s.app_id).await?;
    let now = Moment::now(&state.clock);
    let period = period_at(&state, now.ms, 0);
    decide(&state, &s.app_id, &period, || CheckIn {
        user_id: s.user_id,
        second_of_day: now.second_of_day,
        window: (cfg.start, cfg.end),
    })
    .await?;
    Ok(ok(json!([])))
}

async fn show(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let cfg = config(&state, &s.app_id).await?;
    let now = Moment::now(&state.clock);
    let today = period_at(&state, now.ms, 0);
    let today_view = view_round(&state, &s.app_id, &today, Some(s.user_id)).await?;
    let in_window = (cfg.start..cfg.end).contains(&now.second_of_day);
    let window = cfg.window_text();
    let (view, callback, click, btn_desc) = if today_view.signed && in_window && !today_view.closed
    {
        let desc = if today_view.checked {
            "今日已打卡".to_string()
        } else {
            "立即打卡".to_string()
        };
        let click = !today_view.checked;
        (today_view, "PICK", click, desc)
    } else {
        let tomorrow = period_at(&state, now.ms, 1);
        let view = view_round(&state, &s.app_id, &tomorrow, Some(s.user_id)).await?;
        let desc = if view.signed {
            format!("已报名，明日{window}打卡")
        } else {
            format!("支付{}积分报名", cfg.ticket)
        };
        let click = !view.signed && !view.closed;
        (view, "SIGN", click, desc)
    };
    let desc = match cfg.mode {
        Mode::Random => format!(
            "今日报名，明日{window}打卡，打卡成功可得{}-{}积分，连续{MORNING_STREAK_CYCLE_DAYS}天奖励翻倍",
            cfg.min, cfg.max
        ),
        Mode::Split => format!("今日报名，明日{window}打卡，打卡成功瓜分全部报名积分"),
    };
    let is_pop = store::latest_result(&state.stores.db, &s.app_id, s.user_id)
        .await?
        .is_some_and(|r| r.seen_at.is_none());
    Ok(ok(json!(PickShow {
        period: view.period.clone(),
        pool: cfg.pool(view.stakes),
        pick_sum: view.signups,
        diff_sum: view.signups - view.checkins,
        btn_desc,
        btn_callback: callback.into(),
        btn_click: click,
        desc,
        is_pop,
    })))
}

async fn pop(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let db = &state.stores.db;
    let result = store::latest_result(db, &s.app_id, s.user_id)
        .await?
        .ok_or_else(|| refusal("no settled round to show", "暂无打卡结果"))?;
    if result.seen_at.is_none() {
        store::mark_seen(db, &s.app_id, &result.period, s.user_id).await?;
    }
    if !result.checked_in {
        return Err(if result.payout > 0 {
            refusal(
                "nobody checked in; your stake was refunded",
                "本期无人打卡成功，报名积分已退还",
            )
        } else {
            refusal(
                "you signed up but did not check in",
                "很遗憾，您未在规定时间内打卡",
            )
        }
        .into());
    }
    Ok(ok(json!(PickPop {
        is_combo_pick: result.streak > 0 && result.streak % MORNING_STREAK_CYCLE_DAYS == 0,
        pub_points: result.payout,
    })))
}

/// A rank entry for `user_id` (empty when nobody qualifies).
async fn rank_item(
    state: &AppState,
    user_id: Option<i64>,
    desc: String,
) -> Result<PickRankItem, AppError> {
    let user = match user_id {
        Some(id) => state.stores.accounts.user_by_id(id).await?,
        None => None,
    };
    Ok(match user {
        Some(u) => PickRankItem {
            nick: u.nick,
            avatar: u.avatar,
            desc,
        },
        None => PickRankItem {
            nick: String::new(),
            avatar: String::new(),
            desc: "虚位以待".into(),
        },
    })
}

/// The request names no user, so no token is needed: the app's board is public.
async fn rank(state: web::Data<AppState>, p: Params<PickRankReq, Gift>) -> Reply {
    let app_id = crate::auth::app(&state, &AppId::text_of(&p.into_inner().app_id))
        .await?
        .id;
    let db = &state.stores.db;
    let now = Moment::now(&state.clock);
    let today = view_round(&state, &app_id, &period_at(&state, now.ms, 0), None).await?;
    let lark = match today.first_check {
        Some((user, check)) => {
            let at = state.clock.local(check.at).format("%H:%M:%S");
            rank_item(&state, Some(user), format!("{at} 打卡")).await?
        }
        None => rank_item(&state, None, String::new()).await?,
    };
    let (mut lucky, mut diligent) = (None, None);
    if let Some(period) = store::latest_settled_period(db, &app_id).await? {
        let mut winners: Vec<ResultRow> = store::round_results(db, &app_id, &period)
            .await?
            .into_iter()
            .filter(|r| r.checked_in)
            .collect();
        let at = |r: &ResultRow| r.checked_at.unwrap_or(i64::MAX);
        winners.sort_by_key(|r| (std::cmp::Reverse(r.payout), at(r), r.user_id));
        lucky = winners.first().map(|r| (r.user_id, r.payout));
        winners.sort_by_key(|r| (std::cmp::Reverse(r.streak), at(r), r.user_id));
        diligent = winners.first().map(|r| (r.user_id, r.streak));
    }
    let lucky = rank_item(
        &state,
        lucky.map(|l| l.0),
        format!("获得{}积分", lucky.map_or(0, |l| l.1)),
    )
    .await?;
    let diligent = rank_item(
        &state,
        diligent.map(|d| d.0),
        format!("连续打卡{}天", diligent.map_or(0, |d| d.1)),
    )
    .await?;
    Ok(ok(json!(PickRank {
        lark,
        lucky,
        diligent,
    })))
}
