//! A string that must never be shown: JIT configs travelling inside commands.

use serde::{Deserialize, Serialize};

/// A secret value carried on the bus (today: a runner's encoded JIT config).
///
/// It serializes as a plain string, because the receiver needs it, but `Debug` and `Display`
/// never print it. Call [`Secret::expose`] only at the point where the value is handed over.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("eyJzZWNyZXQiOiJqaXQifQ==");
        assert!(!format!("{secret:?}").contains("eyJ"));
        assert!(!format!("{secret}").contains("eyJ"));
        assert_eq!(secret.expose(), "eyJzZWNyZXQiOiJqaXQifQ==");
    }
}
