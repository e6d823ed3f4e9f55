//! [`Secret`]: a value that came from the environment (a token, a password, a URL with its
//! credential). It compares like its value and never prints; the config reads it, the
//! notifiers, the prober and the server use it.

/// A value read from the environment: compared like its value, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[secret]")
    }
}

/// What stands for a secret wherever a setting is shown (`check-config --print`).
pub const HIDDEN: &str = "***";
