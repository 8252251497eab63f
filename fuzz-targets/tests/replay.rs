//! Replays every corpus and regression file under `fuzz/` through its target, so that a
//! crash the fuzzer once found fails plain `cargo test` if it comes back.

use std::path::Path;

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for (name, target) in fuzz_targets::TARGETS {
        let mut seen = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
            for e in entries.flatten() {
                let bytes = std::fs::read(e.path()).expect("readable");
                let result = std::panic::catch_unwind(|| target(&bytes));
                assert!(result.is_ok(), "{name}: {} fails", e.path().display());
                seen += 1;
            }
        }
        assert!(seen > 0, "{name}: no seed files under fuzz/corpus/{name}");
        replayed += seen;
    }
    eprintln!("replayed {replayed} files");
}
