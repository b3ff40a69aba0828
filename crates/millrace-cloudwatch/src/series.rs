//! What a series is: account, region, namespace, metric name and dimensions, and the string key
//! that names it in the store.

use serde::{Deserialize, Serialize};

/// One metric series (CloudWatch: a metric is a namespace, a name and a set of dimensions).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub account: String,
    pub region: String,
    pub namespace: String,
    pub metric: String,
    /// Sorted by name (CloudWatch treats dimension order as irrelevant).
    pub dimensions: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new(
        account: &str,
        region: &str,
        namespace: &str,
        metric: &str,
        mut dimensions: Vec<(String, String)>,
    ) -> SeriesKey {
        dimensions.sort();
        SeriesKey {
            account: account.to_owned(),
            region: region.to_owned(),
            namespace: namespace.to_owned(),
            metric: metric.to_owned(),
            dimensions,
        }
    }

    /// The store key: fields separated by 0x1f, a dimension's name and value by 0x1d, with
    /// `%` and control characters percent-escaped so no field can contain a separator.
    pub fn encoded(&self) -> String {
        let mut out = String::with_capacity(64);
        for field in [&self.account, &self.region, &self.namespace, &self.metric] {
            escape_into(&mut out, field);
            out.push('\u{1f}');
        }
        for (name, value) in &self.dimensions {
            escape_into(&mut out, name);
            out.push('\u{1d}');
            escape_into(&mut out, value);
            out.push('\u{1f}');
        }
        out
    }

    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '%' || (c as u32) < 0x20 {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_order_does_not_matter_and_separators_are_escaped() {
        let a = SeriesKey::new(
            "1",
            "r",
            "N",
            "M",
            vec![("b".into(), "x".into()), ("a".into(), "y\u{1f}".into())],
        );
        let b = SeriesKey::new(
            "1",
            "r",
            "N",
            "M",
            vec![("a".into(), "y\u{1f}".into()), ("b".into(), "x".into())],
        );
        assert_eq!(a.encoded(), b.encoded());
        assert_eq!(
            a.encoded(),
            "1\u{1f}r\u{1f}N\u{1f}M\u{1f}a\u{1d}y%1F\u{1f}b\u{1d}x\u{1f}"
        );
    }
}
