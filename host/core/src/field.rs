//! [`FieldError`]: a value of the config refused, with the field it was in. The config
//! resolves the file with it, and each notification service checks its own fields with it.

/// A refused value: its field (`timeout`, `headers.Authorization`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// The same error, with the field named from one level up (`plugins.` + `time_limit`).
    pub fn under(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}.{}", self.field),
            message: self.message,
        }
    }
}

impl<F: Into<String>, M: Into<String>> From<(F, M)> for FieldError {
    fn from((field, message): (F, M)) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
