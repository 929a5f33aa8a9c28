//! Tests of [`super`]: decoding both wire forms, every validation rule and bound, every `op`
//! and `cmp` with present, missing and absent tags, and the decimal grammar.

use super::*;

fn leaf(key: &str, cmp: &str, val: &str) -> FilterNode {
    FilterNode {
        key: key.into(),
        cmp: cmp.into(),
        val: val.into(),
        ..Default::default()
    }
}

fn set(key: &str, cmp: &str, vals: &[&str]) -> FilterNode {
    FilterNode {
        key: key.into(),
        cmp: cmp.into(),
        vals: vals.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

fn node(op: &str, nodes: Vec<FilterNode>) -> FilterNode {
    FilterNode {
        op: op.into(),
        nodes,
        ..Default::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const EXAMPLE: &str = r#"{"op":"and","nodes":[{"key":"ticker","cmp":"eq","val":"AAPL"},{"key":"price","cmp":"gte","val":"100"}]}"#;

fn example() -> FilterNode {
    node(
        "and",
        vec![leaf("ticker", "eq", "AAPL"), leaf("price", "gte", "100")],
    )
}

// ---------------------------------------------------------------- decoding

#[test]
fn json_example_decodes_validates_and_matches() {
    let f: FilterNode = serde_json::from_str(EXAMPLE).unwrap();
    assert_eq!(f, example());
    assert_eq!(f.validate(), Ok(()));
    assert!(f.matches(Some(&tags(&[("ticker", "AAPL"), ("price", "100.5")]))));
    assert!(!f.matches(Some(&tags(&[("ticker", "AAPL"), ("price", "99.99")]))));
    assert!(!f.matches(Some(&tags(&[("ticker", "MSFT"), ("price", "500")]))));
    assert!(!f.matches(None));
}

#[test]
fn json_nulls_and_unknown_fields_read_as_defaults() {
    let f: FilterNode = serde_json::from_str(
        r#"{"op":null,"key":"a","cmp":"in","val":null,"vals":["x"],"nodes":null,"extra":1}"#,
    )
    .unwrap();
    assert_eq!(f, set("a", "in", &["x"]));
    let empty: FilterNode = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, FilterNode::default());
}

#[test]
fn json_wrong_types_are_errors() {
    assert!(serde_json::from_str::<FilterNode>(r#"{"val":5}"#).is_err());
    assert!(serde_json::from_str::<FilterNode>(r#"{"vals":"x"}"#).is_err());
    assert!(serde_json::from_str::<FilterNode>(r#"{"nodes":{}}"#).is_err());
}

/// A Protobuf field of wire type 2 (every FilterNode field is a string, a repeated string or
/// a repeated message), written by hand so the test pins the field numbers.
fn field(tag: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![(tag << 3) | 2, body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn proto_leaf(key: &str, cmp: &str, val: &str) -> Vec<u8> {
    [
        field(2, key.as_bytes()),
        field(3, cmp.as_bytes()),
        field(4, val.as_bytes()),
    ]
    .concat()
}

#[test]
fn protobuf_example_decodes_with_fields_1_to_6() {
    let bytes = [
        field(1, b"and"),
        field(6, &proto_leaf("ticker", "eq", "AAPL")),
        field(6, &proto_leaf("price", "gte", "100")),
    ]
    .concat();
    let f = FilterNode::decode_protobuf(&bytes).unwrap();
    assert_eq!(f, example());
    assert_eq!(f.validate(), Ok(()));

    let in_node = [
        field(2, b"k"),
        field(3, b"nin"),
        field(5, b"a"),
        field(5, b"b"),
    ]
    .concat();
    assert_eq!(
        FilterNode::decode_protobuf(&in_node).unwrap(),
        set("k", "nin", &["a", "b"])
    );
}

#[test]
fn protobuf_round_trip_and_unknown_fields_skipped() {
    use prost::Message as _;
    let f = node(
        "or",
        vec![example(), node("not", vec![set("x", "in", &["1"])])],
    );
    let bytes = f.encode_to_vec();
    assert_eq!(FilterNode::decode_protobuf(&bytes).unwrap(), f);
    // Field 9 (varint) from a newer schema is skipped.
    let with_unknown = [bytes.as_slice(), &[9 << 3, 1]].concat();
    assert_eq!(FilterNode::decode_protobuf(&with_unknown).unwrap(), f);
}

#[test]
fn protobuf_malformed_is_a_decode_error() {
    let truncated = &field(2, b"ticker")[..4];
    assert!(matches!(
        FilterNode::decode_protobuf(truncated),
        Err(FilterError::Decode(_))
    ));
    // Field 1 as a varint: wrong wire type for a string.
    assert!(matches!(
        FilterNode::decode_protobuf(&[1 << 3, 1]),
        Err(FilterError::Decode(_))
    ));
    // Invalid UTF-8 in a string field.
    assert!(matches!(
        FilterNode::decode_protobuf(&field(2, &[0xff, 0xfe])),
        Err(FilterError::Decode(_))
    ));
}

fn nested(depth: usize) -> FilterNode {
    let mut f = leaf("k", "eq", "v");
    for _ in 1..depth {
        f = node("not", vec![f]);
    }
    f
}

#[test]
fn hostile_nesting_fails_decoding_without_overflowing_the_stack() {
    // 1,000 levels of `nodes` in Protobuf: prost's recursion limit refuses it.
    let mut bytes = proto_leaf("k", "eq", "v");
    for _ in 0..1_000 {
        let mut outer = vec![6 << 3 | 2];
        let mut len = bytes.len();
        while len >= 0x80 {
            outer.push((len as u8) | 0x80);
            len >>= 7;
        }
        outer.push(len as u8);
        outer.extend_from_slice(&bytes);
        bytes = outer;
    }
    assert!(matches!(
        FilterNode::decode_protobuf(&bytes),
        Err(FilterError::Decode(_))
    ));
    // The same in JSON: serde_json's recursion limit refuses it.
    let json = format!(
        "{}{}{}",
        r#"{"op":"not","nodes":["#.repeat(1_000),
        r#"{"key":"k","cmp":"ex"}"#,
        "]}".repeat(1_000)
    );
    assert!(serde_json::from_str::<FilterNode>(&json).is_err());
}

// ---------------------------------------------------------------- bounds

#[test]
fn depth_bound() {
    assert_eq!(nested(MAX_DEPTH).validate(), Ok(()));
    assert_eq!(nested(MAX_DEPTH + 1).validate(), Err(FilterError::TooDeep));
    // Decodable from both wire forms, refused by validation.
    use prost::Message as _;
    let bytes = nested(MAX_DEPTH + 1).encode_to_vec();
    let f = FilterNode::decode_protobuf(&bytes).unwrap();
    assert_eq!(f.validate(), Err(FilterError::TooDeep));
}

#[test]
fn node_count_bound() {
    let wide = |n: usize| node("or", (1..n).map(|_| leaf("k", "eq", "v")).collect());
    assert_eq!(wide(MAX_NODES).validate(), Ok(()));
    assert_eq!(
        wide(MAX_NODES + 1).validate(),
        Err(FilterError::TooManyNodes)
    );
    // Children of a leaf are ignored by the rules but still counted.
    let mut l = leaf("k", "eq", "v");
    l.nodes = (0..MAX_NODES).map(|_| FilterNode::default()).collect();
    assert_eq!(l.validate(), Err(FilterError::TooManyNodes));
}

#[test]
fn vals_bound() {
    let vals: Vec<String> = (0..MAX_VALS).map(|i| i.to_string()).collect();
    let mut f = set("k", "in", &[]);
    f.vals = vals.clone();
    assert_eq!(f.validate(), Ok(()));
    f.vals.push("x".into());
    assert_eq!(f.validate(), Err(FilterError::TooManyVals));
    // Summed over the tree; empty strings count too.
    let mut half = set("k", "in", &[]);
    half.vals = vec![String::new(); MAX_VALS / 2 + 1];
    assert_eq!(
        node("and", vec![half.clone(), half]).validate(),
        Err(FilterError::TooManyVals)
    );
}

#[test]
fn string_bytes_bound() {
    // 1 (key) + 2 (cmp) + val
    let fits = leaf("k", "eq", &"v".repeat(MAX_STRING_BYTES - 3));
    assert_eq!(fits.validate(), Ok(()));
    let over = leaf("k", "eq", &"v".repeat(MAX_STRING_BYTES - 2));
    assert_eq!(over.validate(), Err(FilterError::TooLarge));
    // Summed over nodes: the and's own "and" pushes two halves over.
    let half = leaf("k", "eq", &"v".repeat(MAX_STRING_BYTES / 2 - 3));
    assert_eq!(
        node("and", vec![half.clone(), half]).validate(),
        Err(FilterError::TooLarge)
    );
}

// ---------------------------------------------------------------- validation rules

#[test]
fn leaf_rules() {
    use FilterError::*;
    let cases: Vec<(FilterNode, Result<(), FilterError>)> = vec![
        (FilterNode::default(), Err(MissingCmp)),
        (leaf("k", "", "v"), Err(MissingCmp)),
        (leaf("k", "like", "v"), Err(UnknownCmp)),
        (leaf("k", "EQ", "v"), Err(UnknownCmp)),
        (leaf("", "eq", "v"), Err(MissingKey)),
        (leaf("", "in", ""), Err(MissingVals("in"))),
        (set("", "nin", &["a"]), Err(MissingKey)),
        (leaf("k", "ex", ""), Ok(())),
        (leaf("", "ex", ""), Ok(())),
        (leaf("", "nex", ""), Ok(())),
        (leaf("k", "ex", "v"), Err(UnexpectedValOrVals("ex"))),
        (set("k", "nex", &["a"]), Err(UnexpectedValOrVals("nex"))),
        (set("k", "in", &[]), Err(MissingVals("in"))),
        (set("k", "nin", &[]), Err(MissingVals("nin"))),
        (set("k", "in", &[""]), Ok(())),
        (
            FilterNode {
                val: "v".into(),
                ..set("k", "in", &["a"])
            },
            Err(UnexpectedVal("in")),
        ),
    ];
    for (f, want) in cases {
        assert_eq!(f.validate(), want, "{f:?}");
    }
    for cmp in ["eq", "neq", "sw", "ew", "ct", "gt", "gte", "lt", "lte"] {
        let name = Cmp::parse(cmp).unwrap().as_str();
        assert_eq!(leaf("k", cmp, "v").validate(), Ok(()), "{cmp}");
        assert_eq!(
            leaf("k", cmp, "").validate(),
            Err(MissingVal(name)),
            "{cmp}"
        );
        let with_vals = FilterNode {
            vals: vec!["a".into()],
            ..leaf("k", cmp, "v")
        };
        assert_eq!(with_vals.validate(), Err(UnexpectedVals(name)), "{cmp}");
        assert_eq!(leaf("", cmp, "v").validate(), Err(MissingKey), "{cmp}");
    }
}

#[test]
fn op_rules() {
    use FilterError::*;
    let ok = || leaf("k", "eq", "v");
    assert_eq!(node("and", vec![]).validate(), Err(NoChildren("and")));
    assert_eq!(node("or", vec![]).validate(), Err(NoChildren("or")));
    assert_eq!(node("not", vec![]).validate(), Err(NotArity));
    assert_eq!(node("not", vec![ok(), ok()]).validate(), Err(NotArity));
    assert_eq!(node("xor", vec![ok()]).validate(), Err(UnknownOp));
    assert_eq!(node("AND", vec![ok()]).validate(), Err(UnknownOp));
    assert_eq!(node("and", vec![ok()]).validate(), Ok(()));
    assert_eq!(node("not", vec![ok()]).validate(), Ok(()));
    // Children are checked, the first failure in pre-order wins.
    let bad = node("or", vec![ok(), leaf("", "eq", "v"), leaf("k", "", "")]);
    assert_eq!(bad.validate(), Err(MissingKey));
    assert_eq!(
        node("not", vec![node("and", vec![])]).validate(),
        Err(NoChildren("and"))
    );
    // As in Centrifuge, a leaf's children are not checked, and an and/or's key/cmp ignored.
    let mut l = ok();
    l.nodes = vec![node("bogus", vec![])];
    assert_eq!(l.validate(), Ok(()));
    let mut a = node("and", vec![ok()]);
    a.cmp = "bogus".into();
    assert_eq!(a.validate(), Ok(()));
}

// ---------------------------------------------------------------- matching

#[test]
fn string_comparisons_with_present_missing_and_no_tags() {
    let t = tags(&[("k", "hello"), ("empty", "")]);
    let m = |f: FilterNode| {
        [
            f.matches(Some(&t)),
            f.matches(Some(&tags(&[("other", "x")]))),
            f.matches(None),
        ]
    };
    // [present, key missing, no tags at all]
    assert_eq!(m(leaf("k", "eq", "hello")), [true, false, false]);
    assert_eq!(m(leaf("k", "eq", "hell")), [false, false, false]);
    assert_eq!(m(leaf("k", "neq", "hello")), [false, true, true]);
    assert_eq!(m(leaf("k", "neq", "x")), [true, true, true]);
    assert_eq!(m(leaf("k", "sw", "he")), [true, false, false]);
    assert_eq!(m(leaf("k", "sw", "lo")), [false, false, false]);
    assert_eq!(m(leaf("k", "ew", "lo")), [true, false, false]);
    assert_eq!(m(leaf("k", "ew", "he")), [false, false, false]);
    assert_eq!(m(leaf("k", "ct", "ell")), [true, false, false]);
    assert_eq!(m(leaf("k", "ct", "xyz")), [false, false, false]);
    assert_eq!(m(leaf("k", "ex", "")), [true, false, false]);
    assert_eq!(m(leaf("k", "nex", "")), [false, true, true]);
    // A present empty value exists; comparisons are case-sensitive and byte-wise.
    assert!(leaf("empty", "ex", "").matches(Some(&t)));
    assert!(!leaf("k", "eq", "HELLO").matches(Some(&t)));
}

#[test]
fn set_comparisons_treat_a_missing_tag_as_empty() {
    let t = tags(&[("k", "b")]);
    let m = |f: FilterNode| {
        [
            f.matches(Some(&t)),
            f.matches(Some(&tags(&[]))),
            f.matches(None),
        ]
    };
    assert_eq!(m(set("k", "in", &["a", "b"])), [true, false, false]);
    assert_eq!(m(set("k", "in", &["a"])), [false, false, false]);
    assert_eq!(m(set("k", "nin", &["a", "b"])), [false, true, true]);
    assert_eq!(m(set("k", "nin", &["a"])), [true, true, true]);
    // "" in the set matches a missing tag.
    assert_eq!(m(set("k", "in", &[""])), [false, true, true]);
    assert_eq!(m(set("k", "nin", &[""])), [true, false, false]);
}

#[test]
fn numeric_comparisons() {
    let at = |v: &str, f: &FilterNode| f.matches(Some(&tags(&[("n", v)])));
    let gt = leaf("n", "gt", "10");
    let gte = leaf("n", "gte", "10");
    let lt = leaf("n", "lt", "10");
    let lte = leaf("n", "lte", "10");
    for (v, want) in [
        ("9", [false, false, true, true]),
        ("9.99", [false, false, true, true]),
        ("10", [false, true, false, true]),
        ("10.0", [false, true, false, true]),
        ("010.000", [false, true, false, true]),
        ("+10", [false, true, false, true]),
        ("10.0000000000000000001", [true, true, false, false]),
        ("11", [true, true, false, false]),
        ("100", [true, true, false, false]),
        ("-20", [false, false, true, true]),
    ] {
        assert_eq!(
            [at(v, &gt), at(v, &gte), at(v, &lt), at(v, &lte)],
            want,
            "{v}"
        );
    }
    // Numbers compare as numbers, not strings ("9" > "10" as strings).
    assert!(at("9", &leaf("n", "lt", "10")));
    assert!(at("2", &leaf("n", "gt", "-3.5")));
    assert!(at("-3.6", &leaf("n", "lt", "-3.5")));
    assert!(at("-3.4", &leaf("n", "gt", "-3.5")));
    assert!(at("-0", &leaf("n", "gte", "0")) && at("-0", &leaf("n", "lte", "0.000")));
    assert!(at("0.45", &leaf("n", "lt", "0.5")));
    // Beyond 64- and 128-bit integers: exact.
    let big = "123456789012345678901234567890123456789012345678901234567890";
    assert!(at(&format!("{big}1"), &leaf("n", "gt", big)));
    assert!(at(big, &leaf("n", "gte", big)) && !at(big, &leaf("n", "gt", big)));
    // Missing or unparsable on either side: false for every numeric cmp.
    for cmp in ["gt", "gte", "lt", "lte"] {
        let f = leaf("n", cmp, "10");
        assert!(!f.matches(None), "{cmp}");
        assert!(!f.matches(Some(&tags(&[("m", "10")]))), "{cmp}");
        for bad in [
            "", "abc", "1e3", " 10", "10 ", "0x10", "1_000", "١٠", "NaN", "inf",
        ] {
            assert!(!at(bad, &f), "{cmp} {bad:?}");
        }
        assert!(!at("10", &leaf("n", cmp, "ten")), "{cmp}");
    }
}

#[test]
fn decimal_grammar_follows_udecimal() {
    let ok = |s: &str| Decimal::parse(s).is_some();
    for good in [
        "0",
        "-0",
        "+0",
        "007",
        "1.5",
        "-1.5",
        "+1.5",
        "0.0000000000000000001",
    ] {
        assert!(ok(good), "{good}");
    }
    let long_ok = "9".repeat(MAX_DECIMAL_LEN);
    assert!(ok(&long_ok));
    for bad in [
        "",
        "+",
        "-",
        ".5",
        "-.5",
        "+.5",
        "5.",
        "1.2.3",
        "1..2",
        "--1",
        "+-1",
        "-+1",
        "1e5",
        "1E5",
        "0.00000000000000000001", // 20 fraction digits
        "1,5",
        "½",
    ] {
        assert!(!ok(bad), "{bad:?}");
    }
    assert!(!ok(&"9".repeat(MAX_DECIMAL_LEN + 1)));
    assert_eq!(Decimal::parse("-0.000"), Decimal::parse("0"));
    assert_eq!(Decimal::parse("0012.3400"), Decimal::parse("12.34"));
}

#[test]
fn logical_ops() {
    let t = tags(&[("a", "1"), ("b", "2")]);
    let yes = || leaf("a", "eq", "1");
    let no = || leaf("a", "eq", "2");
    assert!(node("and", vec![yes(), yes()]).matches(Some(&t)));
    assert!(!node("and", vec![yes(), no()]).matches(Some(&t)));
    assert!(node("or", vec![no(), yes()]).matches(Some(&t)));
    assert!(!node("or", vec![no(), no()]).matches(Some(&t)));
    assert!(node("not", vec![no()]).matches(Some(&t)));
    assert!(!node("not", vec![yes()]).matches(Some(&t)));
    // not(eq) on a missing key is true, like neq.
    assert!(node("not", vec![leaf("zzz", "eq", "1")]).matches(Some(&t)));
    // Nested: a=1 and (b in [3,4] or not(ex c)).
    let f = node(
        "and",
        vec![
            yes(),
            node(
                "or",
                vec![
                    set("b", "in", &["3", "4"]),
                    node("not", vec![leaf("c", "ex", "")]),
                ],
            ),
        ],
    );
    assert_eq!(f.validate(), Ok(()));
    assert!(f.matches(Some(&t)));
    assert!(!f.matches(Some(&tags(&[("a", "1"), ("b", "2"), ("c", "")]))));
    assert!(f.matches(Some(&tags(&[("a", "1"), ("b", "4"), ("c", "")]))));
}

#[test]
fn unvalidated_trees_match_nothing_where_go_errors() {
    let t = tags(&[("a", "1")]);
    assert!(!node("xor", vec![leaf("a", "eq", "1")]).matches(Some(&t)));
    assert!(!leaf("a", "like", "1").matches(Some(&t)));
    assert!(!node("not", vec![]).matches(Some(&t)));
    assert!(!node("not", vec![leaf("a", "eq", "2"), leaf("a", "eq", "2")]).matches(Some(&t)));
    // Empty and/or: vacuous truth / falsity (validation refuses them anyway).
    assert!(node("and", vec![]).matches(Some(&t)));
    assert!(!node("or", vec![]).matches(Some(&t)));
}
