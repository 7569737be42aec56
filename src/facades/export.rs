//! `/admin/export/*`: the ledger as CSV, streamed. A user's entries, or all of an app's entries
//! in a time range, are read in chunks of [`EXPORT_CHUNK_ROWS`] after the previous chunk's last
//! row and written out as each chunk arrives, so an export of millions of entries holds one
//! chunk in memory and never a connection between chunks.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::clock::BizClock;
use crate::dialect::gift::Gift;
use crate::dialect::{AppId, GET};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;
use crate::store::ledger::export::{ExportRow, ExportScope};
use crate::store::LedgerDb;

/// Entries read and written per step of an export.
pub const EXPORT_CHUNK_ROWS: i64 = 1_000;

/// The CSV's columns.
const COLUMNS: [&str; 10] = [
    "id",
    "user_id",
    "amount",
    "kind",
    "idempotency_key",
    "reference",
    "description",
    "balance_after",
    "expires_at",
    "created_at",
];

#[derive(Deserialize, ToSchema)]
#[schema(as = ExportUserLedgerReq)]
pub struct UserLedgerReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// The user's platform id.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// From this time on (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` in business time, or epoch
    /// seconds/ms); the beginning when absent.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub from: Option<String>,
    /// Before this time; now when absent.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub to: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ExportEntriesReq)]
pub struct EntriesReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// From this time on (as in the user export); required.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub from: Option<String>,
    /// Before this time; required.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub to: Option<String>,
}

fn time(clock: &BizClock, name: &str, raw: Option<&str>) -> Result<Option<i64>, AppError> {
    raw.map(|v| {
        clock.parse(v).ok_or_else(|| {
            AppError::invalid(format!(
                "{name} must be YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or epoch seconds"
            ))
        })
    })
    .transpose()
}

/// A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) is quoted
/// with a leading `'`.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// The CSV lines of `rows`.
fn csv_chunk(clock: &BizClock, rows: &[ExportRow]) -> Result<Bytes, csv::Error> {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(rows.len() * 128));
    for row in rows {
        let r = &row.entry;
        out.write_record([
            r.id.to_string().as_str(),
            &cell(&row.platform_uid),
            &r.amount.to_string(),
            &cell(&r.kind),
            &cell(&r.idem_key),
            &cell(&r.reference),
            &cell(&r.description),
            &r.balance_after.to_string(),
            &r.expires_at
                .map(|t| clock.format_datetime(t))
                .unwrap_or_default(),
            &clock.format_datetime(r.created_at),
        ])?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(Bytes::from(bytes))
}

/// The header line, after a UTF-8 byte-order mark so spreadsheet programs read the Chinese
/// text right.
fn csv_header() -> Bytes {
    let mut line = String::from("\u{feff}");
    line.push_str(&COLUMNS.join(","));
    line.push_str("\r\n");
    Bytes::from(line)
}

/// Streams every entry of `scope` as CSV.
fn stream_csv(ledger: LedgerDb, clock: BizClock, scope: ExportScope, file: String) -> HttpResponse {
    struct Cursor {
        ledger: LedgerDb,
        clock: BizClock,
        scope: ExportScope,
        after: Option<(i64, i64)>,
        header: bool,
        done: bool,
    }
    let start = Cursor {
        ledger,
        clock,
        scope,
        after: None,
        header: true,
        done: false,
    };
    let body = futures_util::stream::unfold(start, |mut c| async move {
        if c.header {
            c.header = false;
            return Some((Ok(csv_header()), c));
        }
        if c.done {
            return None;
        }
        let rows = match c
            .ledger
            .export_chunk(&c.scope, c.after, EXPORT_CHUNK_ROWS)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                // The answer is cut short: the client sees an incomplete transfer.
                tracing::error!(error = %e, "export: reading entries failed");
                c.done = true;
                return Some((Err(actix_web::error::ErrorServiceUnavailable(e)), c));
            }
        };
        c.done = i64::try_from(rows.len()).unwrap_or(0) < EXPORT_CHUNK_ROWS;
        let last = rows.last()?;
        c.after = Some((last.entry.created_at, last.entry.id));
        let chunk = csv_chunk(&c.clock, &rows).map_err(actix_web::error::ErrorInternalServerError);
        Some((chunk, c))
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .streaming(body)
}

/// A file name made of the safe characters of `parts`.
fn file_name(parts: &[&str]) -> String {
    let name: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.csv")
}

async fn user_ledger_csv(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<UserLedgerReq, Gift>,
) -> Result<HttpResponse, Failure<Gift>> {
    let p = p.into_inner();
    let uid = p.user_id.ok_or_else(|| AppError::missing("user_id"))?;
    let app_id = AppId::text(p.app_id);
    let from = time(&state.clock, "from", p.from.as_deref())?.unwrap_or(i64::MIN);
    let to = time(&state.clock, "to", p.to.as_deref())?.unwrap_or(i64::MAX);
    if from >= to {
        return Err(AppError::invalid("from must be before to").into());
    }
    let user = crate::points::user(&state, &app_id, &uid).await?;
    let scope = ExportScope {
        app_id: app_id.clone(),
        user_id: Some(user.id),
        from,
        to,
    };
    let file = file_name(&["ledger", &app_id, &uid]);
    Ok(stream_csv(
        state.stores.ledger.clone(),
        state.clock,
        scope,
        file,
    ))
}

async fn entries_csv(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<EntriesReq, Gift>,
) -> Result<HttpResponse, Failure<Gift>> {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let from =
        time(&state.clock, "from", p.from.as_deref())?.ok_or_else(|| AppError::missing("from"))?;
    let to = time(&state.clock, "to", p.to.as_deref())?.ok_or_else(|| AppError::missing("to"))?;
    if from >= to {
        return Err(AppError::invalid("from must be before to").into());
    }
    let file = file_name(&[
        "entries",
        &app_id,
        &state.clock.format_date(from),
        &state.clock.format_date(to),
    ]);
    let scope = ExportScope {
        app_id,
        user_id: None,
        from,
        to,
    };
    Ok(stream_csv(
        state.stores.ledger.clone(),
        state.clock,
        scope,
        file,
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add_text::<UserLedgerReq, _, _>(
        RouteDoc {
            path: "/admin/export/ledger.csv",
            methods: GET,
            tag,
            summary: "A user's ledger as CSV",
            description: "`X-Admin-Key`. `app_id` (default `default`), `user_id` (platform id), optional `from`/`to` (`[from, to)`, dates or times in business time, or epoch seconds). Every entry, oldest first, streamed as `text/csv` (UTF-8 with a byte-order mark): id, user_id, amount, kind, idempotency_key, reference, description, balance_after, expires_at, created_at. Refusals use the 000 envelope.",
        },
        "text/csv",
        user_ledger_csv,
    );
    r.add_text::<EntriesReq, _, _>(
        RouteDoc {
            path: "/admin/export/entries.csv",
            methods: GET,
            tag,
            summary: "All entries of an app in a time range as CSV",
            description: "`X-Admin-Key`. `app_id` (default `default`), `from` and `to` required (`[from, to)`). Every user's entries created in the range, oldest first, streamed as `text/csv` with the user export's columns.",
        },
        "text/csv",
        entries_csv,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EntryRow;

    #[test]
    fn formula_cells_are_quoted_and_fields_escaped() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        let row = ExportRow {
            entry: EntryRow {
                id: 7,
                app_id: "default".into(),
                user_id: 1,
                amount: -5,
                kind: "spend".into(),
                idem_key: "k,1".into(),
                reference: "".into(),
                description: "兑换 \"券\"\n第二行".into(),
                expires_at: None,
                balance_after: 10,
                created_at: 0,
            },
            platform_uid: "=cmd|' /C calc'!A0".into(),
        };
        let text =
            String::from_utf8(csv_chunk(&clock, &[row]).expect("csv").to_vec()).expect("utf-8");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let record = reader.records().next().expect("a row").expect("parses");
        assert_eq!(&record[1], "'=cmd|' /C calc'!A0");
        assert_eq!(&record[2], "-5");
        assert_eq!(&record[4], "k,1");
        assert_eq!(&record[6], "兑换 \"券\"\n第二行");
        assert_eq!(&record[9], "1970-01-01 08:00:00");
        assert_eq!(
            file_name(&["ledger", "default", "u/../x"]),
            "ledger-default-u____x.csv"
        );
    }
}
