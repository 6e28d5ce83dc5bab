//! The one place configuration YAML is read (`model_config.yaml`, `cameras.yaml`,
//! `config/api_keys.yaml`, `config/kafka.yaml`): one parser, one error shape, the first line of
//! the parser's message only (its later lines quote the file, which may hold secrets).

use std::fmt;

use serde::de::DeserializeOwned;

/// Parses `text` as a `T`; the error says `invalid {what}: ` and the parser's first line.
pub fn parse<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| format!("invalid {what}: {}", first_line(&e)))
}

/// The first non-empty line of an error's text, trimmed.
fn first_line(e: &dyn fmt::Display) -> String {
    let text = e.to_string();
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        a: u32,
    }

    #[test]
    fn documents_parse_and_errors_are_one_line() {
        assert_eq!(parse::<Doc>("a: 3\n", "test file"), Ok(Doc { a: 3 }));
        let e = parse::<Doc>("a: 3\nb: 4\n", "test file").unwrap_err();
        assert!(e.starts_with("invalid test file: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse::<Doc>("a: [\n", "test file").unwrap_err();
        assert!(
            e.starts_with("invalid test file: ") && !e.contains('\n'),
            "{e}"
        );
    }
}
