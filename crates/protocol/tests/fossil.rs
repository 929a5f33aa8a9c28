//! Fossil delta codec: the published vectors (made by the fossil binary, from
//! shadowspore/fossil-delta `data/`), round trips, every decoder error, bounded decoding,
//! UTF-8-safe patches for JSON clients, and a deterministic property loop.

use rotor_protocol::fossil::{
    apply, apply_limited, checksum, delta, delta_utf8_safe, worth_it, FossilError,
};

macro_rules! vector {
    ($n:literal) => {
        (
            &include_bytes!(concat!("fossil_vectors/", $n, "/origin"))[..],
            &include_bytes!(concat!("fossil_vectors/", $n, "/target"))[..],
            &include_bytes!(concat!("fossil_vectors/", $n, "/delta"))[..],
        )
    };
}

fn vectors() -> [(&'static [u8], &'static [u8], &'static [u8]); 5] {
    [
        vector!("1"),
        vector!("2"),
        vector!("3"),
        vector!("4"),
        vector!("5"),
    ]
}

/// A small deterministic generator (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize, alphabet: usize) -> Vec<u8> {
        (0..len).map(|_| self.below(alphabet) as u8).collect()
    }

    /// Up to `max_len - 1` random bytes below `alphabet`.
    fn some_bytes(&mut self, max_len: usize, alphabet: usize) -> Vec<u8> {
        let len = self.below(max_len);
        self.bytes(len, alphabet)
    }

    /// `source` with a few random edits: replace, insert, delete, duplicate a span.
    fn edit(&mut self, source: &[u8]) -> Vec<u8> {
        let mut out = source.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(out.len() + 1);
            let span = self.below(40).min(out.len() - at);
            match self.below(4) {
                0 => {
                    let fresh = self.bytes(span, 256);
                    out.splice(at..at + span, fresh);
                }
                1 => {
                    let fresh = self.some_bytes(40, 256);
                    out.splice(at..at, fresh);
                }
                2 => {
                    out.drain(at..at + span);
                }
                _ => {
                    let copy = out[at..at + span].to_vec();
                    let to = self.below(out.len() + 1);
                    out.splice(to..to, copy);
                }
            }
        }
        out
    }
}

/// The commands of a well-formed delta, as the tests see them (parsed independently of the
/// decoder): `(is_insert, count, literal)`.
fn commands(delta: &[u8]) -> Vec<(bool, usize, Vec<u8>)> {
    fn number(d: &[u8], pos: &mut usize) -> usize {
        let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
        let mut v = 0;
        while let Some(i) = d
            .get(*pos)
            .and_then(|b| alphabet.iter().position(|a| a == b))
        {
            v = v * 64 + i;
            *pos += 1;
        }
        v
    }
    let mut pos = 0;
    number(delta, &mut pos);
    assert_eq!(delta[pos], b'\n');
    pos += 1;
    let mut out = Vec::new();
    loop {
        let count = number(delta, &mut pos);
        let op = delta[pos];
        pos += 1;
        match op {
            b'@' => {
                number(delta, &mut pos);
                assert_eq!(delta[pos], b',');
                pos += 1;
                out.push((false, count, Vec::new()));
            }
            b':' => {
                out.push((true, count, delta[pos..pos + count].to_vec()));
                pos += count;
            }
            b';' => return out,
            other => panic!("operator {other}"),
        }
    }
}

fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
    let patch = delta(source, target);
    assert_eq!(apply(source, &patch).as_deref(), Ok(target), "plain delta");
    patch
}

/// The safe patch decodes to the target and every literal (so the whole patch) is valid UTF-8.
fn utf8_round_trip(source: &str, target: &str) -> Vec<u8> {
    let patch = delta_utf8_safe(source.as_bytes(), target.as_bytes()).expect("valid inputs");
    let out = apply(source.as_bytes(), &patch).expect("safe patch applies");
    assert_eq!(std::str::from_utf8(&out), Ok(target));
    assert!(std::str::from_utf8(&patch).is_ok());
    for (insert, _, literal) in commands(&patch) {
        if insert {
            assert!(std::str::from_utf8(&literal).is_ok(), "literal {literal:?}");
        }
    }
    patch
}

fn plain_literals_split_chars(source: &str, target: &str) -> bool {
    commands(&delta(source.as_bytes(), target.as_bytes()))
        .iter()
        .any(|(insert, _, literal)| *insert && std::str::from_utf8(literal).is_err())
}

#[test]
fn encoder_reproduces_all_five_vectors() {
    for (n, (origin, target, expected)) in vectors().into_iter().enumerate() {
        let got = delta(origin, target);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "vector {}",
            n + 1
        );
        assert_eq!(got, expected, "vector {}", n + 1);
    }
}

#[test]
fn decoder_applies_all_five_vectors() {
    for (n, (origin, target, patch)) in vectors().into_iter().enumerate() {
        assert_eq!(
            apply(origin, patch).as_deref(),
            Ok(target),
            "vector {}",
            n + 1
        );
        assert_eq!(
            apply_limited(origin, patch, target.len()).as_deref(),
            Ok(target),
            "vector {} at an exact cap",
            n + 1
        );
    }
}

#[test]
fn vector_shapes_match_the_spec() {
    let (_, _, d5) = vector!("5");
    assert_eq!(d5, b"6\n6:little3OocHp;");
    let (_, _, d4) = vector!("4");
    assert!(d4.starts_with(b"x\nj@0,E:First note\"}}\n"));
    assert!(d4.ends_with(b"5NpHA;"));
    assert_eq!(
        [d4.len(), vector!("1").2.len(), vector!("2").2.len()],
        [28, 72, 187]
    );
    assert_eq!(vector!("3").2.len(), 920);
}

#[test]
fn checksum_matches_fossil() {
    // `3OocHp` in the alphabet: 3, 24, 51, 39, 17, 52.
    let expected = [3u32, 24, 51, 39, 17, 52]
        .iter()
        .fold(0u32, |acc, d| acc * 64 + d);
    assert_eq!(checksum(b"little"), expected);
    assert_eq!(checksum(b""), 0);
    assert_eq!(checksum(b"a"), 0x61 << 24);
    assert_eq!(checksum(b"abcd"), 0x6162_6364);
    assert_eq!(checksum(b"abcdabcd"), 0x6162_6364u32.wrapping_mul(2));
    assert_eq!(checksum(b"abcdxyz"), 0x6162_6364 + 0x7879_7a00);
    // Wrapping: a long run of 0xff bytes.
    let ff = vec![0xffu8; 1 << 20];
    let lane = 0xffu32.wrapping_mul(1 << 18);
    let want = lane
        .wrapping_add(lane << 8)
        .wrapping_add(lane << 16)
        .wrapping_add(lane << 24);
    assert_eq!(checksum(&ff), want);
}

#[test]
fn edge_shapes_round_trip() {
    assert_eq!(round_trip(b"", b""), b"0\n0:0;");
    let mut hello = b"5\n5:hello".to_vec();
    hello.extend(number(checksum(b"hello")));
    hello.push(b';');
    assert_eq!(round_trip(b"", b"hello"), hello);
    let long = b"a fairly long source text that has more than sixteen bytes";
    assert_eq!(round_trip(long, b""), b"0\n0;");
    // Source of at most 16 bytes: one literal insert, no copies.
    let small = round_trip(b"0123456789abcdef", b"0123456789abcdef0123");
    assert_eq!(
        commands(&small),
        vec![(true, 20, b"0123456789abcdef0123".to_vec())]
    );
    round_trip(b"x", b"x");
    // Identical inputs above 16 bytes: a single copy.
    let same = round_trip(long, long);
    assert_eq!(commands(&same), vec![(false, long.len(), Vec::new())]);
    // Target shorter than the window after a long source.
    round_trip(long, b"short");
}

#[test]
fn json_objects_with_small_changes_are_small_patches() {
    let mut rng = Rng(7);
    for n in 0..50 {
        let fields: Vec<String> = (0..20)
            .map(|i| format!("\"field{i}\":{}", rng.below(100_000)))
            .collect();
        let source = format!("{{\"n\":{n},{}}}", fields.join(","));
        let mut changed = fields.clone();
        changed[rng.below(20)] = format!("\"changed\":{}", rng.below(1000));
        let target = format!("{{\"n\":{n},{}}}", changed.join(","));
        let patch = round_trip(source.as_bytes(), target.as_bytes());
        assert!(worth_it(patch.len(), target.len()), "{}", patch.len());
        assert!(
            patch.len() < target.len() / 3,
            "{} of {}",
            patch.len(),
            target.len()
        );
        utf8_round_trip(&source, &target);
    }
}

#[test]
fn long_repeated_text_round_trips_and_compresses() {
    let source = "the quick brown fox jumps over the lazy dog. ".repeat(2_000);
    let target = source.replacen("lazy", "sleepy", 3) + "and then some";
    let patch = round_trip(source.as_bytes(), target.as_bytes());
    assert!(patch.len() < 200, "{}", patch.len());
    // A source of one repeated byte puts every block in one bucket: the chain bound keeps this
    // quick and the output is still right. Only the newest 250 blocks (the source's last 4 KB)
    // are candidates, so the copies are ~4 KB each: ~50 of them.
    let flat = vec![b'a'; 200_000];
    let mut flat_target = flat.clone();
    flat_target[100_000] = b'b';
    let patch = round_trip(&flat, &flat_target);
    assert!(patch.len() < 1_000, "{}", patch.len());
}

#[test]
fn random_and_edited_binary_pairs_round_trip() {
    let mut rng = Rng(42);
    for _ in 0..300 {
        let len = rng.below(3_000);
        let source = rng.bytes(len, 256);
        let target = rng.edit(&source);
        round_trip(&source, &target);
        let unrelated = rng.some_bytes(500, 256);
        round_trip(&source, &unrelated);
        round_trip(&unrelated, &source);
    }
}

#[test]
fn property_loop_thousands_of_pairs() {
    let mut rng = Rng(0x5eed);
    for _ in 0..4_000 {
        let alphabet = [2, 4, 16, 256][rng.below(4)];
        let source = rng.some_bytes(400, alphabet);
        let target = if rng.below(5) == 0 {
            rng.some_bytes(400, alphabet)
        } else {
            rng.edit(&source)
        };
        let patch = delta(&source, &target);
        assert_eq!(
            apply_limited(&source, &patch, target.len()).as_deref(),
            Ok(&target[..]),
            "source {source:?} target {target:?}"
        );
        // A patch is never much longer than the target it encodes.
        assert!(
            patch.len() <= target.len() + 24,
            "{} vs {}",
            patch.len(),
            target.len()
        );
    }
}

#[test]
fn every_decoder_check_is_an_error() {
    let src = b"0123456789";
    let cases: Vec<(&[u8], FossilError)> = vec![
        (b"", FossilError::MissingNumber),
        (b"\n0;", FossilError::MissingNumber),
        (b"3\n:abc0;", FossilError::MissingNumber),
        (b"zzzzzz\n", FossilError::NumberOverflow),
        (b"3", FossilError::HeaderNotTerminated),
        (b"3x3:abc", FossilError::HeaderNotTerminated),
        (b"3\n3@0;", FossilError::CopyNotTerminated),
        (b"3\n3@0", FossilError::CopyNotTerminated),
        (b"3\n4@0,", FossilError::OutputTooLong),
        (b"3\n4:abcd", FossilError::OutputTooLong),
        (b"3\n2@9,", FossilError::CopyOutOfSource),
        (b"3\n1@A,", FossilError::CopyOutOfSource),
        (b"3\n3:ab", FossilError::InsertPastEnd),
        (b"3\n3!abc", FossilError::UnknownOperator(b'!')),
        (b"3\n3:abc", FossilError::Unterminated),
        (b"3\n3", FossilError::Unterminated),
        (b"3\n", FossilError::Unterminated),
        (
            b"3\n3:abc0;",
            FossilError::BadChecksum {
                expected: 0,
                actual: checksum(b"abc"),
            },
        ),
        (
            b"3\n2:ab0;",
            FossilError::BadChecksum {
                expected: 0,
                actual: checksum(b"ab"),
            },
        ),
    ];
    for (patch, want) in cases {
        assert_eq!(
            apply(src, patch),
            Err(want),
            "{}",
            String::from_utf8_lossy(patch)
        );
    }
    // Right checksum, short output.
    let mut short = b"3\n2:ab".to_vec();
    short.extend(number(checksum(b"ab")));
    short.push(b';');
    assert_eq!(
        apply(src, &short),
        Err(FossilError::SizeMismatch {
            declared: 3,
            actual: 2
        })
    );
    // And the well-formed neighbour decodes.
    let mut good = b"5\n3@1,2:xy".to_vec();
    good.extend(number(checksum(b"123xy")));
    good.push(b';');
    assert_eq!(apply(src, &good).as_deref(), Ok(&b"123xy"[..]));
}

fn number(mut v: u32) -> Vec<u8> {
    let a = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
    let mut out = vec![a[(v & 63) as usize]];
    v >>= 6;
    while v > 0 {
        out.insert(0, a[(v & 63) as usize]);
        v >>= 6;
    }
    out
}

#[test]
fn cap_rejects_large_headers_before_work() {
    let (origin, target, patch) = vector!("2");
    assert_eq!(
        apply_limited(origin, patch, target.len() - 1),
        Err(FossilError::TooLarge {
            declared: target.len() as u64,
            limit: target.len() - 1
        })
    );
    // A hostile header of ~4 GiB with a copy loop: refused by the cap, and without one it fails
    // on the missing bytes rather than producing gigabytes (the copies run out of delta first).
    let hostile = b"~~~~~\n1@0,1@0,1@0,";
    assert!(matches!(
        apply_limited(b"abc", hostile, 1 << 20),
        Err(FossilError::TooLarge { .. })
    ));
    assert_eq!(apply(b"abc", hostile), Err(FossilError::Unterminated));
}

#[test]
fn hostile_bytes_never_panic() {
    let mut rng = Rng(99);
    let (origin, _, patch) = vector!("3");
    for _ in 0..5_000 {
        let mut mutated = patch.to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(mutated.len());
            mutated[at] = rng.below(256) as u8;
        }
        if rng.below(3) == 0 {
            mutated.truncate(rng.below(mutated.len()));
        }
        let _ = apply_limited(origin, &mutated, 4_096);
        let noise = rng.some_bytes(64, 256);
        let _ = apply_limited(origin, &noise, 4_096);
    }
}

const RUSSIAN: &str = "Съешь же ещё этих мягких французских булок, да выпей чаю. \
    Широкая электрификация южных губерний даст мощный толчок подъёму сельского хозяйства.";
const CHINESE: &str = "我能吞下玻璃而不伤身体。天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。\
    寒来暑往，秋收冬藏。闰余成岁，律吕调阳。云腾致雨，露结为霜。";
const EMOJI: &str = "🚀 launch 🎉 party 👩‍👩‍👧‍👦 family 🇺🇦 flag 😀😃😄😁😆😅🤣😂🙂🙃 grin 🧑🏽‍🚀 astronaut";

#[test]
fn utf8_safe_patches_never_split_characters() {
    // Changing one Cyrillic letter to a neighbour shares the lead byte: a plain patch copies it
    // and inserts the orphan continuation byte.
    let source = format!("{{\"text\":\"{RUSSIAN}\",\"n\":1}}");
    let target = source.replacen("булок", "булак", 1);
    assert!(plain_literals_split_chars(&source, &target));
    let patch = utf8_round_trip(&source, &target);
    assert!(worth_it(patch.len(), target.len()));

    let mut rng = Rng(2024);
    let mut split = 0;
    for text in [RUSSIAN, CHINESE, EMOJI] {
        let chars: Vec<char> = text.chars().collect();
        for _ in 0..300 {
            let mut edited = chars.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(edited.len());
                let pick = chars[rng.below(chars.len())];
                match rng.below(3) {
                    0 => edited[at] = pick,
                    1 => edited.insert(at, pick),
                    _ => {
                        edited.remove(at);
                    }
                }
            }
            let source = format!("{{\"n\":{},\"t\":\"{text}\"}}", rng.below(1000));
            let target = format!(
                "{{\"n\":{},\"t\":\"{}\"}}",
                rng.below(1000),
                edited.iter().collect::<String>()
            );
            split += usize::from(plain_literals_split_chars(&source, &target));
            let patch = utf8_round_trip(&source, &target);
            assert!(patch.len() < target.len() + 24);
        }
    }
    // The alignment matters: plain patches split characters in a good share of these edits.
    assert!(split > 50, "{split}");
}

#[test]
fn utf8_safe_refuses_invalid_inputs() {
    assert_eq!(
        delta_utf8_safe(b"\xff\xfe not utf-8 at all......", b"ok"),
        None
    );
    assert_eq!(delta_utf8_safe(b"ok", b"\xc3"), None);
    assert_eq!(delta_utf8_safe(b"", b"").as_deref(), Some(&b"0\n0:0;"[..]));
    // ASCII: the alignment changes nothing, the patch is Fossil's.
    let (origin, target, patch) = vector!("4");
    assert_eq!(delta_utf8_safe(origin, target).as_deref(), Some(patch));
}

#[test]
fn worth_it_means_strictly_shorter() {
    assert!(worth_it(9, 10));
    assert!(!worth_it(10, 10));
    assert!(!worth_it(11, 10));
    assert!(!worth_it(0, 0));
}
