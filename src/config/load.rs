//! Layering, `${VAR}` interpolation and strict deserialisation that reports every problem with
//! its path.

use super::types::{BackendConfig, ServerConfig, Settings, TenantConfig};
use super::validate::validate;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use toml::{Table, Value};

/// Every problem found in the configuration, each with its path.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.0 {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Loads the layered configuration from `base` (usually `config/default.toml`), an optional
/// override file, and `env` (pairs like the process environment).
pub fn load(base: Option<&Path>, file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let mut errors = Vec::new();
    let mut merged = Table::new();
    for path in [base, file].into_iter().flatten() {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| s.parse::<Table>().map_err(|e| e.to_string()))
        {
            Ok(table) => merge(&mut merged, table),
            Err(e) => errors.push(format!("{}: {}", path.display(), e.trim())),
        }
    }
    apply_env(&mut merged, env, &mut errors);
    let mut root = Value::Table(merged);
    interpolate(&mut root, env, "", &mut errors);
    let Value::Table(table) = root else { unreachable!("root stays a table") };
    let settings = deserialize(table, &mut errors);
    if let Some(settings) = &settings {
        validate(settings, &mut errors);
    }
    match settings {
        Some(s) if errors.is_empty() => Ok(s),
        _ => Err(ConfigError(errors)),
    }
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(key, v);
            }
        }
    }
}

/// `SWITCHBOARD__TENANTS__DEMO__ENTRY=ai` sets `tenants.demo.entry`. Values parse as TOML
/// (numbers, booleans, arrays) when they can, else as strings.
fn apply_env(root: &mut Table, env: &BTreeMap<String, String>, errors: &mut Vec<String>) {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix("SWITCHBOARD__") else { continue };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            errors.push(format!("{name}: empty path segment"));
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.clone()));
        if let Err(key) = set_path(root, &keys, value) {
            errors.push(format!("{name}: `{key}` is not a section"));
        }
    }
}

fn set_path(table: &mut Table, keys: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().expect("at least one key");
    let Some((first, rest)) = parents.split_first() else {
        table.insert(last.clone(), value);
        return Ok(());
    };
    let entry = table.entry(first.clone()).or_insert_with(|| Value::Table(Table::new()));
    let Value::Table(next) = entry else { return Err(first.clone()) };
    let mut path = rest.to_vec();
    path.push(last.clone());
    set_path(next, &path, value)
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string.
fn interpolate(value: &mut Value, env: &BTreeMap<String, String>, path: &str, errors: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(e) => errors.push(format!("{path}: {e}")),
        },
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                interpolate(v, env, &p, errors);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                interpolate(v, env, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

fn expand(s: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (env.get(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn section<T: DeserializeOwned>(value: Value, path: &str, errors: &mut Vec<String>) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." { path.to_owned() } else { format!("{path}.{inner}") };
            errors.push(format!("{full}: {}", e.inner().message()));
            None
        }
    }
}

/// Deserialises section by section so one bad tenant does not hide another's problems.
fn deserialize(mut table: Table, errors: &mut Vec<String>) -> Option<Settings> {
    let mut settings = Settings::default();
    let mut ok = true;
    if let Some(v) = table.remove("server") {
        match section::<ServerConfig>(v, "server", errors) {
            Some(s) => settings.server = s,
            None => ok = false,
        }
    }
    if let Some(v) = table.remove("backend") {
        match section::<BackendConfig>(v, "backend", errors) {
            Some(b) => settings.backend = b,
            None => ok = false,
        }
    }
    match table.remove("tenants") {
        Some(Value::Table(tenants)) => {
            for (id, v) in tenants {
                match section::<TenantConfig>(v, &format!("tenants.{id}"), errors) {
                    Some(t) => {
                        settings.tenants.insert(id, t);
                    }
                    None => ok = false,
                }
            }
        }
        Some(_) => {
            errors.push("tenants: must be a table of tenants".into());
            ok = false;
        }
        None => {}
    }
    for key in table.keys() {
        errors.push(format!("{key}: unknown section (expected server, backend or tenants)"));
        ok = false;
    }
    ok.then_some(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn interpolation_uses_env_then_default() {
        let e = env(&[("A", "x")]);
        assert_eq!(expand("${A}/${B:-y}", &e).unwrap(), "x/y");
        assert!(expand("${B}", &e).is_err());
    }

    #[test]
    fn env_overrides_nested_keys_with_typed_values() {
        let mut root: Table = "[server]\nbind = \"a\"".parse().unwrap();
        let mut errors = vec![];
        apply_env(
            &mut root,
            &env(&[("SWITCHBOARD__SERVER__HTTP_WORKERS", "4"), ("SWITCHBOARD__SERVER__BIND", "0.0.0.0:80")]),
            &mut errors,
        );
        assert!(errors.is_empty());
        assert_eq!(root["server"]["http_workers"].as_integer(), Some(4));
        assert_eq!(root["server"]["bind"].as_str(), Some("0.0.0.0:80"));
    }
}
