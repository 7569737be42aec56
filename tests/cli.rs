//! The operator's commands, run as the built binary: help and version whatever the settings,
//! `migrate` listing what it applied, `config check` naming misspelt keys, and `backup` of a live
//! SQLite server giving a file with every table and the same balances.

mod common;

use std::process::{Command, Output};

use common::spawn_process;
use points_engine::db::Db;

fn engine(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_points-engine"));
    cmd.args(args).env_remove("POINTS_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run points-engine")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_and_version_answer_even_when_the_settings_are_broken() {
    for flag in ["--help", "-h", "help"] {
        let out = engine(&[flag], &[("POINTS_TIMEZONE", "Mars/Base")]);
        assert!(out.status.success(), "{flag}: {}", text(&out));
        let shown = text(&out);
        for command in ["serve", "migrate", "backup", "config"] {
            assert!(shown.contains(command), "{flag}: {shown}");
        }
    }
    for flag in ["--version", "-V"] {
        let out = engine(&[flag], &[("POINTS_TIMEZONE", "Mars/Base")]);
        assert!(out.status.success());
        assert!(
            text(&out).contains(env!("CARGO_PKG_VERSION")),
            "{}",
            text(&out)
        );
    }
    let out = engine(&["frobnicate"], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("frobnicate"), "{}", text(&out));
    // A command that needs the settings names what is wrong with them, without a backtrace.
    let out = engine(
        &["config", "check"],
        &[("POINTS_TIMEZONE", "Mars/Base"), ("RUST_BACKTRACE", "1")],
    );
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("POINTS_TIMEZONE"), "{shown}");
    assert!(!shown.contains("stack backtrace"), "{shown}");
}

#[test]
fn config_check_shows_the_settings_redacted_and_names_unknown_keys() {
    let out = engine(
        &["config", "check"],
        &[
            ("POINTS_ADMIN_KEY", "s3cret-admin"),
            ("POINTS_TIMEZON", "Asia/Shanghai"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("admin_key: \"<redacted>\""), "{shown}");
    assert!(!shown.contains("s3cret-admin"), "{shown}");
    assert!(shown.contains("warning: POINTS_TIMEZON"), "{shown}");
}

#[test]
fn a_sqlite_path_under_missing_folders_is_refused_and_nothing_is_made() {
    let dir = tempfile::tempdir().expect("dir");
    let deep = dir.path().join("no/such/points.db");
    let url = format!("sqlite://{}", deep.display());
    let out = engine(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    assert!(!dir.path().join("no").exists(), "a folder was made");
    // The file's own folder is made when the one above it exists (`data/` on a first start).
    let shallow = dir.path().join("data/points.db");
    let url = format!("sqlite://{}", shallow.display());
    let out = engine(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(shallow.exists());
}

#[test]
fn start_up_names_the_cause_when_the_database_cannot_be_reached_or_written() {
    // A Postgres port nothing listens on: the refusal, not "pool timed out".
    let port = common::free_port();
    let url = format!("postgres://points:secret@127.0.0.1:{port}/points");
    let out = engine(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("Connection refused"), "{shown}");
    assert!(
        !shown.contains("secret"),
        "the password is redacted: {shown}"
    );

    // A data folder this process may not write in (immutable, which holds for root too).
    let dir = tempfile::tempdir().expect("temp dir");
    let locked = dir.path().join("data");
    std::fs::create_dir(&locked).expect("data folder");
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&locked)
        .status()
        .is_ok_and(|s| s.success());
    if !immutable {
        common::skipped("chattr +i is not permitted here: the unwritable folder case is skipped");
        return;
    }
    let url = format!("sqlite://{}/points.db", locked.display());
    let out = engine(&["migrate"], &[("DATABASE_URL", &url)]);
    let _ = Command::new("chattr").arg("-i").arg(&locked).status();
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("no permission to create files in") && shown.contains("data"),
        "{shown}"
    );
}

#[test]
fn migrate_lists_what_it_applied_then_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/points.db", dir.path().display());
    let first = engine(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(first.status.success(), "{}", text(&first));
    let shown = text(&first);
    assert!(shown.contains("applied"), "{shown}");
    assert!(shown.contains("create core"), "{shown}");
    let again = engine(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(text(&again).contains("up to date"), "{}", text(&again));
}

#[actix_web::test]
async fn a_backup_of_a_live_server_has_every_table_and_the_same_balances() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/points.db", dir.path().display());
    let server = spawn_process(&url, &[]).await;
    let client = common::client();
    let mut users = Vec::new();
    for i in 0..5 {
        let user = common::login_at(&client, &server.address, &format!("backup{i}")).await;
        let key = format!("b-{i}");
        let body = common::change_at(&client, &server.address, &user, 10 + i, Some(&key))
            .await
            .expect("an answer");
        assert_eq!(body["status"], true, "{body}");
        users.push(user);
    }
    let copy = dir.path().join("copy.db");
    let copy_text = copy.display().to_string();
    let out = engine(&["backup", &copy_text], &[("DATABASE_URL", &url)]);
    assert!(out.status.success(), "{}", text(&out));
    // Writing over an existing file is refused.
    let out = engine(&["backup", &copy_text], &[("DATABASE_URL", &url)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exists"), "{}", text(&out));

    let live = Db::connect(&url, 2).await.expect("live");
    let backup = Db::connect(&format!("sqlite://{copy_text}"), 2)
        .await
        .expect("backup");
    let tables = |db: Db| async move {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&db.read)
                .await
                .expect("tables");
        let balances: Vec<(i64, i64)> =
            sqlx::query_as("SELECT user_id, balance FROM balances ORDER BY user_id")
                .fetch_all(&db.read)
                .await
                .expect("balances");
        (names, balances)
    };
    let (live_tables, live_balances) = tables(live).await;
    let (copy_tables, copy_balances) = tables(backup).await;
    assert!(
        copy_tables.contains(&"ledger_entries".to_string()),
        "{copy_tables:?}"
    );
    assert_eq!(copy_tables, live_tables);
    assert_eq!(copy_balances, live_balances);
    assert_eq!(copy_balances.len(), users.len());
    drop(server);
}
