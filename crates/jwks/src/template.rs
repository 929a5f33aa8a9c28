//! JWKS endpoint templates (Centrifugo 6 "dynamic JWKS", TOKENS.md §7 and §9.1).
//!
//! `jwks_public_endpoint` may hold `{{name}}` placeholders, filled from the named groups of
//! `issuer_regex` (matched against `iss`) and `audience_regex` (matched against the elements
//! of `aud`; the first matching element supplies the groups, and audience groups replace
//! issuer groups of the same name). These claims are read **before the signature is checked**
//! — the URL must be known to find the key — so whatever a forged token writes in them must not
//! be able to choose a URL (CVE-2026-32301: with `(?P<tenant>.+)` a forged token made
//! Centrifugo fetch any host and path, and trust a key served by the attacker). The rules:
//!
//! * **At start** ([`validate_template`]): every placeholder must be a named group of one of the
//!   regexes, and that group must be a finite list of literal strings — literals, alternation,
//!   concatenation and plain (flag-free) groups only; no class, `.`, repetition, assertion,
//!   empty alternative or case-insensitive flag. Every alternative must be a non-empty run of
//!   URL-unreserved characters (`A-Z a-z 0-9 - . _ ~`) without `..`. From these lists every
//!   URL the template can produce is built once, and each must be an `http`/`https` URL with a
//!   host, no user info, no fragment and a clean path (no empty, `.` or `..` segment inside
//!   it). A template that fails any of this is refused, naming the setting at fault; so is
//!   one that would produce more than [`MAX_URLS`] URLs.
//! * **Per token** ([`CompiledTemplate::resolve`]): the regexes must match; each value must be
//!   one of its group's literal alternatives and pass the character check again; the URL is
//!   then taken from the list built at start. No other URL can come out, so no request can go
//!   to a host or path the operator did not list, and the URL returned is the cache key
//!   (CVE-2026-49998: a cache keyed by `kid` alone let one tenant's key verify another
//!   tenant's tokens).
//!
//! Differences from Centrifugo 6.9.1, all on the safe side or neutral: Centrifugo refuses any
//! `[`, `\d`, `\w`, `\s`, `\p` (and negations) anywhere in either regex when the endpoint is
//! templated; Rotor checks the groups that fill placeholders precisely instead, so a gate such
//! as `^https://[a-z]+\.example\.com/(?P<tenant>acme|globex)$` is accepted (the class never
//! reaches the URL). Centrifugo accepts an empty alternative (an empty value); Rotor refuses
//! it. A placeholder no regex group fills is refused here (Centrifugo fills it with nothing).
//! A trailing `/` on the endpoint is accepted (Centrifugo 6.7+ refuses every fetch for it).
//! There is no `insecure_skip_jwks_endpoint_safety_check` escape hatch.
//!
//! Regex dialect: Centrifugo uses Go's RE2, Rotor the `regex` crate. Both are linear-time,
//! leftmost-first, without backreferences or look-around, and both match **unanchored** (a
//! pattern without `^…$` matches a substring). Differences an operator may meet: `\d`, `\w`,
//! `\s` and `\b` are ASCII-only in Go but Unicode in Rust (use `[0-9]` or `(?-u:\d)` for the
//! Go meaning); Go's `\Q…\E` quoting and octal escapes (`\123`) are not accepted by Rust (start
//! error); Rust also knows the `x` (verbose) flag. Named groups are written `(?P<name>…)` or
//! `(?<name>…)` in both.

use regex::Regex;
use regex_syntax::ast::{self, Ast, GroupKind};
use std::collections::{BTreeSet, HashMap};
use url::Url;

/// Most URLs one template may produce (the product of its placeholders' alternatives).
pub const MAX_URLS: usize = 1024;

/// Which setting a configuration error is about (Centrifugo 6 names, relative to the token
/// block: the caller prefixes `client.token.` or `client.subscription_token.`, or maps them to
/// the 2.x / v5 flat names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Endpoint,
    IssuerRegex,
    AudienceRegex,
}

impl Setting {
    /// `jwks_public_endpoint`, `issuer_regex` or `audience_regex`.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Endpoint => "jwks_public_endpoint",
            Self::IssuerRegex => "issuer_regex",
            Self::AudienceRegex => "audience_regex",
        }
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// A JWKS endpoint (or a regex feeding it) that cannot be used; the server must not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct JwksConfigError {
    pub setting: Setting,
    pub problem: String,
}

fn config_error(setting: Setting, problem: impl Into<String>) -> JwksConfigError {
    JwksConfigError {
        setting,
        problem: problem.into(),
    }
}

/// Why no URL came out of a token's claims. The token is refused as invalid; the messages
/// never repeat claim text (it is unverified).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("token has no iss for issuer_regex")]
    NoIssuer,
    #[error("iss does not match issuer_regex")]
    IssuerMismatch,
    #[error("no aud element matches audience_regex")]
    AudienceMismatch,
    #[error("no value for placeholder {{{{{0}}}}}")]
    MissingValue(String),
    #[error("value for placeholder {{{{{0}}}}} is not one of the configured alternatives")]
    NotListed(String),
}

/// One `{{name}}` of the template.
#[derive(Debug, Clone)]
struct Placeholder {
    name: String,
    /// The literal alternatives of the group(s) named `name`.
    values: BTreeSet<String>,
}

/// A piece of the template text.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// Index into `placeholders`.
    Slot(usize),
}

/// An endpoint checked at start, with every URL it can produce. See the module documentation.
#[derive(Debug, Clone)]
pub struct CompiledTemplate {
    template: String,
    placeholders: Vec<Placeholder>,
    issuer: Option<Regex>,
    audience: Option<Regex>,
    /// Every URL, in a fixed order; an URL's position is its index.
    urls: Vec<Url>,
    /// Values joined with NUL (placeholder order) → index in `urls`.
    by_values: HashMap<String, usize>,
}

/// Checks `template` (with `issuer_regex` / `audience_regex` as configured; empty = not set)
/// and builds every URL it can produce.
///
/// # Errors
/// The endpoint is not an http(s) URL, a placeholder is malformed or filled by no group, a
/// group is not a list of clean literals, a regex does not compile, or the template would
/// produce more than [`MAX_URLS`] URLs.
pub fn validate_template(
    template: &str,
    issuer_regex: &str,
    audience_regex: &str,
) -> Result<CompiledTemplate, JwksConfigError> {
    let compile = |pattern: &str, setting| -> Result<Option<(Regex, Ast)>, JwksConfigError> {
        if pattern.is_empty() {
            return Ok(None);
        }
        let regex = Regex::new(pattern).map_err(|e| config_error(setting, e.to_string()))?;
        let ast = ast::parse::Parser::new()
            .parse(pattern)
            .map_err(|e| config_error(setting, e.to_string()))?;
        Ok(Some((regex, ast)))
    };
    let issuer = compile(issuer_regex, Setting::IssuerRegex)?;
    let audience = compile(audience_regex, Setting::AudienceRegex)?;

    let (pieces, names) = split_template(template)?;
    let mut placeholders = Vec::with_capacity(names.len());
    for name in names {
        let mut values = BTreeSet::new();
        let mut found = false;
        for (source, setting) in [
            (&issuer, Setting::IssuerRegex),
            (&audience, Setting::AudienceRegex),
        ] {
            let Some((_, ast)) = source else { continue };
            let Some(group) = find_group(ast, &name) else {
                continue;
            };
            found = true;
            if has_case_insensitive_flag(ast) {
                return Err(config_error(
                    setting,
                    format!("fills placeholder {{{{{name}}}}} but uses the case-insensitive flag (?i): the group must match only its listed literals"),
                ));
            }
            let literals = literal_set(group).map_err(|what| {
                config_error(
                    setting,
                    format!("group {name:?} fills a JWKS endpoint placeholder, so it must be a fixed list of literal alternatives such as (?P<{name}>acme|globex); it contains {what}"),
                )
            })?;
            for v in &literals {
                if !clean_value(v) {
                    return Err(config_error(
                        setting,
                        format!("group {name:?}: alternative {v:?} cannot go into a URL (allowed: non-empty A-Z a-z 0-9 - . _ ~, no \"..\")"),
                    ));
                }
            }
            values.extend(literals);
        }
        if !found {
            return Err(config_error(
                Setting::Endpoint,
                format!("placeholder {{{{{name}}}}} is not a named group of issuer_regex or audience_regex"),
            ));
        }
        placeholders.push(Placeholder { name, values });
    }

    let total = placeholders
        .iter()
        .try_fold(1usize, |acc, p| acc.checked_mul(p.values.len()))
        .filter(|n| *n <= MAX_URLS)
        .ok_or_else(|| {
            config_error(
                Setting::Endpoint,
                format!("the placeholders' alternatives would make more than {MAX_URLS} endpoints"),
            )
        })?;

    let mut urls = Vec::with_capacity(total);
    let mut by_values = HashMap::with_capacity(total);
    let lists: Vec<Vec<&str>> = placeholders
        .iter()
        .map(|p| p.values.iter().map(String::as_str).collect())
        .collect();
    for combo in combinations(&lists) {
        let mut text = String::with_capacity(template.len());
        for piece in &pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Slot(i) => text.push_str(combo.get(*i).copied().unwrap_or_default()),
            }
        }
        let url = checked_url(&text).map_err(|why| {
            let shown = if placeholders.is_empty() {
                String::new()
            } else {
                format!(" (as {text:?})")
            };
            config_error(Setting::Endpoint, format!("{why}{shown}"))
        })?;
        by_values.insert(combo.join("\0"), urls.len());
        urls.push(url);
    }

    Ok(CompiledTemplate {
        template: template.to_owned(),
        placeholders,
        issuer: issuer.map(|(r, _)| r),
        audience: audience.map(|(r, _)| r),
        urls,
        by_values,
    })
}

impl CompiledTemplate {
    /// The endpoint as configured.
    #[must_use]
    pub fn template(&self) -> &str {
        &self.template
    }

    /// True when the endpoint has placeholders (the URL depends on the token).
    #[must_use]
    pub fn is_dynamic(&self) -> bool {
        !self.placeholders.is_empty()
    }

    /// Every URL this template can produce (one for a static endpoint). Worth logging at
    /// start: no request ever goes anywhere else.
    #[must_use]
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// The URL for a token's **unverified** `iss` and `aud`. A static endpoint ignores them
    /// (its regexes, if any, are the verifier's gate).
    ///
    /// # Errors
    /// A regex does not match, a placeholder has no value, or a value is not one of the
    /// configured alternatives.
    pub fn resolve(&self, iss: Option<&str>, aud: &[String]) -> Result<&Url, ResolveError> {
        let index = self.resolve_index(iss, aud)?;
        self.urls
            .get(index)
            .ok_or_else(|| ResolveError::MissingValue(String::new()))
    }

    /// Position of the resolved URL in [`CompiledTemplate::urls`].
    pub(crate) fn resolve_index(
        &self,
        iss: Option<&str>,
        aud: &[String],
    ) -> Result<usize, ResolveError> {
        if self.placeholders.is_empty() {
            return Ok(0);
        }
        let issuer_caps = match &self.issuer {
            Some(re) => {
                let iss = iss.ok_or(ResolveError::NoIssuer)?;
                Some(re.captures(iss).ok_or(ResolveError::IssuerMismatch)?)
            }
            None => None,
        };
        let audience_caps = match &self.audience {
            Some(re) => Some(
                aud.iter()
                    .find_map(|a| re.captures(a))
                    .ok_or(ResolveError::AudienceMismatch)?,
            ),
            None => None,
        };
        let mut key = String::new();
        for (i, p) in self.placeholders.iter().enumerate() {
            let value = group_value(&audience_caps, &p.name)
                .or_else(|| group_value(&issuer_caps, &p.name))
                .ok_or_else(|| ResolveError::MissingValue(p.name.clone()))?;
            if !clean_value(value) || !p.values.contains(value) {
                return Err(ResolveError::NotListed(p.name.clone()));
            }
            if i > 0 {
                key.push('\0');
            }
            key.push_str(value);
        }
        self.by_values
            .get(&key)
            .copied()
            .ok_or_else(|| ResolveError::NotListed(self.template.clone()))
    }
}

/// The text a named group captured, if it took part in the match.
fn group_value<'h>(caps: &Option<regex::Captures<'h>>, name: &str) -> Option<&'h str> {
    caps.as_ref().and_then(|c| c.name(name)).map(|m| m.as_str())
}

/// Splits the template into text and placeholders; returns the distinct names in order.
fn split_template(template: &str) -> Result<(Vec<Piece>, Vec<String>), JwksConfigError> {
    let mut pieces = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let (text, after) = rest.split_at(open);
        let after = after.get(2..).unwrap_or_default();
        let close = after
            .find("}}")
            .ok_or_else(|| config_error(Setting::Endpoint, "\"{{\" without a closing \"}}\""))?;
        let (name, tail) = after.split_at(close);
        if !valid_name(name) {
            return Err(config_error(
                Setting::Endpoint,
                format!("placeholder {{{{{name}}}}}: a name is letters, digits and _ (not first a digit)"),
            ));
        }
        if text.contains("}}") {
            return Err(config_error(
                Setting::Endpoint,
                "\"}}\" without an opening \"{{\"",
            ));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        let index = match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                names.push(name.to_owned());
                names.len() - 1
            }
        };
        pieces.push(Piece::Slot(index));
        rest = tail.get(2..).unwrap_or_default();
    }
    if rest.contains("}}") {
        return Err(config_error(
            Setting::Endpoint,
            "\"}}\" without an opening \"{{\"",
        ));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok((pieces, names))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value that may go into a URL: RFC 3986 unreserved characters, no `..`.
fn clean_value(value: &str) -> bool {
    !value.is_empty()
        && !value.contains("..")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The endpoint rules every produced URL must pass.
fn checked_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URL must not hold user info".into());
    }
    if url.fragment().is_some() {
        return Err("URL must not have a fragment".into());
    }
    // `Url` already resolved dot segments; look at the text as written for them.
    let after_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .and_then(|i| after_scheme.get(i..))
        .unwrap_or_default();
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        if *seg == "." || *seg == ".." || (seg.is_empty() && i != last) {
            return Err("URL path must be clean (no //, /./ or /../)".into());
        }
    }
    if text
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
    {
        return Err("URL must not contain spaces, backslashes or control characters".into());
    }
    Ok(url)
}

/// Every pick of one value per list (in order); one empty pick for no lists.
fn combinations<'a>(lists: &[Vec<&'a str>]) -> Vec<Vec<&'a str>> {
    let mut out: Vec<Vec<&'a str>> = vec![Vec::new()];
    for list in lists {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                list.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(*v);
                    next
                })
            })
            .collect();
    }
    out
}

/// The capture group named `name`, anywhere in `ast`.
fn find_group<'a>(ast: &'a Ast, name: &str) -> Option<&'a Ast> {
    match ast {
        Ast::Group(g) => match &g.kind {
            GroupKind::CaptureName { name: n, .. } if n.name == name => Some(&g.ast),
            _ => find_group(&g.ast, name),
        },
        Ast::Repetition(r) => find_group(&r.ast, name),
        Ast::Alternation(a) => a.asts.iter().find_map(|x| find_group(x, name)),
        Ast::Concat(c) => c.asts.iter().find_map(|x| find_group(x, name)),
        _ => None,
    }
}

fn flags_case_insensitive(flags: &ast::Flags) -> bool {
    flags.items.iter().any(|item| {
        matches!(
            item.kind,
            ast::FlagsItemKind::Flag(ast::Flag::CaseInsensitive)
        )
    })
}

/// Whether `(?i)` appears anywhere (set or cleared: either way, refused for a regex that fills
/// a placeholder, so the literal lists are exactly what matches).
fn has_case_insensitive_flag(ast: &Ast) -> bool {
    match ast {
        Ast::Flags(f) => flags_case_insensitive(&f.flags),
        Ast::Group(g) => {
            let own = matches!(&g.kind, GroupKind::NonCapturing(f) if flags_case_insensitive(f));
            own || has_case_insensitive_flag(&g.ast)
        }
        Ast::Repetition(r) => has_case_insensitive_flag(&r.ast),
        Ast::Alternation(a) => a.asts.iter().any(has_case_insensitive_flag),
        Ast::Concat(c) => c.asts.iter().any(has_case_insensitive_flag),
        _ => false,
    }
}

/// Largest number of alternatives one group may spell out.
const MAX_ALTERNATIVES: usize = MAX_URLS;

/// The finite set of strings `ast` matches, if it is built from literals only; else what
/// it contains instead.
fn literal_set(ast: &Ast) -> Result<BTreeSet<String>, &'static str> {
    let set = match ast {
        Ast::Empty(_) => BTreeSet::from([String::new()]),
        Ast::Literal(l) => BTreeSet::from([l.c.to_string()]),
        Ast::Group(g) => match &g.kind {
            GroupKind::NonCapturing(flags) if !flags.items.is_empty() => {
                return Err("a group with flags")
            }
            _ => literal_set(&g.ast)?,
        },
        Ast::Alternation(a) => {
            let mut all = BTreeSet::new();
            for x in &a.asts {
                all.extend(literal_set(x)?);
                if all.len() > MAX_ALTERNATIVES {
                    return Err("too many alternatives");
                }
            }
            all
        }
        Ast::Concat(c) => {
            let mut acc = BTreeSet::from([String::new()]);
            for x in &c.asts {
                let next = literal_set(x)?;
                if acc.len().saturating_mul(next.len()) > MAX_ALTERNATIVES {
                    return Err("too many alternatives");
                }
                acc = acc
                    .iter()
                    .flat_map(|a| next.iter().map(move |b| format!("{a}{b}")))
                    .collect();
            }
            acc
        }
        Ast::Dot(_) => return Err("\".\" (any character)"),
        Ast::ClassPerl(_) | Ast::ClassUnicode(_) | Ast::ClassBracketed(_) => {
            return Err("a character class")
        }
        Ast::Repetition(_) => return Err("a repetition (*, +, ?, {n,m})"),
        Ast::Assertion(_) => return Err("an assertion (^, $, \\b, ...)"),
        Ast::Flags(_) => return Err("flags"),
    };
    Ok(set)
}

#[cfg(test)]
mod tests;
