//! Validation of text, times and currencies from outside, one rule set for
//! every endpoint: a name that reaches a gate's screen, an email or a
//! manifest is printable, readable left to right as typed, and not empty to
//! the eye.

use crate::error::{ApiError, ApiResult};

/// Whether `c` reorders text when displayed (bidirectional embeddings,
/// overrides, isolates and marks): a name holding one can show as something
/// else than what it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` draws nothing (zero-width characters and whitespace).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'
                | '\u{200C}'
                | '\u{200D}'
                | '\u{2060}'
                | '\u{FEFF}'
                | '\u{180E}'
                | '\u{00AD}'
        )
}

/// Trims `value` and checks it is `min..=max` characters of displayable
/// text: no NUL or other control character (line breaks and tabs only when
/// `multiline`), no bidirectional control, and, when not empty, at least
/// one visible character.
pub fn text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> ApiResult<String> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(ApiError::Validation(format!(
            "{field} must be {min} to {max} characters"
        )));
    }
    if let Some(c) = v
        .chars()
        .find(|&c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(ApiError::Validation(format!(
            "{field} contains the control character U+{:04X}: remove it",
            u32::from(c)
        )));
    }
    if let Some(c) = v.chars().find(|&c| is_bidi_control(c)) {
        return Err(ApiError::Validation(format!(
            "{field} contains the text-direction control U+{:04X}, which can disguise what it says: remove it",
            u32::from(c)
        )));
    }
    if n > 0 && v.chars().all(is_invisible) {
        return Err(ApiError::Validation(format!(
            "{field} must contain visible characters"
        )));
    }
    Ok(v.to_string())
}

/// Whether `code` is an active ISO 4217 currency (not a precious metal,
/// testing or "no currency" code such as XAU, XTS or XXX).
pub fn currency(code: &str) -> bool {
    iso_currency::Currency::from_code(code).is_some_and(|c| !c.is_special())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hide_or_disguise_what_they_say_are_refused() {
        for bad in [
            "A\u{0}B",
            "Tab\u{7}bell",
            "evil\u{202E}gnp.exe",
            "\u{2066}isolated",
            "\u{200B}\u{200D}\u{FEFF}",
            "line\nbreak",
        ] {
            assert!(
                text("name", bad, 1, 100, false).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(
            text("name", "  Zoë Ørsted-Ñúñez 李  ", 1, 100, false).unwrap(),
            "Zoë Ørsted-Ñúñez 李",
            "ordinary names in any script pass, trimmed"
        );
        assert!(text("description", "two\nlines", 0, 100, true).is_ok());
        assert!(text("description", "", 0, 100, true).is_ok());
    }

    #[test]
    fn only_real_iso_4217_currencies_pass() {
        for good in ["EUR", "USD", "JPY", "DKK", "CHF"] {
            assert!(currency(good), "{good}");
        }
        for bad in ["ZZZ", "XXX", "XTS", "eur", "EU", "EURO", ""] {
            assert!(!currency(bad), "{bad}");
        }
    }
}
