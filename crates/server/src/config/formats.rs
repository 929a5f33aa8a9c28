//! Config file formats, chosen by extension as Centrifugo does: `.yaml`/`.yml` is YAML, `.toml`
//! is TOML, anything else JSON. Every format is read into the same JSON object.

use std::path::Path;

use serde_json::{Map, Value};

use super::ConfigLoadError;

/// A config file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Toml,
}

impl Format {
    /// The format for `path` by its extension (JSON unless `.yaml`, `.yml` or `.toml`).
    pub fn of(path: &Path) -> Format {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Format::Yaml,
            "toml" => Format::Toml,
            _ => Format::Json,
        }
    }

    /// The format for `path` when writing one; `None` for extensions Rotor does not write.
    pub fn for_writing(path: &Path) -> Option<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
        }
    }
}

/// Reads the config file at `path` into its top-level object.
pub fn read(path: &Path) -> Result<Map<String, Value>, ConfigLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
        path: path.into(),
        source,
    })?;
    let format = Format::of(path);
    let parse_err = |message: String| ConfigLoadError::Parse {
        path: path.into(),
        format: format.name(),
        message: one_line(&message),
    };
    let value: Value = match format {
        Format::Json => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
        Format::Yaml if text.trim().is_empty() => Value::Object(Map::new()),
        Format::Yaml => serde_norway::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
        Format::Toml => toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ConfigLoadError::NotAnObject {
            path: path.into(),
            format: format.name(),
        }),
    }
}

/// `value` (an object) as the text of a config file in `format`.
pub fn render(format: Format, value: &Value) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_norway::to_string(value).map_err(|e| e.to_string()),
        Format::Toml => toml::to_string(value).map_err(|e| e.to_string()),
    }
}

/// Parser messages can span lines (TOML draws the offending line); errors print on one.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a.yml")), Format::Yaml);
        assert_eq!(Format::of(Path::new("a.YAML")), Format::Yaml);
        assert_eq!(Format::of(Path::new("a.toml")), Format::Toml);
        assert_eq!(Format::of(Path::new("a.json")), Format::Json);
        assert_eq!(Format::of(Path::new("config")), Format::Json);
        assert_eq!(Format::for_writing(Path::new("config")), None);
    }

    #[test]
    fn rendered_files_read_back() {
        let v = json!({"a": "x", "n": 2, "b": true, "l": ["p", "q"],
            "t": {"k": "v"}, "ns": [{"name": "chat", "presence": true}]});
        for (ext, format) in [
            ("json", Format::Json),
            ("yaml", Format::Yaml),
            ("toml", Format::Toml),
        ] {
            let text = render(format, &v).unwrap();
            let path =
                std::env::temp_dir().join(format!("rotor-fmt-{}-{ext}.{ext}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            let back = read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            assert_eq!(Value::Object(back), v, "{ext}");
        }
    }
}
