//! Image uploads and the audit of submitted files on SQLite and Postgres: accepted image types
//! by content, refused non-images and oversized bodies, submissions of the caller's own uploads
//! only, no resubmission while in review or approved, approval granting points once however
//! many decisions race, resubmission after a rejection, and bad input that changes nothing.

mod common;

use common::{backends, spawn_app_with, Backend, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::db::Db;
use points_engine::features::uploads::UPLOAD_BYTES_MAX;
use serde_json::{json, Value};

const UPLOAD: &str = "/api/upload/";
const APPLY: &str = "/api/apply_audit/";
const LIST: &str = "/admin/audits";
const DECIDE: &str = "/admin/audits/decide";
const BOUNDARY: &str = "----uploadtestboundary7MA4YWxk";

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01";
const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0";
const WEBP: &[u8] = b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0";

/// A server whose uploads go to a temporary directory, and that directory.
async fn spawn(backend: Backend) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("upload dir");
    let path = dir.path().to_path_buf();
    let app = spawn_app_with(backend, move |s| s.upload_dir = path).await;
    (app, dir)
}

/// A `multipart/form-data` body as `wx.uploadFile` sends it.
fn multipart(openid: Option<&str>, image: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(openid) = openid {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"openid\"\r\n\r\n{openid}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, data)) = image {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_raw(app: &TestApp, token: Option<&str>, body: Vec<u8>) -> Value {
    let mut req = app
        .client
        .post(app.url(UPLOAD))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(token) = token {
        req = req.header("Authorization", token);
    }
    let res = req.send().await.expect("upload request");
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.expect("JSON answer")
}

/// Uploads `data` as `uid`; returns the upload id.
async fn upload_ok(app: &TestApp, uid: &str, token: &str, data: &[u8]) -> i64 {
    let body = upload_raw(
        app,
        Some(token),
        multipart(Some(uid), Some(("a.jpg", data))),
    )
    .await;
    assert_eq!(body["code"], 0, "{body}");
    body["data"]["id"].as_i64().expect("upload id")
}

async fn apply(app: &TestApp, uid: &str, token: &str, files: Value) -> Value {
    let (status, body) = app
        .post(
            APPLY,
            &[("Authorization", token)],
            &json!({"openid": uid, "files": files}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn decide(app: &TestApp, body: Value) -> Value {
    let (status, body) = app.post(DECIDE, &[("X-Admin-Key", ADMIN_KEY)], &body).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let db = Db::connect(&app.database_url, 2).await.expect("connect");
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&db.read)
        .await
        .expect("count")
}

fn files_in(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path()).map_or(0, |d| d.count())
}

/// The latest audit of `uid` as the admin list shows it.
async fn latest_audit(app: &TestApp, uid: &str) -> Value {
    let (_, body) = app
        .get(
            &format!("{LIST}?app_id=default"),
            &[("X-Admin-Key", ADMIN_KEY)],
        )
        .await;
    assert_eq!(body["status"], true, "{body}");
    body["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["openid"] == uid)
        .cloned()
        .expect("an audit of the user")
}

#[actix_web::test]
async fn images_are_accepted_by_content_and_everything_else_refused() {
    for backend in backends() {
        let (app, dir) = spawn(backend).await;
        let (uid, token) = app.login("alice").await;
        let mut ids = Vec::new();
        for data in [PNG, JPEG, GIF, WEBP] {
            ids.push(upload_ok(&app, &uid, &token, data).await);
        }
        ids.dedup();
        assert_eq!(ids.len(), 4, "{backend:?}");
        assert_eq!(files_in(&dir), 4);

        // A text file named like an image and declared as one.
        let body = upload_raw(
            &app,
            Some(&token),
            multipart(Some(&uid), Some(("evil.png", b"<?php echo 1; ?>"))),
        )
        .await;
        assert_eq!(body["code"], -3, "{body}");
        // A WAVE file: RIFF, but not WebP.
        let body = upload_raw(
            &app,
            Some(&token),
            multipart(Some(&uid), Some(("a.webp", b"RIFF\x10\0\0\0WAVEfmt "))),
        )
        .await;
        assert_eq!(body["code"], -3, "{body}");
        // Too large: one byte over the limit.
        let mut big = PNG.to_vec();
        big.resize(UPLOAD_BYTES_MAX + 1, 0);
        let body = upload_raw(
            &app,
            Some(&token),
            multipart(Some(&uid), Some(("big.png", &big))),
        )
        .await;
        assert_eq!(body["code"], -413, "{body}");
        // Far too large: refused from the declared length.
        let body = upload_raw(&app, Some(&token), vec![b'x'; 3 * UPLOAD_BYTES_MAX]).await;
        assert_eq!(body["code"], -413, "{body}");
        // No file, no openid, another openid, no session, a malformed body, not multipart.
        let body = upload_raw(&app, Some(&token), multipart(Some(&uid), None)).await;
        assert_eq!(body["code"], -1, "{body}");
        let body = upload_raw(&app, Some(&token), multipart(None, Some(("a.png", PNG)))).await;
        assert_eq!(body["code"], -1, "{body}");
        let body = upload_raw(
            &app,
            Some(&token),
            multipart(Some("dev_bob"), Some(("a.png", PNG))),
        )
        .await;
        assert_eq!(body["code"], -2, "{body}");
        let body = upload_raw(&app, None, multipart(Some(&uid), Some(("a.png", PNG)))).await;
        assert_eq!(body["code"], -401, "{body}");
        let body = upload_raw(&app, Some(&token), b"--nope\r\nbroken".to_vec()).await;
        assert_eq!(body["code"], -3, "{body}");
        let (_, body) = app
            .post(
                UPLOAD,
                &[("Authorization", &token)],
                &json!({"openid": uid}),
            )
            .await;
        assert_eq!(body["code"], -1, "{body}");

        // Nothing of the refused requests was stored.
        assert_eq!(files_in(&dir), 4, "{backend:?}");
        assert_eq!(count(&app, "uploads").await, 4);
    }
}

#[actix_web::test]
async fn only_own_uploads_can_be_submitted_and_only_once_while_open() {
    for backend in backends() {
        let (app, _dir) = spawn(backend).await;
        let (alice, a_token) = app.login("alice").await;
        let (bob, b_token) = app.login("bob").await;
        let a1 = upload_ok(&app, &alice, &a_token, PNG).await;
        let a2 = upload_ok(&app, &alice, &a_token, JPEG).await;
        let b1 = upload_ok(&app, &bob, &b_token, GIF).await;

        // Bob lists Alice's upload (alone or beside his own): refused, nothing stored.
        let body = apply(&app, &bob, &b_token, json!(format!("[{a1}]"))).await;
        assert_eq!(body["code"], -2, "{body}");
        let body = apply(&app, &bob, &b_token, json!([b1, a2])).await;
        assert_eq!(body["code"], -2, "{body}");
        // An id that does not exist at all.
        let body = apply(&app, &bob, &b_token, json!([b1, 999_999])).await;
        assert_eq!(body["code"], -2, "{body}");
        assert_eq!(count(&app, "audits").await, 0, "{backend:?}");

        // Alice submits her own, as the seed's string form; racing resubmissions store none.
        let body = apply(&app, &alice, &a_token, json!(format!("[{a1}, {a2}]"))).await;
        assert_eq!(body["code"], 0, "{body}");
        let again = join_all((0..5).map(|_| apply(&app, &alice, &a_token, json!([a1])))).await;
        for body in again {
            assert_eq!(body["code"], -3, "{body}");
        }
        assert_eq!(count(&app, "audits").await, 1);
        let audit = latest_audit(&app, &alice).await;
        assert_eq!(audit["status"], "audit");
        assert_eq!(audit["files"], json!([a1, a2]));

        // Approved: still no resubmission.
        let id = audit["id"].as_i64().expect("audit id");
        let body = decide(&app, json!({"id": id, "approve": true})).await;
        assert_eq!(body["status"], true, "{body}");
        let body = apply(&app, &alice, &a_token, json!([a1])).await;
        assert_eq!(body["code"], -3, "{body}");
        assert_eq!(count(&app, "audits").await, 1);
    }
}

#[actix_web::test]
async fn approval_grants_points_once_however_many_decisions_race() {
    for backend in backends() {
        let (app, _dir) = spawn(backend).await;
        let (alice, token) = app.login("alice").await;
        let up = upload_ok(&app, &alice, &token, PNG).await;
        assert_eq!(apply(&app, &alice, &token, json!([up])).await["code"], 0);
        let id = latest_audit(&app, &alice).await["id"]
            .as_i64()
            .expect("audit id");

        let answers = join_all(
            (0..6).map(|_| decide(&app, json!({"id": id, "approve": true, "points": 30}))),
        )
        .await;
        for body in &answers {
            assert_eq!(body["status"], true, "{backend:?} {body}");
        }
        // Another decision after the fact is refused and changes nothing.
        let body = decide(&app, json!({"id": id, "approve": true, "points": 50})).await;
        assert_eq!(
            (body["status"].clone(), body["code"].clone()),
            (json!(false), json!(409)),
            "{body}"
        );
        let body = decide(&app, json!({"id": id, "approve": false})).await;
        assert_eq!(body["code"], 409, "{body}");

        assert_eq!(app.balance(&alice).await, 30, "{backend:?}");
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let grants: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'audit' AND idem_key = $1",
        )
        .bind(format!("audit:default:{id}"))
        .fetch_one(&db.read)
        .await
        .expect("grants");
        assert_eq!(grants, 1);
        let audit = latest_audit(&app, &alice).await;
        assert_eq!(
            (audit["status"].clone(), audit["points"].clone()),
            (json!("success"), json!(30))
        );
    }
}

#[actix_web::test]
async fn a_rejected_user_may_submit_again() {
    for backend in backends() {
        let (app, _dir) = spawn(backend).await;
        let (alice, token) = app.login("alice").await;
        let up = upload_ok(&app, &alice, &token, WEBP).await;
        assert_eq!(apply(&app, &alice, &token, json!([up])).await["code"], 0);
        let first = latest_audit(&app, &alice).await["id"]
            .as_i64()
            .expect("audit id");
        let body = decide(&app, json!({"id": first, "approve": false})).await;
        assert_eq!(body["data"]["status"], "failed", "{body}");
        assert_eq!(app.balance(&alice).await, 0);

        let (_, listed) = app
            .get(
                &format!("{LIST}?status=failed"),
                &[("X-Admin-Key", ADMIN_KEY)],
            )
            .await;
        assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");

        let body = apply(&app, &alice, &token, json!([up])).await;
        assert_eq!(body["code"], 0, "{backend:?} {body}");
        let second = latest_audit(&app, &alice).await;
        assert_ne!(second["id"].as_i64(), Some(first));
        assert_eq!(second["status"], "audit");
        let (_, doc) = app.get("/openapi.json", &[]).await;
        for path in [UPLOAD, APPLY, LIST, DECIDE] {
            assert!(doc["paths"][path].is_object(), "{path} not documented");
        }
        let (_, listed) = app
            .get(
                &format!("{LIST}?status=audit"),
                &[("X-Admin-Key", ADMIN_KEY)],
            )
            .await;
        assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    }
}

#[actix_web::test]
async fn bad_input_is_refused_and_changes_nothing() {
    for backend in backends() {
        let (app, _dir) = spawn(backend).await;
        let (alice, token) = app.login("alice").await;
        let up = upload_ok(&app, &alice, &token, PNG).await;

        for (files, code) in [
            (Value::Null, -1),
            (json!(""), -1),
            (json!("[]"), -4),
            (json!([]), -4),
            (json!("abc"), -2),
            (json!("[1.5]"), -2),
            (json!({"id": up}), -2),
            (json!([-1]), -2),
            (json!("[99999999999999999999]"), -2),
            (json!((1..=21).collect::<Vec<i64>>()), -2),
        ] {
            let body = apply(&app, &alice, &token, files.clone()).await;
            assert_eq!(body["code"], code, "{backend:?} {files} {body}");
        }
        let (_, body) = app
            .post(APPLY, &[("Authorization", &token)], &json!({"files": [up]}))
            .await;
        assert_eq!(body["code"], -1, "{body}");
        let (_, body) = app
            .post(
                APPLY,
                &[("Authorization", &token)],
                &json!({"openid": "dev_bob", "files": [up]}),
            )
            .await;
        assert_eq!(body["code"], -2, "{body}");
        let (_, body) = app
            .post(APPLY, &[], &json!({"openid": alice, "files": [up]}))
            .await;
        assert_eq!(body["code"], -401, "{body}");
        assert_eq!(count(&app, "audits").await, 0);

        assert_eq!(apply(&app, &alice, &token, json!([up])).await["code"], 0);
        let id = latest_audit(&app, &alice).await["id"]
            .as_i64()
            .expect("audit id");
        for bad in [
            json!({}),
            json!({"id": id}),
            json!({"id": id, "approve": "maybe"}),
            json!({"id": id, "approve": true, "points": -1}),
            json!({"id": id, "approve": true, "points": 1_000_001}),
            json!({"id": id, "approve": true, "points": "lots"}),
            json!({"id": id, "approve": false, "points": 5}),
            json!({"id": "x", "approve": true}),
            json!({"id": 999_999, "approve": true}),
        ] {
            let body = decide(&app, bad.clone()).await;
            assert_eq!(body["status"], false, "{backend:?} {bad} {body}");
            assert_ne!(body["code"], 500, "{bad} {body}");
        }
        let (_, body) = app
            .post(DECIDE, &[], &json!({"id": id, "approve": true}))
            .await;
        assert_eq!(body["status"], false, "{body}");
        for query in ["?status=nope", "?page=0", "?size=1000", "?app_id=nope"] {
            let (status, body) = app
                .get(&format!("{LIST}{query}"), &[("X-Admin-Key", ADMIN_KEY)])
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["status"], false, "{query} {body}");
        }
        let audit = latest_audit(&app, &alice).await;
        assert_eq!(audit["status"], "audit", "{backend:?}");
        assert_eq!(app.balance(&alice).await, 0);
        assert_eq!(count(&app, "audits").await, 1);
    }
}

#[actix_web::test]
async fn uploads_stop_at_the_days_allowance_of_bytes() {
    for backend in backends() {
        let dir = tempfile::tempdir().expect("upload dir");
        let path = dir.path().to_path_buf();
        let app = spawn_app_with(backend, move |s| {
            s.upload_dir = path;
            s.bounds.upload_bytes_per_day = 3 * PNG.len() as i64;
        })
        .await;
        let (uid, token) = app.login("allowance").await;
        let mut codes = Vec::new();
        for _ in 0..4 {
            let body = upload_raw(
                &app,
                Some(&token),
                multipart(Some(&uid), Some(("a.png", PNG))),
            )
            .await;
            codes.push(body["code"].as_i64().expect("code"));
        }
        assert_eq!(codes, vec![0, 0, 0, -429], "{backend:?}");
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(files, 3, "{backend:?}: the refused upload stored nothing");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn auth_status_reports_the_latest_review_as_the_client_reads_it() {
    for backend in backends() {
        let (app, _dir) = spawn(backend).await;
        let (alice, token) = app.login("eye").await;
        let eye = || async {
            let (_, body) = app
                .get(
                    &format!("/api/auth_status/?openid={alice}"),
                    &[("Authorization", token.as_str())],
                )
                .await;
            assert_eq!(body["code"], 0, "{body}");
            (
                body["data"]["eye_status"].clone(),
                body["data"]["is_eye"].clone(),
            )
        };
        assert_eq!(eye().await, (json!("need"), json!(false)), "{backend:?}");
        let up = upload_ok(&app, &alice, &token, PNG).await;
        assert_eq!(apply(&app, &alice, &token, json!([up])).await["code"], 0);
        assert_eq!(eye().await, (json!("audit"), json!(false)), "{backend:?}");
        let id = latest_audit(&app, &alice).await["id"].clone();
        decide(&app, json!({"id": id, "approve": false})).await;
        assert_eq!(eye().await, (json!("failed"), json!(false)), "{backend:?}");
        assert_eq!(apply(&app, &alice, &token, json!([up])).await["code"], 0);
        assert_eq!(eye().await, (json!("audit"), json!(false)), "{backend:?}");
        let id = latest_audit(&app, &alice).await["id"].clone();
        decide(&app, json!({"id": id, "approve": true})).await;
        assert_eq!(eye().await, (json!("success"), json!(true)), "{backend:?}");
        app.handle.stop(true).await;
    }
}
