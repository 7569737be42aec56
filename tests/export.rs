//! The CSV exports: 100,000 entries of one user streamed by a server process whose peak memory
//! grows by far less than the file, every entry once and in order, a time range of the whole
//! app, and refusals in the 000 envelope.

mod common;

use std::time::Duration;

use common::{backends, login_at, spawn_process, ADMIN_KEY};
use points_engine::db::Db;

/// Entries written for the big user.
const ENTRIES: i64 = 100_000;
/// When the written entries begin (epoch ms); one a second from there.
const BASE_MS: i64 = 1_700_000_000_000;

async fn scalar(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.read)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The peak resident memory of process `pid` in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// `user`'s (internal id) entries `1..=count`, one a second from [`BASE_MS`] + `offset_s`.
async fn write_entries(db: &Db, user: i64, prefix: &str, count: i64, offset_s: i64) {
    let sql = format!(
        "INSERT INTO ledger_entries (app_id, user_id, amount, kind, idem_key, reference, description, \
         expires_at, balance_after, created_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         SELECT 'default', {user}, 1, 'grant', '{prefix}-' || i, 'import', \
         '导入的历史积分, imported from the old system, batch of the year', NULL, i, \
         {BASE_MS} + ({offset_s} + i) * 1000 FROM n"
    );
    sqlx::query(&sql)
        .execute(&db.write)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[actix_web::test]
async fn a_users_100k_entries_stream_out_without_being_held_in_memory() {
    for backend in backends() {
        let (url, _dir) = common::fresh_database(backend).await;
        let mut server = spawn_process(&url, &[]).await;
        let pid = server.child.id();
        let client = common::client();
        let address = server.address.clone();
        login_at(&client, &address, "big").await;
        login_at(&client, &address, "other").await;
        let db = Db::connect(&url, 2).await.expect("db");
        let big = scalar(&db, "SELECT id FROM users WHERE platform_uid = 'dev_big'").await;
        let other = scalar(&db, "SELECT id FROM users WHERE platform_uid = 'dev_other'").await;
        write_entries(&db, big, "big", ENTRIES, 0).await;
        write_entries(&db, other, "other", 1_000, 50_000).await;

        // Warm up the route and the database's page caches with the first 30,000 entries
        // (a third of the size), then measure the peak across the whole export: held in
        // memory, the file alone would raise it by more than its size.
        let warm_to = (BASE_MS + 30_001_000).to_string();
        for _ in 0..2 {
            let warm = client
                .get(format!(
                    "{address}/admin/export/ledger.csv?user_id=dev_big&to={warm_to}"
                ))
                .header("X-Admin-Key", ADMIN_KEY)
                .send()
                .await
                .expect("warm-up")
                .bytes()
                .await
                .expect("warm-up body");
            assert!(warm.len() > 3_000_000, "{}", warm.len());
        }
        let before = peak_rss(pid);
        let res = client
            .get(format!("{address}/admin/export/ledger.csv?user_id=dev_big"))
            .header("X-Admin-Key", ADMIN_KEY)
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .expect("export");
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/csv"),
            "{:?}",
            res.headers()
        );
        assert!(
            res.headers().get("content-length").is_none(),
            "streamed, not sized in advance"
        );
        let mut res = res;
        let mut text = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = res.chunk().await.expect("chunk") {
            text.extend_from_slice(&chunk);
            chunks += 1;
        }
        let peak_growth = peak_rss(pid).saturating_sub(before);
        let size = text.len() as u64;
        assert!(
            peak_growth < size / 3,
            "{backend:?}: the server's peak memory grew by {peak_growth} bytes for a {size}-byte export"
        );
        assert!(chunks > 10, "{chunks} chunks");
        assert!(text.starts_with("\u{feff}id,user_id,amount".as_bytes()));
        let mut reader = csv::Reader::from_reader(&text[3..]);
        let mut count = 0i64;
        let mut last_id = 0i64;
        for record in reader.records() {
            let record = record.expect("a CSV record");
            let id: i64 = record[0].parse().expect("id");
            assert!(id > last_id, "{id} after {last_id}");
            last_id = id;
            assert_eq!(&record[1], "dev_big");
            count += 1;
            if count == 1 {
                assert_eq!(&record[4], "big-1");
                assert_eq!(&record[7], "1");
            }
        }
        assert_eq!(count, ENTRIES, "{backend:?}");

        // All users of the app in a range: seconds 49,001..=51,000 hold 1,000 of the big
        // user's entries and 1,000 of the other's.
        let from = (BASE_MS + 49_001_000).to_string();
        let to = (BASE_MS + 51_001_000).to_string();
        let text = client
            .get(format!(
                "{address}/admin/export/entries.csv?from={from}&to={to}"
            ))
            .header("X-Admin-Key", ADMIN_KEY)
            .send()
            .await
            .expect("export")
            .text()
            .await
            .expect("text");
        let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let users: Vec<String> = reader
            .records()
            .map(|r| r.expect("record")[1].to_string())
            .collect();
        assert_eq!(users.len(), 3_000, "{backend:?}");
        assert_eq!(users.iter().filter(|u| *u == "dev_other").count(), 1_000);

        // Refusals: the 000 envelope, nothing streamed.
        let get_json = |path: &str, key: Option<&str>| {
            let mut req = client.get(format!("{address}{path}"));
            if let Some(key) = key {
                req = req.header("X-Admin-Key", key);
            }
            async move {
                let (_, body) = common::send_json(req).await;
                body
            }
        };
        for (path, code) in [
            ("/admin/export/entries.csv?from=2026-01-01", 400),
            (
                "/admin/export/entries.csv?from=2026-01-02&to=2026-01-01",
                400,
            ),
            (
                "/admin/export/entries.csv?from=yesterday&to=2026-01-01",
                400,
            ),
            ("/admin/export/ledger.csv", 400),
        ] {
            let res = get_json(path, Some(ADMIN_KEY)).await;
            assert_eq!(res["code"], code, "{path}: {res}");
        }
        let res = get_json("/admin/export/ledger.csv?user_id=nobody", Some(ADMIN_KEY)).await;
        assert_eq!(res["status"], false, "{res}");
        let res = get_json("/admin/export/ledger.csv?user_id=dev_big", None).await;
        assert_eq!(res["status"], false, "{res}");
        server.kill();
    }
}
