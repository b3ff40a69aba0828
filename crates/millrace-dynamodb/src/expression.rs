//! The expression languages: condition (and filter, key condition), update and projection
//! expressions, parsed with `ExpressionAttributeNames` / `ExpressionAttributeValues`
//! substituted and their use tracked, so unused or undefined placeholders get DynamoDB's errors.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{validation, DynamoError};
use crate::value::Value;

/// One step of a document path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Name(String),
    Index(usize),
}

pub type Path = Vec<Step>;

/// Prints a path the way DynamoDB's overlap errors do: `[a, b, [0]]`.
pub fn path_text(path: &Path) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|step| match step {
            Step::Name(name) => name.clone(),
            Step::Index(index) => format!("[{index}]"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

#[derive(Clone, Debug)]
pub enum Operand {
    Path(Path),
    Value(Value),
    Size(Path),
    IfNotExists(Path, Box<Operand>),
    ListAppend(Box<Operand>, Box<Operand>),
    Plus(Box<Operand>, Box<Operand>),
    Minus(Box<Operand>, Box<Operand>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
pub enum Condition {
    Compare(Operand, Comparator, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    AttributeType(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    /// Legacy `NOT_CONTAINS`.
    NotContains(Operand, Operand),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

#[derive(Clone, Debug)]
pub enum UpdateAction {
    Set(Path, Operand),
    Remove(Path),
    Add(Path, Value),
    Delete(Path, Value),
}

/// The placeholders of one request and which of them the expressions used.
pub struct Placeholders {
    names: BTreeMap<String, String>,
    values: BTreeMap<String, Value>,
    used_names: RefCell<BTreeSet<String>>,
    used_values: RefCell<BTreeSet<String>>,
}

impl Placeholders {
    pub fn new(names: BTreeMap<String, String>, values: BTreeMap<String, Value>) -> Placeholders {
        Placeholders {
            names,
            values,
            used_names: RefCell::default(),
            used_values: RefCell::default(),
        }
    }

    /// After every expression of the request is parsed: DynamoDB refuses unused placeholders.
    pub fn check_all_used(&self) -> Result<(), DynamoError> {
        let used = self.used_names.borrow();
        let unused: Vec<&String> = self.names.keys().filter(|k| !used.contains(*k)).collect();
        if !unused.is_empty() {
            return Err(validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                join(&unused)
            )));
        }
        let used = self.used_values.borrow();
        let unused: Vec<&String> = self.values.keys().filter(|k| !used.contains(*k)).collect();
        if !unused.is_empty() {
            return Err(validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                join(&unused)
            )));
        }
        Ok(())
    }
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which expression is being parsed, for error texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Condition,
    Filter,
    KeyCondition,
    Update,
    Projection,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Condition => "ConditionExpression",
            Kind::Filter => "FilterExpression",
            Kind::KeyCondition => "KeyConditionExpression",
            Kind::Update => "UpdateExpression",
            Kind::Projection => "ProjectionExpression",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Name(String),
    Value(String),
    Integer(usize),
    Symbol(&'static str),
}

struct Lexed {
    token: Token,
    start: usize,
    end: usize,
}

const SYMBOLS: &[&str] = &[
    "<>", "<=", ">=", "=", "<", ">", "(", ")", "[", "]", ",", ".", "+", "-",
];

fn lex(source: &str) -> Result<Vec<Lexed>, (usize, String)> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let byte = bytes[position];
        if byte.is_ascii_whitespace() {
            position += 1;
            continue;
        }
        let start = position;
        let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let token = if byte == b'#' || byte == b':' {
            position += 1;
            while position < bytes.len() && word_byte(bytes[position]) {
                position += 1;
            }
            let text = source[start..position].to_owned();
            if text.len() == 1 {
                return Err((start, text));
            }
            if byte == b'#' {
                Token::Name(text)
            } else {
                Token::Value(text)
            }
        } else if byte.is_ascii_digit() {
            while position < bytes.len() && bytes[position].is_ascii_digit() {
                position += 1;
            }
            let text = &source[start..position];
            Token::Integer(text.parse().map_err(|_| (start, text.to_owned()))?)
        } else if word_byte(byte) {
            while position < bytes.len() && word_byte(bytes[position]) {
                position += 1;
            }
            Token::Word(source[start..position].to_owned())
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| source[start..].starts_with(**s)) {
            position += symbol.len();
            Token::Symbol(symbol)
        } else {
            let end = source[start..]
                .chars()
                .next()
                .map(|c| start + c.len_utf8())
                .unwrap_or(start + 1);
            return Err((start, source[start..end].to_owned()));
        };
        tokens.push(Lexed {
            token,
            start,
            end: position,
        });
    }
    Ok(tokens)
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Lexed>,
    position: usize,
    kind: Kind,
    placeholders: &'a Placeholders,
}

/// Parses a condition, filter or key-condition expression.
pub fn parse_condition(
    source: &str,
    kind: Kind,
    placeholders: &Placeholders,
) -> Result<Condition, DynamoError> {
    let mut parser = Parser::new(source, kind, placeholders)?;
    let condition = parser.condition()?;
    parser.finish()?;
    Ok(condition)
}

/// Parses an update expression into its actions, in order.
pub fn parse_update(
    source: &str,
    placeholders: &Placeholders,
) -> Result<Vec<UpdateAction>, DynamoError> {
    let mut parser = Parser::new(source, Kind::Update, placeholders)?;
    let actions = parser.update()?;
    parser.finish()?;
    Ok(actions)
}

/// Parses a projection expression into its paths.
pub fn parse_projection(
    source: &str,
    placeholders: &Placeholders,
) -> Result<Vec<Path>, DynamoError> {
    let mut parser = Parser::new(source, Kind::Projection, placeholders)?;
    let mut paths = vec![parser.path()?];
    while parser.eat_symbol(",") {
        paths.push(parser.path()?);
    }
    parser.finish()?;
    Ok(paths)
}

impl<'a> Parser<'a> {
    fn new(
        source: &'a str,
        kind: Kind,
        placeholders: &'a Placeholders,
    ) -> Result<Parser<'a>, DynamoError> {
        if source.trim().is_empty() {
            return Err(validation(format!(
                "Invalid {}: The expression can not be empty;",
                kind.label()
            )));
        }
        let tokens = lex(source).map_err(|(_, text)| {
            validation(format!(
                "Invalid {}: Syntax error; token: \"{text}\", near: \"{}\"",
                kind.label(),
                near_text(source, &text)
            ))
        })?;
        Ok(Parser {
            source,
            tokens,
            position: 0,
            kind,
            placeholders,
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> DynamoError {
        validation(format!("Invalid {}: {message}", self.kind.label()))
    }

    fn syntax_error(&self) -> DynamoError {
        let (token, near) = match self.tokens.get(self.position) {
            Some(lexed) => {
                let from = self
                    .position
                    .checked_sub(1)
                    .map(|p| self.tokens[p].start)
                    .unwrap_or(lexed.start);
                let to = self
                    .tokens
                    .get(self.position + 1)
                    .map(|t| t.end)
                    .unwrap_or(lexed.end);
                (
                    self.source[lexed.start..lexed.end].to_owned(),
                    self.source[from..to].to_owned(),
                )
            }
            None => {
                let from = self
                    .tokens
                    .len()
                    .checked_sub(1)
                    .map(|p| self.tokens[p].start)
                    .unwrap_or(0);
                ("<EOF>".to_owned(), self.source[from..].trim().to_owned())
            }
        };
        self.error(format!(
            "Syntax error; token: \"{token}\", near: \"{near}\""
        ))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|l| &l.token)
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.position + offset).map(|l| &l.token)
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol) {
            self.position += 1;
            return true;
        }
        false
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), DynamoError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.peek_keyword(keyword) {
            self.position += 1;
            return true;
        }
        false
    }

    fn finish(&self) -> Result<(), DynamoError> {
        if self.position < self.tokens.len() {
            return Err(self.syntax_error());
        }
        Ok(())
    }

    fn condition(&mut self) -> Result<Condition, DynamoError> {
        let mut left = self.and_condition()?;
        while self.eat_keyword("OR") {
            let right = self.and_condition()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_condition(&mut self) -> Result<Condition, DynamoError> {
        let mut left = self.not_condition()?;
        while self.eat_keyword("AND") {
            let right = self.not_condition()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not_condition(&mut self) -> Result<Condition, DynamoError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.not_condition()?)));
        }
        self.primary_condition()
    }

    fn function_name(&self) -> Option<String> {
        match (self.peek(), self.peek_at(1)) {
            (Some(Token::Word(word)), Some(Token::Symbol("("))) => Some(word.clone()),
            _ => None,
        }
    }

    fn primary_condition(&mut self) -> Result<Condition, DynamoError> {
        if self.eat_symbol("(") {
            let inner = self.condition()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        if let Some(name) = self.function_name() {
            let boolean = matches!(
                name.as_str(),
                "attribute_exists"
                    | "attribute_not_exists"
                    | "attribute_type"
                    | "begins_with"
                    | "contains"
            );
            if boolean {
                self.position += 2;
                let condition = match name.as_str() {
                    "attribute_exists" => Condition::Exists(self.path()?),
                    "attribute_not_exists" => Condition::NotExists(self.path()?),
                    "attribute_type" => {
                        let path = self.path()?;
                        self.expect_symbol(",")?;
                        Condition::AttributeType(path, self.operand()?)
                    }
                    "begins_with" => {
                        let subject = self.operand()?;
                        self.expect_symbol(",")?;
                        Condition::BeginsWith(subject, self.operand()?)
                    }
                    _ => {
                        let subject = self.operand()?;
                        self.expect_symbol(",")?;
                        Condition::Contains(subject, self.operand()?)
                    }
                };
                self.expect_symbol(")")?;
                return Ok(condition);
            }
        }
        let left = self.operand()?;
        let comparator = match self.peek() {
            Some(Token::Symbol("=")) => Some(Comparator::Eq),
            Some(Token::Symbol("<>")) => Some(Comparator::Ne),
            Some(Token::Symbol("<")) => Some(Comparator::Lt),
            Some(Token::Symbol("<=")) => Some(Comparator::Le),
            Some(Token::Symbol(">")) => Some(Comparator::Gt),
            Some(Token::Symbol(">=")) => Some(Comparator::Ge),
            _ => None,
        };
        if let Some(comparator) = comparator {
            self.position += 1;
            let right = self.operand()?;
            return Ok(Condition::Compare(left, comparator, right));
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.eat_keyword("AND") {
                return Err(self.syntax_error());
            }
            let high = self.operand()?;
            return Ok(Condition::Between(left, low, high));
        }
        if self.eat_keyword("IN") {
            self.expect_symbol("(")?;
            let mut options = vec![self.operand()?];
            while self.eat_symbol(",") {
                options.push(self.operand()?);
            }
            self.expect_symbol(")")?;
            return Ok(Condition::In(left, options));
        }
        Err(self.syntax_error())
    }

    /// An operand of a condition: a path, a value or `size(path)`.
    fn operand(&mut self) -> Result<Operand, DynamoError> {
        if let Some(name) = self.function_name() {
            if name == "size" {
                self.position += 2;
                let path = self.path()?;
                self.expect_symbol(")")?;
                return Ok(Operand::Size(path));
            }
            if self.kind != Kind::Update {
                return Err(self.error(format!("Invalid function name; function: {name}")));
            }
        }
        if let Some(Token::Value(_)) = self.peek() {
            return Ok(Operand::Value(self.value()?));
        }
        Ok(Operand::Path(self.path()?))
    }

    fn value(&mut self) -> Result<Value, DynamoError> {
        let Some(Token::Value(name)) = self.peek().cloned() else {
            return Err(self.syntax_error());
        };
        self.position += 1;
        let Some(value) = self.placeholders.values.get(&name) else {
            return Err(self.error(format!(
                "An expression attribute value used in expression is not defined; attribute value: {name}"
            )));
        };
        self.placeholders.used_values.borrow_mut().insert(name);
        Ok(value.clone())
    }

    fn path_element(&mut self) -> Result<String, DynamoError> {
        match self.peek().cloned() {
            Some(Token::Word(word)) => {
                if word.as_bytes()[0].is_ascii_digit() {
                    return Err(self.syntax_error());
                }
                if crate::reserved::is_reserved(&word) {
                    return Err(self.error(format!(
                        "Attribute name is a reserved keyword; reserved keyword: {word}"
                    )));
                }
                self.position += 1;
                Ok(word)
            }
            Some(Token::Name(alias)) => {
                self.position += 1;
                let Some(name) = self.placeholders.names.get(&alias) else {
                    return Err(self.error(format!(
                        "An expression attribute name used in the document path is not defined; attribute name: {alias}"
                    )));
                };
                self.placeholders.used_names.borrow_mut().insert(alias);
                Ok(name.clone())
            }
            _ => Err(self.syntax_error()),
        }
    }

    fn path(&mut self) -> Result<Path, DynamoError> {
        let mut path = vec![Step::Name(self.path_element()?)];
        loop {
            if self.eat_symbol(".") {
                path.push(Step::Name(self.path_element()?));
            } else if self.eat_symbol("[") {
                let Some(Token::Integer(index)) = self.peek().cloned() else {
                    return Err(self.syntax_error());
                };
                self.position += 1;
                self.expect_symbol("]")?;
                path.push(Step::Index(index));
            } else {
                return Ok(path);
            }
        }
    }

    fn update(&mut self) -> Result<Vec<UpdateAction>, DynamoError> {
        let mut actions = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        while self.position < self.tokens.len() {
            let clause = ["SET", "REMOVE", "ADD", "DELETE"]
                .into_iter()
                .find(|k| self.peek_keyword(k));
            let Some(clause) = clause else {
                return Err(self.syntax_error());
            };
            if seen.contains(&clause) {
                return Err(self.error(format!(
                    "The \"{clause}\" section can only be used once in an update expression;"
                )));
            }
            seen.push(clause);
            self.position += 1;
            loop {
                let path = self.path()?;
                let action = match clause {
                    "SET" => {
                        self.expect_symbol("=")?;
                        UpdateAction::Set(path, self.set_value()?)
                    }
                    "REMOVE" => UpdateAction::Remove(path),
                    "ADD" => UpdateAction::Add(path, self.value()?),
                    _ => UpdateAction::Delete(path, self.value()?),
                };
                actions.push(action);
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        Ok(actions)
    }

    fn set_value(&mut self) -> Result<Operand, DynamoError> {
        let left = self.set_operand()?;
        if self.eat_symbol("+") {
            return Ok(Operand::Plus(Box::new(left), Box::new(self.set_operand()?)));
        }
        if self.eat_symbol("-") {
            return Ok(Operand::Minus(
                Box::new(left),
                Box::new(self.set_operand()?),
            ));
        }
        Ok(left)
    }

    fn set_operand(&mut self) -> Result<Operand, DynamoError> {
        if let Some(name) = self.function_name() {
            match name.as_str() {
                "if_not_exists" => {
                    self.position += 2;
                    let path = self.path()?;
                    self.expect_symbol(",")?;
                    let fallback = self.set_value()?;
                    self.expect_symbol(")")?;
                    return Ok(Operand::IfNotExists(path, Box::new(fallback)));
                }
                "list_append" => {
                    self.position += 2;
                    let first = self.set_value()?;
                    self.expect_symbol(",")?;
                    let second = self.set_value()?;
                    self.expect_symbol(")")?;
                    return Ok(Operand::ListAppend(Box::new(first), Box::new(second)));
                }
                other => {
                    return Err(self.error(format!("Invalid function name; function: {other}")))
                }
            }
        }
        if let Some(Token::Value(_)) = self.peek() {
            return Ok(Operand::Value(self.value()?));
        }
        Ok(Operand::Path(self.path()?))
    }
}

fn near_text(source: &str, token: &str) -> String {
    match source.find(token) {
        Some(at) => {
            let end = (at + token.len() + 8).min(source.len());
            let start = at.saturating_sub(8);
            source.get(start..end).unwrap_or(source).trim().to_owned()
        }
        None => source.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders() -> Placeholders {
        let names = BTreeMap::from([("#o".to_owned(), "owner".to_owned())]);
        let values = BTreeMap::from([
            (":a".to_owned(), Value::S("a".into())),
            (
                ":n".to_owned(),
                Value::N(crate::number::Number::parse("1").expect("n")),
            ),
        ]);
        Placeholders::new(names, values)
    }

    fn message(result: Result<impl std::fmt::Debug, DynamoError>) -> String {
        result.expect_err("fails").to_string()
    }

    #[test]
    fn conditions_parse_with_precedence() {
        let p = placeholders();
        let condition = parse_condition(
            "attribute_not_exists(pk) OR #o = :a AND NOT cnt > :n",
            Kind::Condition,
            &p,
        )
        .expect("parses");
        assert!(matches!(condition, Condition::Or(_, _)));
        p.check_all_used().expect("all used");
    }

    #[test]
    fn errors_name_the_expression() {
        let p = placeholders();
        assert_eq!(
            message(parse_condition("a = :zz", Kind::Condition, &p)),
            "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :zz"
        );
        assert_eq!(
            message(parse_condition("#x = :a", Kind::Condition, &p)),
            "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: #x"
        );
        assert_eq!(
            message(parse_condition("status = :a", Kind::Condition, &p)),
            "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status"
        );
        assert_eq!(
            message(parse_condition("a = ", Kind::Condition, &p)),
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"=\""
        );
        assert_eq!(
            message(parse_update("SET a = :a SET b = :a", &p)),
            "Invalid UpdateExpression: The \"SET\" section can only be used once in an update expression;"
        );
        let p = placeholders();
        parse_condition("a = :a", Kind::Condition, &p).expect("parses");
        assert_eq!(
            message(p.check_all_used()),
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#o}"
        );
    }

    #[test]
    fn updates_and_projections_parse() {
        let p = placeholders();
        let actions = parse_update(
            "SET a.b[2] = if_not_exists(c, :n) + :n, d = list_append(d, :a) REMOVE e[0] ADD f :n DELETE g :a",
            &p,
        )
        .expect("parses");
        assert_eq!(actions.len(), 5);
        let paths = parse_projection("a, #o.c[1]", &p).expect("parses");
        assert_eq!(
            paths[1],
            vec![
                Step::Name("owner".into()),
                Step::Name("c".into()),
                Step::Index(1)
            ]
        );
    }
}
