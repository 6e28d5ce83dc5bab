//! The configuration reference, generated from [`SETTINGS`]: one markdown table row per
//! setting (key, environment variables, default, meaning). `docs/configuration.md` holds the
//! rendered table between the `<!-- settings:begin -->` and `<!-- settings:end -->` markers,
//! and the test below keeps the two equal, so the settings table is the single source of what
//! every setting means. When the table changes, `UPDATE_DOCS=1 cargo test -p service --lib
//! config::reference` rewrites the generated part of the file.

use std::fmt::Write as _;

use super::settings::{SETTINGS, Setting};

/// The marker line that opens the generated part of `docs/configuration.md`.
pub const BEGIN_MARKER: &str = "<!-- settings:begin -->";
/// The marker line that closes it.
pub const END_MARKER: &str = "<!-- settings:end -->";

/// The settings table as markdown: a header and one row per setting, in [`SETTINGS`] order,
/// each line ending in a newline.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| key | environment | default | meaning |\n\
         |---|---|---|---|\n",
    );
    for setting in SETTINGS {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            key_cell(setting),
            env_cell(setting),
            default_cell(setting),
            cell_text(setting.doc),
        );
    }
    out
}

/// The key, marked when it is a secret (environment only, redacted by `check-config`).
fn key_cell(setting: &Setting) -> String {
    if setting.secret {
        format!("`{}` (secret)", setting.key)
    } else {
        format!("`{}`", setting.key)
    }
}

/// The variables that set the value, then the one naming a file that holds it.
fn env_cell(setting: &Setting) -> String {
    let mut names: Vec<String> = setting.env.iter().map(|n| format!("`{n}`")).collect();
    if let Some(file_env) = setting.file_env {
        names.push(format!("file: `{file_env}`"));
    }
    if names.is_empty() {
        "(YAML or `--set` only)".to_string()
    } else {
        names.join(", ")
    }
}

/// The default, or what an empty one means.
fn default_cell(setting: &Setting) -> String {
    match (setting.default, setting.secret) {
        ("", true) => "(none)".to_string(),
        ("", false) => "(empty)".to_string(),
        (value, _) => format!("`{}`", cell_text(value)),
    }
}

/// Text made safe for one table cell: no line breaks, pipes escaped.
fn cell_text(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/configuration.md`, from this crate's folder.
    fn doc_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")
    }

    /// The byte range of the generated part: after the begin marker's line, up to the end
    /// marker.
    fn generated_range(doc: &str) -> std::ops::Range<usize> {
        let begin = doc
            .find(BEGIN_MARKER)
            .unwrap_or_else(|| panic!("{BEGIN_MARKER} missing from docs/configuration.md"));
        let start = doc[begin..]
            .find('\n')
            .map(|i| begin + i + 1)
            .unwrap_or_else(|| panic!("nothing after {BEGIN_MARKER}"));
        let end = doc[start..]
            .find(END_MARKER)
            .map(|i| start + i)
            .unwrap_or_else(|| panic!("{END_MARKER} missing after {BEGIN_MARKER}"));
        start..end
    }

    #[test]
    fn configuration_doc_matches_the_settings_table() {
        let path = doc_path();
        let doc = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let range = generated_range(&doc);
        let want = reference_markdown();
        if doc[range.clone()] == want {
            return;
        }
        if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
            let mut updated = doc.clone();
            updated.replace_range(range, &want);
            std::fs::write(&path, updated)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            return;
        }
        panic!(
            "docs/configuration.md is out of date with SETTINGS (config/settings.rs); run \
             `UPDATE_DOCS=1 cargo test -p service --lib config::reference` and commit the result"
        );
    }

    #[test]
    fn one_row_per_setting_and_no_stray_pipes() {
        let table = reference_markdown();
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(rows.len(), SETTINGS.len());
        for (row, setting) in rows.iter().zip(SETTINGS) {
            assert!(row.starts_with(&format!("| `{}`", setting.key)), "{row}");
            // Five unescaped pipes: four cells.
            let cells = row.replace("\\|", "").matches('|').count();
            assert_eq!(cells, 5, "{row}");
        }
    }

    #[test]
    fn secrets_and_file_variables_are_marked() {
        let table = reference_markdown();
        let row = table
            .lines()
            .find(|l| l.starts_with("| `llm.api_key`"))
            .expect("llm.api_key row");
        assert!(row.contains("(secret)"), "{row}");
        assert!(row.contains("file: `ALGO_LLM_API_KEY_FILE`"), "{row}");
        assert!(row.contains("| (none) |"), "{row}");
    }

    #[test]
    fn the_generated_part_is_found_between_the_markers() {
        let doc = format!("intro\n{BEGIN_MARKER}\nold\n{END_MARKER}\nafter\n");
        assert_eq!(&doc[generated_range(&doc)], "old\n");
    }
}
