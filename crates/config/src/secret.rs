//! Secrets as a type. A `Secret<T>` never prints its value (`Debug` shows `Secret(***)`)
//! and cannot be serialized; code must call [`Secret::expose`] to read it, which makes
//! every use greppable. Config files never hold secrets inline: they name an
//! environment variable or a file, resolved when the config is loaded.

use std::fmt;

/// A value that must never reach a log line, an error message or a serialized form.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Reads the secret. Callers must not log or persist the result.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new(String::from("sk-live-very-secret"));
        let shown = format!("{secret:?} {:#?}", secret);
        assert!(!shown.contains("very-secret"), "{shown}");
        assert_eq!(secret.expose(), "sk-live-very-secret");
    }
}
