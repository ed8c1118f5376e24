//! One baseline file, parsed and validated into a [`Layer`]: its header, its compiled rules in file
//! order, and its waivers. Validation is the cargo-deny way: serde parses (unknown keys, wrong types,
//! unknown severities and stages are caught there, with spans), then a second pass checks what serde
//! cannot (id syntax, duplicate ids, empty texts, modes, regexes) and each rule kind compiles its own
//! parameters. Every error is a [`Diagnostic`] at `FILE:LINE:COL`.

use std::collections::HashMap;

use regex::Regex;
use toml::Spanned;

use super::file::{DistroMatch, RawFim};
use super::kinds::BaselineFile;
use crate::checks::params::CompileCheck;
use crate::checks::Rule;
use crate::diag::{Diagnostic, Diagnostics, Level, SourceFile};
use crate::fim::{FimError, FimPolicy, PathRule};
use crate::host::OsRelease;
use crate::rule::{Origin, RuleMeta};

/// An accepted exception to a rule until (and including) `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    pub rule: String,
    pub reason: String,
    pub expires: jiff::civil::Date,
    pub origin: Origin,
}

/// One validated baseline file.
#[derive(Debug)]
pub struct Layer {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `embedded:NAME` or the path it was read from.
    pub source_label: String,
    pub source: SourceFile,
    pub extends: Vec<Spanned<String>>,
    pub distro: Option<DistroMatch>,
    pub disable: Vec<Spanned<String>>,
    pub rules: Vec<Rule>,
    pub waivers: Vec<Waiver>,
    pub warnings: Vec<Diagnostic>,
    /// This layer's `[fim]` section, validated.
    pub fim: Option<LayerFim>,
}

/// A layer's validated `[fim]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFim {
    /// `false`: drop the built-in default paths.
    pub defaults: bool,
    /// Its `[[fim.path]]` rules, in file order.
    pub paths: Vec<PathRule>,
}

fn kebab() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z0-9]+(-[a-z0-9]+)*$").expect("static regex"))
}

impl Layer {
    /// Parse and validate one baseline file. On failure, every diagnostic found (not just the first).
    pub fn parse(source: SourceFile, source_label: String) -> Result<Layer, Vec<Diagnostic>> {
        let file: BaselineFile = match toml::from_str(&source.text) {
            Ok(file) => file,
            Err(e) => {
                let message = e.message().trim_end().to_string();
                return Err(vec![source.diag(Level::Error, e.span(), message)]);
            }
        };
        let mut diags = Diagnostics::new(&source);
        let header = file.baseline.get_ref();
        check_baseline_name(&mut diags, &header.name, "baseline name");
        for ext in &header.extends {
            check_baseline_name(&mut diags, ext, "`extends` entry");
        }
        if let Some(m) = &header.distro {
            if m.id.is_empty() {
                diags.error(
                    file.baseline.span(),
                    "`match.id` must list at least one os-release ID",
                );
            }
        }

        let mut compiled = file.compile_rules(&mut diags);
        compiled.sort_by_key(|(pos, _, _)| *pos);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rules = Vec::with_capacity(compiled.len());
        for (pos, id, rule) in compiled {
            let (line, _) = source.position(pos);
            if let Some(first) = seen.get(id.get_ref()) {
                diags.error(
                    id.span(),
                    format!(
                        "duplicate rule id `{}` (first defined at line {first})",
                        id.get_ref()
                    ),
                );
                continue;
            }
            seen.insert(id.get_ref().clone(), line);
            rules.extend(rule);
        }

        let mut waivers = Vec::new();
        for w in &file.waiver {
            if let Some(waiver) = compile_waiver(w, &mut diags) {
                waivers.push(waiver);
            }
        }

        let fim = file.fim.as_ref().map(|raw| compile_fim(raw, &mut diags));

        if diags.has_errors() {
            let mut list = diags.list;
            list.sort_by_key(|d| (d.line, d.col));
            return Err(list);
        }
        let warnings = diags.list;
        let header = file.baseline.into_inner();
        Ok(Layer {
            name: header.name.into_inner(),
            version: header.version,
            description: header.description,
            source_label,
            source,
            extends: header.extends,
            distro: header.distro,
            disable: header.disable,
            rules,
            waivers,
            warnings,
            fim,
        })
    }

    /// True when this layer's `[baseline.match]` selects the given OS.
    pub fn matches(&self, os: &OsRelease) -> bool {
        self.distro.as_ref().is_some_and(|m| distro_matches(m, os))
    }
}

/// `id` equal to os-release `ID`; `version_id` empty, equal, or a dotted prefix (`9` matches `9.4`).
pub fn distro_matches(m: &DistroMatch, os: &OsRelease) -> bool {
    if !m.id.contains(&os.id) {
        return false;
    }
    m.version_id.is_empty()
        || m.version_id.iter().any(|v| {
            os.version_id == *v
                || os
                    .version_id
                    .strip_prefix(v.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// Baseline names are kebab-case, and a dot may join version digits (`ubuntu-22.04`, `rhel-9`):
/// they follow the distribution's own version numbering.
fn check_baseline_name(diags: &mut Diagnostics<'_>, name: &Spanned<String>, what: &str) {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re =
        RE.get_or_init(|| Regex::new(r"^[a-z0-9]+(-[a-z0-9]+|\.[0-9]+)*$").expect("static regex"));
    if !re.is_match(name.get_ref()) {
        diags.error(
            name.span(),
            format!(
                "{what} `{}` must be kebab-case (a-z, 0-9, single dashes; a dot only between version digits)",
                name.get_ref()
            ),
        );
    }
}

/// Validate each `[[fim.path]]` rule (absolute path, valid glob) at its own position.
fn compile_fim(raw: &RawFim, diags: &mut Diagnostics<'_>) -> LayerFim {
    let mut paths = Vec::with_capacity(raw.path.len());
    for rule in &raw.path {
        let single = FimPolicy {
            paths: vec![rule.get_ref().clone()],
        };
        match single.compile() {
            Ok(_) => paths.push(rule.get_ref().clone()),
            Err(FimError::Policy { path, reason }) => {
                diags.error(rule.span(), format!("[[fim.path]] path `{path}`: {reason}"))
            }
            Err(e) => diags.error(rule.span(), format!("[[fim.path]]: {e}")),
        }
    }
    LayerFim {
        defaults: raw.defaults,
        paths,
    }
}

fn check_name(diags: &mut Diagnostics<'_>, name: &Spanned<String>, what: &str) {
    if !kebab().is_match(name.get_ref()) {
        diags.error(
            name.span(),
            format!(
                "{what} `{}` must be kebab-case (a-z, 0-9, single dashes)",
                name.get_ref()
            ),
        );
    }
}

fn non_empty(diags: &mut Diagnostics<'_>, field: &Spanned<String>, what: &str, id: &str) {
    if field.get_ref().trim().is_empty() {
        diags.error(
            field.span(),
            format!("rule `{id}`: `{what}` must not be empty"),
        );
    }
}

/// Validate the common fields of one rule of kind `kind` and compile its check.
pub fn compile_rule<P: CompileCheck>(
    kind: &'static str,
    default_family: &'static str,
    params: &Spanned<P>,
    diags: &mut Diagnostics<'_>,
) -> Option<Rule> {
    let mark = diags.mark();
    let p = params.get_ref();
    let c = p.common();
    let id = c.id.get_ref().clone();
    if !kebab().is_match(&id) {
        diags.error(
            c.id.span(),
            format!("rule id `{id}` must be kebab-case (a-z, 0-9, single dashes), e.g. `ssh-permit-root-login-no`"),
        );
    }
    non_empty(diags, c.title, "title", &id);
    non_empty(diags, c.rationale, "rationale", &id);
    non_empty(diags, c.remediation, "remediation", &id);
    let stages = c.stages.get_ref();
    if stages.is_empty() {
        diags.error(
            c.stages.span(),
            format!("rule `{id}`: `stages` must list at least one of bake, boot, run"),
        );
    }
    let mut sorted = stages.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != stages.len() {
        diags.error(
            c.stages.span(),
            format!("rule `{id}`: `stages` lists a stage twice"),
        );
    }
    if let Some(family) = c.family {
        check_name(diags, family, "family");
    }
    let check = p.compile(diags);
    if diags.errors_since(mark) {
        return None;
    }
    let (line, _) = diags.source.position(params.span().start);
    Some(Rule {
        meta: RuleMeta {
            id,
            title: c.title.get_ref().trim().to_string(),
            severity: c.severity,
            stages: sorted,
            family: c
                .family
                .map_or_else(|| default_family.to_string(), |f| f.get_ref().clone()),
            kind: kind.to_string(),
            rationale: c.rationale.get_ref().trim().to_string(),
            remediation: c.remediation.get_ref().trim().to_string(),
            references: c.references.to_vec(),
            cis: Vec::new(),
            origin: Origin {
                file: diags.source.name.clone(),
                line,
            },
        },
        check: check?,
    })
}

fn compile_waiver(
    w: &Spanned<super::file::RawWaiver>,
    diags: &mut Diagnostics<'_>,
) -> Option<Waiver> {
    let raw = w.get_ref();
    non_empty(diags, &raw.reason, "reason", raw.rule.get_ref());
    let dt = raw.expires.get_ref();
    let date = match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => {
            jiff::civil::Date::new(d.year as i16, d.month as i8, d.day as i8).ok()
        }
        _ => None,
    };
    let Some(expires) = date else {
        diags.error(
            raw.expires.span(),
            format!("waiver `expires` must be a plain date like 2027-01-31, found `{dt}`"),
        );
        return None;
    };
    let (line, _) = diags.source.position(w.span().start);
    Some(Waiver {
        rule: raw.rule.get_ref().clone(),
        reason: raw.reason.get_ref().trim().to_string(),
        expires,
        origin: Origin {
            file: diags.source.name.clone(),
            line,
        },
    })
}
