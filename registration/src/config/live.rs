//! Live registrations: `[[registrations]]` tables applied at run time (`shr registration
//! apply`) and merged into a running process's configuration.
//!
//! Both paths validate by merging the tables into the process's own configuration text and
//! parsing the result, so a live registration passes exactly the checks a registration in
//! the file would (tenant exists, labels, limits, scope, duplicate names and label clashes).

use std::sync::Arc;

use super::Config;
use crate::{ConfigError, ConfigErrors, SettingsRegistry};

/// One registration of a registration file, ready to store: its name, tenant and TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    pub name: String,
    pub tenant: String,
    /// The `[[registrations]]` table as TOML (one table, no header).
    pub toml: String,
}

impl Config {
    /// Validates a registration file (`[[registrations]]` tables only) against this
    /// configuration's tenants and registrations, as if the file's tables were appended to
    /// it. Errors name `file` and the field in the file (`registrations[0].labels`).
    pub fn live_tables(
        &self,
        text: &str,
        file: &str,
        registry: &dyn SettingsRegistry,
    ) -> Result<Vec<LiveTable>, ConfigErrors> {
        let fail = |field: &str, reason: String| ConfigErrors {
            errors: vec![ConfigError {
                file: file.to_owned(),
                field: field.to_owned(),
                reason,
            }],
        };
        let doc: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let reason = e.message().trim_end().to_owned();
            fail(
                "(syntax)",
                match line {
                    Some(line) => format!("{reason} (line {line})"),
                    None => reason,
                },
            )
        })?;
        if let Some(other) = doc.keys().find(|k| *k != "registrations") {
            return Err(fail(
                other,
                "a registration file holds only [[registrations]] tables".into(),
            ));
        }
        // Types first, on the file itself, so a line number points into it.
        super::validate::deserialize(text, file)?;
        if let Some(other) = doc.keys().find(|k| *k != "registrations") {
            return Err(fail(
                other,
                "a registration file holds only [[registrations]] tables".into(),
            ));
        }
        let tables: Vec<toml::Table> = match doc.get("registrations") {
            Some(toml::Value::Array(items)) if !items.is_empty() => (items.iter())
                .enumerate()
                .map(|(i, v)| match v {
                    toml::Value::Table(t) => Ok(t.clone()),
                    _ => Err(fail(
                        &format!("registrations[{i}]"),
                        "must be a table".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(fail(
                    "registrations",
                    "at least one [[registrations]] table is required".into(),
                ));
            }
        };
        let base = self.registrations.len();
        let merged = self
            .merged(&tables, file, registry)
            .map_err(|errors| ConfigErrors {
                errors: (errors.errors.into_iter())
                    .map(|e| ConfigError {
                        field: shift_index(&e.field, base),
                        file: file.to_owned(),
                        reason: e.reason,
                    })
                    .collect(),
            })?;
        let regs = &merged.registrations[base..];
        Ok((regs.iter().zip(&tables))
            .map(|(reg, table)| LiveTable {
                name: reg.name.clone(),
                tenant: reg.tenant.clone(),
                toml: toml::to_string(table).unwrap_or_default(),
            })
            .collect())
    }

    /// This configuration with the live registrations `tables` (TOML, one table each)
    /// appended. A table that does not validate in this configuration (unknown tenant, a
    /// name or label clash with an earlier one) is left out and returned with its errors,
    /// by index into `tables`; the others are kept.
    pub fn with_live(
        &self,
        tables: &[&str],
        registry: &dyn SettingsRegistry,
    ) -> (Config, Vec<(usize, ConfigErrors)>) {
        let mut parsed = Vec::new();
        let mut rejected = Vec::new();
        for (i, text) in tables.iter().enumerate() {
            match toml::from_str::<toml::Table>(text) {
                Ok(table) => parsed.push((i, table)),
                Err(e) => rejected.push((
                    i,
                    ConfigErrors {
                        errors: vec![ConfigError {
                            file: "(live registration)".into(),
                            field: "(syntax)".into(),
                            reason: e.message().trim_end().to_owned(),
                        }],
                    },
                )),
            }
        }
        let all: Vec<toml::Table> = parsed.iter().map(|(_, t)| t.clone()).collect();
        if let Ok(config) = self.merged(&all, "(live registrations)", registry) {
            return (config, rejected);
        }
        // One by one, keeping each that fits next to those kept before it.
        let mut kept: Vec<toml::Table> = Vec::new();
        let mut config = self.clone();
        for (i, table) in parsed {
            kept.push(table);
            match self.merged(&kept, "(live registration)", registry) {
                Ok(next) => config = next,
                Err(errors) => {
                    kept.pop();
                    rejected.push((i, errors));
                }
            }
        }
        rejected.sort_by_key(|(i, _)| *i);
        (config, rejected)
    }

    /// Parses this configuration's text with `extra` appended to its registrations.
    fn merged(
        &self,
        extra: &[toml::Table],
        file: &str,
        registry: &dyn SettingsRegistry,
    ) -> Result<Config, ConfigErrors> {
        let mut doc: toml::Table = toml::from_str(self.text()).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                file: file.to_owned(),
                field: "(syntax)".into(),
                reason: e.message().to_owned(),
            }],
        })?;
        let regs = doc
            .entry("registrations")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        if let toml::Value::Array(items) = regs {
            items.extend(extra.iter().cloned().map(toml::Value::Table));
        }
        let text = toml::to_string(&doc).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                file: file.to_owned(),
                field: "(document)".into(),
                reason: e.to_string(),
            }],
        })?;
        let mut config = Config::parse(&text, file, registry)?;
        // Merging again later starts from the file's own text, not this merge.
        config.text = Arc::clone(&self.text);
        Ok(config)
    }
}

/// `registrations[k].x` → `registrations[k - base].x` (the index in the applied file).
fn shift_index(field: &str, base: usize) -> String {
    let Some(rest) = field.strip_prefix("registrations[") else {
        return field.to_owned();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return field.to_owned();
    };
    match index.parse::<usize>() {
        Ok(i) if i >= base => format!("registrations[{}]{tail}", i - base),
        _ => field.to_owned(),
    }
}
