//! `channel_regex` with Go RE2 semantics: ASCII Perl classes and word boundaries, unanchored
//! matching, the Go-only syntax that is translated, the constructs refused at config time,
//! and which part of a channel name is matched.

use rotor_core::channel_regex::{
    channel_name_valid, channel_part, valid_without_regex, ChannelRegex,
};

fn re(p: &str) -> ChannelRegex {
    ChannelRegex::new(p).unwrap_or_else(|e| panic!("{p:?} should compile: {e}"))
}

fn refused(p: &str) -> String {
    match ChannelRegex::new(p) {
        Ok(_) => panic!("{p:?} should be refused"),
        Err(e) => e,
    }
}

#[test]
fn perl_classes_are_ascii_only() {
    let d = re(r"^\d+$");
    assert!(d.is_match("0123456789"));
    assert!(
        !d.is_match("٣"),
        "Arabic-Indic digit three is not \\d in Go"
    );
    assert!(!d.is_match("１"), "fullwidth digit");
    assert!(re(r"^\D$").is_match("٣"));
    assert!(!re(r"^\D$").is_match("3"));

    let w = re(r"^\w+$");
    assert!(w.is_match("abc_XYZ_09"));
    assert!(!w.is_match("é"));
    assert!(!w.is_match("日本"));
    assert!(re(r"^\W$").is_match("é"));
    assert!(!re(r"^\W$").is_match("_"));

    let s = re(r"^\s$");
    for ws in [" ", "\t", "\n", "\r", "\x0C"] {
        assert!(s.is_match(ws), "{ws:?}");
    }
    for not_ws in ["\x0B", "\u{A0}", "\u{2003}", "\u{3000}"] {
        assert!(!s.is_match(not_ws), "{not_ws:?} is not \\s in Go");
    }
    assert!(re(r"^\S$").is_match("\u{A0}"));
}

#[test]
fn perl_classes_inside_brackets_stay_ascii() {
    let r = re(r"^[\d.]+$");
    assert!(r.is_match("1.2"));
    assert!(!r.is_match("١.٢"));
    let neg = re(r"^[^\d]$");
    assert!(neg.is_match("٣") && !neg.is_match("3"));
    let double_neg = re(r"^[^\D]$");
    assert!(double_neg.is_match("3") && !double_neg.is_match("٣"));
    assert!(re(r"^[\w-]+$").is_match("a-b_c"));
    assert!(!re(r"^[\w-]+$").is_match("a-é"));
    assert!(!re(r"^[\s]$").is_match("\u{2003}"));
}

#[test]
fn word_boundaries_are_ascii() {
    let b = re(r"\bx\b");
    assert!(b.is_match("a x b"));
    assert!(!b.is_match("axb"));
    // é is not an ASCII word character, so Go sees boundaries around x.
    assert!(b.is_match("éxé"));
    assert!(re(r"a\Bb").is_match("ab"));
    assert!(!re(r"x\B").is_match("xé"));
}

#[test]
fn unicode_properties_work_as_in_go() {
    let l = re(r"^\pL+$");
    assert!(l.is_match("héllo日本"));
    assert!(!l.is_match("abc1"));
    assert!(re(r"^\p{Nd}$").is_match("٣"), "the Unicode digit class");
    assert!(re(r"^\p{Greek}+$").is_match("αβγ"));
    assert!(re(r"^\P{Greek}$").is_match("a"));
    // Go's `\p{^Greek}` negation (Rust spells it \P).
    assert!(re(r"^\p{^Greek}$").is_match("a"));
    assert!(!re(r"^\p{^Greek}$").is_match("α"));
    assert!(re(r"^\P{^Greek}$").is_match("α"));
    assert!(re(r"^[\p{Greek}\d]+$").is_match("α1"));
    // Loose names, as Go 1.25+ (golang/go#70780) and UTS #18.
    assert!(re(r"^\p{greek}$").is_match("α"));
    assert!(re(r"^\p{Letter}$").is_match("a"));
    assert!(re(r"^\p{Old Italic}$").is_match("\u{10300}"));
    refused(r"\p{Gr(eek}");
}

#[test]
fn match_is_unanchored() {
    let r = re("abc");
    assert!(r.is_match("abc"));
    assert!(r.is_match("xxabcxx"));
    assert!(!r.is_match("ab"));
    assert!(re("^abc").is_match("abcx") && !re("^abc").is_match("xabc"));
    assert!(re("abc$").is_match("xabc") && !re("abc$").is_match("abcx"));
    assert!(re(r"\Aabc\z").is_match("abc") && !re(r"\Aabc\z").is_match("abc\n"));
    // `$` without (?m) is the end of text only, as in Go.
    assert!(!re("abc$").is_match("abc\n"));
    assert!(re("(?m)abc$").is_match("abc\nx"));
}

#[test]
fn docs_example_is_a_one_character_class() {
    // Centrifugo's docs show `^[\d+]$`: one digit or a plus sign, not "digits".
    let r = re(r"^[\d+]$");
    assert!(r.is_match("5"));
    assert!(r.is_match("+"));
    assert!(!r.is_match("55"));
    assert!(!r.is_match(""));
    assert!(!r.is_match("٥"));
}

#[test]
fn flags_i_m_s_u_work() {
    assert!(re("(?i)abc").is_match("xABCx"));
    assert!(re("(?i:a)b").is_match("Ab") && !re("(?i:a)b").is_match("AB"));
    assert!(re("(?s)a.b").is_match("a\nb") && !re("a.b").is_match("a\nb"));
    assert!(re("(?i)(?-i)a").is_match("a") && !re("^(?i)(?-i)a$").is_match("A"));
    // (?U) swaps greediness; both compile, the match result is the same for is_match.
    assert!(re("(?U)a+").is_match("aaa"));
    // (?i) folds ASCII classes as Go does: K matches the Kelvin sign.
    assert!(re(r"(?i)^\w$").is_match("\u{212A}"));
    // `(?)` is a no-op in Go.
    assert!(re("(?)abc").is_match("abc"));
    assert!(re("(?:ab)+").is_match("abab"));
}

#[test]
fn go_only_syntax_is_translated() {
    // Octal escapes.
    assert!(re(r"^\101$").is_match("A"));
    assert!(re(r"^\0$").is_match("\0"));
    assert!(re(r"^\12$").is_match("\n"));
    // \Q…\E literals, with and without \E.
    assert!(re(r"^\Qa.b*\E$").is_match("a.b*"));
    assert!(!re(r"^\Qa.b*\E$").is_match("axbb"));
    assert!(re(r"\Q(x)").is_match("a(x)"));
    // `{` without a valid repeat count is a literal.
    assert!(re("^a{$").is_match("a{"));
    assert!(re("^a{,3}$").is_match("a{,3}"));
    assert!(re("^a{01}$").is_match("a{01}"));
    assert!(re("^x{2}$").is_match("xx"));
    assert!(re("^x{1,2}$").is_match("xx"));
    assert!(re("^x{2,}$").is_match("xxxx"));
    assert!(re("^}]$").is_match("}]"));
    // A punctuation escape is the literal character (`\<` is a word boundary in Rust).
    assert!(re(r"^\<a\>$").is_match("<a>"));
    assert!(re(r"^\#\~\&$").is_match("#~&"));
    // Inside a class `[`, `&&`, `--`, `~~` are literal in Go (set operations in Rust).
    let c = re(r"^[[a&&b]+$");
    assert!(c.is_match("[a&&b") && c.is_match("&"));
    // `[+--]` is the range + to - (Go); `[a--]` a reversed range, refused below.
    assert!(re(r"^[+--]+$").is_match("+,-"));
    assert!(re(r"^[~~]$").is_match("~"));
    // POSIX classes are ASCII in both.
    assert!(re("^[[:alpha:]]+$").is_match("abc") && !re("^[[:alpha:]]$").is_match("é"));
    assert!(re("^[[:^digit:]]$").is_match("x"));
    // `]` first in a class is a literal; `-` first or last is a literal.
    assert!(re(r"^[]a]+$").is_match("]a"));
    assert!(re(r"^[-a]+$").is_match("-a") && re(r"^[a-]+$").is_match("a-"));
    assert!(re(r"^[a-c-e]+$").is_match("a-e") && !re(r"^[a-c-e]$").is_match("d"));
    // Capture names Go accepts and Rust would refuse; both spellings.
    assert!(re(r"(?P<1a>x)(?<b>y)").is_match("xy"));
    // Go accepts a name twice (SubexpIndex picks the leftmost).
    assert!(re("(?P<n>a)(?P<n>b)").is_match("ab"));
    // Hex escapes, Go's leading zeros included.
    assert!(re(r"^\x41\x{42}\x{0000043}$").is_match("ABC"));
    assert!(re(r"^[\x{3b1}-\x{3c9}]+$").is_match("αω"));
    // Control escapes.
    assert!(re(r"^\a\f\t\n\r\v$").is_match("\x07\x0C\t\n\r\x0B"));
}

#[test]
fn what_go_refuses_fails_construction_with_a_clear_message() {
    for (pattern, needle) in [
        (r"a\Z", r"\Z"),
        (r"\C", r"\C"),
        ("a(?=b)", "lookahead"),
        ("a(?!b)", "lookahead"),
        ("(?<=a)b", "lookbehind"),
        ("(?<!a)b", "lookbehind"),
        (r"(a)\1", "backreference"),
        ("(?P<n>a)(?P=n)", "backreference"),
        (r"\e", "invalid escape"),
        (r"\y", "invalid escape"),
        (r"\8", "invalid escape"),
        (r"\é", "invalid escape"),
        ("a\\", "trailing backslash"),
        ("(?x)a b", "flags are i, m, s, U"),
        ("(?u)a", "flags are i, m, s, U"),
        ("(?R)a", "flags are i, m, s, U"),
        ("(?#comment)", "flags are i, m, s, U"),
        ("(?i-)a", "missing flag"),
        ("(?i--m)a", "flags are i, m, s, U"),
        ("a**", "nested repetition"),
        ("a+*", "nested repetition"),
        ("a{2}{3}", "nested repetition"),
        ("a*??", "nested repetition"),
        ("a{1001}", "repeat count"),
        ("a{2,1001}", "repeat count"),
        ("a{3,2}", "repeat count"),
        ("(?P<>a)", "capture group name"),
        ("(?P<a-b>a)", "capture group name"),
        ("[[:foo:]]", "[:foo:]"),
        ("[z-a]", "range"),
        ("[a--]", "range"),
        ("[abc", "closing `]`"),
        (r"[\b]", "invalid escape"),
        (r"[\Q]", "invalid escape"),
        (r"\x{110000}", r"\x"),
        (r"\xZZ", r"\x"),
        (r"\p{", r"\p{"),
    ] {
        let e = refused(pattern);
        assert!(e.contains(needle), "{pattern:?}: {e:?} lacks {needle:?}");
        assert!(e.contains("invalid channel_regex"), "{e}");
    }
    // Left to the regex crate, still refused with its message.
    for p in ["(a", "a)", "*a", "|*", r"\p{NoSuchScript}"] {
        refused(p);
    }
}

#[test]
fn limits_that_go_accepts_compile() {
    assert!(re("^a{1000}$").is_match(&"a".repeat(1000)));
    assert!(re("^a{0,1000}$").is_match(""));
    assert!(re("a*?b+?c??d{1,2}?").is_match("bcd"));
    // Go repeats an empty-width assertion.
    assert!(re("^*a").is_match("a"));
}

#[test]
fn channel_part_follows_centrifugo() {
    // Namespaced: after the first boundary, private prefix stripped first.
    assert_eq!(channel_part("news:sport:1", "$", ":"), "sport:1");
    assert_eq!(channel_part("$news:sport", "$", ":"), "sport");
    // Top-level: the whole name, private prefix included.
    assert_eq!(channel_part("general", "$", ":"), "general");
    assert_eq!(channel_part("$general", "$", ":"), "$general");
    // The prefix is stripped once; an empty namespace is still a namespace boundary.
    assert_eq!(channel_part("$$a:b", "$", ":"), "b");
    assert_eq!(channel_part("$:abc", "$", ":"), "abc");
    assert_eq!(channel_part(":abc", "$", ":"), "abc");
    // Custom and multi-character boundaries; empty boundary = no namespaces.
    assert_eq!(channel_part("ns::rest", "$", "::"), "rest");
    assert_eq!(channel_part("ns/rest", "", "/"), "rest");
    assert_eq!(channel_part("ns:rest", "$", ""), "ns:rest");
    // Empty private prefix: `$` is an ordinary character.
    assert_eq!(channel_part("$ns:rest", "", ":"), "rest");
    assert_eq!(channel_part("", "$", ":"), "");
}

#[test]
fn channel_name_check_with_and_without_regex() {
    let digits = re(r"^\d+$");
    let ok = |ch: &str| channel_name_valid(Some(&digits), ch, "$", ":");
    assert!(ok("ids:123"));
    assert!(ok("$ids:123"));
    assert!(!ok("ids:12a"));
    assert!(!ok("ids:١٢٣"));
    // The namespace itself is not matched.
    assert!(!ok("123:abc"));
    // Top-level channels match on the whole name: `$` makes `^\d+$` fail.
    assert!(ok("123"));
    assert!(!ok("$123"));
    // With a regex, non-ASCII names are fine if the regex allows them.
    let any = re(".*");
    assert!(channel_name_valid(Some(&any), "chat:日本", "$", ":"));
    // Without one: ASCII only, on the whole name.
    assert!(channel_name_valid(None, "chat:room-1_$#", "$", ":"));
    assert!(!channel_name_valid(None, "chat:日本", "$", ":"));
    assert!(!channel_name_valid(None, "é:abc", "$", ":"));
    assert!(valid_without_regex(""));
    assert!(valid_without_regex("\x7F"));
    assert!(!valid_without_regex("\u{80}"));
    assert_eq!(digits.as_str(), r"^\d+$");
    // The option: "" is no regex at all, not a match-everything regex.
    assert!(ChannelRegex::from_option("").unwrap().is_none());
    assert!(ChannelRegex::from_option("^a").unwrap().is_some());
    assert!(ChannelRegex::from_option("(?=a)").is_err());
}
