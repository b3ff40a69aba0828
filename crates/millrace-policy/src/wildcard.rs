//! Wildcard patterns as IAM uses them: `*` matches any run of characters (also none), `?`
//! exactly one. Actions match case-insensitively; ARNs match case-sensitively, field by field.

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// This exact character.
    Literal(char),
    /// `?`: any one character.
    AnyOne,
    /// `*`: any run of characters, also an empty one.
    AnyRun,
}

/// Compiles `pattern`, reading `*` and `?` as wildcards.
pub(crate) fn compile(pattern: &str) -> Vec<Token> {
    pattern.chars().map(wildcard_token).collect()
}

pub(crate) fn wildcard_token(c: char) -> Token {
    match c {
        '*' => Token::AnyRun,
        '?' => Token::AnyOne,
        other => Token::Literal(other),
    }
}

/// Whether `pattern` matches all of `text`.
///
/// Greedy matching that remembers the last `*` and retries from it, so it runs in
/// O(pattern × text) at worst and never recurses.
pub(crate) fn glob(pattern: &[Token], text: &[char]) -> bool {
    let mut p = 0;
    let mut t = 0;
    // Pattern index just after the last `*`, and the text index that `*` has consumed up to.
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::AnyRun) => {
                last_star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Token::AnyOne) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Token::Literal(c)) if *c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        let Some((after_star, consumed)) = last_star else {
            return false;
        };
        // Let the last `*` eat one more character and try again from there.
        p = after_star;
        t = consumed + 1;
        last_star = Some((after_star, consumed + 1));
    }
    pattern[p..].iter().all(|token| *token == Token::AnyRun)
}

/// Whether `pattern` matches all of `text`.
pub(crate) fn glob_str(pattern: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    glob(pattern, &text)
}

/// The number of `:`-separated fields before the resource part of an ARN
/// (`arn`, partition, service, region, account).
pub(crate) const ARN_PREFIX_FIELDS: usize = 5;

/// Matches an ARN the way IAM matches `Resource` and `ArnLike`: the first five `:`-separated
/// fields (`arn`, partition, service, region, account) are matched one by one, so a wildcard in
/// one of them never reaches into the next; the rest (the resource part, which may hold more
/// `:` and `/`) is matched as a whole.
///
/// A pattern with fewer fields matches its last field against everything left of the ARN, and a
/// pattern without any `:` (`*`, say) is matched against the whole string.
pub(crate) fn arn_matches(pattern: &[Token], arn: &str) -> bool {
    let pattern_fields = split_fields(pattern);
    if pattern_fields.len() == 1 {
        return glob_str(pattern, arn);
    }
    let arn_fields: Vec<&str> = arn.splitn(pattern_fields.len(), ':').collect();
    if arn_fields.len() != pattern_fields.len() {
        return false;
    }
    pattern_fields
        .iter()
        .zip(&arn_fields)
        .all(|(field_pattern, field)| glob_str(field_pattern, field))
}

/// Splits `pattern` at its first five literal `:`.
fn split_fields(pattern: &[Token]) -> Vec<&[Token]> {
    let mut fields = Vec::with_capacity(ARN_PREFIX_FIELDS + 1);
    let mut rest = pattern;
    while fields.len() < ARN_PREFIX_FIELDS {
        let Some(colon) = rest.iter().position(|t| *t == Token::Literal(':')) else {
            break;
        };
        fields.push(&rest[..colon]);
        rest = &rest[colon + 1..];
    }
    fields.push(rest);
    fields
}

/// A compiled `Action`/`NotAction` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionPattern {
    /// `*`: every action of every service.
    Any,
    /// `service:name`, both parts lowercased and possibly with wildcards.
    Scoped {
        service: Vec<Token>,
        name: Vec<Token>,
    },
}

impl ActionPattern {
    /// Whether this entry names `action` (`service:Name`), ignoring case.
    pub(crate) fn matches(&self, action: &str) -> bool {
        let (service_pattern, name_pattern) = match self {
            ActionPattern::Any => return true,
            ActionPattern::Scoped { service, name } => (service, name),
        };
        let Some((service, name)) = action.split_once(':') else {
            return false;
        };
        glob_str(service_pattern, &service.to_lowercase())
            && glob_str(name_pattern, &name.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_glob(pattern: &str, text: &str, expected: bool) {
        assert_eq!(
            glob_str(&compile(pattern), text),
            expected,
            "pattern {pattern:?} against {text:?}"
        );
    }

    #[test]
    fn glob_wildcards() {
        check_glob("*", "", true);
        check_glob("*", "anything", true);
        check_glob("", "", true);
        check_glob("", "a", false);
        check_glob("a?c", "abc", true);
        check_glob("a?c", "ac", false);
        check_glob("a*c", "ac", true);
        check_glob("a*c", "abbbc", true);
        check_glob("a*c", "abbbd", false);
        check_glob("*b*b*", "abxbx", true);
        check_glob("*b*b*", "abx", false);
        check_glob("a*b?d", "axxbxbcd", true);
        check_glob("??", "é!", true);
        check_glob("Stream", "stream", false);
    }

    fn check_arn(pattern: &str, arn: &str, expected: bool) {
        assert_eq!(
            arn_matches(&compile(pattern), arn),
            expected,
            "pattern {pattern:?} against {arn:?}"
        );
    }

    #[test]
    fn arn_fields_are_matched_one_by_one() {
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";
        check_arn("*", arn, true);
        check_arn(arn, arn, true);
        check_arn("arn:aws:kinesis:*:*:*", arn, true);
        check_arn("arn:aws:kinesis:*:123456789012:stream/*", arn, true);
        check_arn(
            "arn:aws:kinesis:us-east-?:123456789012:stream/order?",
            arn,
            true,
        );
        // A `*` in the region cannot swallow the account.
        check_arn("arn:aws:kinesis:*:stream/orders", arn, false);
        check_arn("arn:aws:kinesis:*:999999999999:*", arn, false);
        // The resource part may span `/` and `:`.
        check_arn(
            "arn:aws:kinesis:*:*:stream/*",
            "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/c:1",
            true,
        );
        // Case-sensitive.
        check_arn("arn:aws:kinesis:*:*:stream/Orders", arn, false);
        // Not an ARN: only a whole-string pattern can match.
        check_arn("arn:aws:kinesis:*:*:*", "*", false);
    }

    #[test]
    fn actions_ignore_case() {
        let pattern = ActionPattern::Scoped {
            service: compile("kinesis"),
            name: compile("put*"),
        };
        assert!(pattern.matches("kinesis:PutRecord"));
        assert!(pattern.matches("Kinesis:PUTRECORDS"));
        assert!(!pattern.matches("kinesis:GetRecords"));
        assert!(!pattern.matches("firehose:PutRecord"));
        assert!(!pattern.matches("PutRecord"));
        assert!(ActionPattern::Any.matches("anything:AtAll"));
    }
}
