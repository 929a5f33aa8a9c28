//! Fossil delta compression: the patch format of delta subscriptions (`delta: "fossil"`).
//!
//! A delta turns a *source* (the previous publication the client holds) into a *target* (the new
//! one). It is text-friendly: numbers are unsigned integers in base 64, most significant digit
//! first, over the alphabet `0-9 A-Z _ a-z ~`. The layout is `<target length> "\n"`, then
//! commands, then `<checksum> ";"`. A command is either a copy, `<count> "@" <offset> ","`
//! (append `source[offset..offset + count]`), or an insert, `<count> ":" <count raw bytes>`. The
//! checksum is Fossil's 32-bit byte sum over the target (see [`checksum`]).
//!
//! The encoder ([`delta`]) is Fossil's algorithm: source blocks of 16 bytes indexed by a rolling
//! hash, the target scanned one byte at a time, each hash bucket's collision chain followed for at
//! most 250 candidates, and a match taken only when it is at least as long as the command that
//! encodes it. It reproduces the fossil binary's output byte for byte (the published test vectors
//! pass), though any valid delta decodes the same. The decoder ([`apply_limited`]) makes every
//! check Fossil makes, each a [`FossilError`] variant, never panics, and never allocates more than
//! the declared output length, which the caller caps.
//!
//! JSON transports carry a patch inside a JSON string, so its insert literals must not split a
//! multi-byte UTF-8 character (the client would receive U+FFFD instead of the orphan bytes):
//! [`delta_utf8_safe`] moves copy boundaries to character boundaries.
//!
//! We write it ourselves rather than use a crate: the one Rust crate for the format has an
//! inverted `delta` argument order and unverified binary safety, the algorithm is small, and we
//! need the bounded decoder and the UTF-8 alignment that no library offers.

use thiserror::Error;

/// The base-64 digit alphabet, value 0 to 63.
const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/// Length of the hashed window and of the indexed source blocks.
const WINDOW: usize = 16;

/// Candidates examined per hash bucket and target position (Fossil's limit).
const MAX_CANDIDATES: usize = 250;

/// Marks the end of a collision chain.
const NONE: usize = usize::MAX;

/// Why a delta could not be applied. Each variant is one of the decoder's checks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FossilError {
    /// The header declares an output longer than the caller's cap.
    #[error("declared output length {declared} exceeds the limit {limit}")]
    TooLarge {
        /// Length in the header.
        declared: u64,
        /// The caller's cap.
        limit: usize,
    },
    /// A number was expected (at the start of the header or of a command) but none was found.
    #[error("expected a number")]
    MissingNumber,
    /// A number does not fit in 32 bits.
    #[error("number does not fit in 32 bits")]
    NumberOverflow,
    /// The header's length is not followed by `\n`.
    #[error("size integer not terminated by '\\n'")]
    HeaderNotTerminated,
    /// A copy command's offset is not followed by `,`.
    #[error("copy command not terminated by ','")]
    CopyNotTerminated,
    /// A copy or insert makes the output longer than the header declares.
    #[error("output exceeds the declared size")]
    OutputTooLong,
    /// A copy reads past the end of the source.
    #[error("copy extends past the end of the source")]
    CopyOutOfSource,
    /// An insert is longer than the rest of the delta.
    #[error("insert count exceeds the size of the delta")]
    InsertPastEnd,
    /// A command's operator is none of `@`, `:`, `;`.
    #[error("unknown delta operator {0:#04x}")]
    UnknownOperator(u8),
    /// The delta ends without the `;` command.
    #[error("unterminated delta")]
    Unterminated,
    /// The output's checksum differs from the one in the delta.
    #[error("bad checksum: delta says {expected:#010x}, output has {actual:#010x}")]
    BadChecksum {
        /// Checksum written in the delta.
        expected: u32,
        /// Checksum of the produced output.
        actual: u32,
    },
    /// The output is shorter than the header declares.
    #[error("generated size {actual} does not match the declared size {declared}")]
    SizeMismatch {
        /// Length in the header.
        declared: usize,
        /// Length produced.
        actual: usize,
    },
}

/// Fossil's 32-bit checksum: four wrapping byte sums over the positions 0, 1, 2, 3 (mod 4) of the
/// longest prefix whose length is a multiple of 4, combined as `s3 + s2<<8 + s1<<16 + s0<<24`,
/// then the 1–3 leftover bytes added at `<<24`, `<<16`, `<<8`.
pub fn checksum(data: &[u8]) -> u32 {
    let mut sums = [0u32; 4];
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        for (sum, &byte) in sums.iter_mut().zip(word) {
            *sum = sum.wrapping_add(u32::from(byte));
        }
    }
    let [s0, s1, s2, s3] = sums;
    let mut total = s3
        .wrapping_add(s2 << 8)
        .wrapping_add(s1 << 16)
        .wrapping_add(s0 << 24);
    for (&byte, shift) in words.remainder().iter().zip([24u32, 16, 8]) {
        total = total.wrapping_add(u32::from(byte) << shift);
    }
    total
}

/// Whether a patch is worth sending instead of the full data: only when strictly shorter.
pub fn worth_it(patch_len: usize, full_len: usize) -> bool {
    patch_len < full_len
}

/// One command of a delta under construction; target positions are implied by the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// The next `len` bytes of the target, literally.
    Insert { len: usize },
    /// `source[offset..offset + len]`.
    Copy { offset: usize, len: usize },
}

/// Creates the delta that turns `source` into `target` (Fossil's encoder, identical output).
///
/// The format's numbers are 32-bit: inputs of 4 GiB or more give deltas other decoders reject.
pub fn delta(source: &[u8], target: &[u8]) -> Vec<u8> {
    write_delta(target, &plan(source, target))
}

/// Like [`delta`], for JSON transports: every insert literal is valid UTF-8, so the whole patch is
/// a valid UTF-8 string. Copies are shrunk to start and end on character boundaries of the target
/// and the trimmed bytes become literal. `None` when either input is not valid UTF-8 (the caller
/// then sends the full data).
pub fn delta_utf8_safe(source: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(source).ok()?;
    let text = std::str::from_utf8(target).ok()?;
    let ops = align_to_chars(text, &plan(source, target));
    let patch = write_delta(target, &ops);
    // Cannot fail when the alignment is right; checked so a bug costs bandwidth, not a client.
    std::str::from_utf8(&patch).is_ok().then_some(patch)
}

/// Applies `delta` to `source` with no cap but the format's 32-bit lengths. Use
/// [`apply_limited`] on untrusted deltas.
pub fn apply(source: &[u8], delta: &[u8]) -> Result<Vec<u8>, FossilError> {
    apply_limited(source, delta, usize::MAX)
}

/// Applies `delta` to `source`, rejecting a declared output longer than `max_len` before doing
/// any work. Allocates at most the declared length; never panics.
pub fn apply_limited(source: &[u8], delta: &[u8], max_len: usize) -> Result<Vec<u8>, FossilError> {
    let mut reader = Reader { rest: delta };
    let header = reader.number()?;
    let declared = usize::try_from(header).unwrap_or(usize::MAX);
    if declared > max_len {
        return Err(FossilError::TooLarge {
            declared: u64::from(header),
            limit: max_len,
        });
    }
    if reader.byte() != Some(b'\n') {
        return Err(FossilError::HeaderNotTerminated);
    }
    let mut out = Vec::with_capacity(declared.min(source.len().saturating_add(delta.len())));
    loop {
        if reader.rest.is_empty() {
            return Err(FossilError::Unterminated);
        }
        let count = reader.number()?;
        let len = usize::try_from(count).unwrap_or(usize::MAX);
        match reader.byte() {
            Some(b'@') => {
                let offset = usize::try_from(reader.number()?).unwrap_or(usize::MAX);
                if reader.byte() != Some(b',') {
                    return Err(FossilError::CopyNotTerminated);
                }
                reserve_within(&mut out, len, declared)?;
                let piece = offset
                    .checked_add(len)
                    .and_then(|end| source.get(offset..end))
                    .ok_or(FossilError::CopyOutOfSource)?;
                out.extend_from_slice(piece);
            }
            Some(b':') => {
                reserve_within(&mut out, len, declared)?;
                let piece = reader.take(len).ok_or(FossilError::InsertPastEnd)?;
                out.extend_from_slice(piece);
            }
            Some(b';') => {
                let actual = checksum(&out);
                if count != actual {
                    return Err(FossilError::BadChecksum {
                        expected: count,
                        actual,
                    });
                }
                if out.len() != declared {
                    return Err(FossilError::SizeMismatch {
                        declared,
                        actual: out.len(),
                    });
                }
                return Ok(out);
            }
            Some(op) => return Err(FossilError::UnknownOperator(op)),
            None => return Err(FossilError::Unterminated),
        }
    }
}

/// Makes room for `extra` more output bytes, failing when that passes the declared length.
/// Grows geometrically but never past `declared`.
fn reserve_within(out: &mut Vec<u8>, extra: usize, declared: usize) -> Result<(), FossilError> {
    let need = out
        .len()
        .checked_add(extra)
        .filter(|&need| need <= declared)
        .ok_or(FossilError::OutputTooLong)?;
    if need > out.capacity() {
        let want = need.max(out.capacity().saturating_mul(2)).min(declared);
        out.reserve_exact(want - out.len());
    }
    Ok(())
}

/// Cursor over a delta being decoded.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.rest.len() {
            return None;
        }
        let (piece, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(piece)
    }

    /// Reads digits up to the first byte outside the alphabet (after masking it to 7 bits, as
    /// Fossil does). At least one digit is required.
    fn number(&mut self) -> Result<u32, FossilError> {
        let mut value: u32 = 0;
        let mut digits = 0usize;
        while let Some(digit) = self.rest.first().and_then(|&b| digit_value(b)) {
            value = value
                .checked_mul(64)
                .and_then(|v| v.checked_add(digit))
                .ok_or(FossilError::NumberOverflow)?;
            self.rest = self.rest.get(1..).unwrap_or_default();
            digits += 1;
        }
        if digits == 0 {
            return Err(FossilError::MissingNumber);
        }
        Ok(value)
    }
}

/// Value of a base-64 digit, `None` for any other byte.
fn digit_value(byte: u8) -> Option<u32> {
    let value = match byte & 0x7f {
        b @ b'0'..=b'9' => b - b'0',
        b @ b'A'..=b'Z' => b - b'A' + 10,
        b'_' => 36,
        b @ b'a'..=b'z' => b - b'a' + 37,
        b'~' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Appends `value` in the base-64 alphabet, most significant digit first.
fn put_number(out: &mut Vec<u8>, mut value: usize) {
    let mut buf = [0u8; 11];
    let mut start = buf.len();
    loop {
        start -= 1;
        if let (Some(slot), Some(&digit)) = (buf.get_mut(start), DIGITS.get(value & 63)) {
            *slot = digit;
        }
        value >>= 6;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(start..).unwrap_or_default());
}

/// Number of base-64 digits of `value`.
fn digit_count(value: usize) -> usize {
    let mut count = 1;
    let mut rest = value >> 6;
    while rest > 0 {
        count += 1;
        rest >>= 6;
    }
    count
}

/// Serialises `ops`, whose inserts take their bytes from `target` in order.
fn write_delta(target: &[u8], ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() / 4 + 32);
    put_number(&mut out, target.len());
    out.push(b'\n');
    let mut pos = 0usize;
    for op in ops {
        match *op {
            Op::Insert { len } => {
                put_number(&mut out, len);
                out.push(b':');
                out.extend_from_slice(target.get(pos..pos + len).unwrap_or_default());
                pos += len;
            }
            Op::Copy { offset, len } => {
                put_number(&mut out, len);
                out.push(b'@');
                put_number(&mut out, offset);
                out.push(b',');
                pos += len;
            }
        }
    }
    put_number(&mut out, checksum(target) as usize);
    out.push(b';');
    out
}

/// Fossil's rolling hash over a 16-byte window: `a` is the byte sum, `b` the sum weighted 16..1,
/// both mod 2^16.
#[derive(Clone, Copy)]
struct RollingHash {
    a: u16,
    b: u16,
}

impl RollingHash {
    fn new(window: &[u8]) -> Self {
        let mut a: u16 = 0;
        let mut b: u16 = 0;
        for (weight, &byte) in (1..=WINDOW as u16).rev().zip(window) {
            a = a.wrapping_add(u16::from(byte));
            b = b.wrapping_add(weight.wrapping_mul(u16::from(byte)));
        }
        RollingHash { a, b }
    }

    /// Slides the window one byte: `old` leaves, `new` enters.
    fn roll(&mut self, old: u8, new: u8) {
        self.a = self
            .a
            .wrapping_sub(u16::from(old))
            .wrapping_add(u16::from(new));
        self.b = self
            .b
            .wrapping_sub((WINDOW as u16).wrapping_mul(u16::from(old)))
            .wrapping_add(self.a);
    }

    fn value(self) -> u32 {
        u32::from(self.a) | (u32::from(self.b) << 16)
    }
}

/// Hash index of the source's 16-byte blocks: bucket heads and per-block collision chains.
struct BlockIndex {
    heads: Vec<usize>,
    chain: Vec<usize>,
}

impl BlockIndex {
    /// Indexes the blocks at offsets 0, 16, … while `offset + 16 < source.len()`; later blocks
    /// head their bucket's chain. Needs `source.len() > WINDOW`.
    fn new(source: &[u8]) -> Self {
        let buckets = source.len() / WINDOW;
        let mut index = BlockIndex {
            heads: vec![NONE; buckets],
            chain: vec![NONE; buckets],
        };
        for (block, window) in source.chunks_exact(WINDOW).enumerate() {
            if block * WINDOW + WINDOW >= source.len() {
                break;
            }
            let bucket = index.bucket(RollingHash::new(window));
            if let (Some(head), Some(link)) =
                (index.heads.get_mut(bucket), index.chain.get_mut(block))
            {
                *link = *head;
                *head = block;
            }
        }
        index
    }

    fn bucket(&self, hash: RollingHash) -> usize {
        (hash.value() % self.heads.len().max(1) as u32) as usize
    }

    fn head(&self, hash: RollingHash) -> usize {
        self.heads.get(self.bucket(hash)).copied().unwrap_or(NONE)
    }

    fn next(&self, block: usize) -> usize {
        self.chain.get(block).copied().unwrap_or(NONE)
    }
}

/// The best match found at one target position: literal bytes before it, then the copy.
#[derive(Clone, Copy, Default)]
struct Match {
    literal: usize,
    len: usize,
    offset: usize,
}

/// Fossil's encoder as a list of commands.
fn plan(source: &[u8], target: &[u8]) -> Vec<Op> {
    if source.len() <= WINDOW {
        // Fossil writes one insert here, even an empty one.
        return vec![Op::Insert { len: target.len() }];
    }
    let index = BlockIndex::new(source);
    let mut ops = Vec::new();
    let mut base = 0usize;
    while base + WINDOW < target.len() {
        let Some(window) = target.get(base..base + WINDOW) else {
            break;
        };
        let mut hash = RollingHash::new(window);
        // The window starts at `base + shift`; bytes from `base` up to it would be literal.
        let mut shift = 0usize;
        loop {
            let best = best_match(source, target, &index, hash, base, shift);
            if best.len > 0 {
                if best.literal > 0 {
                    ops.push(Op::Insert { len: best.literal });
                }
                ops.push(Op::Copy {
                    offset: best.offset,
                    len: best.len,
                });
                base += best.literal + best.len;
                break;
            }
            let at = base + shift;
            match (target.get(at), target.get(at + WINDOW)) {
                (Some(&old), Some(&new)) => hash.roll(old, new),
                _ => {
                    ops.push(Op::Insert {
                        len: target.len() - base,
                    });
                    base = target.len();
                    break;
                }
            }
            shift += 1;
        }
    }
    if base < target.len() {
        ops.push(Op::Insert {
            len: target.len() - base,
        });
    }
    ops
}

/// Follows the hash bucket's chain (at most [`MAX_CANDIDATES`]) for the window at
/// `base + shift`, extending each candidate forward and backward (not before `base`, not to
/// source offset 0), and keeps the longest one that pays for its command.
fn best_match(
    source: &[u8],
    target: &[u8],
    index: &BlockIndex,
    hash: RollingHash,
    base: usize,
    shift: usize,
) -> Match {
    let at = base + shift;
    let mut best = Match::default();
    let mut block = index.head(hash);
    let mut budget = MAX_CANDIDATES;
    while block != NONE && budget > 0 {
        budget -= 1;
        let src_at = block * WINDOW;
        let forward = common_prefix(source.get(src_at..), target.get(at..));
        let back_limit = src_at.saturating_sub(1).min(shift);
        let backward = source
            .get(..src_at)
            .unwrap_or_default()
            .iter()
            .rev()
            .zip(target.get(..at).unwrap_or_default().iter().rev())
            .take(back_limit)
            .take_while(|(s, t)| s == t)
            .count();
        let len = forward + backward;
        let offset = src_at - backward;
        let literal = shift - backward;
        let cost = digit_count(literal) + digit_count(len) + digit_count(offset) + 3;
        if len >= cost && len > best.len {
            best = Match {
                literal,
                len,
                offset,
            };
        }
        block = index.next(block);
    }
    best
}

fn common_prefix(a: Option<&[u8]>, b: Option<&[u8]>) -> usize {
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Shrinks every copy to start and end on a character boundary of `target`, turning the trimmed
/// bytes (and copies that no longer pay for themselves) into literals, and merges adjacent inserts.
fn align_to_chars(target: &str, ops: &[Op]) -> Vec<Op> {
    let mut aligned: Vec<Op> = Vec::with_capacity(ops.len());
    let mut pos = 0usize;
    for op in ops {
        match *op {
            Op::Insert { len } => push_insert(&mut aligned, len),
            Op::Copy { offset, len } => {
                let end = pos + len;
                let mut start = pos;
                while start < end && !target.is_char_boundary(start) {
                    start += 1;
                }
                let mut stop = end;
                while stop > start && !target.is_char_boundary(stop) {
                    stop -= 1;
                }
                let kept = stop - start;
                let cost = digit_count(kept) + digit_count(offset + (start - pos)) + 2;
                if kept == 0 || kept < cost {
                    push_insert(&mut aligned, len);
                } else {
                    push_insert(&mut aligned, start - pos);
                    aligned.push(Op::Copy {
                        offset: offset + (start - pos),
                        len: kept,
                    });
                    push_insert(&mut aligned, end - stop);
                }
            }
        }
        pos += match *op {
            Op::Insert { len } | Op::Copy { len, .. } => len,
        };
    }
    if aligned.is_empty() {
        // Keep the shape of the unaligned plan for an empty target with a small source.
        if let Some(&Op::Insert { len: 0 }) = ops.first() {
            aligned.push(Op::Insert { len: 0 });
        }
    }
    aligned
}

/// Appends a literal of `len` bytes, extending the previous insert if there is one.
fn push_insert(ops: &mut Vec<Op>, len: usize) {
    if len == 0 {
        return;
    }
    if let Some(Op::Insert { len: last }) = ops.last_mut() {
        *last += len;
    } else {
        ops.push(Op::Insert { len });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_equals_a_fresh_hash_of_the_shifted_window() {
        let data: Vec<u8> = (0u32..600).map(|i| (i * 7919 % 251) as u8).collect();
        let mut hash = RollingHash::new(&data[..WINDOW]);
        for start in 1..data.len() - WINDOW {
            hash.roll(data[start - 1], data[start + WINDOW - 1]);
            assert_eq!(
                hash.value(),
                RollingHash::new(&data[start..start + WINDOW]).value()
            );
        }
    }

    #[test]
    fn numbers_round_trip_through_the_alphabet() {
        for value in [
            0usize,
            1,
            10,
            36,
            37,
            60,
            63,
            64,
            4095,
            4096,
            u32::MAX as usize,
        ] {
            let mut out = Vec::new();
            put_number(&mut out, value);
            assert_eq!(out.len(), digit_count(value));
            let mut reader = Reader { rest: &out };
            assert_eq!(reader.number().map(|v| v as usize), Ok(value));
            assert!(reader.rest.is_empty());
        }
        let mut out = Vec::new();
        for value in [10, 36, 37, 60, 63] {
            put_number(&mut out, value);
        }
        assert_eq!(out, b"A_ax~");
        // Fossil masks to 7 bits before the lookup.
        assert_eq!(digit_value(b'A' | 0x80), Some(10));
        assert_eq!(digit_value(b'@'), None);
    }

    #[test]
    fn alignment_moves_copy_edges_to_char_boundaries() {
        // "ж" is D0 B6: a copy of bytes 1..21 of twelve of them shrinks to 2..20, and the
        // trimmed bytes join the literals on both sides.
        let target = "жжжжжжжжжжжж";
        let ops = [
            Op::Insert { len: 1 },
            Op::Copy { offset: 1, len: 20 },
            Op::Insert { len: 3 },
        ];
        assert_eq!(
            align_to_chars(target, &ops),
            vec![
                Op::Insert { len: 2 },
                Op::Copy { offset: 2, len: 18 },
                Op::Insert { len: 4 },
            ]
        );
        // Too short to pay for itself once aligned: folded into the literal.
        let aligned = align_to_chars(
            "жж",
            &[Op::Insert { len: 1 }, Op::Copy { offset: 1, len: 3 }],
        );
        assert_eq!(aligned, vec![Op::Insert { len: 4 }]);
    }
}
