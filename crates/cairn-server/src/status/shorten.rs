//! Cutting echoed input short before it leaves in an error. Broker errors quote what the client
//! sent (a topic name, a group id, a config value) with Rust's `{:?}`; echoed whole, a
//! 10,000-character name overflows gRPC's metadata limits (`grpc-message` and
//! `grpc-status-details-bin` both carry it), and a stock grpcio client then sees "received
//! metadata size exceeds hard limit" instead of the error. Every message and ErrorInfo value
//! passes through here on its way out. The log keeps the whole text: this is for the wire only.

/// Characters of an echoed value kept; the rest is replaced by `…(N bytes)`.
pub const ECHO_PREFIX_CHARS: usize = 64;
/// Characters of a whole message kept: a backstop for input echoed without quotes.
pub const MESSAGE_MAX_CHARS: usize = 1024;

/// `value` as it is when it has at most [`ECHO_PREFIX_CHARS`] characters, else its first
/// [`ECHO_PREFIX_CHARS`] characters followed by `…(N bytes)`, N being its whole length.
pub fn shorten_value(value: &str) -> String {
    match value.char_indices().nth(ECHO_PREFIX_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}…({} bytes)", &value[..cut], value.len()),
    }
}

/// `message` with every double-quoted string in it (Rust's `{:?}` of an echoed value) longer
/// than [`ECHO_PREFIX_CHARS`] characters cut as [`shorten_value`] cuts a value (N counts the
/// value's bytes, not its escaped form), and the whole cut to [`MESSAGE_MAX_CHARS`] characters.
pub fn shorten_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_MAX_CHARS + 32));
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let inner = &rest[open + 1..];
        match closing_quote(inner) {
            Some(close) => {
                push_quoted(&inner[..close], &mut out);
                out.push('"');
                rest = &inner[close + 1..];
            }
            // An unbalanced quote: what follows it is cut like a quoted value.
            None => {
                push_quoted(inner, &mut out);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    match out.char_indices().nth(MESSAGE_MAX_CHARS) {
        None => out,
        Some((cut, _)) => format!("{}…({} bytes)", &out[..cut], out.len()),
    }
}

/// The byte index of the `"` that closes a `{:?}` string starting at `text` (escaped quotes
/// skipped).
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (idx, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(idx),
            _ => {}
        }
    }
    None
}

/// Appends the escaped contents of a quoted string, cut after [`ECHO_PREFIX_CHARS`] characters
/// of the value. An escape sequence counts as the one character it stands for and is never
/// split, so the cut text is still a valid `{:?}` string.
fn push_quoted(escaped: &str, out: &mut String) {
    let mut kept_bytes = None;
    let mut value_bytes = 0usize;
    let mut unit_count = 0usize;
    let mut rest = escaped;
    while !rest.is_empty() {
        let (unit_len, unit_value_bytes) = escape_unit(rest);
        if unit_count == ECHO_PREFIX_CHARS {
            kept_bytes = Some(escaped.len() - rest.len());
        }
        unit_count += 1;
        value_bytes += unit_value_bytes;
        rest = &rest[unit_len..];
    }
    match kept_bytes {
        None => out.push_str(escaped),
        Some(cut) => {
            out.push_str(&escaped[..cut]);
            out.push_str(&format!("…({value_bytes} bytes)"));
        }
    }
}

/// The length in `text` of its first character or escape sequence, and how many bytes of the
/// value that stands for.
fn escape_unit(text: &str) -> (usize, usize) {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return (0, 0);
    };
    if first != '\\' {
        return (first.len_utf8(), first.len_utf8());
    }
    match chars.next() {
        // `\u{1f600}`: the value is the character that code point names.
        Some('u') if text[2..].starts_with('{') => match text.find('}') {
            Some(end) => {
                let value = u32::from_str_radix(&text[3..end], 16)
                    .ok()
                    .and_then(char::from_u32)
                    .map_or(1, char::len_utf8);
                (end + 1, value)
            }
            None => (1, 1),
        },
        Some(second) => (1 + second.len_utf8(), 1),
        None => (1, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(shorten_value("orders"), "orders");
        let message = r#"invalid topic name "a\"b": bad"#;
        assert_eq!(shorten_message(message), message);
        let exactly = "x".repeat(ECHO_PREFIX_CHARS);
        assert_eq!(shorten_value(&exactly), exactly);
    }

    #[test]
    fn a_long_value_keeps_its_prefix_and_says_how_long_it_was() {
        let name = "a".repeat(10_000);
        assert_eq!(
            shorten_value(&name),
            format!("{}…(10000 bytes)", "a".repeat(ECHO_PREFIX_CHARS))
        );
    }

    #[test]
    fn a_long_quoted_value_is_cut_and_the_reason_after_it_kept() {
        let name = "a".repeat(10_000);
        let message = format!("invalid topic name {name:?}: longer than 249 characters");
        assert_eq!(
            shorten_message(&message),
            format!(
                "invalid topic name \"{}…(10000 bytes)\": longer than 249 characters",
                "a".repeat(ECHO_PREFIX_CHARS)
            )
        );
    }

    #[test]
    fn escapes_count_as_one_character_and_are_never_split() {
        // 63 plain characters, then escapes: the cut falls after the first escape.
        let value = format!("{}\n\u{7}\"{}", "b".repeat(63), "c".repeat(100));
        let shortened = shorten_message(&format!("key {value:?} refused"));
        assert_eq!(
            shortened,
            format!(
                "key \"{}\\n…({} bytes)\" refused",
                "b".repeat(63),
                value.len()
            )
        );
    }

    #[test]
    fn unquoted_floods_are_capped_as_a_whole() {
        let message = "z".repeat(5_000);
        let shortened = shorten_message(&message);
        let tail = "…(5000 bytes)";
        assert_eq!(
            shortened.chars().count(),
            MESSAGE_MAX_CHARS + tail.chars().count()
        );
        assert!(shortened.ends_with(tail), "{shortened}");
    }

    #[test]
    fn an_unbalanced_quote_cuts_what_follows() {
        let message = format!("bad \"{}", "q".repeat(200));
        assert_eq!(
            shorten_message(&message),
            format!("bad \"{}…(200 bytes)", "q".repeat(ECHO_PREFIX_CHARS))
        );
    }
}
