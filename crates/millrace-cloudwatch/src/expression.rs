//! Metric math, the subset dashboards use: numbers, ids of other queries, `+ - * /`,
//! comparisons (`> < >= <= == !=`), `AND`/`OR`, arrays `[m1, m2]`, and the functions `SUM`,
//! `AVG`, `MIN`, `MAX` (across an array per timestamp, or of one series to a scalar), `RATE`,
//! `FILL(m, value | REPEAT | LINEAR)`, `IF(condition, a [, b])` and `ABS`.

use std::collections::BTreeMap;

/// One time series: period start (epoch seconds) → value.
pub type Series = BTreeMap<i64, f64>;

#[derive(Debug, PartialEq)]
pub enum Error {
    /// An identifier that is not (yet) a result: the caller retries after other expressions.
    UnknownId(String),
    Syntax(String),
}

#[derive(Clone, Debug)]
enum Val {
    Scalar(f64),
    Series(Series),
    Array(Vec<Series>),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let number = text
                .parse()
                .map_err(|_| Error::Syntax(format!("Invalid number {text}")))?;
            tokens.push(Token::Number(number));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op = match two.as_str() {
            ">=" => Some(">="),
            "<=" => Some("<="),
            "==" => Some("=="),
            "!=" => Some("!="),
            "&&" => Some("AND"),
            "||" => Some("OR"),
            _ => None,
        };
        if let Some(op) = op {
            tokens.push(Token::Op(op));
            i += 2;
            continue;
        }
        let op = match c {
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            '>' => ">",
            '<' => "<",
            '(' => "(",
            ')' => ")",
            '[' => "[",
            ']' => "]",
            ',' => ",",
            _ => return Err(Error::Syntax(format!("Unexpected character {c}"))),
        };
        tokens.push(Token::Op(op));
        i += 1;
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    ids: &'a BTreeMap<String, Series>,
    grid: Vec<i64>,
}

fn combine(a: Val, b: Val, f: &dyn Fn(f64, f64) -> f64) -> Result<Val, Error> {
    Ok(match (a, b) {
        (Val::Scalar(x), Val::Scalar(y)) => Val::Scalar(f(x, y)),
        (Val::Series(s), Val::Scalar(y)) => {
            Val::Series(s.into_iter().map(|(t, x)| (t, f(x, y))).collect())
        }
        (Val::Scalar(x), Val::Series(s)) => {
            Val::Series(s.into_iter().map(|(t, y)| (t, f(x, y))).collect())
        }
        (Val::Series(a), Val::Series(b)) => Val::Series(
            a.into_iter()
                .filter_map(|(t, x)| b.get(&t).map(|y| (t, f(x, *y))))
                .collect(),
        ),
        (Val::Array(list), other) => Val::Array(
            list.into_iter()
                .map(|s| match combine(Val::Series(s), other.clone(), f)? {
                    Val::Series(s) => Ok(s),
                    _ => Err(Error::Syntax("Unsupported array operation".into())),
                })
                .collect::<Result<_, _>>()?,
        ),
        (other, Val::Array(_)) => {
            return Err(Error::Syntax(format!(
                "Unsupported operation between {} and an array",
                kind(&other)
            )))
        }
    })
}

fn kind(value: &Val) -> &'static str {
    match value {
        Val::Scalar(_) => "a scalar",
        Val::Series(_) => "a time series",
        Val::Array(_) => "an array",
    }
}

fn truth(x: bool) -> f64 {
    if x {
        1.0
    } else {
        0.0
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Token::Op(match op {
                "+" => "+",
                "-" => "-",
                "*" => "*",
                "/" => "/",
                "(" => "(",
                ")" => ")",
                "[" => "[",
                "]" => "]",
                "," => ",",
                ">" => ">",
                "<" => "<",
                ">=" => ">=",
                "<=" => "<=",
                "==" => "==",
                "!=" => "!=",
                "AND" => "AND",
                "OR" => "OR",
                _ => return false,
            }))
        {
            self.at += 1;
            return true;
        }
        // AND / OR also as words.
        if let Some(Token::Ident(word)) = self.peek() {
            if (op == "AND" || op == "OR") && word.eq_ignore_ascii_case(op) {
                self.at += 1;
                return true;
            }
        }
        false
    }

    fn expect(&mut self, op: &str) -> Result<(), Error> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(Error::Syntax(format!("Expected {op}")))
        }
    }

    fn or(&mut self) -> Result<Val, Error> {
        let mut left = self.and()?;
        while self.eat("OR") {
            let right = self.and()?;
            left = combine(left, right, &|a, b| truth(a != 0.0 || b != 0.0))?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Val, Error> {
        let mut left = self.comparison()?;
        while self.eat("AND") {
            let right = self.comparison()?;
            left = combine(left, right, &|a, b| truth(a != 0.0 && b != 0.0))?;
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Val, Error> {
        let left = self.sum()?;
        for op in [">=", "<=", "==", "!=", ">", "<"] {
            if self.eat(op) {
                let right = self.sum()?;
                let f: &dyn Fn(f64, f64) -> f64 = match op {
                    ">=" => &|a, b| truth(a >= b),
                    "<=" => &|a, b| truth(a <= b),
                    "==" => &|a, b| truth(a == b),
                    "!=" => &|a, b| truth(a != b),
                    ">" => &|a, b| truth(a > b),
                    _ => &|a, b| truth(a < b),
                };
                return combine(left, right, f);
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Val, Error> {
        let mut left = self.product()?;
        loop {
            if self.eat("+") {
                let right = self.product()?;
                left = combine(left, right, &|a, b| a + b)?;
            } else if self.eat("-") {
                let right = self.product()?;
                left = combine(left, right, &|a, b| a - b)?;
            } else {
                return Ok(left);
            }
        }
    }

    fn product(&mut self) -> Result<Val, Error> {
        let mut left = self.unary()?;
        loop {
            if self.eat("*") {
                let right = self.unary()?;
                left = combine(left, right, &|a, b| a * b)?;
            } else if self.eat("/") {
                let right = self.unary()?;
                left = combine(left, right, &|a, b| a / b)?;
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Val, Error> {
        if self.eat("-") {
            let value = self.unary()?;
            return combine(Val::Scalar(0.0), value, &|a, b| a - b);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Val, Error> {
        if self.eat("(") {
            let value = self.or()?;
            self.expect(")")?;
            return Ok(value);
        }
        if self.eat("[") {
            let mut list = Vec::new();
            loop {
                match self.or()? {
                    Val::Series(s) => list.push(s),
                    Val::Array(more) => list.extend(more),
                    Val::Scalar(_) => {
                        return Err(Error::Syntax("Arrays hold time series only".into()))
                    }
                }
                if self.eat("]") {
                    return Ok(Val::Array(list));
                }
                self.expect(",")?;
            }
        }
        match self.peek().cloned() {
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(Val::Scalar(n))
            }
            Some(Token::Ident(name)) => {
                self.at += 1;
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.argument()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    return self.function(&name, args);
                }
                match self.ids.get(&name) {
                    Some(series) => Ok(Val::Series(series.clone())),
                    None => Err(Error::UnknownId(name)),
                }
            }
            _ => Err(Error::Syntax("Unexpected end of expression".into())),
        }
    }

    /// A function argument: an expression, or the bare words REPEAT / LINEAR.
    fn argument(&mut self) -> Result<Option<Val>, Error> {
        if let Some(Token::Ident(word)) = self.peek() {
            if word == "REPEAT" || word == "LINEAR" {
                // The fill mode travels as a one-point marker array: 1 = REPEAT, 2 = LINEAR.
                let mode = if word == "REPEAT" { 1.0 } else { 2.0 };
                self.at += 1;
                return Ok(Some(Val::Array(vec![Series::from([(i64::MIN, mode)])])));
            }
        }
        self.or().map(Some)
    }

    fn function(&mut self, name: &str, args: Vec<Option<Val>>) -> Result<Val, Error> {
        let args: Vec<Val> = args.into_iter().flatten().collect();
        let arity = |n: usize| -> Result<(), Error> {
            if args.len() == n {
                Ok(())
            } else {
                Err(Error::Syntax(format!("{name} takes {n} arguments")))
            }
        };
        let reduce = |list: &[f64]| -> f64 {
            match name {
                "SUM" => list.iter().sum(),
                "AVG" => list.iter().sum::<f64>() / list.len() as f64,
                "MIN" => list.iter().cloned().fold(f64::INFINITY, f64::min),
                _ => list.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            }
        };
        match name {
            "SUM" | "AVG" | "MIN" | "MAX" => {
                arity(1)?;
                match &args[0] {
                    Val::Array(list) => {
                        let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                        for series in list {
                            for (t, v) in series {
                                at.entry(*t).or_default().push(*v);
                            }
                        }
                        Ok(Val::Series(
                            at.into_iter().map(|(t, l)| (t, reduce(&l))).collect(),
                        ))
                    }
                    Val::Series(series) => {
                        let values: Vec<f64> = series.values().cloned().collect();
                        Ok(Val::Scalar(if values.is_empty() {
                            f64::NAN
                        } else {
                            reduce(&values)
                        }))
                    }
                    Val::Scalar(x) => Ok(Val::Scalar(*x)),
                }
            }
            "ABS" => {
                arity(1)?;
                combine(args[0].clone(), Val::Scalar(0.0), &|a, _| a.abs())
            }
            "RATE" => {
                arity(1)?;
                let Val::Series(series) = &args[0] else {
                    return Err(Error::Syntax("RATE takes a time series".into()));
                };
                let mut out = Series::new();
                let mut previous: Option<(i64, f64)> = None;
                for (t, v) in series {
                    if let Some((pt, pv)) = previous {
                        out.insert(*t, (v - pv) / (t - pt) as f64);
                    }
                    previous = Some((*t, *v));
                }
                Ok(Val::Series(out))
            }
            "FILL" => {
                arity(2)?;
                let Val::Series(series) = &args[0] else {
                    return Err(Error::Syntax("FILL takes a time series".into()));
                };
                let mut out = Series::new();
                match &args[1] {
                    Val::Scalar(fill) => {
                        for t in &self.grid {
                            out.insert(*t, *series.get(t).unwrap_or(fill));
                        }
                    }
                    Val::Array(marker) => {
                        let linear = marker.first().and_then(|m| m.values().next()) == Some(&2.0);
                        for t in &self.grid {
                            let value = match series.get(t) {
                                Some(v) => Some(*v),
                                None => {
                                    let before = series.range(..*t).next_back();
                                    let after = series.range(*t..).next();
                                    match (before, after, linear) {
                                        (Some((_, v)), _, false) => Some(*v),
                                        (Some((t0, v0)), Some((t1, v1)), true) => Some(
                                            v0 + (v1 - v0) * (*t - t0) as f64 / (t1 - t0) as f64,
                                        ),
                                        _ => None,
                                    }
                                }
                            };
                            if let Some(value) = value {
                                out.insert(*t, value);
                            }
                        }
                    }
                    Val::Series(_) => {
                        return Err(Error::Syntax("FILL takes a value, REPEAT or LINEAR".into()))
                    }
                }
                Ok(Val::Series(out))
            }
            "IF" => {
                if args.len() != 2 && args.len() != 3 {
                    return Err(Error::Syntax("IF takes 2 or 3 arguments".into()));
                }
                let condition = match &args[0] {
                    Val::Series(s) => s.clone(),
                    Val::Scalar(x) => self.grid.iter().map(|t| (*t, *x)).collect(),
                    Val::Array(_) => return Err(Error::Syntax("IF takes a time series".into())),
                };
                let value_at = |v: &Val, t: i64| match v {
                    Val::Scalar(x) => Some(*x),
                    Val::Series(s) => s.get(&t).copied(),
                    Val::Array(_) => None,
                };
                let mut out = Series::new();
                for (t, c) in condition {
                    let chosen = if c != 0.0 {
                        Some(&args[1])
                    } else {
                        args.get(2)
                    };
                    if let Some(value) = chosen.and_then(|v| value_at(v, t)) {
                        out.insert(t, value);
                    }
                }
                Ok(Val::Series(out))
            }
            other => Err(Error::Syntax(format!("Unsupported function {other}"))),
        }
    }
}

/// Evaluates `text` over the earlier results `ids`; a scalar result is spread over the
/// periods of `[start, end)`.
pub fn evaluate(
    text: &str,
    ids: &BTreeMap<String, Series>,
    period: i64,
    start: f64,
    end: f64,
) -> Result<Series, Error> {
    let period = period.max(1);
    // The same grid as the metric stats: from StartTime rounded down to the minute.
    let first = (start as i64).div_euclid(60) * 60;
    let grid: Vec<i64> = (0..)
        .map(|i| first + i * period)
        .take_while(|t| (*t as f64) < end)
        .take(100_800)
        .collect();
    let mut parser = Parser {
        tokens: tokenize(text)?,
        at: 0,
        ids,
        grid,
    };
    let value = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(Error::Syntax(
            "Unexpected token after the expression".into(),
        ));
    }
    match value {
        Val::Series(series) => Ok(series),
        Val::Scalar(x) => Ok(parser.grid.iter().map(|t| (*t, x)).collect()),
        Val::Array(_) => Err(Error::Syntax(
            "The expression returns an array; use SUM, AVG, MIN or MAX".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> BTreeMap<String, Series> {
        BTreeMap::from([
            (
                "m1".to_owned(),
                Series::from([(0, 1.0), (60, 2.0), (180, 4.0)]),
            ),
            (
                "m2".to_owned(),
                Series::from([(0, 10.0), (60, 20.0), (120, 30.0)]),
            ),
        ])
    }

    fn check(text: &str, expected: &[(i64, f64)]) {
        let got = evaluate(text, &ids(), 60, 0.0, 240.0).expect(text);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), expected, "{text}");
    }

    #[test]
    fn arithmetic_and_functions() {
        check("m1 + m2", &[(0, 11.0), (60, 22.0)]);
        check("m1 * 2 - 1", &[(0, 1.0), (60, 3.0), (180, 7.0)]);
        check(
            "SUM([m1, m2])",
            &[(0, 11.0), (60, 22.0), (120, 30.0), (180, 4.0)],
        );
        check("MAX(m1)", &[(0, 4.0), (60, 4.0), (120, 4.0), (180, 4.0)]);
        check("RATE(m2)", &[(60, 10.0 / 60.0), (120, 10.0 / 60.0)]);
        check(
            "FILL(m1, 0)",
            &[(0, 1.0), (60, 2.0), (120, 0.0), (180, 4.0)],
        );
        check(
            "FILL(m1, REPEAT)",
            &[(0, 1.0), (60, 2.0), (120, 2.0), (180, 4.0)],
        );
        check(
            "FILL(m1, LINEAR)",
            &[(0, 1.0), (60, 2.0), (120, 3.0), (180, 4.0)],
        );
        check("IF(m1 > 1, m1, 0)", &[(0, 0.0), (60, 2.0), (180, 4.0)]);
        check("IF(m2 >= 20 AND m2 < 30, 1)", &[(60, 1.0)]);
        check("-(m1)", &[(0, -1.0), (60, -2.0), (180, -4.0)]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            evaluate("m3 + 1", &ids(), 60, 0.0, 240.0),
            Err(Error::UnknownId("m3".into()))
        );
        assert!(matches!(
            evaluate("m1 +", &ids(), 60, 0.0, 240.0),
            Err(Error::Syntax(_))
        ));
        assert!(matches!(
            evaluate("[m1, m2]", &ids(), 60, 0.0, 240.0),
            Err(Error::Syntax(_))
        ));
    }
}
