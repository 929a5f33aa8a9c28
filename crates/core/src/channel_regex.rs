//! The `channel_regex` namespace option: a Go `regexp` (RE2) pattern that the part of a channel
//! name after its namespace must match, checked on client subscribe, publish, presence,
//! history and map operations (a mismatch is reply error 107).
//!
//! [`ChannelRegex::new`] translates Go syntax into the `regex` crate's, so a pattern means what
//! it means in Centrifugo:
//! * `\d \D \s \S \w \W` are ASCII classes (`[0-9]`, `[\t\n\f\r ]`, `[0-9A-Za-z_]` and their
//!   negations), inside and outside brackets, and `\b \B` are ASCII word boundaries; the
//!   `regex` crate would make all of them Unicode-aware.
//! * The match is unanchored: `abc` accepts `xabcx`; anchor with `^…$` (or `\A…\z`).
//! * Go-only syntax is translated: octal escapes (`\012`), `\Q…\E` literals, a literal `{` where
//!   no repeat count parses (`a{`, `{,3}`), a punctuation escape that the `regex` crate reads
//!   as something else (`\<`), `[`/`&&`/`--`/`~~` inside a class (literal in Go, set operations
//!   in Rust), `\p{^Greek}`, the no-op flag group `(?)`, capture names Rust refuses (`(?P<1a>…)`).
//! * What Go refuses is refused with a message naming the construct, so the config refuses to
//!   start rather than accepting a pattern Centrifugo would not: lookaround, backreferences,
//!   `\Z` (Go has only `\z`), `\C`, unknown escapes, flags other than `i m s U`, stacked
//!   repetitions (`a**`), repeat counts above 1000. (Duplicate capture names are fine in Go.)
//!
//! Left to the `regex` crate: the names inside `\p{…}` (UTS #18 loose matching, as Go 1.25+
//! does since golang/go#70780, so `\p{greek}` and `\p{Letter}` work; Rust also accepts binary
//! properties such as `\p{Alphabetic}`), nesting and size limits.
//!
//! [`channel_part`] is the text matched (Centrifugo's `namespaceName`), and
//! [`valid_without_regex`] the rule without a regex: only ASCII names.

/// Most repetitions a counted repeat may ask for (Go's limit).
const MAX_REPEAT: u32 = 1000;

/// A compiled `channel_regex`. Two are equal when their patterns are.
#[derive(Debug, Clone)]
pub struct ChannelRegex {
    pattern: String,
    regex: regex::Regex,
}

impl PartialEq for ChannelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for ChannelRegex {}

impl ChannelRegex {
    /// The option as configured: `""` is no regex (`None`: names must be ASCII, see
    /// [`valid_without_regex`]), anything else is compiled with [`ChannelRegex::new`].
    pub fn from_option(pattern: &str) -> Result<Option<Self>, String> {
        if pattern.is_empty() {
            return Ok(None);
        }
        Self::new(pattern).map(Some)
    }

    /// Compiles a Go RE2 `pattern`; `Err` is a message for the config error. An empty pattern
    /// compiles and matches everything: use [`ChannelRegex::from_option`] for the option.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let translated =
            translate(pattern).map_err(|e| format!("invalid channel_regex {pattern:?}: {e}"))?;
        let regex = regex::Regex::new(&translated)
            .map_err(|e| format!("invalid channel_regex {pattern:?}: {e}"))?;
        Ok(Self {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// The pattern as configured (Go syntax).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `channel_part` (see [`channel_part`]) contains a match.
    pub fn is_match(&self, channel_part: &str) -> bool {
        self.regex.is_match(channel_part)
    }
}

/// The text `channel_regex` is matched against: after stripping `private_prefix`, the part
/// after the first `namespace_boundary`; for a channel without a namespace the whole name,
/// private prefix included (as Centrifugo does). An empty boundary means no namespaces.
pub fn channel_part<'a>(
    channel: &'a str,
    private_prefix: &str,
    namespace_boundary: &str,
) -> &'a str {
    let trimmed = channel.strip_prefix(private_prefix).unwrap_or(channel);
    if namespace_boundary.is_empty() {
        return channel;
    }
    match trimmed.split_once(namespace_boundary) {
        Some((_, rest)) => rest,
        None => channel,
    }
}

/// The name rule when the namespace has no `channel_regex`: ASCII only.
pub fn valid_without_regex(name: &str) -> bool {
    name.is_ascii()
}

/// Centrifugo's channel name check: the regex on [`channel_part`] when one is configured,
/// otherwise [`valid_without_regex`] on the whole name.
pub fn channel_name_valid(
    regex: Option<&ChannelRegex>,
    channel: &str,
    private_prefix: &str,
    namespace_boundary: &str,
) -> bool {
    match regex {
        Some(r) => r.is_match(channel_part(channel, private_prefix, namespace_boundary)),
        None => valid_without_regex(channel),
    }
}

// ---------------------------------------------------------------- Go syntax → Rust syntax

/// Translates a Go RE2 pattern into an equivalent `regex` crate pattern.
pub(crate) fn translate(pattern: &str) -> Result<String, String> {
    Translator {
        src: pattern.chars().collect(),
        pos: 0,
        out: String::with_capacity(pattern.len() * 2),
        after_repeat: false,
    }
    .run()
}

struct Translator {
    src: Vec<char>,
    pos: usize,
    out: String,
    /// The last thing written was a repetition operator (Go refuses `a**`, `a{2}*`, `a*??`).
    after_repeat: bool,
}

fn lit(out: &mut String, c: char) {
    out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
}

/// A Go Perl class (`\d` …) as a Rust bracket class, ASCII as in Go.
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

impl Translator {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.pos + n).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn run(mut self) -> Result<String, String> {
        while let Some(c) = self.bump() {
            let repeat = match c {
                '\\' => {
                    self.escape()?;
                    false
                }
                '[' => {
                    self.class()?;
                    false
                }
                '(' => {
                    self.group()?;
                    false
                }
                '*' | '+' | '?' => {
                    self.repeat_op(&c.to_string())?;
                    true
                }
                '{' => match self.counted_repeat()? {
                    Some(op) => {
                        self.repeat_op(&op)?;
                        true
                    }
                    None => {
                        self.out.push_str(r"\{");
                        false
                    }
                },
                '}' => {
                    self.out.push_str(r"\}");
                    false
                }
                ']' => {
                    self.out.push_str(r"\]");
                    false
                }
                // `.` `^` `$` `|` `)` and every other character mean the same in both.
                _ => {
                    self.out.push(c);
                    false
                }
            };
            self.after_repeat = repeat;
        }
        Ok(self.out)
    }

    /// Writes a repetition operator (plus a lazy `?`), refusing one that follows another.
    fn repeat_op(&mut self, op: &str) -> Result<(), String> {
        if self.after_repeat {
            return Err(format!(
                "invalid nested repetition operator `{op}` (Go RE2)"
            ));
        }
        self.out.push_str(op);
        if self.peek() == Some('?') {
            self.pos += 1;
            self.out.push('?');
        }
        Ok(())
    }

    /// After `{`: `Some("{n,m}")` for a valid Go repeat count, `None` for a literal `{`.
    fn counted_repeat(&mut self) -> Result<Option<String>, String> {
        let start = self.pos;
        let Some(min) = self.repeat_number() else {
            self.pos = start;
            return Ok(None);
        };
        let max = if self.peek() == Some(',') {
            self.pos += 1;
            if self.peek() == Some('}') {
                None
            } else {
                let Some(m) = self.repeat_number() else {
                    self.pos = start;
                    return Ok(None);
                };
                Some(m)
            }
        } else {
            Some(min)
        };
        if self.bump() != Some('}') {
            self.pos = start;
            return Ok(None);
        }
        let text: String = self
            .src
            .get(start.saturating_sub(1)..self.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
            return Err(format!(
                "invalid repeat count `{text}` (Go allows 0 to {MAX_REPEAT})"
            ));
        }
        Ok(Some(text))
    }

    /// Decimal digits without a leading zero (Go reads `{01}` as literal text).
    fn repeat_number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.src.get(start..self.pos)?;
        if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&'0')) {
            return None;
        }
        // Saturates: anything this long is over the limit anyway.
        Some(digits.iter().fold(0u32, |n, d| {
            n.saturating_mul(10)
                .saturating_add(d.to_digit(10).unwrap_or(0))
        }))
    }

    /// After `\` outside a class.
    fn escape(&mut self) -> Result<(), String> {
        let Some(c) = self.peek() else {
            return Err("trailing backslash at end of expression".into());
        };
        match c {
            'A' | 'z' => {
                self.pos += 1;
                self.out.push('\\');
                self.out.push(c);
            }
            'b' => {
                self.pos += 1;
                self.out.push_str(r"(?-u:\b)");
            }
            'B' => {
                self.pos += 1;
                self.out.push_str(r"(?-u:\B)");
            }
            'Z' => return Err(r"`\Z` is not supported by Go's regexp (RE2); use `\z`".into()),
            'C' => return Err(r"`\C` (any byte) is not supported by Go's regexp (RE2)".into()),
            'Q' => {
                self.pos += 1;
                while self.pos < self.src.len() && !self.starts_with(r"\E") {
                    if let Some(c) = self.bump() {
                        lit(&mut self.out, c);
                    }
                }
                if self.starts_with(r"\E") {
                    self.pos += 2;
                }
            }
            'p' | 'P' => self.unicode_class()?,
            _ => {
                if let Some(class) = perl_class(c) {
                    self.pos += 1;
                    self.out.push_str(class);
                } else {
                    let ch = self.literal_escape()?;
                    lit(&mut self.out, ch);
                }
            }
        }
        Ok(())
    }

    /// After `\`, at `p` or `P`: `\pL`, `\p{Greek}`, `\p{^Greek}` → a Rust property class.
    fn unicode_class(&mut self) -> Result<(), String> {
        let mut negated = self.bump() == Some('P');
        let name: String = match self.bump() {
            Some('{') => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c != '}') {
                    self.pos += 1;
                }
                let name: String = self
                    .src
                    .get(start..self.pos)
                    .unwrap_or_default()
                    .iter()
                    .collect();
                if self.bump() != Some('}') {
                    return Err(r"unclosed `\p{` Unicode class".into());
                }
                name
            }
            Some(c) => c.to_string(),
            None => return Err(r"`\p` without a Unicode class name".into()),
        };
        let name = match name.strip_prefix('^') {
            Some(rest) => {
                negated = !negated;
                rest.to_string()
            }
            None => name,
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ');
        if name.is_empty() || !name.chars().all(name_char) {
            return Err(format!("invalid Unicode class name {name:?}"));
        }
        self.out.push_str(if negated { r"\P{" } else { r"\p{" });
        self.out.push_str(&name);
        self.out.push('}');
        Ok(())
    }

    /// After `\`: a Go escape that stands for one character (Go's `parseEscape`).
    fn literal_escape(&mut self) -> Result<char, String> {
        let c = self
            .bump()
            .ok_or_else(|| "trailing backslash at end of expression".to_string())?;
        let invalid = |c: char| Err(format!("invalid escape `\\{c}` (Go RE2)"));
        match c {
            '1'..='7' if !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) => Err(format!(
                "backreference `\\{c}` is not supported by Go's regexp (RE2)"
            )),
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(v).ok_or_else(|| "invalid octal escape".to_string())
            }
            'x' => self.hex_escape(),
            'a' => Ok('\x07'),
            'f' => Ok('\x0C'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\x0B'),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c),
            c => invalid(c),
        }
    }

    /// After `\x`: `\xHH` or `\x{H…}` up to U+10FFFF.
    fn hex_escape(&mut self) -> Result<char, String> {
        let bad = || "invalid `\\x` escape (Go RE2)".to_string();
        let digits: String = if self.peek() == Some('{') {
            self.pos += 1;
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let d: String = self
                .src
                .get(start..self.pos)
                .unwrap_or_default()
                .iter()
                .collect();
            if d.is_empty() || self.bump() != Some('}') {
                return Err(bad());
            }
            // Go allows any number of leading zeros.
            match d.trim_start_matches('0') {
                "" => "0".to_string(),
                t if t.len() > 6 => return Err(bad()),
                t => t.to_string(),
            }
        } else {
            let d: String = [self.bump(), self.bump()].into_iter().flatten().collect();
            if d.len() != 2 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            d
        };
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(bad)
    }

    /// After `[`: a Go bracket class, written with every literal escaped.
    fn class(&mut self) -> Result<(), String> {
        self.out.push('[');
        if self.peek() == Some('^') {
            self.pos += 1;
            self.out.push('^');
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err("missing closing `]` of a character class".into());
            };
            if c == ']' && !first {
                self.pos += 1;
                self.out.push(']');
                return Ok(());
            }
            first = false;
            if c == '[' && self.peek_at(1) == Some(':') && self.posix_class()? {
                continue;
            }
            if c == '\\' {
                match self.peek_at(1) {
                    Some('p' | 'P') => {
                        self.pos += 1;
                        self.unicode_class()?;
                        continue;
                    }
                    Some(p) if perl_class(p).is_some() => {
                        self.pos += 2;
                        self.out.push_str(perl_class(p).unwrap_or_default());
                        continue;
                    }
                    _ => {}
                }
            }
            let lo = self.class_char()?;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                let hi = self.class_char()?;
                if hi < lo {
                    return Err(format!("invalid character class range `{lo}-{hi}`"));
                }
                lit(&mut self.out, lo);
                self.out.push('-');
                lit(&mut self.out, hi);
            } else {
                lit(&mut self.out, lo);
            }
        }
    }

    /// At `[:` inside a class: writes a POSIX class and returns true, or false when the text
    /// is not one (then `[` is a literal, as in Go).
    fn posix_class(&mut self) -> Result<bool, String> {
        let rest: String = self
            .src
            .get(self.pos + 2..)
            .unwrap_or_default()
            .iter()
            .collect();
        let Some(end) = rest.find(":]") else {
            return Ok(false);
        };
        let name = rest.get(..end).unwrap_or_default();
        let bare = name.strip_prefix('^').unwrap_or(name);
        if !POSIX_CLASSES.contains(&bare) {
            return Err(format!("invalid character class `[:{name}:]`"));
        }
        self.out.push_str(&format!("[:{name}:]"));
        self.pos += 2 + name.chars().count() + 2;
        Ok(true)
    }

    /// One character of a class: a literal or a one-character escape.
    fn class_char(&mut self) -> Result<char, String> {
        match self.bump() {
            Some('\\') => self.literal_escape(),
            Some(c) => Ok(c),
            None => Err("missing closing `]` of a character class".into()),
        }
    }

    /// After `(`: a plain group, a named group, `(?flags)` or `(?flags:…)`.
    fn group(&mut self) -> Result<(), String> {
        if self.peek() != Some('?') {
            self.out.push('(');
            return Ok(());
        }
        self.pos += 1;
        if self.starts_with("P<")
            || (self.starts_with("<") && !self.starts_with("<=") && !self.starts_with("<!"))
        {
            self.pos += if self.peek() == Some('P') { 2 } else { 1 };
            let start = self.pos;
            while self.peek().is_some_and(|c| c != '>') {
                self.pos += 1;
            }
            let name: String = self
                .src
                .get(start..self.pos)
                .unwrap_or_default()
                .iter()
                .collect();
            if self.bump() != Some('>') {
                return Err("unclosed capture group name".into());
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid capture group name {name:?}"));
            }
            // Names do not matter to a match; Rust refuses some Go accepts (`1a`).
            self.out.push('(');
            return Ok(());
        }
        match self.peek() {
            Some('=' | '!') => {
                return Err("lookahead `(?=` / `(?!` is not supported by Go's regexp (RE2)".into())
            }
            Some('<') => {
                return Err(
                    "lookbehind `(?<=` / `(?<!` is not supported by Go's regexp (RE2)".into(),
                )
            }
            Some('P') => {
                return Err(
                    "`(?P=name)` backreferences are not supported by Go's regexp (RE2)".into(),
                )
            }
            _ => {}
        }
        let mut flags = String::new();
        let mut negated = false;
        let mut flag_after_minus = false;
        loop {
            match self.bump() {
                Some(c @ ('i' | 'm' | 's' | 'U')) => {
                    flags.push(c);
                    flag_after_minus |= negated;
                }
                Some('-') if !negated => {
                    negated = true;
                    flags.push('-');
                }
                Some(end @ (')' | ':')) => {
                    if negated && !flag_after_minus {
                        return Err("missing flag after `-` in a flag group".into());
                    }
                    if flags.is_empty() && end == ')' {
                        return Ok(()); // `(?)`: a no-op in Go
                    }
                    self.out.push_str("(?");
                    self.out.push_str(&flags);
                    self.out.push(end);
                    return Ok(());
                }
                Some(c) => {
                    return Err(format!(
                        "invalid or unsupported Perl syntax `(?{flags}{c}` (Go RE2 flags are i, m, s, U)"
                    ))
                }
                None => return Err("missing closing `)`".into()),
            }
        }
    }
}
