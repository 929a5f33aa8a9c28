//! Collects raw values from the file and the environment under one set of flat key names
//! (whatever generation named them), keeps the winner of each key by precedence, and applies
//! the winners to the typed configuration.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rotor_core::config::Namespace;
use serde_json::{Map, Value};

use super::channel::ChanAcc;
use super::nested::{self, Nested};
use super::values::{expected, string, Input};
use super::{
    flat, formats, key_err, proxy, set_top, unsupported, ConfigLoadError, SetError, Target,
};

/// One value from one source; the higher rank (source, env prefix, canonical name) wins.
struct Entry {
    input: Input,
    /// The name as written: a flat key, a nested path, or the key an env var stands for.
    given: String,
    origin: String,
    /// The environment variable it came from.
    var: Option<String>,
    rank: (u8, u8, bool),
}

/// A variable naming a field of an item of a named list (`CENTRIFUGO_CHANNEL_NAMESPACES_<NAME>_
/// <OPTION>`, `..._PROXIES_<NAME>_<FIELD>`, `..._RPC_NAMESPACES_<NAME>_<FIELD>`), matched once
/// the items are known.
pub(super) struct ListVar {
    pub(super) var: String,
    rest: String,
    pub(super) value: String,
    prio: u8,
}

/// Prefixes (after `CENTRIFUGO_`/`ROTOR_`) of the variables of named lists' items.
const LIST_VAR_PREFIXES: [&str; 3] = ["CHANNEL_NAMESPACES_", "RPC_NAMESPACES_", "PROXIES_"];

/// Entries parsed as named lists after the other keys: `namespaces` here, the proxy lists in
/// the proxy module.
fn is_list(key: &str) -> bool {
    key == "namespaces" || proxy::LISTS.contains(&key)
}

/// The merged raw values, keyed by canonical (lower-cased, alias-resolved) flat name.
#[derive(Default)]
pub(super) struct Layers {
    map: BTreeMap<String, Entry>,
    warnings: Vec<String>,
    list_vars: Vec<ListVar>,
}

/// The typed result of [`Layers::apply`].
pub(super) struct Applied {
    pub target: Target,
    pub warnings: Vec<String>,
    /// Where each applied key came from (for errors found after merging).
    pub origins: BTreeMap<String, String>,
    /// Each applied key's name as written (a flat key, a nested path, an env var's key).
    pub givens: BTreeMap<String, String>,
}

fn from_env(msg: String, var: &Option<String>) -> String {
    match var {
        Some(v) => format!("{msg} (from env {v})"),
        None => msg,
    }
}

/// A value that leaves an ignored key silent: zero-like, or a proxy name left at "default".
fn is_unset(key: &str, i: &Input) -> bool {
    i.is_zero() || (key.ends_with("_proxy_name") && string(i).is_ok_and(|s| s == "default"))
}

/// The name as written belongs to Centrifugo 4+ channel options (v6 path or 4/5 flat name).
fn is_modern_name(given: &str) -> bool {
    let given = given.to_ascii_lowercase();
    let last = given.rsplit('.').next().unwrap_or_default();
    given.starts_with("channel.") || flat::is_modern_channel_option(last)
}

impl Layers {
    fn add(
        &mut self,
        key: &str,
        given: String,
        input: Input,
        origin: String,
        var: Option<String>,
        rank: (u8, u8),
    ) {
        let rank = (rank.0, rank.1, key == given);
        if let Some(old) = self.map.get(key) {
            if old.rank.0 == rank.0 && old.rank.1 == rank.1 && old.given != given {
                let (a, b) = (&old.given, &given);
                let msg = format!("both {a:?} and {b:?} are set ({origin}); using {key:?}");
                self.warnings.push(msg);
            }
            if old.rank > rank {
                return;
            }
        }
        let e = Entry {
            input,
            given,
            origin,
            var,
            rank,
        };
        self.map.insert(key.to_string(), e);
    }

    /// Every key of the file at `path`: flat keys as they are, nested sections leaf by leaf.
    pub(super) fn file(&mut self, path: &Path) -> Result<(), ConfigLoadError> {
        let origin = format!("in file {}", path.display());
        for (given, value) in formats::read(path)? {
            let lower = given.to_ascii_lowercase();
            if !nested::is_section(&lower, &value) {
                let key = flat::canonical(&lower).to_string();
                self.add(
                    &key,
                    given,
                    Input::Json(value),
                    origin.clone(),
                    None,
                    (0, 0),
                );
                continue;
            }
            if !(value.is_object() || value.is_null()) && nested::resolve(&lower) == Nested::Unknown
            {
                return Err(key_err(
                    &given,
                    None,
                    expected("an object", &value),
                    &origin,
                ));
            }
            for (path, v) in nested::flatten(&lower, value) {
                // `null` for a section of proxy keys (`client.proxy: null`): not set.
                if v.is_null() && proxy::is_section(&path) {
                    continue;
                }
                match nested::resolve(&path) {
                    Nested::Key(key) => {
                        let key = flat::canonical(&key).to_string();
                        self.add(&key, path, Input::Json(v), origin.clone(), None, (0, 0));
                    }
                    Nested::Unsupported if Input::Json(v).is_zero() => {}
                    Nested::Unsupported => self.warnings.push(unsupported(&path)),
                    Nested::Unknown => self.warnings.push(format!("unknown config key {path:?}")),
                }
            }
        }
        Ok(())
    }

    /// Every `CENTRIFUGO_*` and `ROTOR_*` variable of `env` (`ROTOR_` wins over `CENTRIFUGO_`):
    /// flat names (`CENTRIFUGO_TOKEN_HMAC_SECRET_KEY`) and nested paths joined with `_`
    /// (`CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY`).
    pub(super) fn env(&mut self, env: &[(String, String)]) {
        for (var, raw) in env {
            let (rest, prio) = match (var.strip_prefix("ROTOR_"), var.strip_prefix("CENTRIFUGO_")) {
                (Some(r), _) => (r, 1),
                (None, Some(r)) => (r, 0),
                (None, None) => continue,
            };
            if flat::is_tooling_env(var) {
                continue;
            }
            let origin = format!("from env {var}");
            if var.ends_with("_PORT") && raw.contains("://") {
                // Kubernetes sets `<SERVICE>_PORT=tcp://10.0.0.1:8000` for a service named like
                // the prefix: not a port number, and not meant for Rotor.
                let msg = format!("ignored {var}={raw:?}: a service address, not a port");
                self.warnings.push(msg);
                continue;
            }
            let input = Input::Env(raw.clone());
            if let Some(path) = nested::env_path(rest) {
                match nested::resolve(&path) {
                    Nested::Key(key) => {
                        let key = flat::canonical(&key).to_string();
                        self.add(&key, path, input, origin, Some(var.clone()), (1, prio));
                    }
                    Nested::Unsupported if raw.is_empty() => {}
                    Nested::Unsupported => {
                        self.warnings
                            .push(format!("{} ({origin})", unsupported(&path)));
                    }
                    Nested::Unknown if flat::is_injected_env(var) => {}
                    Nested::Unknown => {
                        let msg = format!("unknown config key {path:?} ({origin})");
                        self.warnings.push(msg);
                    }
                }
            } else if LIST_VAR_PREFIXES.iter().any(|p| rest.starts_with(p)) {
                self.list_vars.push(ListVar {
                    var: var.clone(),
                    rest: rest.to_string(),
                    value: raw.clone(),
                    prio,
                });
            } else {
                let given = rest.to_ascii_lowercase();
                let key = flat::canonical(&given).to_string();
                self.add(&key, given, input, origin, Some(var.clone()), (1, prio));
            }
        }
    }

    /// Applies the winning value of every key; a bad value is an error naming the key as given.
    pub(super) fn apply(self) -> Result<Applied, ConfigLoadError> {
        let Layers {
            map,
            mut warnings,
            list_vars,
        } = self;
        let mut t = Target::default();
        let mut origins = BTreeMap::new();
        let mut givens = BTreeMap::new();
        let mut lists = BTreeMap::new();
        for (key, e) in map {
            if is_list(&key) {
                lists.insert(key, e);
                continue;
            }
            match set_top(&mut t, &key, &e.input) {
                Ok(()) => {
                    if flat::is_channel_option(&key) && is_modern_name(&e.given) {
                        t.top.modern = true;
                    }
                    if proxy::is_v6_switch(&key, &e.given, false, &e.input) {
                        t.proxy.modern_hint = true;
                    }
                    givens.insert(key.clone(), e.given.clone());
                    origins.insert(key, e.origin);
                }
                // `null` in the file means "not set"; the getter refused it without assigning.
                Err(SetError::Bad(_)) if matches!(e.input, Input::Json(Value::Null)) => {}
                Err(SetError::Bad(m)) => return Err(key_err(&e.given, None, m, &e.origin)),
                Err(SetError::Unknown) if flat::is_unsupported(&key) => {
                    if !is_unset(&key, &e.input) {
                        warnings.push(from_env(unsupported(&e.given), &e.var));
                    }
                }
                Err(SetError::Unknown) => match &e.var {
                    Some(var) if flat::is_injected_env(var) => {}
                    var => {
                        let msg = format!("unknown config key {:?}", e.given);
                        warnings.push(from_env(msg, var));
                    }
                },
            }
        }
        let top = std::mem::take(&mut t.top);
        t.node.channel_options = top.finish("channel options without namespace", &mut warnings);

        let mut used = HashSet::new();
        let vars = &list_vars;
        for (key, e) in lists {
            let entry = proxy::ListEntry {
                given: &e.given,
                input: &e.input,
                origin: &e.origin,
            };
            let (used, warnings) = (&mut used, &mut warnings);
            match key.as_str() {
                "namespaces" => {
                    let hint = &mut t.proxy.modern_hint;
                    t.node.namespaces = parse_namespaces(&e, vars, used, warnings, hint)?;
                }
                "proxies" => t.proxy.named = proxy::parse_named(&entry, vars, used, warnings)?,
                _ => {
                    let parsed = proxy::parse_rpc_namespaces(&entry, vars, used, warnings)?;
                    t.proxy.rpc_namespaces = parsed;
                }
            }
            origins.insert(key, e.origin);
        }
        for v in list_vars {
            if !used.contains(&v.var) && !flat::is_injected_env(&v.var) {
                let given = v.rest.to_ascii_lowercase();
                warnings.push(format!("unknown config key {given:?} (from env {})", v.var));
            }
        }
        Ok(Applied {
            target: t,
            warnings,
            origins,
            givens,
        })
    }
}

/// One option of one namespace: name as given, value, origin, rank (source, canonical name).
type Field = (String, Input, String, (u8, bool));

fn add_field(
    fields: &mut BTreeMap<String, Field>,
    field: Field,
    ns: &str,
    warnings: &mut Vec<String>,
) {
    let lower = field.0.to_ascii_lowercase();
    let key = flat::canonical(&lower).to_string();
    let rank = (field.3 .0, key == lower);
    if let Some(old) = fields.get(&key) {
        if old.3 .0 == rank.0 && !old.0.eq_ignore_ascii_case(&field.0) {
            let (a, b) = (&old.0, &field.0);
            warnings.push(format!(
                "both {a:?} and {b:?} are set in namespace {ns:?}; using {key:?}"
            ));
        }
        if old.3 > rank {
            return;
        }
    }
    fields.insert(key, (field.0, field.1, field.2, rank));
}

/// Named items of a list: each item's `name` and its object.
pub(super) type ListItems = Vec<(String, Map<String, Value>)>;

/// The items of a named list (`namespaces`, `channel.namespaces`, `proxies`,
/// `rpc.namespaces`) given as `list_key`: a JSON array of objects with a `name`; from the
/// environment JSON text, or (except 2.x `namespaces`) names separated by spaces.
pub(super) fn list_items(
    input: &Input,
    list_key: &str,
    origin: &str,
) -> Result<ListItems, ConfigLoadError> {
    let err = |ns: Option<&str>, key: &str, msg: String| key_err(key, ns, msg, origin);
    let parsed;
    let v = match input {
        Input::Json(v) => v,
        Input::Env(s) if list_key == "namespaces" || s.trim_start().starts_with('[') => {
            let msg = |er| format!("expected a JSON array of objects: {er}");
            parsed = serde_json::from_str(s).map_err(|er| err(None, list_key, msg(er)))?;
            &parsed
        }
        Input::Env(s) => {
            parsed = nested::namespaces_from_names(s);
            &parsed
        }
    };
    if v.is_null() {
        return Ok(Vec::new());
    }
    let Value::Array(items) = v else {
        return Err(err(None, list_key, expected("an array", v)));
    };
    let mut out = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            let msg = format!("item {idx}: {}", expected("an object", item));
            return Err(err(None, list_key, msg));
        };
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => {
                let msg = format!("item {idx} has no \"name\"");
                return Err(err(None, list_key, msg));
            }
            Some(other) => {
                let ns = format!("#{idx}");
                return Err(err(Some(&ns), "name", expected("a string", other)));
            }
        };
        out.push((name, obj.clone()));
    }
    Ok(out)
}

/// The variable (`ROTOR_` over `CENTRIFUGO_`) whose name after the prefix is `rest`; every
/// variable of that name is marked used.
pub(super) fn list_var<'a>(
    vars: &'a [ListVar],
    used: &mut HashSet<String>,
    rest: &str,
) -> Option<&'a ListVar> {
    let matching = || vars.iter().filter(|v| v.rest == rest);
    let best = matching().max_by_key(|v| v.prio)?;
    used.extend(matching().map(|v| v.var.clone()));
    Some(best)
}

/// The namespaces of entry `e` (2.x `namespaces` or v6 `channel.namespaces`), each overlaid
/// with its `CHANNEL_NAMESPACES_<NAME>_<OPTION>` variables. `hint` is set when a Centrifugo 6
/// name switches a channel proxy on.
fn parse_namespaces(
    e: &Entry,
    vars: &[ListVar],
    used: &mut HashSet<String>,
    warnings: &mut Vec<String>,
    hint: &mut bool,
) -> Result<Vec<Namespace>, ConfigLoadError> {
    let origin = e.origin.as_str();
    let modern = e.given.starts_with("channel.");
    let items = list_items(&e.input, &e.given, origin)?;
    let mut out = Vec::with_capacity(items.len());
    for (name, obj) in items {
        let mut fields = BTreeMap::new();
        for (k, v) in obj.iter().filter(|(k, v)| *k != "name" && !v.is_null()) {
            let field = (
                k.clone(),
                Input::Json(v.clone()),
                origin.to_string(),
                (0, false),
            );
            add_field(&mut fields, field, &name, warnings);
        }
        for opt in flat::all_channel_options() {
            let rest = nested::namespace_env_name(&name, opt);
            let Some(best) = list_var(vars, used, &rest) else {
                continue;
            };
            let origin = format!("from env {}", best.var);
            let field = (
                opt.to_string(),
                Input::Env(best.value.clone()),
                origin,
                (1, false),
            );
            add_field(&mut fields, field, &name, warnings);
        }
        let mut acc = ChanAcc::default();
        acc.modern = modern;
        for (key, (given, input, origin, _)) in fields {
            if flat::is_modern_channel_option(&given.to_ascii_lowercase()) {
                acc.modern = true;
            }
            match acc.set(&key, &input) {
                Ok(()) => *hint |= proxy::is_v6_switch(&key, &given, modern, &input),
                Err(SetError::Bad(m)) => return Err(key_err(&given, Some(&name), m, &origin)),
                Err(SetError::Unknown) if flat::is_unsupported(&key) => {
                    if !is_unset(&key, &input) {
                        warnings.push(format!(
                            "config key {given:?} in namespace {name:?} is not supported yet; \
                             ignored"
                        ));
                    }
                }
                Err(SetError::Unknown) => {
                    warnings.push(format!(
                        "unknown config key {given:?} in namespace {name:?}"
                    ));
                }
            }
        }
        let options = acc.finish(&format!("namespace {name:?}"), warnings);
        out.push(Namespace { name, options });
    }
    Ok(out)
}
