//! A short, bounded mutation run of every target on the stable toolchain, for CI
//! (`scripts/fuzz.sh replay` runs it after the replay): each target gets a time budget
//! (`ROTOR_FUZZ_SMOKE_MS`, default 1,500 ms) of inputs made from its corpus by random bit
//! flips, byte and block insertions, deletions, truncations, splices of two corpus files and
//! "interesting" values (0, 0xff, 0x7f, 0x80, long runs).
//!
//! Not coverage-guided: that is libFuzzer's job (`scripts/fuzz.sh run`, FUZZING.md), whose
//! instrumented build is too slow for CI. What this adds to the replay is that every CI run
//! tries inputs nobody tried before, around the shapes the corpus knows. The seed is printed
//! (`ROTOR_FUZZ_SEED` repeats a run); an input that panics is written to
//! `fuzz/artifacts/smoke/<target>-<seed>-<n>` and fails the test with that path.

use std::path::Path;
use std::time::{Duration, Instant};

/// xorshift64*: enough randomness for mutations, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'}', b'[', b']', b'\\', b'\n'];

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, (rng.next() & 0xff) as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                v.drain(i..i + n);
            }
            4 if !v.is_empty() => v.truncate(rng.below(v.len())),
            5 if !other.is_empty() => {
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 => {
                let i = rng.below(v.len() + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                let run = vec![b; 1 + rng.below(1024)];
                v.splice(i..i, run);
            }
            _ if v.len() >= 2 => {
                // Duplicate a block in place.
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(256));
                let block = v[i..i + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, block);
            }
            _ => v.push((rng.next() & 0xff) as u8),
        }
    }
    v.truncate(1 << 20);
    v
}

fn corpus(root: &Path, name: &str) -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_file() {
                if let Ok(data) = std::fs::read(e.path()) {
                    inputs.push(data);
                }
            }
        }
    }
    if inputs.is_empty() {
        inputs.push(Vec::new());
    }
    inputs
}

#[test]
fn bounded_mutation_run_of_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let budget = std::env::var("ROTOR_FUZZ_SMOKE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_millis(1500), Duration::from_millis);
    let seed = std::env::var("ROTOR_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("seed {seed} (ROTOR_FUZZ_SEED={seed} repeats this run), {budget:?} per target");
    // The targets assert their own invariants; a panic is the finding, not noise.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = Vec::new();
    for (name, target) in rotor_fuzz::TARGETS {
        let inputs = corpus(root, name);
        let mut rng = Rng(seed ^ (name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < budget {
            let base = &inputs[rng.below(inputs.len())];
            let other = &inputs[rng.below(inputs.len())];
            let input = mutate(&mut rng, base, other);
            runs += 1;
            if std::panic::catch_unwind(|| target(&input)).is_err() {
                let dir = root.join("artifacts").join("smoke");
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("{name}-{seed}-{runs}"));
                let _ = std::fs::write(&path, &input);
                failed.push(path.display().to_string());
                break;
            }
        }
        println!("{name}: {runs} mutated inputs");
    }
    std::panic::set_hook(hook);
    assert!(
        failed.is_empty(),
        "inputs that panic (seed {seed}): {failed:#?}"
    );
}
