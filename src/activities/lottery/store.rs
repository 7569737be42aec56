//! The lottery slice's own SQL (`lottery_boards`, `lottery_prizes`) and its row types.

use points_actors::lottery::Prize;
use sqlx::Row;

use crate::db::Db;

/// A board as stored.
pub(crate) struct BoardRow {
    pub ticket: i64,
    pub daily_limit: i64,
    pub status: String,
    pub prizes: Vec<Prize>,
}

/// The app's board, if it has one.
pub(crate) async fn board_row(db: &Db, app_id: &str) -> Result<Option<BoardRow>, sqlx::Error> {
    let db = &db.read;
    let Some(row) =
        sqlx::query("SELECT ticket, daily_limit, status FROM lottery_boards WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(db)
            .await?
    else {
        return Ok(None);
    };
    let prizes = sqlx::query(
        "SELECT level, label, name, reward_type, icon, stock, amount, rate_ppm FROM lottery_prizes \
         WHERE app_id = $1 ORDER BY sort, level",
    )
    .bind(app_id)
    .fetch_all(db)
    .await?
    .iter()
    .map(|r| {
        let rate: i64 = r.try_get("rate_ppm")?;
        Ok(Prize {
            level: r.try_get("level")?,
            label: r.try_get("label")?,
            name: r.try_get("name")?,
            reward_type: r.try_get("reward_type")?,
            icon: r.try_get("icon")?,
            stock: r.try_get("stock")?,
            amount: r.try_get("amount")?,
            // The table's CHECK keeps it in 0..=1000000.
            rate: u32::try_from(rate).unwrap_or(0),
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(BoardRow {
        ticket: row.try_get("ticket")?,
        daily_limit: row.try_get("daily_limit")?,
        status: row.try_get("status")?,
        prizes,
    }))
}

/// Creates or replaces the app's board and its prizes, in one transaction.
pub(crate) async fn save_board(
    db: &Db,
    app_id: &str,
    ticket: i64,
    daily_limit: i64,
    status: &str,
    prizes: &[Prize],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.write.begin().await?;
    sqlx::query(
        "INSERT INTO lottery_boards (app_id, ticket, daily_limit, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (app_id) DO UPDATE SET \
         ticket = excluded.ticket, daily_limit = excluded.daily_limit, status = excluded.status, \
         updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(ticket)
    .bind(daily_limit)
    .bind(status)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM lottery_prizes WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
    for (sort, prize) in prizes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO lottery_prizes (app_id, level, label, name, reward_type, icon, stock, \
             amount, rate_ppm, sort) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(app_id)
        .bind(prize.level)
        .bind(&prize.label)
        .bind(&prize.name)
        .bind(&prize.reward_type)
        .bind(&prize.icon)
        .bind(prize.stock)
        .bind(prize.amount)
        .bind(i64::from(prize.rate))
        .bind(sort as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
