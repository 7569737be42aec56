//! The blind-box slice's own SQL (`blind_boxes`) and its row reading.

use points_actors::blindbox::BoxSpec;
use sqlx::Row;

use crate::db::Db;

/// The app's boxes, in their configured order.
pub(crate) async fn boxes_of(db: &Db, app_id: &str) -> Result<Vec<BoxSpec>, sqlx::Error> {
    sqlx::query(
        "SELECT name, task_sum, alipay_point_valve, alipay_point_unit, points_unit \
         FROM blind_boxes WHERE app_id = $1 ORDER BY sort, name",
    )
    .bind(app_id)
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(|r| {
        Ok(BoxSpec {
            name: r.try_get("name")?,
            task_sum: r.try_get("task_sum")?,
            alipay_point_valve: r.try_get("alipay_point_valve")?,
            alipay_point_unit: r.try_get("alipay_point_unit")?,
            points_unit: r.try_get("points_unit")?,
        })
    })
    .collect()
}

/// Replaces the app's boxes with `boxes` (in that order), in one transaction.
pub(crate) async fn save_boxes(
    db: &Db,
    app_id: &str,
    boxes: &[BoxSpec],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.write.begin().await?;
    sqlx::query("DELETE FROM blind_boxes WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
    for (sort, b) in boxes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO blind_boxes (app_id, name, task_sum, alipay_point_valve, \
             alipay_point_unit, points_unit, sort, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(app_id)
        .bind(&b.name)
        .bind(b.task_sum)
        .bind(b.alipay_point_valve)
        .bind(b.alipay_point_unit)
        .bind(b.points_unit)
        .bind(sort as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
