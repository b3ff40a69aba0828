//! Filter patterns for unstructured log events: terms and quoted phrases that must all appear
//! (case-sensitive), `?term` alternatives of which one must appear, and `-term` exclusions.
//! An empty pattern matches everything.

pub struct Pattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

impl Pattern {
    pub fn parse(text: &str) -> Pattern {
        let mut pattern = Pattern {
            all: Vec::new(),
            any: Vec::new(),
            none: Vec::new(),
        };
        let mut chars = text.trim().chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let mut kind = ' ';
            if c == '?' || c == '-' {
                kind = c;
                chars.next();
            }
            let mut term = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                term.push(escaped);
                            }
                        }
                        '"' => break,
                        c => term.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    term.push(c);
                    chars.next();
                }
            }
            if term.is_empty() {
                continue;
            }
            match kind {
                '?' => pattern.any.push(term),
                '-' => pattern.none.push(term),
                _ => pattern.all.push(term),
            }
        }
        pattern
    }

    pub fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn terms_phrases_alternatives_and_exclusions() {
        let line = "partitionKey=user-1 sequenceNumber=1 data=hello from user-1";
        assert!(Pattern::parse("").matches(line));
        assert!(Pattern::parse("hello user-1").matches(line));
        assert!(Pattern::parse("\"hello from user-1\"").matches(line));
        assert!(!Pattern::parse("\"from hello\"").matches(line));
        assert!(Pattern::parse("?nothing ?hello").matches(line));
        assert!(!Pattern::parse("?nothing ?absent").matches(line));
        assert!(!Pattern::parse("hello -user-1").matches(line));
        assert!(!Pattern::parse("Hello").matches(line));
    }
}
