//! Credentials and region the way the AWS CLI finds them: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_REGION` / `AWS_DEFAULT_REGION` first;
//! otherwise the profile (`--profile`, else `AWS_PROFILE`, else `default`) in
//! `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`) and `AWS_CONFIG_FILE` (`~/.aws/config`,
//! where sections are `[profile NAME]` except `[default]`).

use std::collections::HashMap;
use std::path::PathBuf;

use millrace_wire::sigv4::Credentials;

/// What was found.
pub struct Resolved {
    pub credentials: Credentials,
    pub region: Option<String>,
}

/// Sections of an INI file: name → key → value.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            sections.entry(name.trim().to_owned()).or_default();
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_owned(), value.trim().to_owned());
        }
    }
    sections
}

fn home_file(env: &str, default: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws").join(default))
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Finds credentials and region; an error says in plain words what is missing.
pub fn resolve(profile: Option<&str>) -> Result<Resolved, String> {
    let profile_name = profile
        .map(str::to_owned)
        .or_else(|| non_empty("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let read = |env: &str, default: &str| {
        home_file(env, default)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| parse_ini(&t))
            .unwrap_or_default()
    };
    let credentials_file = read("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_file = read("AWS_CONFIG_FILE", "config");
    let config_section = if profile_name == "default" {
        config_file.get("default")
    } else {
        config_file.get(&format!("profile {profile_name}"))
    };
    let region = non_empty("AWS_REGION")
        .or_else(|| non_empty("AWS_DEFAULT_REGION"))
        .or_else(|| config_section.and_then(|s| s.get("region").cloned()));
    let explicit_profile = profile.is_some();
    if !explicit_profile {
        if let (Some(id), Some(secret)) = (
            non_empty("AWS_ACCESS_KEY_ID"),
            non_empty("AWS_SECRET_ACCESS_KEY"),
        ) {
            return Ok(Resolved {
                credentials: Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: non_empty("AWS_SESSION_TOKEN"),
                },
                region,
            });
        }
    }
    let from = |section: Option<&HashMap<String, String>>| {
        let section = section?;
        Some(Credentials {
            access_key_id: section.get("aws_access_key_id")?.clone(),
            secret_access_key: section.get("aws_secret_access_key")?.clone(),
            session_token: section.get("aws_session_token").cloned(),
        })
    };
    let credentials = from(credentials_file.get(&profile_name))
        .or_else(|| from(config_section))
        .ok_or_else(|| {
            format!(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give \
                 profile {profile_name:?} aws_access_key_id and aws_secret_access_key in \
                 ~/.aws/credentials"
            )
        })?;
    Ok(Resolved {
        credentials,
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_and_keys() {
        let parsed = parse_ini(
            "# comment\n[default]\naws_access_key_id = A\n\n[profile dev]\nregion=eu-west-1\n",
        );
        assert_eq!(parsed["default"]["aws_access_key_id"], "A");
        assert_eq!(parsed["profile dev"]["region"], "eu-west-1");
    }
}
