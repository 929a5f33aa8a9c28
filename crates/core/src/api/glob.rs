//! The `channels` pattern: gobwas/glob syntax without separators (Centrifugo compiles the
//! pattern with none, so `*` also crosses `:` and `.`): `*` any run, `?` one character,
//! `[abc]` / `[a-z]` a class, `[!…]` its negation, `{a,b}` alternatives (each a pattern of its
//! own, nesting allowed), `\` escapes the next character.
//!
//! The pattern compiles to a Thompson NFA that is simulated with a set of live states, one input
//! character at a time: matching costs at most (pattern states × channel length) steps whatever
//! the pattern, so `*a*a*a*…b` cannot blow up the way a backtracking matcher does.

/// A pattern that does not parse (unclosed `[` or `{`, a trailing `\`, an empty class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

#[derive(Debug)]
enum Node {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alt(Vec<Vec<Node>>),
}

#[derive(Debug, Clone)]
enum State {
    Match,
    Char(char, usize),
    Any(usize),
    Class(usize, usize),
    Split(Vec<usize>),
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Glob {
    states: Vec<State>,
    classes: Vec<(bool, Vec<(char, char)>)>,
    start: usize,
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Parser<'_> {
    /// A sequence up to the end, or (inside braces) up to `,` or `}` (left unconsumed).
    fn seq(&mut self, in_alt: bool) -> Result<Vec<Node>, BadPattern> {
        let mut out = Vec::new();
        while let Some(&c) = self.chars.peek() {
            if in_alt && (c == ',' || c == '}') {
                break;
            }
            self.chars.next();
            out.push(match c {
                '*' => {
                    // Consecutive stars are one.
                    if matches!(out.last(), Some(Node::Star)) {
                        continue;
                    }
                    Node::Star
                }
                '?' => Node::Any,
                '\\' => Node::Char(self.chars.next().ok_or(BadPattern)?),
                '[' => self.class()?,
                '{' => self.alt()?,
                c => Node::Char(c),
            });
        }
        Ok(out)
    }

    fn class(&mut self) -> Result<Node, BadPattern> {
        let negated = self.chars.next_if_eq(&'!').is_some();
        let mut ranges = Vec::new();
        loop {
            let c = self.chars.next().ok_or(BadPattern)?;
            if c == ']' {
                break;
            }
            let lo = if c == '\\' {
                self.chars.next().ok_or(BadPattern)?
            } else {
                c
            };
            if self.chars.next_if_eq(&'-').is_some() {
                let hi = match self.chars.next().ok_or(BadPattern)? {
                    ']' => return Err(BadPattern),
                    '\\' => self.chars.next().ok_or(BadPattern)?,
                    h => h,
                };
                if hi < lo {
                    return Err(BadPattern);
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        if ranges.is_empty() {
            return Err(BadPattern);
        }
        Ok(Node::Class { negated, ranges })
    }

    fn alt(&mut self) -> Result<Node, BadPattern> {
        let mut alts = Vec::new();
        loop {
            alts.push(self.seq(true)?);
            match self.chars.next() {
                Some(',') => continue,
                Some('}') => break,
                _ => return Err(BadPattern),
            }
        }
        Ok(Node::Alt(alts))
    }
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, BadPattern> {
        let mut p = Parser {
            chars: pattern.chars().peekable(),
        };
        let seq = p.seq(false)?;
        let mut g = Glob {
            states: vec![State::Match],
            classes: Vec::new(),
            start: 0,
        };
        g.start = g.compile(seq, 0);
        Ok(g)
    }

    /// Compiles `seq` to states that continue at `next`; returns the entry state.
    fn compile(&mut self, seq: Vec<Node>, mut next: usize) -> usize {
        for node in seq.into_iter().rev() {
            next = match node {
                Node::Char(c) => self.add(State::Char(c, next)),
                Node::Any => self.add(State::Any(next)),
                Node::Class { negated, ranges } => {
                    self.classes.push((negated, ranges));
                    let id = self.classes.len() - 1;
                    self.add(State::Class(id, next))
                }
                Node::Star => {
                    let split = self.add(State::Split(Vec::new()));
                    let any = self.add(State::Any(split));
                    self.states[split] = State::Split(vec![any, next]);
                    split
                }
                Node::Alt(alts) => {
                    let starts = alts.into_iter().map(|a| self.compile(a, next)).collect();
                    self.add(State::Split(starts))
                }
            };
        }
        next
    }

    fn add(&mut self, s: State) -> usize {
        self.states.push(s);
        self.states.len() - 1
    }

    /// Adds `s` and every state reachable from it without input to `set`.
    fn close(&self, s: usize, set: &mut Vec<usize>, seen: &mut [bool]) {
        let mut stack = vec![s];
        while let Some(s) = stack.pop() {
            if std::mem::replace(&mut seen[s], true) {
                continue;
            }
            match &self.states[s] {
                State::Split(next) => stack.extend(next.iter().copied()),
                _ => set.push(s),
            }
        }
    }

    pub fn is_match(&self, input: &str) -> bool {
        let n = self.states.len();
        let mut seen = vec![false; n];
        let mut current = Vec::with_capacity(n);
        self.close(self.start, &mut current, &mut seen);
        let mut next = Vec::with_capacity(n);
        for c in input.chars() {
            if current.is_empty() {
                return false;
            }
            seen.iter_mut().for_each(|s| *s = false);
            for &s in &current {
                let to = match &self.states[s] {
                    State::Char(want, to) if *want == c => *to,
                    State::Any(to) => *to,
                    State::Class(id, to) => {
                        let (negated, ranges) = &self.classes[*id];
                        if ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated {
                            *to
                        } else {
                            continue;
                        }
                    }
                    _ => continue,
                };
                self.close(to, &mut next, &mut seen);
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        current
            .iter()
            .any(|&s| matches!(self.states[s], State::Match))
    }
}

#[cfg(test)]
mod tests {
    use super::{BadPattern, Glob};

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).expect("valid pattern").is_match(s)
    }

    #[test]
    fn stars_and_literals() {
        assert!(m("chat:*", "chat:1"));
        assert!(m("chat:*", "chat:"));
        assert!(!m("chat:*", "news"));
        assert!(m("*", ""));
        assert!(m("*", "a:b.c"));
        assert!(m("a*c", "abbc"));
        assert!(m("a**c", "ac"));
        assert!(!m("a*c", "abcd"));
        assert!(m("news", "news"));
        assert!(!m("news", "news1"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn single_characters_and_classes() {
        assert!(m("user:?", "user:1"));
        assert!(!m("user:?", "user:12"));
        assert!(m("user:?", "user:é"));
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("[!abc]x", "dx"));
        assert!(!m("[!abc]x", "ax"));
        assert!(m("room[0-9]", "room7"));
        assert!(!m("room[0-9]", "roomx"));
        assert!(m("[!a-c]", "z"));
        assert!(m("[a-cx-z]", "y"));
    }

    #[test]
    fn alternatives_and_escapes() {
        assert!(m("{chat,news}:*", "news:1"));
        assert!(!m("{chat,news}:*", "feed:1"));
        assert!(m("x{a*,b?}", "xaaaa"));
        assert!(m("x{a*,b?}", "xbq"));
        assert!(!m("x{a*,b?}", "xbqq"));
        assert!(m("{a,{b,c}}", "c"));
        assert!(m("{,x}y", "y"));
        assert!(m(r"a\*", "a*"));
        assert!(!m(r"a\*", "ab"));
        assert!(m(r"\{a\}", "{a}"));
        assert!(m("a]b", "a]b"));
    }

    #[test]
    fn bad_patterns() {
        for p in ["[abc", "{a,b", r"a\", "[]", "[z-a]", "[a-]"] {
            assert_eq!(Glob::new(p).err(), Some(BadPattern), "{p}");
        }
    }

    #[test]
    fn no_backtracking_blow_up() {
        let pattern = "*a".repeat(30) + "b";
        let input = "a".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &input));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
