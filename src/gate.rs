//! Gates: named, machine-checkable rules a framework requires (no secrets,
//! size limits, required README sections, required files, allowed paths).
//!
//! A framework's rules file (JSON, shape in `governance.md` and the README)
//! declares its gates and its exemption globs; [`Rules::parse`] reads it with
//! `deny_unknown_fields`. The per-file gates run through one [`Engine`]
//! (reused by `pack` later): content gates stream each file once through
//! ripgrep's searcher (`grep-searcher` + `grep-regex`), in parallel, skip
//! binary files as ripgrep does (a NUL byte) and never load a file whole.

use serde::Deserialize;

/// A parsed rules file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The gates this framework can require, by id.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// Globs of paths that are neither owned nor hashed, only counted.
    #[serde(default)]
    pub exempt: Vec<String>,
}

/// One gate of a rules file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "GateJson")]
pub struct Gate {
    /// Id, unique within its rules file; `required_gates` and a spec's `gates` name it.
    pub id: String,
    /// Globs limiting the files the gate applies to (empty: every file it governs).
    pub paths: Vec<String>,
    /// What the gate checks.
    pub check: Check,
}

/// A gate object as written: `id`, `kind`, optional `paths` and the kind's own keys.
/// (serde cannot combine `flatten` with `deny_unknown_fields`, so the common keys
/// are read through this wrapper.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateJson {
    id: String,
    #[serde(default)]
    paths: Vec<String>,
    kind: Kind,
    #[serde(default)]
    default_secrets: Option<bool>,
    #[serde(default)]
    patterns: Option<Vec<Pattern>>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    max_lines: Option<u64>,
    #[serde(default)]
    sections: Option<Vec<String>>,
    #[serde(default)]
    files: Option<Vec<String>>,
    #[serde(default)]
    globs: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    ForbiddenContent,
    MaxSize,
    ReadmeSections,
    RequiredFiles,
    AllowedPaths,
}

impl From<GateJson> for Gate {
    fn from(g: GateJson) -> Gate {
        let check = match g.kind {
            Kind::ForbiddenContent => Check::ForbiddenContent {
                default_secrets: g.default_secrets.unwrap_or(false),
                patterns: g.patterns.unwrap_or_default(),
            },
            Kind::MaxSize => Check::MaxSize {
                max_bytes: g.max_bytes,
                max_lines: g.max_lines,
            },
            Kind::ReadmeSections => Check::ReadmeSections {
                sections: g.sections.unwrap_or_default(),
            },
            Kind::RequiredFiles => Check::RequiredFiles {
                files: g.files.unwrap_or_default(),
            },
            Kind::AllowedPaths => Check::AllowedPaths {
                globs: g.globs.unwrap_or_default(),
            },
        };
        Gate {
            id: g.id,
            paths: g.paths,
            check,
        }
    }
}

impl GateJson {
    /// Keys that belong to another kind than the gate's.
    fn foreign_keys(&self) -> Vec<&'static str> {
        let k = self.kind;
        let mut out = Vec::new();
        let mut key = |present: bool, name: &'static str, ok: bool| {
            if present && !ok {
                out.push(name);
            }
        };
        let fc = matches!(k, Kind::ForbiddenContent);
        let ms = matches!(k, Kind::MaxSize);
        key(self.default_secrets.is_some(), "default_secrets", fc);
        key(self.patterns.is_some(), "patterns", fc);
        key(self.max_bytes.is_some(), "max_bytes", ms);
        key(self.max_lines.is_some(), "max_lines", ms);
        key(self.sections.is_some(), "sections", matches!(k, Kind::ReadmeSections));
        key(self.files.is_some(), "files", matches!(k, Kind::RequiredFiles));
        key(self.globs.is_some(), "globs", matches!(k, Kind::AllowedPaths));
        out
    }
}

/// What a gate checks (the `kind` key of a gate object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No line may match any pattern.
    ForbiddenContent {
        /// Add the built-in secrets set ([`default_secrets`]).
        default_secrets: bool,
        /// Further named patterns (Rust `regex` syntax).
        patterns: Vec<Pattern>,
    },
    /// Size limits.
    MaxSize {
        /// At most this many bytes.
        max_bytes: Option<u64>,
        /// At most this many lines (`\n`-terminated, plus a final unterminated one).
        max_lines: Option<u64>,
    },
    /// Markdown headings that must appear (case-insensitive, trimmed).
    ReadmeSections {
        /// Section names.
        sections: Vec<String>,
    },
    /// Paths relative to the directory of each spec's artifact that must exist.
    RequiredFiles {
        /// Relative paths.
        files: Vec<String>,
    },
    /// A governed file must match one of these globs.
    AllowedPaths {
        /// Globs.
        globs: Vec<String>,
    },
}

impl Check {
    /// The `kind` as written in a rules file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Check::ForbiddenContent { .. } => "forbidden_content",
            Check::MaxSize { .. } => "max_size",
            Check::ReadmeSections { .. } => "readme_sections",
            Check::RequiredFiles { .. } => "required_files",
            Check::AllowedPaths { .. } => "allowed_paths",
        }
    }
}

/// A named regular expression of a `forbidden_content` gate.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Short name shown in findings (the match itself is never printed).
    pub name: String,
    /// Rust `regex` syntax, matched per line.
    pub regex: String,
}

impl Rules {
    /// Parses a rules file.
    ///
    /// # Errors
    /// One line naming `file`, the line and column, and what is wrong
    /// (unknown key, wrong type, duplicate gate id, invalid regex or glob).
    pub fn parse(bytes: &[u8], file: &str) -> std::result::Result<Rules, String> {
        let json_err =
            |e: serde_json::Error| format!("{file}:{}:{}: {}", e.line(), e.column(), strip_position(&e.to_string()));
        // Read twice: once as raw gate objects, to refuse keys of another kind
        // (`max_bytes` on a `readme_sections` gate), once into the typed shape.
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            gates: Vec<GateJson>,
        }
        let rules: Rules = serde_json::from_slice(bytes).map_err(json_err)?;
        let raw: Raw = serde_json::from_slice(bytes).map_err(json_err)?;
        for g in &raw.gates {
            if let Some(k) = g.foreign_keys().first() {
                return Err(format!(
                    "{file}: gate {:?}: key `{k}` does not belong to this kind of gate",
                    g.id
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for g in &rules.gates {
            if !seen.insert(g.id.as_str()) {
                return Err(format!("{file}: gate id {:?} is defined twice", g.id));
            }
            for glob in g.paths.iter().chain(match &g.check {
                Check::AllowedPaths { globs } => globs.iter(),
                _ => [].iter(),
            }) {
                globset::Glob::new(glob).map_err(|e| format!("{file}: gate {:?}: glob {glob:?}: {e}", g.id))?;
            }
            if let Check::ForbiddenContent { patterns, .. } = &g.check {
                for p in patterns {
                    regex::bytes::Regex::new(&p.regex).map_err(|e| {
                        format!(
                            "{file}: gate {:?}: pattern {:?}: {}",
                            g.id,
                            p.name,
                            one_line(&e.to_string())
                        )
                    })?;
                }
            }
        }
        for glob in &rules.exempt {
            globset::Glob::new(glob).map_err(|e| format!("{file}: exempt glob {glob:?}: {e}"))?;
        }
        Ok(rules)
    }

    /// The gate with this id.
    pub fn gate(&self, id: &str) -> Option<&Gate> {
        self.gates.iter().find(|g| g.id == id)
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_refuses_unknown_keys() {
        let ok = br#"{"gates":[
            {"id":"s","kind":"forbidden_content","default_secrets":true,"patterns":[{"name":"h","regex":"corp\\.internal"}]},
            {"id":"z","kind":"max_size","max_bytes":10,"max_lines":2,"paths":["**/*.py"]},
            {"id":"r","kind":"readme_sections","sections":["Purpose"]},
            {"id":"f","kind":"required_files","files":["README.md"]},
            {"id":"a","kind":"allowed_paths","globs":["lib/**"]}],
            "exempt":["build/**"]}"#;
        let r = Rules::parse(ok, "rules.json").unwrap();
        assert_eq!(r.gates.len(), 5);
        assert_eq!(r.exempt, vec!["build/**"]);
        assert!(matches!(
            r.gate("z").unwrap().check,
            Check::MaxSize {
                max_bytes: Some(10),
                max_lines: Some(2)
            }
        ));
        let e = Rules::parse(br#"{"gates":[],"exmpt":[]}"#, "r.json").unwrap_err();
        assert!(e.starts_with("r.json:1:"), "{e}");
        assert!(e.contains("exmpt"), "{e}");
        let e = Rules::parse(
            b"{\n\"gates\":[{\"id\":\"a\",\"kind\":\"max_size\",\"max_byte\":1}]}",
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("max_byte"), "{e}");
        let e = Rules::parse(br#"{"gates":[{"id":"a","kind":"nope"}]}"#, "r.json").unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = Rules::parse(
            br#"{"gates":[{"id":"a","kind":"forbidden_content","patterns":[{"name":"x","regex":"("}]}]}"#,
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("pattern \"x\""), "{e}");
        let e = Rules::parse(
            br#"{"gates":[{"id":"a","kind":"max_size"},{"id":"a","kind":"max_size"}]}"#,
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
