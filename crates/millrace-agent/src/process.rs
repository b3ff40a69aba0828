//! `dataProcessingOptions`: each record (its bytes, a line with its newline by default) passes
//! through the options in order; an option may drop it (LOGTOJSON on a line that does not parse).
//!
//! - `SINGLELINE` joins a multi-line record into one line, trimming each line (`parseOptions`:
//!   `NO_TRIM`, `ESCAPE_NEW_LINE` to join with the two characters `\n`).
//! - `CSVTOJSON` splits on `delimiter` (a regular expression, `,` by default) into
//!   `customFieldNames`; missing columns are `null`.
//! - `LOGTOJSON` parses `logFormat` (`COMMONAPACHELOG`, `COMBINEDAPACHELOG`, `APACHEERRORLOG`,
//!   `SYSLOG`, `RFC3339SYSLOG`) or a `matchPattern` with `customFieldNames`.
//! - `ADDMETADATA` wraps the record as `{"ts": …, "metadata": …, "data": …}` (`ts` when
//!   `timestamp` is `"true"`).
//! - `ADDBRACKETS` wraps the record's bytes in `{` and `}`.
//!
//! JSON output is compact unless `jsonFormat` is `PRETTYPRINT`, with keys in field order, and ends
//! with a newline.

use serde_json::Value;

use crate::config::{pattern, ConfigError};

#[derive(Debug, Clone)]
pub enum Processor {
    SingleLine {
        trim: bool,
        escape_newline: bool,
    },
    CsvToJson {
        fields: Vec<String>,
        delimiter: regex::Regex,
        pretty: bool,
    },
    LogToJson {
        pattern: regex::Regex,
        fields: Vec<String>,
        /// Apache logs write `-` for a missing field; it becomes `null`.
        dash_is_null: bool,
        pretty: bool,
    },
    AddMetadata {
        metadata: Value,
        timestamp: bool,
        pretty: bool,
    },
    AddBrackets,
}

fn strings(
    option: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<String>>, ConfigError> {
    match option.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ConfigError(format!("{key} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ConfigError(format!("{key} must be a list of strings"))),
    }
}

// Building blocks of the log formats (our own spelling of the formats Apache httpd and syslog
// write).
const IP_OR_HOST: &str = r"(?:[\w\-]+(?:\.[\w\-]+)*\.?|[\d.:a-fA-F]+)";
const USER: &str = r"[a-zA-Z0-9._@\-]+";
const INT: &str = r"[+-]?[0-9]+";
const MONTH: &str = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";
const DAY: &str = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*";
const TIME: &str = r"[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:[.,:][0-9]+)?";

fn common_log() -> String {
    format!(
        r#"({IP_OR_HOST}) ({USER}) ({USER}) \[([0-9]{{1,2}}/{MONTH}/[0-9]+:{TIME} {INT})\] "([^"]+)" ({INT}|-) ({INT}|-)"#
    )
}

/// (pattern, field names, `-` means null) of a `logFormat`.
fn log_format(name: &str) -> Result<(String, Vec<&'static str>, bool), ConfigError> {
    const COMMON: [&str; 7] = [
        "host", "ident", "authuser", "datetime", "request", "response", "bytes",
    ];
    const SYSLOG: [&str; 5] = ["timestamp", "hostname", "program", "processid", "message"];
    let syslog_rest =
        format!(r"(?:<[0-9]+\.[0-9]+> )?({USER}) ([\w._/%\-]+)(?:\[([1-9][0-9]*)\])?: (.*)");
    Ok(match name {
        "COMMONAPACHELOG" => (format!("{}.*", common_log()), COMMON.to_vec(), true),
        "COMBINEDAPACHELOG" => (
            format!(r#"{} "([^"]+)" "([^"]+)".*"#, common_log()),
            COMMON.iter().copied().chain(["referer", "agent"]).collect(),
            true,
        ),
        "APACHEERRORLOG" => (
            format!(
                r"\[({DAY}\s+{MONTH}\s+[0-9]{{1,2}}\s+{TIME}\s+[0-9]+)\] \[(?:(\w+):)?(\w+)\] \[pid ([0-9]+)(?::tid ([0-9]+))?\] \[client ({IP_OR_HOST}(?::[0-9]+)?)\] (.*)"
            ),
            vec![
                "timestamp", "module", "severity", "processid", "threadid", "client", "message",
            ],
            true,
        ),
        "SYSLOG" => (
            format!(r"({MONTH}\s+[0-9]{{1,2}}\s+{TIME}) {syslog_rest}"),
            SYSLOG.to_vec(),
            false,
        ),
        "RFC3339SYSLOG" => (
            format!(
                r"([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:\.[0-9]+)?(?:Z|[-+][0-9]{{2}}:[0-9]{{2}})) {syslog_rest}"
            ),
            SYSLOG.to_vec(),
            false,
        ),
        other => {
            return Err(ConfigError(format!(
                "logFormat {other:?} is not COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG or RFC3339SYSLOG"
            )))
        }
    })
}

/// Anchors a pattern so that it must match the whole record, as Java's `Matcher.matches`.
fn whole(key: &str, text: &str) -> Result<regex::Regex, ConfigError> {
    pattern(key, &format!(r"\A(?:{text})\z"))
}

impl Processor {
    pub fn parse(value: &Value) -> Result<Processor, ConfigError> {
        let Value::Object(option) = value else {
            return Err(ConfigError(
                "each dataProcessingOptions entry must be a JSON object".into(),
            ));
        };
        let name = option
            .get("optionName")
            .and_then(Value::as_str)
            .ok_or_else(|| ConfigError("a dataProcessingOptions entry has no optionName".into()))?;
        let pretty = match option.get("jsonFormat").and_then(Value::as_str) {
            None | Some("COMPACT") => false,
            Some("PRETTYPRINT") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "jsonFormat {other:?} is not COMPACT or PRETTYPRINT"
                )))
            }
        };
        match name {
            "SINGLELINE" => {
                let options = strings(option, "parseOptions")?.unwrap_or_default();
                Ok(Processor::SingleLine {
                    trim: !options.iter().any(|o| o == "NO_TRIM"),
                    escape_newline: options.iter().any(|o| o == "ESCAPE_NEW_LINE"),
                })
            }
            "CSVTOJSON" => {
                let fields = strings(option, "customFieldNames")?
                    .ok_or_else(|| ConfigError("CSVTOJSON needs customFieldNames".into()))?;
                let delimiter = option
                    .get("delimiter")
                    .and_then(Value::as_str)
                    .unwrap_or(",");
                Ok(Processor::CsvToJson {
                    fields,
                    delimiter: pattern("delimiter", delimiter)?,
                    pretty,
                })
            }
            "LOGTOJSON" => {
                let format = option
                    .get("logFormat")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ConfigError("LOGTOJSON needs logFormat".into()))?;
                let (default_pattern, default_fields, dash_is_null) = log_format(format)?;
                let custom = strings(option, "customFieldNames")?;
                let (regex, fields) = match option.get("matchPattern").and_then(Value::as_str) {
                    Some(text) => {
                        let fields = custom.ok_or_else(|| {
                            ConfigError(
                                "customFieldNames must be given with matchPattern".into(),
                            )
                        })?;
                        (whole("matchPattern", text)?, fields)
                    }
                    None => (
                        whole("logFormat", &default_pattern)?,
                        custom.unwrap_or_else(|| {
                            default_fields.iter().map(|f| (*f).to_owned()).collect()
                        }),
                    ),
                };
                Ok(Processor::LogToJson {
                    pattern: regex,
                    fields,
                    dash_is_null,
                    pretty,
                })
            }
            "ADDMETADATA" => Ok(Processor::AddMetadata {
                metadata: option.get("metadata").cloned().unwrap_or(Value::Null),
                timestamp: match option.get("timestamp") {
                    Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                    Some(Value::Bool(b)) => *b,
                    _ => false,
                },
                pretty,
            }),
            "ADDBRACKETS" => Ok(Processor::AddBrackets),
            "ADDEC2METADATA" => Err(ConfigError(
                "ADDEC2METADATA is not supported (no EC2 instance metadata here)".into(),
            )),
            other => Err(ConfigError(format!(
                "optionName {other:?} is not SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA or ADDBRACKETS"
            ))),
        }
    }

    /// The converted record, or `None` when the option drops it.
    pub fn apply(&self, data: Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Processor::SingleLine {
                trim,
                escape_newline,
            } => {
                let text = String::from_utf8_lossy(&data);
                let mut lines: Vec<&str> = text.split('\n').collect();
                while lines.last().is_some_and(|l| l.is_empty()) {
                    lines.pop();
                }
                let lines: Vec<&str> = lines
                    .into_iter()
                    .map(|l| if *trim { l.trim() } else { l })
                    .collect();
                let mut out = lines.join(if *escape_newline { "\\n" } else { "" });
                out.push('\n');
                Some(out.into_bytes())
            }
            Processor::CsvToJson {
                fields,
                delimiter,
                pretty,
            } => {
                let text = String::from_utf8_lossy(&data);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let mut columns: Vec<&str> = delimiter.split(text).collect();
                // As Java's String.split: trailing empty columns are dropped.
                while columns.last().is_some_and(|c| c.is_empty()) {
                    columns.pop();
                }
                let pairs = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        (
                            f.clone(),
                            columns.get(i).map_or(Value::Null, |c| Value::from(*c)),
                        )
                    })
                    .collect();
                Some(json_line(pairs, *pretty))
            }
            Processor::LogToJson {
                pattern,
                fields,
                dash_is_null,
                pretty,
            } => {
                let text = String::from_utf8_lossy(&data);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let captures = pattern.captures(text)?;
                if captures.len() - 1 != fields.len() {
                    tracing::debug!("the log pattern's groups do not match customFieldNames");
                    return None;
                }
                let pairs = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let value = captures
                            .get(i + 1)
                            .map(|m| m.as_str())
                            .filter(|v| !(*dash_is_null && *v == "-"));
                        (f.clone(), value.map_or(Value::Null, Value::from))
                    })
                    .collect();
                Some(json_line(pairs, *pretty))
            }
            Processor::AddMetadata {
                metadata,
                timestamp,
                pretty,
            } => {
                let text = String::from_utf8_lossy(&data);
                let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
                let mut pairs = Vec::new();
                if *timestamp {
                    pairs.push(("ts".to_owned(), Value::from(utc_now_millis())));
                }
                pairs.push(("metadata".to_owned(), metadata.clone()));
                pairs.push(("data".to_owned(), Value::from(text)));
                Some(json_line(pairs, *pretty))
            }
            Processor::AddBrackets => {
                let mut out = Vec::with_capacity(data.len() + 2);
                out.push(b'{');
                out.extend_from_slice(&data);
                out.push(b'}');
                Some(out)
            }
        }
    }
}

/// Runs a record through every option.
pub fn apply_all(processors: &[Processor], data: Vec<u8>) -> Option<Vec<u8>> {
    processors
        .iter()
        .try_fold(data, |data, processor| processor.apply(data))
}

/// A JSON object with keys in the given order, and a newline.
fn json_line(pairs: Vec<(String, Value)>, pretty: bool) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if pretty {
            out.push_str("\n  ");
        }
        out.push_str(&Value::from(key.as_str()).to_string());
        out.push_str(if pretty { " : " } else { ":" });
        out.push_str(&value.to_string());
    }
    if pretty {
        out.push('\n');
    }
    out.push_str("}\n");
    out.into_bytes()
}

/// Now as `yyyy-MM-ddTHH:mm:ss.SSSZ` in UTC.
fn utc_now_millis() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let text = millrace_wire::timestamp::format_iso8601(now.as_millis() as f64 / 1000.0)
        .unwrap_or_default();
    // Always with milliseconds (the formatter leaves out `.000`).
    match text.strip_suffix('Z') {
        Some(seconds) if seconds.len() == 19 => format!("{seconds}.000Z"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(option: Value, line: &str) -> Option<String> {
        let processor = Processor::parse(&option).expect("option");
        processor
            .apply(line.as_bytes().to_vec())
            .map(|b| String::from_utf8(b).expect("utf-8"))
    }

    #[test]
    fn single_line_joins_and_trims() {
        let option = json!({"optionName": "SINGLELINE"});
        assert_eq!(run(option, "a\n  b \n c\n").as_deref(), Some("abc\n"));
        let escaped =
            json!({"optionName": "SINGLELINE", "parseOptions": ["ESCAPE_NEW_LINE", "NO_TRIM"]});
        assert_eq!(run(escaped, "a\n b\n").as_deref(), Some("a\\n b\n"));
    }

    #[test]
    fn csv_to_json_in_field_order_with_nulls() {
        let option = json!({"optionName": "CSVTOJSON", "customFieldNames": ["z", "a", "m"], "delimiter": "\\t"});
        assert_eq!(
            run(option, "1\t2\n").as_deref(),
            Some("{\"z\":\"1\",\"a\":\"2\",\"m\":null}\n")
        );
    }

    #[test]
    fn apache_and_syslog_formats() {
        let common = json!({"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"});
        let line = "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326\n";
        assert_eq!(
            run(common.clone(), line).as_deref(),
            Some("{\"host\":\"127.0.0.1\",\"ident\":null,\"authuser\":\"frank\",\"datetime\":\"10/Oct/2000:13:55:36 -0700\",\"request\":\"GET /apache_pb.gif HTTP/1.0\",\"response\":\"200\",\"bytes\":\"2326\"}\n")
        );
        assert_eq!(run(common, "not a log line\n"), None);
        let combined = json!({"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"});
        let out = run(combined, "10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 304 - \"http://x/\" \"curl/8\"\n").expect("parses");
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["referer"], "http://x/");
        assert_eq!(value["agent"], "curl/8");
        assert_eq!(value["bytes"], Value::Null);
        let error = json!({"optionName": "LOGTOJSON", "logFormat": "APACHEERRORLOG"});
        let out = run(error, "[Wed Oct 11 14:32:52 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /x\n").expect("parses");
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["module"], "core");
        assert_eq!(value["severity"], "error");
        assert_eq!(value["threadid"], "4328636416");
        assert_eq!(value["message"], "File does not exist: /x");
        let syslog = json!({"optionName": "LOGTOJSON", "logFormat": "SYSLOG"});
        let out = run(
            syslog,
            "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages\n",
        )
        .expect("parses");
        assert_eq!(out, "{\"timestamp\":\"Mar 12 12:00:08\",\"hostname\":\"server2\",\"program\":\"rcd\",\"processid\":\"308\",\"message\":\"Loaded 12 packages\"}\n");
        let rfc = json!({"optionName": "LOGTOJSON", "logFormat": "RFC3339SYSLOG"});
        let out = run(rfc, "2024-03-12T12:00:08.123+01:00 server2 cron: tick\n").expect("parses");
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["processid"], Value::Null);
        assert_eq!(value["program"], "cron");
    }

    #[test]
    fn metadata_and_brackets() {
        let option = json!({"optionName": "ADDMETADATA", "metadata": {"k": 1}});
        assert_eq!(
            run(option, "x\n").as_deref(),
            Some("{\"metadata\":{\"k\":1},\"data\":\"x\"}\n")
        );
        let stamped = json!({"optionName": "ADDMETADATA", "timestamp": "true", "metadata": "m"});
        let out = run(stamped, "x\n").expect("out");
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["ts"].as_str().map(str::len), Some(24));
        assert_eq!(
            run(json!({"optionName": "ADDBRACKETS"}), "\"a\":1").as_deref(),
            Some("{\"a\":1}")
        );
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(Processor::parse(&json!({"optionName": "NOPE"})).is_err());
        assert!(Processor::parse(&json!({"optionName": "LOGTOJSON", "logFormat": "X"})).is_err());
    }
}
