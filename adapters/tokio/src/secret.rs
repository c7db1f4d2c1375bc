//! Passwords: kept only in the adapter, never printed, zeroed on drop.

use std::fmt;

use zeroize::Zeroizing;

/// A bind password. Its `Debug` and `Display` print a placeholder, never the
/// secret, and its memory is zeroed when it is dropped. Clones are separate
/// zeroed-on-drop copies.
#[derive(Clone, Default)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password. The `String` given is moved in, not copied.
    pub fn new(secret: impl Into<String>) -> Self {
        Password(Zeroizing::new(secret.into()))
    }

    /// The secret, for the bind call. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the password is empty (an empty simple bind is an
    /// *unauthenticated* bind that servers accept; see RFC 4513 §5.1.2).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares in time independent of where the first difference is.
    pub(crate) fn ct_eq(&self, other: &Password) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a password file: its content minus one trailing newline (LF or
/// CRLF), non-empty, UTF-8. The error is a reason without anything read
/// from the file.
pub(crate) fn read_password_file(file: &std::path::Path) -> Result<Password, String> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8".to_owned())?;
    let text = match text.strip_suffix('\n') {
        Some(t) => t.strip_suffix('\r').unwrap_or(t),
        None => text,
    };
    if text.is_empty() {
        return Err("empty".into());
    }
    Ok(Password::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let p = Password::new("hunter2-very-secret");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{p}").contains("hunter2"));
        assert!(!format!("{:#?}", Some(&p)).contains("hunter2"));
        assert_eq!(p.expose(), "hunter2-very-secret");
    }

    #[test]
    fn equality_is_by_content() {
        assert!(Password::new("abc").ct_eq(&Password::new("abc")));
        assert!(!Password::new("abc").ct_eq(&Password::new("abd")));
        assert!(!Password::new("abc").ct_eq(&Password::new("abcd")));
    }
}
