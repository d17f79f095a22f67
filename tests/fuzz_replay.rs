//! Replays the committed fuzz corpus and every saved crash on stable, so CI exercises the
//! fuzz targets without nightly or libFuzzer: each file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through `almanac::fuzzing::<target>`, the very function the
//! fuzzer calls. A missing or empty directory fails the test, so the replay can never silently
//! test nothing.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let d = root.join(dir).join(target);
        let mut here: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file() && !is_marker(p))
            .collect();
        assert!(!here.is_empty(), "{} holds no inputs", d.display());
        here.sort();
        files.extend(here);
    }
    files
}

/// `.gitkeep`-style files and READMEs are not inputs.
fn is_marker(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n == "README.md")
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // Keep going after a failure so one run names every failing input.
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn xml_request_corpus() {
    replay("xml_request", almanac::fuzzing::xml_request);
}

#[test]
fn ical_corpus() {
    replay("ical", almanac::fuzzing::ical);
}

#[test]
fn path_corpus() {
    replay("path", almanac::fuzzing::path);
}
