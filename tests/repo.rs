//! Checks on the shape of the repository: migrations in step across dialects, and the pure
//! modules free of I/O frameworks (STYLE.md: layering).

use std::collections::BTreeSet;
use std::path::Path;

fn migration_numbers(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .map(|n| n.split('_').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn migrations_have_the_same_numbers_on_both_backends() {
    let sqlite = migration_numbers("migrations/sqlite");
    let postgres = migration_numbers("migrations/postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn pure_modules_import_no_io_frameworks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for pure in ["ical", "dav/xml.rs", "dav/path.rs", "timefmt.rs"] {
        let p = root.join(pure);
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else {
            files.push(p);
        }
    }
    assert!(files.len() >= 4);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in ["axum", "sqlx", "tokio", "reqwest", "hyper"] {
            assert!(
                !text.contains(&format!("{banned}::")) && !text.contains(&format!("use {banned}")),
                "{} uses {banned}",
                f.display()
            );
        }
    }
}
