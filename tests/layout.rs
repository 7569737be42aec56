//! The house rules of ARCHITECTURE.md, checked on the source tree: no file over 1,000 lines, no
//! SQL in a routes file or a facade, the ledger's tables named only by the ledger's store, and
//! no import from a lower floor back up to a slice, a facade or the top.

use std::fs;
use std::path::{Path, PathBuf};

/// Longest source file the layout allows.
const SOURCE_FILE_LINES_MAX: usize = 1_000;
/// The ledger's own tables.
const LEDGER_TABLES: &[&str] = &[
    "balances",
    "ledger_entries",
    "credit_lots",
    "ledger_counters",
];
/// Modules of the floors above the dialect kit and the runtime.
const UPPER_MODULES: &[&str] = &[
    "crate::facades",
    "crate::features",
    "crate::activities",
    "crate::ws",
    "crate::startup",
    "crate::jobs",
    "crate::fulfilment",
];
/// Files and folders of the floors below the slices.
const LOWER_FLOORS: &[&str] = &[
    "src/dialect",
    "src/limits",
    "src/runtime",
    "src/store",
    "src/cluster",
    "src/db.rs",
    "src/state.rs",
    "src/http.rs",
    "src/auth.rs",
    "src/points.rs",
    "src/error.rs",
    "src/clock.rs",
    "src/config.rs",
    "src/metrics.rs",
    "src/telemetry.rs",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `dirs`, as (path relative to the workspace, text).
fn sources(dirs: &[&str]) -> Vec<(String, String)> {
    let root = root();
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let text = fs::read_to_string(&path).unwrap_or_default();
            (rel, text)
        })
        .collect()
}

/// The lines of `text` that are code, not comments.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

#[test]
fn the_tree_is_read() {
    // Guards the other tests against passing on an empty walk.
    let files = sources(&["src", "actors/src"]);
    assert!(files.len() > 50, "only {} source files found", files.len());
    assert!(files.iter().any(|(p, _)| p == "src/dialect/mod.rs"));
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let long: Vec<String> = sources(&["src", "actors/src"])
        .into_iter()
        .filter(|(_, text)| text.lines().count() > SOURCE_FILE_LINES_MAX)
        .map(|(path, text)| format!("{path}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "split these by layer: {long:?}");
}

#[test]
fn routes_files_and_facades_hold_no_sql() {
    let mut found = Vec::new();
    for (path, text) in sources(&["src"]) {
        let name = path.rsplit('/').next().unwrap_or_default();
        if !(name.starts_with("routes") || path.starts_with("src/facades/")) {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if line.contains("sqlx::") {
                found.push(format!("{path}:{n}"));
            }
        }
    }
    assert!(found.is_empty(), "move this SQL into a store.rs: {found:?}");
}

#[test]
fn only_the_ledger_store_names_the_ledger_tables() {
    let mut found = Vec::new();
    for (path, text) in sources(&["src"]) {
        if path.starts_with("src/store/ledger/") {
            continue;
        }
        for (n, line) in code_lines(&text) {
            // SQL lives in string literals: look at what follows the first quote.
            let Some((_, literal)) = line.split_once('"') else {
                continue;
            };
            let named = LEDGER_TABLES.iter().any(|t| {
                literal.match_indices(t).any(|(i, _)| {
                    let before = literal[..i].chars().last();
                    let after = literal[i + t.len()..].chars().next();
                    let edge =
                        |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                    edge(before) && edge(after)
                })
            });
            if named {
                found.push(format!("{path}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "move these into src/store/ledger/: {found:?}"
    );
}

#[test]
fn lower_floors_never_import_upwards() {
    let mut found = Vec::new();
    for (path, text) in sources(&["src"]) {
        if !LOWER_FLOORS.iter().any(|f| path.starts_with(f)) {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if let Some(m) = UPPER_MODULES.iter().find(|m| line.contains(*m)) {
                found.push(format!("{path}:{n} uses {m}"));
            }
        }
    }
    assert!(found.is_empty(), "imports running up the floors: {found:?}");
}

#[test]
fn slices_never_import_facades_or_other_slices_routes() {
    let mut found = Vec::new();
    for (path, text) in sources(&["src/features", "src/activities"]) {
        for (n, line) in code_lines(&text) {
            let facade = ["crate::facades", "crate::ws", "crate::startup"]
                .iter()
                .any(|m| line.contains(m));
            let routes = (line.contains("crate::features::")
                || line.contains("crate::activities::"))
                && line.contains("::routes_");
            if facade || routes {
                found.push(format!("{path}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "slices reaching up or sideways: {found:?}"
    );
}
