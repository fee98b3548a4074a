//! Configuration errors: every problem names the file, the dotted field path and the reason.
//!
//! Validation collects all problems before returning, so one `shr registration check` run
//! shows everything an operator has to fix.

use std::fmt;

/// One problem in a configuration (or legacy registration) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in, as given to the loader.
    pub file: String,
    /// The dotted path of the field, e.g. `registrations[1].auth.pat`.
    pub field: String,
    /// What is wrong and, where it helps, how to fix it. Never contains a secret value.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.reason)
    }
}

/// Every problem found in one file; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The problems, in the order they were found.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Whether some problem is about exactly `field`.
    pub fn has_field(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects errors for one file while validating.
#[derive(Debug)]
pub(crate) struct Collector {
    file: String,
    errors: Vec<ConfigError>,
}

impl Collector {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Records `result`'s error under `field` and returns its value, if any.
    pub(crate) fn check<T>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|reason| self.push(field, reason)).ok()
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors {
                errors: self.errors,
            })
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn into_errors(self) -> ConfigErrors {
        ConfigErrors {
            errors: self.errors,
        }
    }
}
