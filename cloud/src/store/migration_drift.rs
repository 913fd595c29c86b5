//! The two migration folders are hand-kept copies; this test keeps them
//! from drifting. Each file is normalised (comments dropped, whitespace
//! collapsed, PostgreSQL's `BIGINT`/`BYTEA` spelled as SQLite's
//! `INTEGER`/`BLOB`) and split into statements; the backends must hold the
//! same files with the same statements, except the few data backfills that
//! need each dialect's own SQL, listed in [`DIALECT_SPECIFIC`].

use std::collections::BTreeMap;
use std::path::Path;

/// (file, statement index): statements written per dialect on purpose.
/// `0002_commerce`: filling `tier_slots` for existing tiers
/// (`generate_series` against a recursive CTE) and assigning existing
/// tickets to slots (`UPDATE ... FROM` with or without a table alias).
const DIALECT_SPECIFIC: &[(&str, usize)] = &[("0002_commerce.sql", 13), ("0002_commerce.sql", 14)];

fn statements(sql: &str, postgres: bool) -> Vec<String> {
    let mut text = String::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or("");
        text.push_str(code);
        text.push(' ');
    }
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if postgres {
        text = text.replace("BIGINT", "INTEGER").replace("BYTEA", "BLOB");
    }
    text.split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn folder(dir: &Path, postgres: bool) -> BTreeMap<String, Vec<String>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| {
            let path = f.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let sql = std::fs::read_to_string(&path).expect("migration text");
            (name, statements(&sql, postgres))
        })
        .collect()
}

#[test]
fn the_two_migration_folders_say_the_same_thing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let pg = folder(&root.join("postgres"), true);
    let lite = folder(&root.join("sqlite"), false);
    assert_eq!(
        pg.keys().collect::<Vec<_>>(),
        lite.keys().collect::<Vec<_>>(),
        "every migration exists for both backends under the same name"
    );
    for (name, pg_stmts) in &pg {
        let lite_stmts = &lite[name];
        assert_eq!(
            pg_stmts.len(),
            lite_stmts.len(),
            "{name}: both backends run the same number of statements"
        );
        for (i, (a, b)) in pg_stmts.iter().zip(lite_stmts).enumerate() {
            if DIALECT_SPECIFIC.contains(&(name.as_str(), i)) {
                continue;
            }
            assert_eq!(a, b, "{name} statement {i} differs between the backends");
        }
    }
}

#[test]
fn the_drift_check_sees_a_drift() {
    let a = statements(
        "CREATE TABLE t (a BIGINT); -- note\nCREATE INDEX i ON t (a);",
        true,
    );
    let b = statements(
        "CREATE TABLE t (a INTEGER);\n\nCREATE INDEX i ON t (a);",
        false,
    );
    assert_eq!(
        a, b,
        "type spellings, comments and whitespace are not drift"
    );
    let c = statements("CREATE TABLE t (a INTEGER NOT NULL);", false);
    assert_ne!(a[0], c[0], "a changed column is");
}
