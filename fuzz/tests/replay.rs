//! Replays every file of `corpus/<target>/` and `regressions/<target>/` through its target
//! function, without libFuzzer, on the stable toolchain (`scripts/fuzz.sh replay`). A file that
//! panics fails the test with its path.

use std::path::Path;

#[test]
fn replay_corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    let mut failed = Vec::new();
    for (name, target) in rotor_fuzz::TARGETS {
        let mut files = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.is_file()) {
                let data = std::fs::read(&path).expect("read a corpus file");
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(path.display().to_string());
                }
                files += 1;
            }
        }
        println!("{name}: {files} inputs");
        total += files;
    }
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
    assert!(total > 0, "no corpus found under {}", root.display());
}
