//! The ledger-table queries of the shop slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use sqlx::Row;

use crate::db::Db;

/// One exchange's main ledger entry, with its integral leg's amount and its fulfilment order.
#[derive(Debug, Clone)]
pub struct ShopExchangeRow {
    pub id: i64,
    /// `shop:<prize id>`.
    pub reference: String,
    pub platform_uid: String,
    /// The main entry's signed amount.
    pub amount: i64,
    /// The amount of the entry's first leg (`<key>#0`), 0 without one.
    pub leg_amount: i64,
    pub description: String,
    pub created_at: i64,
    pub order: Option<ShopExchangeOrder>,
}

/// The fulfilment order of an exchange.
#[derive(Debug, Clone)]
pub struct ShopExchangeOrder {
    pub id: i64,
    pub reward_type: String,
    pub status: String,
    /// As stored (JSON text).
    pub detail: String,
}

/// The app's exchange entries of kind `kind`, newest first: those with reference `reference`,
/// or of every shop prize (`shop:%`) when it is `None`. Main entries only: a leg's key is
/// `<key>#<n>`, and shop keys never contain `#`.
pub async fn exchange_entries(
    db: &Db,
    app_id: &str,
    kind: &str,
    reference: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ShopExchangeRow>, sqlx::Error> {
    let filter = if reference.is_some() {
        "e.reference = $2"
    } else {
        "e.reference LIKE $2"
    };
    let sql = format!(
        "SELECT e.id, e.reference, u.platform_uid, e.amount, COALESCE(l.amount, 0) AS leg_amount, \
         e.description, e.created_at, o.id AS order_id, o.reward_type, o.status, o.detail \
         FROM ledger_entries e JOIN users u ON u.id = e.user_id \
         LEFT JOIN ledger_entries l ON l.app_id = e.app_id AND l.idem_key = e.idem_key || '#0' \
         LEFT JOIN fulfilment_orders o ON o.app_id = e.app_id AND o.idem_key = e.idem_key \
         WHERE e.app_id = $1 AND e.kind = '{kind}' AND {filter} \
         AND e.idem_key NOT LIKE '%#%' ORDER BY e.id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query(&sql)
        .bind(app_id)
        .bind(reference.unwrap_or_else(|| "shop:%".into()))
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.read)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let order_id: Option<i64> = r.try_get("order_id")?;
        let order = match order_id {
            Some(id) => Some(ShopExchangeOrder {
                id,
                reward_type: r.try_get("reward_type")?,
                status: r.try_get("status")?,
                detail: r.try_get("detail")?,
            }),
            None => None,
        };
        out.push(ShopExchangeRow {
            id: r.try_get("id")?,
            reference: r.try_get("reference")?,
            platform_uid: r.try_get("platform_uid")?,
            amount: r.try_get("amount")?,
            leg_amount: r.try_get("leg_amount")?,
            description: r.try_get("description")?,
            created_at: r.try_get("created_at")?,
            order,
        });
    }
    Ok(out)
}
