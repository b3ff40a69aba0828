//! Model `pattern` constraints: Java `java.util.regex` syntax, translated to the `regex` crate and
//! matched against the whole value (AWS uses `Matcher.matches()`), each compiled once.
//!
//! The translation keeps Java's meaning where the two dialects differ on the constructs the AWS
//! models use: `\d`, `\s`, `\w` (and their negations) are ASCII-only in Java but Unicode-aware in
//! Rust, so they become explicit classes; `.` does not match Java's line terminators; Java allows
//! escaping any non-alphanumeric character (`\_`, `\/`), which Rust rejects for some, so such
//! escapes become `\x{..}`. Anything else is passed through and must compile (a test checks every
//! pattern of the models). Look-around, which the `regex` crate lacks, is only supported for the
//! patterns in [`LOOKAROUND_REWRITES`], each rewritten by hand into an equivalent check.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, RwLock};

use regex::Regex;

/// Java's `\s`: `[ \t\n\x0B\f\r]`.
const JAVA_SPACE: &str = r"\t\n\x0B\x0C\r ";

/// Characters Java's `.` does not match without `DOTALL`.
const JAVA_DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";

/// Model patterns with look-around, each with an equivalent without it: a pattern, and a
/// substring the value must not contain.
pub const LOOKAROUND_REWRITES: &[(&str, &str, &str)] = &[
    // IAM `accountAliasType`: `-(?!-)` is a hyphen not followed by another one; since the first
    // and last characters cannot be hyphens, that means "no `--` anywhere".
    (
        r"[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]",
        r"[a-z0-9]([a-z0-9]|-){1,61}[a-z0-9]",
        "--",
    ),
];

/// Translates a Java regular expression to `regex` crate syntax with the same meaning.
pub fn java_to_rust(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut class_depth = 0usize;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                // A dangling backslash is an error in Java too; keep it so compiling fails.
                None => out.push('\\'),
                Some('d') => out.push_str("[0-9]"),
                Some('D') => out.push_str("[^0-9]"),
                Some('s') => {
                    let _ = write!(out, "[{JAVA_SPACE}]");
                }
                Some('S') => {
                    let _ = write!(out, "[^{JAVA_SPACE}]");
                }
                Some('w') => out.push_str("[a-zA-Z0-9_]"),
                Some('W') => out.push_str("[^a-zA-Z0-9_]"),
                Some(escaped) if escaped.is_ascii_alphanumeric() => {
                    out.push('\\');
                    out.push(escaped);
                }
                Some(escaped) => {
                    let _ = write!(out, "\\x{{{:x}}}", u32::from(escaped));
                }
            },
            '[' => {
                class_depth += 1;
                out.push('[');
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            '.' if class_depth == 0 => out.push_str(JAVA_DOT),
            _ => out.push(c),
        }
    }
    out
}

/// Compiles `pattern` (Java syntax, unanchored) so that it must match the whole input. For a
/// pattern of [`LOOKAROUND_REWRITES`] this is the rewritten pattern, which also needs the
/// forbidden substring check that [`matches_whole`] makes.
pub fn compile_full_match(pattern: &str) -> Result<Regex, regex::Error> {
    let pattern = rewrite(pattern).map_or(pattern, |(rewritten, _)| rewritten);
    Regex::new(&format!("^(?:{})$", java_to_rust(pattern)))
}

fn rewrite(pattern: &str) -> Option<(&'static str, &'static str)> {
    LOOKAROUND_REWRITES
        .iter()
        .find(|(java, _, _)| *java == pattern)
        .map(|(_, rewritten, forbidden)| (*rewritten, *forbidden))
}

/// Whether `value` matches all of `pattern`. A pattern that does not compile constrains nothing
/// (the model tests make sure none of the model's patterns is in that case).
pub fn matches_whole(pattern: &'static str, value: &str) -> bool {
    match cached(pattern).as_deref() {
        Some(Matcher { regex, forbidden }) => {
            regex.is_match(value) && forbidden.is_none_or(|forbidden| !value.contains(forbidden))
        }
        None => true,
    }
}

/// A compiled pattern: the regular expression and, for rewritten look-around, the substring the
/// value must not contain.
struct Matcher {
    regex: Regex,
    forbidden: Option<&'static str>,
}

/// Shared, not cloned: cloning a `Regex` allocates a fresh matching cache for the copy.
type Cache = RwLock<HashMap<&'static str, Option<Arc<Matcher>>>>;

fn cached(pattern: &'static str) -> Option<Arc<Matcher>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| RwLock::new(HashMap::new()));
    {
        let read = cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = read.get(pattern) {
            return entry.clone();
        }
    }
    let compiled = compile_full_match(pattern).ok().map(|regex| {
        Arc::new(Matcher {
            regex,
            forbidden: rewrite(pattern).map(|(_, forbidden)| forbidden),
        })
    });
    let mut write = cache
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    write.entry(pattern).or_insert(compiled).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(pattern: &str, value: &str) -> bool {
        compile_full_match(pattern)
            .expect("pattern compiles")
            .is_match(value)
    }

    #[test]
    fn matches_whole_value_only() {
        assert!(full("[a-zA-Z0-9_.-]+", "my-stream_1.0"));
        assert!(!full("[a-zA-Z0-9_.-]+", ""));
        assert!(!full("[a-zA-Z0-9_.-]+", "a b"));
        assert!(full(r"0|([1-9]\d{0,38})", "0"));
        assert!(full(
            r"0|([1-9]\d{0,38})",
            "340282366920938463463374607431768211455"
        ));
        assert!(!full(r"0|([1-9]\d{0,38})", "01"));
        assert!(!full(r"0|([1-9]\d{0,38})", "1x"));
    }

    #[test]
    fn java_classes_stay_ascii() {
        // Arabic-Indic digit: Unicode \d would accept it, Java's \d does not.
        assert!(!full(r"\d{12}", "12345678901\u{0663}"));
        assert!(full(r"\d{12}", "123456789012"));
        // No-break space is not whitespace for Java, so \S accepts it.
        assert!(full(r"\S+", "a\u{a0}b"));
        assert!(!full(r"\S+", "a b"));
        assert!(!full(r"\S+", "a\u{b}b"));
        assert!(full(r"[\d]+", "42"));
        assert!(!full(r"[^\d]+", "42"));
    }

    #[test]
    fn java_escapes_of_punctuation() {
        assert!(full(r"[a-zA-Z0-9\.\_]+", "a_b.c"));
        assert!(!full(r"[a-zA-Z0-9\.\_]+", "a-b"));
        assert!(full(r"stream\/[a-z]+", "stream/abc"));
        assert!(full(r"[\.\-_/#A-Za-z0-9]+", "/aws/a-b#c"));
        assert!(!full(r"[\.\-_/#A-Za-z0-9]+", "a+b"));
        assert!(full(r"a\$", "a$"));
    }

    #[test]
    fn dot_excludes_java_line_terminators() {
        assert!(full("a.c", "abc"));
        assert!(!full("a.c", "a\nc"));
        assert!(!full("a.c", "a\u{2028}c"));
        assert!(full("[.]", "."));
        assert!(!full("[.]", "x"));
    }

    #[test]
    fn lookahead_rewrite_keeps_java_meaning() {
        let alias = LOOKAROUND_REWRITES[0].0;
        assert!(matches_whole(alias, "my-account-1"));
        assert!(matches_whole(alias, "a-b"));
        assert!(!matches_whole(alias, "my--account"));
        assert!(!matches_whole(alias, "-abc"));
        assert!(!matches_whole(alias, "abc-"));
        assert!(!matches_whole(alias, "ab"));
        assert!(!matches_whole(alias, &"a".repeat(64)));
        assert!(matches_whole(alias, &"a".repeat(63)));
    }

    #[test]
    fn cache_returns_same_answers() {
        for _ in 0..3 {
            assert!(matches_whole("[a-z]+", "abc"));
            assert!(!matches_whole("[a-z]+", "ABC"));
        }
        // Broken patterns constrain nothing rather than panic.
        assert!(matches_whole("(", "anything"));
    }
}
