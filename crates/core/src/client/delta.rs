//! Fossil delta delivery (`delta: "fossil"` subscriptions, CHANNELS-MODERN.md §1.2): which
//! publication a delta subscriber gets as a patch, and the bytes it gets.
//!
//! The base of a patch is always the previous publication of the channel's stream: the engine
//! ships it with a publication marked for delta delivery (`Publication::prev_data`), and
//! positioning guarantees the subscriber holds exactly that one. A subscriber gets a patch only
//! when it already holds a publication (`SubState::delta_ready`: set by the first delivered
//! publication, or by a recovery that returned at least one), is positioned, the publication is
//! marked and has a predecessor, and the patch is smaller than the data. On JSON the patch must
//! also be valid UTF-8, since it travels inside a JSON string: it is aligned to character
//! boundaries ([`fossil::delta_utf8_safe`]), and when that is impossible the data goes in full.
//!
//! Fan-out computes each form at most once per broadcast ([`DeltaForms`], held by the hub's
//! prepared push and created only when a delta subscriber is reached); recovered and buffered
//! publications are rare and are patched one by one ([`chain_recovered`], [`for_subscriber`]).

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use rotor_protocol::codec::Encoder;
use rotor_protocol::{fossil, Encoding, Publication, Push};

/// The patch that turns `base` into `target` for a connection of `encoding`, if one is worth
/// sending: Protobuf carries any patch; JSON only a UTF-8 one.
pub(crate) fn patch_for(encoding: Encoding, base: &[u8], target: &[u8]) -> Option<Bytes> {
    let patch = match encoding {
        Encoding::Protobuf => fossil::delta(base, target),
        Encoding::Json => fossil::delta_utf8_safe(base, target)?,
    };
    fossil::worth_it(patch.len(), target.len()).then(|| Bytes::from(patch))
}

/// `p` as a delta subscriber gets it: a patch against `p.prev_data` (marked `delta`) when
/// `may_patch` and one is worth sending, else `p` itself (full data).
pub(crate) fn for_subscriber(
    p: &Publication,
    may_patch: bool,
    encoding: Encoding,
) -> Cow<'_, Publication> {
    let patch = may_patch
        .then_some(p.prev_data.as_deref())
        .flatten()
        .and_then(|base| patch_for(encoding, base, &p.data));
    match patch {
        Some(data) => Cow::Owned(patched(p, data)),
        None => Cow::Borrowed(p),
    }
}

fn patched(p: &Publication, data: Bytes) -> Publication {
    Publication {
        offset: p.offset,
        data,
        info: p.info.clone(),
        tags: p.tags.clone(),
        delta: true,
        prev_data: None,
    }
}

/// Recovered publications (oldest first, contiguous) for a delta subscriber: the first stays
/// full, each next one becomes a patch against the one before it where worth it. The client
/// applies them in order, each to what the previous one produced.
pub(crate) fn chain_recovered(pubs: &mut [Publication], encoding: Encoding) {
    // From the end, so that each base is still the original data when it is read.
    for i in (1..pubs.len()).rev() {
        if let Some(patch) = patch_for(encoding, &pubs[i - 1].data, &pubs[i].data) {
            pubs[i].data = patch;
            pubs[i].delta = true;
        }
    }
}

/// The forms of one broadcast publication that delta subscribers need, each encoded at most
/// once: full data on JSON (a JSON string; Protobuf's full form is the normal push), and the
/// patch push per encoding (`None`: no patch, send full).
#[derive(Default)]
pub(crate) struct DeltaForms {
    full_json: OnceLock<Bytes>,
    patch: [OnceLock<Option<Bytes>>; 2],
}

impl DeltaForms {
    /// The JSON push with the full data as a string (`enc` is the v2 JSON encoder).
    pub(crate) fn full_json(&self, enc: &Encoder, channel: &str, p: &Publication) -> Bytes {
        self.full_json
            .get_or_init(|| encode(enc, channel, p))
            .clone()
    }

    /// The patch push for `enc`'s encoding, if the publication has a base and the patch is worth
    /// it (computed on the first call of each encoding).
    pub(crate) fn patch(&self, enc: &Encoder, channel: &str, p: &Publication) -> Option<Bytes> {
        let i = match enc.encoding {
            Encoding::Json => 0,
            Encoding::Protobuf => 1,
        };
        self.patch[i]
            .get_or_init(|| {
                let base = p.prev_data.as_deref()?;
                let data = patch_for(enc.encoding, base, &p.data)?;
                Some(encode(enc, channel, &patched(p, data)))
            })
            .clone()
    }
}

fn encode(enc: &Encoder, channel: &str, p: &Publication) -> Bytes {
    let mut buf = Vec::with_capacity(p.data.len() + 96);
    enc.push(
        &mut buf,
        &Push::DeltaPublication {
            channel,
            publication: p,
        },
    );
    Bytes::from(buf)
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
