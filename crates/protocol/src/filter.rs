//! The publication tags filter a v2 client sends on subscribe (`tf`, Centrifugo v6.4+): a tree
//! of [`FilterNode`]s, its validation and its match against a publication's tags.
//!
//! * Wire form: JSON field names are the Protobuf names (`op`, `key`, `cmp`, `val`, `vals`,
//!   `nodes`); Protobuf fields 1–6 of `FilterNode` in `client.proto`. [`FilterNode`] is both the
//!   serde struct and the prost message, so either command decoder can embed it as is (JSON
//!   `null` in any field reads as the field's default, as Go's decoder does).
//! * [`FilterNode::validate`] applies Centrifuge's subscribe-time rules (a failed check is reply
//!   error 107) plus Rotor's bounds against hostile trees: depth ≤ [`MAX_DEPTH`], ≤
//!   [`MAX_NODES`] nodes, ≤ [`MAX_VALS`] `vals` entries and ≤ [`MAX_STRING_BYTES`] bytes of
//!   strings in the whole tree, counted over every node, even the children of a leaf (which
//!   the rules, like Centrifuge's, otherwise ignore).
//! * [`FilterNode::matches`] evaluates one publication; its table is Centrifuge's
//!   `internal/filter` `Match`. Numeric comparisons parse both sides as exact decimals with
//!   the grammar of the Go library Centrifuge uses (udecimal): optional `+`/`-`, ASCII digits,
//!   at most one `.` with 1–19 digits after it, no exponent, no spaces, ≤ 200 bytes.
//!   Integers and fractions compare exactly (no floats): `"10" > "9.5"`, `"1.0" == "1"`.
//!
//! Pure and panic-free on any input; matching an unvalidated tree is safe too (an unknown
//! `op`/`cmp` or a `not` without exactly one child matches nothing, and the recursion is only
//! as deep as the decoders allow).

use std::cmp::Ordering;

use serde::{Deserialize, Deserializer};

use crate::Tags;

/// Deepest accepted tree: a root leaf has depth 1.
pub const MAX_DEPTH: usize = 16;
/// Most nodes in one tree, the root included.
pub const MAX_NODES: usize = 256;
/// Most `vals` entries summed over the tree.
pub const MAX_VALS: usize = 1024;
/// Most bytes of `op`, `key`, `cmp`, `val` and `vals` summed over the tree.
pub const MAX_STRING_BYTES: usize = 16 * 1024;

/// Longest string the decimal comparisons parse (udecimal's limit); longer never compares.
const MAX_DECIMAL_LEN: usize = 200;
/// Most digits after the decimal point (udecimal's precision).
const MAX_DECIMAL_FRACTION: usize = 19;

/// One node of a tags filter: a leaf comparison (`op` empty) or `and`/`or`/`not` of `nodes`.
#[derive(Clone, PartialEq, Eq, Deserialize, prost::Message)]
#[serde(default)]
pub struct FilterNode {
    /// `""` (leaf), `and`, `or` or `not`.
    #[prost(string, tag = "1")]
    #[serde(deserialize_with = "null_default")]
    pub op: String,
    /// The tag a leaf compares.
    #[prost(string, tag = "2")]
    #[serde(deserialize_with = "null_default")]
    pub key: String,
    /// A leaf's comparison: `eq neq in nin ex nex sw ew ct gt gte lt lte`.
    #[prost(string, tag = "3")]
    #[serde(deserialize_with = "null_default")]
    pub cmp: String,
    /// The operand of single-value comparisons.
    #[prost(string, tag = "4")]
    #[serde(deserialize_with = "null_default")]
    pub val: String,
    /// The set of `in` / `nin`.
    #[prost(string, repeated, tag = "5")]
    #[serde(deserialize_with = "null_default")]
    pub vals: Vec<String>,
    /// Children of `and` / `or` / `not`.
    #[prost(message, repeated, tag = "6")]
    #[serde(deserialize_with = "null_default")]
    pub nodes: Vec<FilterNode>,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Why a filter was refused at subscribe; every variant is reply error 107 for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter is not valid protobuf: {0}")]
    Decode(String),
    #[error("filter deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("filter has more than {MAX_NODES} nodes")]
    TooManyNodes,
    #[error("filter has more than {MAX_VALS} vals")]
    TooManyVals,
    #[error("filter strings exceed {MAX_STRING_BYTES} bytes")]
    TooLarge,
    #[error("leaf node must have cmp set")]
    MissingCmp,
    #[error("unknown comparison operator")]
    UnknownCmp,
    #[error("{0} comparison requires val")]
    MissingVal(&'static str),
    #[error("{0} comparison must not use vals")]
    UnexpectedVals(&'static str),
    #[error("{0} comparison requires non-empty vals")]
    MissingVals(&'static str),
    #[error("{0} comparison must not use val")]
    UnexpectedVal(&'static str),
    #[error("{0} comparison must not use val or vals")]
    UnexpectedValOrVals(&'static str),
    #[error("leaf node requires key")]
    MissingKey,
    #[error("{0} node must have at least one child")]
    NoChildren(&'static str),
    #[error("not node must have exactly one child")]
    NotArity,
    #[error("invalid op")]
    UnknownOp,
}

/// A node's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Leaf,
    And,
    Or,
    Not,
}

impl Op {
    /// `None` for an unknown `op`.
    pub fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "" => Self::Leaf,
            "and" => Self::And,
            "or" => Self::Or,
            "not" => Self::Not,
            _ => return None,
        })
    }
}

/// A leaf's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Neq,
    In,
    Nin,
    Ex,
    Nex,
    Sw,
    Ew,
    Ct,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    /// `None` for an unknown (or empty) `cmp`.
    pub fn parse(cmp: &str) -> Option<Self> {
        Some(match cmp {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "in" => Self::In,
            "nin" => Self::Nin,
            "ex" => Self::Ex,
            "nex" => Self::Nex,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "ct" => Self::Ct,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::In => "in",
            Self::Nin => "nin",
            Self::Ex => "ex",
            Self::Nex => "nex",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Ct => "ct",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
        }
    }
}

/// What [`FilterNode::check_bounds`] has counted so far.
#[derive(Default)]
struct Budget {
    nodes: usize,
    vals: usize,
    bytes: usize,
}

impl FilterNode {
    /// Decodes the Protobuf form (a `FilterNode` message, no length prefix). Not validated.
    pub fn decode_protobuf(bytes: &[u8]) -> Result<Self, FilterError> {
        <Self as prost::Message>::decode(bytes).map_err(|e| FilterError::Decode(e.to_string()))
    }

    /// Checks the bounds, then Centrifuge's rules (first failure in pre-order wins).
    pub fn validate(&self) -> Result<(), FilterError> {
        self.check_bounds(1, &mut Budget::default())?;
        self.check_rules()
    }

    fn check_bounds(&self, depth: usize, budget: &mut Budget) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        budget.nodes += 1;
        if budget.nodes > MAX_NODES {
            return Err(FilterError::TooManyNodes);
        }
        budget.vals = budget.vals.saturating_add(self.vals.len());
        if budget.vals > MAX_VALS {
            return Err(FilterError::TooManyVals);
        }
        let own = [&self.op, &self.key, &self.cmp, &self.val]
            .into_iter()
            .chain(&self.vals)
            .fold(0usize, |n, s| n.saturating_add(s.len()));
        budget.bytes = budget.bytes.saturating_add(own);
        if budget.bytes > MAX_STRING_BYTES {
            return Err(FilterError::TooLarge);
        }
        self.nodes
            .iter()
            .try_for_each(|child| child.check_bounds(depth + 1, budget))
    }

    fn check_rules(&self) -> Result<(), FilterError> {
        match Op::parse(&self.op).ok_or(FilterError::UnknownOp)? {
            Op::Leaf => self.check_leaf(),
            Op::And | Op::Or if self.nodes.is_empty() => {
                Err(FilterError::NoChildren(if self.op == "and" {
                    "and"
                } else {
                    "or"
                }))
            }
            Op::And | Op::Or => self.nodes.iter().try_for_each(Self::check_rules),
            Op::Not => match self.nodes.as_slice() {
                [child] => child.check_rules(),
                _ => Err(FilterError::NotArity),
            },
        }
    }

    fn check_leaf(&self) -> Result<(), FilterError> {
        if self.cmp.is_empty() {
            return Err(FilterError::MissingCmp);
        }
        let cmp = Cmp::parse(&self.cmp).ok_or(FilterError::UnknownCmp)?;
        let name = cmp.as_str();
        match cmp {
            Cmp::In | Cmp::Nin => {
                if self.vals.is_empty() {
                    return Err(FilterError::MissingVals(name));
                }
                if !self.val.is_empty() {
                    return Err(FilterError::UnexpectedVal(name));
                }
            }
            Cmp::Ex | Cmp::Nex => {
                if !self.val.is_empty() || !self.vals.is_empty() {
                    return Err(FilterError::UnexpectedValOrVals(name));
                }
                // The only comparisons without a key (an empty key is the tag named "").
                return Ok(());
            }
            _ => {
                if self.val.is_empty() {
                    return Err(FilterError::MissingVal(name));
                }
                if !self.vals.is_empty() {
                    return Err(FilterError::UnexpectedVals(name));
                }
            }
        }
        if self.key.is_empty() {
            return Err(FilterError::MissingKey);
        }
        Ok(())
    }

    /// Whether a publication with `tags` (`None`: no tags) passes this filter.
    pub fn matches(&self, tags: Option<&Tags>) -> bool {
        match Op::parse(&self.op) {
            Some(Op::Leaf) => self.matches_leaf(tags),
            Some(Op::And) => self.nodes.iter().all(|n| n.matches(tags)),
            Some(Op::Or) => self.nodes.iter().any(|n| n.matches(tags)),
            Some(Op::Not) => match self.nodes.as_slice() {
                [child] => !child.matches(tags),
                _ => false,
            },
            None => false,
        }
    }

    fn matches_leaf(&self, tags: Option<&Tags>) -> bool {
        let Some(cmp) = Cmp::parse(&self.cmp) else {
            return false;
        };
        let value = tags.and_then(|t| t.get(&self.key)).map(String::as_str);
        let val = self.val.as_str();
        match cmp {
            Cmp::Eq => value == Some(val),
            Cmp::Neq => value != Some(val),
            // A missing tag is compared as "" (Go's zero value).
            Cmp::In => self.vals.iter().any(|v| v == value.unwrap_or("")),
            Cmp::Nin => !self.vals.iter().any(|v| v == value.unwrap_or("")),
            Cmp::Ex => value.is_some(),
            Cmp::Nex => value.is_none(),
            Cmp::Sw => value.is_some_and(|v| v.starts_with(val)),
            Cmp::Ew => value.is_some_and(|v| v.ends_with(val)),
            Cmp::Ct => value.is_some_and(|v| v.contains(val)),
            Cmp::Gt | Cmp::Gte | Cmp::Lt | Cmp::Lte => {
                let (Some(a), Some(b)) = (value.and_then(Decimal::parse), Decimal::parse(val))
                else {
                    return false;
                };
                let order = a.cmp(&b);
                match cmp {
                    Cmp::Gt => order == Ordering::Greater,
                    Cmp::Gte => order != Ordering::Less,
                    Cmp::Lt => order == Ordering::Less,
                    _ => order != Ordering::Greater,
                }
            }
        }
    }
}

/// An exact decimal as digit strings: no leading zeros in `int`, no trailing zeros in `frac`,
/// zero never negative. Compared without arithmetic, so any length is exact.
#[derive(Debug, PartialEq, Eq)]
struct Decimal<'a> {
    neg: bool,
    int: &'a str,
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        if s.is_empty() || s.len() > MAX_DECIMAL_LEN {
            return None;
        }
        let (neg, rest) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
        let dot = int.len() < rest.len();
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        // "", "+", ".5", "-.5", "5.", "1.2.3", "1e5", " 1" are all refused, as in Go.
        if int.is_empty()
            || (dot && (frac.is_empty() || frac.len() > MAX_DECIMAL_FRACTION))
            || !digits(int)
            || !digits(frac)
        {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let zero = int.is_empty() && frac.is_empty();
        Some(Self {
            neg: neg && !zero,
            int,
            frac,
        })
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            // Without trailing zeros, lexicographic order of the fractions is numeric order.
            .then_with(|| self.frac.cmp(other.frac))
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.neg, other.neg) {
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
