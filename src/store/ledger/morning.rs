//! The ledger-table queries of the morning slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use points_actors::morning::{RoundEntry, PICK_CHECK_KIND, PICK_PAY_KIND, PICK_SIGN_KIND};
use serde_json::json;
use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Db;

/// The sign-ups and check-ins of a round, in commit order (read inside the settlement's
/// transaction).
const SIGN_CHECK_ENTRIES_SQL: &str =
    "SELECT user_id, kind, amount, id, created_at FROM ledger_entries \
         WHERE app_id = $1 AND reference = $2 AND kind IN ($3, $4) ORDER BY id";

fn round_entry(row: &sqlx::any::AnyRow) -> Result<RoundEntry, sqlx::Error> {
    Ok(RoundEntry {
        user_id: row.try_get("user_id")?,
        kind: row.try_get("kind")?,
        amount: row.try_get("amount")?,
        entry_id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The committed entries (`pick_sign`, `pick_check`, `pick_pay`) of the round with ledger
/// reference `reference` (`pick:<period>`), in commit order.
pub async fn round_entries(
    db: &Db,
    app_id: &str,
    reference: &str,
) -> Result<Vec<RoundEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT user_id, kind, amount, id, created_at FROM ledger_entries \
         WHERE app_id = $1 AND reference = $2 AND kind IN ($3, $4, $5) ORDER BY id",
    )
    .bind(app_id)
    .bind(reference)
    .bind(PICK_SIGN_KIND)
    .bind(PICK_CHECK_KIND)
    .bind(PICK_PAY_KIND)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(round_entry).collect()
}

/// The committed sign-ups and check-ins of a round, in commit order, read in `tx`.
pub async fn round_sign_check_entries(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    app_id: &str,
    reference: &str,
) -> Result<Vec<RoundEntry>, sqlx::Error> {
    let rows = sqlx::query(SIGN_CHECK_ENTRIES_SQL)
        .bind(app_id)
        .bind(reference)
        .bind(PICK_SIGN_KIND)
        .bind(PICK_CHECK_KIND)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(round_entry).collect()
}

/// The morning seal: sets each check-in counter of `keys` (ceiling 1) to its ceiling, in `tx`,
/// so a late check-in is refused by the database and one still committing is waited for.
pub async fn seal_check_ins(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO ledger_counters (counter_key, count, updated_at) \
         SELECT r.value, 1, $2 FROM {} r WHERE true ON CONFLICT (counter_key) DO UPDATE \
         SET count = CASE WHEN ledger_counters.count < 1 THEN 1 \
         ELSE ledger_counters.count END, updated_at = excluded.updated_at",
        db.json_texts("$1")
    ))
    .bind(json!(keys).to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
