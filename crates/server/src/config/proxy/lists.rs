//! The named lists of Centrifugo 6 proxy keys: `proxies` (named proxy objects, referenced by
//! `*_proxy_name`) and `rpc.namespaces`. From a file each is an array of objects with a
//! `name`; from the environment a JSON array, or names separated by spaces whose fields then
//! come from `CENTRIFUGO_PROXIES_<NAME>_<FIELD>` / `CENTRIFUGO_RPC_NAMESPACES_<NAME>_<FIELD>`,
//! as Centrifugo reads them (and as the loader reads `channel.namespaces`).

use std::collections::{BTreeMap, HashSet};

use rotor_proxy::config::{RpcNamespace, RpcRoute};
use rotor_proxy::ProxySettings;

use super::super::merge::{list_items, list_var, ListVar};
use super::super::nested::list_env_name;
use super::super::values::{boolean, Input};
use super::super::{key_err, ConfigLoadError, SetError};
use super::{fields, proxy_name};

/// A list as the loader found it: the name it was given under, its value and origin.
pub(crate) struct ListEntry<'a> {
    pub given: &'a str,
    pub input: &'a Input,
    pub origin: &'a str,
}

/// Fields of an item: the file's, overlaid with the item's environment variables.
type Fields = BTreeMap<String, (Input, String)>;

fn item_fields(
    list: &str,
    name: &str,
    file: Vec<(String, serde_json::Value)>,
    known: &[&str],
    e: &ListEntry,
    vars: &[ListVar],
    used: &mut HashSet<String>,
) -> Fields {
    let mut out: Fields = file
        .into_iter()
        .filter(|(k, v)| k != "name" && !v.is_null())
        .map(|(k, v)| (k, (Input::Json(v), e.origin.to_string())))
        .collect();
    for field in known {
        if let Some(v) = list_var(vars, used, &list_env_name(list, name, field)) {
            let origin = format!("from env {}", v.var);
            out.insert(field.to_string(), (Input::Env(v.value.clone()), origin));
        }
    }
    out
}

/// The `proxies` list.
pub(crate) fn parse_named(
    e: &ListEntry,
    vars: &[ListVar],
    used: &mut HashSet<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ProxySettings>, ConfigLoadError> {
    let mut out = Vec::new();
    for (name, obj) in list_items(e.input, e.given, e.origin)? {
        let file = fields::leaves(&obj);
        let known = fields::FIELDS;
        let mut s = ProxySettings {
            name: name.clone(),
            ..ProxySettings::default()
        };
        for (field, (input, origin)) in item_fields("proxies", &name, file, known, e, vars, used) {
            match fields::set_field(&mut s, &field, &input) {
                Ok(()) => {}
                Err(SetError::Bad(m)) => {
                    let key = format!("proxies[{name}].{field}");
                    return Err(key_err(&key, None, m, &origin));
                }
                Err(SetError::Unknown) => {
                    warnings.push(format!("unknown config key {field:?} in proxies[{name}]"));
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// The `rpc.namespaces` list.
pub(crate) fn parse_rpc_namespaces(
    e: &ListEntry,
    vars: &[ListVar],
    used: &mut HashSet<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<RpcNamespace>, ConfigLoadError> {
    const KNOWN: &[&str] = &["proxy_enabled", "proxy_name"];
    let mut out = Vec::new();
    for (name, obj) in list_items(e.input, e.given, e.origin)? {
        let file = obj
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let list = "rpc.namespaces";
        let mut route = RpcRoute::default();
        for (field, (input, origin)) in item_fields(list, &name, file, KNOWN, e, vars, used) {
            let applied = match field.as_str() {
                "proxy_enabled" => boolean(&input).map(|b| route.proxy_enabled = b),
                "proxy_name" => proxy_name(&input).map(|n| route.proxy_name = n),
                _ => {
                    let msg = format!("unknown config key {field:?} in rpc namespace {name:?}");
                    warnings.push(msg);
                    continue;
                }
            };
            if let Err(m) = applied {
                let key = format!("rpc.namespaces[{name}].{field}");
                return Err(key_err(&key, None, m, &origin));
            }
        }
        out.push(RpcNamespace { name, route });
    }
    Ok(out)
}
