//! Baselines: which rules run, layered. A baseline is a TOML file (format in docs/baselines.md and
//! in [`file`]); the shipped ones under `baseline/` are embedded in the binary ([`embedded`]) so the agent
//! runs with no files beside it. A run's rule set is a stack of layers: the auto-selected (or named)
//! embedded baseline with everything it `extends`, then each `--baseline FILE` on top. A later layer's
//! rule with the same id replaces the earlier one; `disable = [...]` drops rules; waivers accumulate.

pub mod benchmark;
pub mod coverage;
pub mod embedded;
pub mod file;
pub mod kinds;
pub mod layer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use crate::diag::{Diagnostic, Level, SourceFile};
pub use benchmark::{Benchmark, Recommendation};
pub use layer::{Layer, Waiver};

use crate::checks::Rule;
use crate::fim::FimPolicy;
use crate::host::OsRelease;
use crate::report::{BaselineInfo, LayerInfo};

/// Why a baseline could not be loaded. All of these are configuration errors (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("cannot read baseline {source}")]
    Read {
        path: PathBuf,
        source: crate::localfs::LocalFileError,
    },
    #[error("unknown baseline `{name}`: expected a file path or one of {}", embedded::names().join(", "))]
    UnknownName { name: String },
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `--baseline` named: an embedded baseline or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineRef {
    Name(String),
    File(PathBuf),
}

impl BaselineRef {
    /// A value with a `/` or a `.toml` suffix is a file; else an embedded name wins; else an
    /// existing file of that name; else a name (which then fails as unknown, listing the names).
    pub fn parse(value: &str) -> BaselineRef {
        let path = Path::new(value);
        let file = value.contains('/')
            || value.ends_with(".toml")
            || (!embedded::names().contains(&value) && path.is_file());
        if file {
            BaselineRef::File(path.to_path_buf())
        } else {
            BaselineRef::Name(value.to_string())
        }
    }
}

/// The resolved rule set of one run.
#[derive(Debug)]
pub struct Baseline {
    /// The top layer's name.
    pub name: String,
    /// Bottom first.
    pub layers: Vec<LayerInfo>,
    /// `sha256:` over each layer's name and source text, in order.
    pub digest: String,
    /// In layer order, then file order.
    pub rules: Vec<Rule>,
    pub waivers: Vec<Waiver>,
    /// Non-fatal problems (a `disable` naming no rule, ...), shown in reports.
    pub warnings: Vec<Diagnostic>,
    /// The file-integrity policy: the built-in defaults (unless a layer says `defaults = false`)
    /// followed by every layer's `[[fim.path]]` rules, bottom layer first.
    pub fim: FimPolicy,
    /// The CIS benchmark of the highest embedded layer that has one (a site layer on top of
    /// `debian-12` keeps Debian's); it gave each rule its `cis` numbers.
    pub benchmark: Option<Benchmark>,
}

impl Baseline {
    /// Resolve `--baseline` values against the embedded catalogue and the OS the sysroot holds.
    /// With no name given, the embedded baseline matching `os` is the base (falling back to
    /// `common`); files layer on top.
    pub fn resolve(refs: &[BaselineRef], os: &OsRelease) -> Result<Baseline, BaselineError> {
        Baseline::resolve_with(refs, Some(os))
    }

    /// Resolve exactly what `refs` name and what they extend, with no auto-selected base
    /// (`baseline show`, `baseline validate`, `explain`).
    pub fn resolve_only(refs: &[BaselineRef]) -> Result<Baseline, BaselineError> {
        Baseline::resolve_with(refs, None)
    }

    fn resolve_with(
        refs: &[BaselineRef],
        auto_select: Option<&OsRelease>,
    ) -> Result<Baseline, BaselineError> {
        let mut stack = Stack::default();
        let mut named = false;
        for r in refs {
            if let BaselineRef::Name(name) = r {
                named = true;
                stack.push_embedded(name.clone(), None)?;
            }
        }
        if let (false, Some(os)) = (named, auto_select) {
            stack.push(embedded::select(os)?)?;
        }
        for r in refs {
            if let BaselineRef::File(path) = r {
                stack.push(Layer::load_file(path)?)?;
            }
        }
        Ok(stack.merge())
    }

    /// One named embedded baseline with everything it extends (for `baseline show`, `explain`).
    pub fn embedded(name: &str) -> Result<Baseline, BaselineError> {
        Baseline::resolve_only(&[BaselineRef::Name(name.to_string())])
    }

    pub fn info(&self) -> BaselineInfo {
        BaselineInfo {
            name: self.name.clone(),
            layers: self.layers.clone(),
            digest: self.digest.clone(),
        }
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.meta.id == id)
    }
}

impl Layer {
    /// Read and validate a baseline file from the scanning host's filesystem (not the sysroot:
    /// baselines belong to the auditor, not to the audited image).
    pub fn load_file(path: &Path) -> Result<Layer, BaselineError> {
        let text = read_source(path)?;
        let source = SourceFile::new(path.display().to_string(), text);
        Layer::parse(source, path.display().to_string()).map_err(BaselineError::Invalid)
    }
}

/// The most a baseline file may hold: the largest shipped one is about 100 KiB, a site layer of
/// 20,000 rules about 10 MiB.
pub const MAX_BASELINE_BYTES: u64 = 32 << 20;

/// The text of a baseline file of the scanning host: a regular file (a FIFO or a device is refused
/// without blocking), at most [`MAX_BASELINE_BYTES`], UTF-8.
pub fn read_source(path: &Path) -> Result<String, BaselineError> {
    crate::localfs::read_regular_text(path, MAX_BASELINE_BYTES, crate::localfs::Links::Follow)
        .map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Layers being stacked, bottom first, each at most once.
#[derive(Default)]
struct Stack {
    layers: Vec<Layer>,
    /// Names being expanded, to report `extends` cycles.
    expanding: Vec<String>,
}

impl Stack {
    fn has(&self, name: &str) -> bool {
        self.layers.iter().any(|l| l.name == name)
    }

    /// Push an embedded baseline by name; `from` is the diagnostic position of the `extends` entry
    /// that asked for it, used when the name is unknown.
    fn push_embedded(
        &mut self,
        name: String,
        from: Option<Diagnostic>,
    ) -> Result<(), BaselineError> {
        if self.has(&name) {
            return Ok(());
        }
        let Some(layer) = embedded::load(&name)? else {
            return Err(match from {
                Some(mut d) => {
                    d.message = format!(
                        "`extends` names unknown baseline `{name}`: expected one of {}",
                        embedded::names().join(", ")
                    );
                    BaselineError::Invalid(vec![d])
                }
                None => BaselineError::UnknownName { name },
            });
        };
        self.push(layer)
    }

    /// Push a layer after everything it extends.
    fn push(&mut self, layer: Layer) -> Result<(), BaselineError> {
        if self.has(&layer.name) {
            return Ok(());
        }
        if self.expanding.contains(&layer.name) {
            let chain = self.expanding.join(" -> ");
            return Err(BaselineError::Invalid(vec![layer.source.diag(
                Level::Error,
                None,
                format!("`extends` cycle: {chain} -> {}", layer.name),
            )]));
        }
        self.expanding.push(layer.name.clone());
        for ext in &layer.extends {
            let from = layer.source.diag(Level::Error, Some(ext.span()), "");
            self.push_embedded(ext.get_ref().clone(), Some(from))?;
        }
        self.expanding.pop();
        self.layers.push(layer);
        Ok(())
    }

    fn merge(self) -> Baseline {
        let mut hasher = Sha256::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut waivers = Vec::new();
        let mut warnings = Vec::new();
        let mut infos = Vec::new();
        let mut fim_defaults = true;
        let mut fim_paths = Vec::new();
        let name = self
            .layers
            .last()
            .map(|l| l.name.clone())
            .unwrap_or_default();
        let benchmark = self
            .layers
            .iter()
            .rev()
            .filter(|l| l.source_label.starts_with("embedded:"))
            .find_map(|l| Benchmark::embedded(&l.name));
        for layer in self.layers {
            hasher.update(layer.name.as_bytes());
            hasher.update([0]);
            hasher.update(layer.source.text.as_bytes());
            hasher.update([0]);
            infos.push(LayerInfo {
                name: layer.name.clone(),
                version: layer.version.clone(),
                source: layer.source_label.clone(),
            });
            warnings.extend(layer.warnings);
            for d in &layer.disable {
                match index.remove(d.get_ref()) {
                    Some(i) => {
                        rules.remove(i);
                        index = reindex(&rules);
                    }
                    None => warnings.push(layer.source.warning(
                        d.span(),
                        format!(
                            "`disable` names `{}`, which no lower layer defines",
                            d.get_ref()
                        ),
                    )),
                }
            }
            for rule in layer.rules {
                match index.get(&rule.meta.id) {
                    Some(&i) => {
                        tracing::debug!(rule = %rule.meta.id, layer = %layer.name, "rule overridden");
                        rules[i] = rule;
                    }
                    None => {
                        index.insert(rule.meta.id.clone(), rules.len());
                        rules.push(rule);
                    }
                }
            }
            waivers.extend(layer.waivers);
            if let Some(fim) = layer.fim {
                fim_defaults &= fim.defaults;
                fim_paths.extend(fim.paths);
            }
        }
        let mut fim = if fim_defaults {
            FimPolicy::default()
        } else {
            FimPolicy { paths: Vec::new() }
        };
        fim.paths.extend(fim_paths);
        for w in &waivers {
            if !index.contains_key(&w.rule) {
                warnings.push(Diagnostic {
                    level: Level::Warning,
                    file: w.origin.file.clone(),
                    line: w.origin.line,
                    col: 1,
                    message: format!("waiver for `{}` matches no rule", w.rule),
                });
            }
        }
        if let Some(b) = &benchmark {
            // the list decides which rules run under a CIS profile: it is part of the rule set
            hasher.update(Benchmark::embedded_text(&b.baseline).unwrap_or_default());
            hasher.update([0]);
            cite(&mut rules, b, &mut warnings);
        }
        Baseline {
            name,
            layers: infos,
            digest: format!("sha256:{:x}", hasher.finalize()),
            rules,
            waivers,
            warnings,
            fim,
            benchmark,
        }
    }
}

/// Give each rule the recommendations of `benchmark` it checks, cited first among its references.
/// A recommendation naming a rule the stack does not have (a site layer disabled it) is a warning:
/// `baseline coverage` then shows the recommendation without that rule.
fn cite(rules: &mut [Rule], benchmark: &Benchmark, warnings: &mut Vec<Diagnostic>) {
    let mut by_rule = benchmark.by_rule();
    for rule in rules.iter_mut() {
        let Some(cis) = by_rule.remove(rule.meta.id.as_str()) else {
            continue;
        };
        let mut references: Vec<String> =
            cis.iter().map(|r| benchmark.info.cite(&r.number)).collect();
        references.extend(std::mem::take(&mut rule.meta.references));
        rule.meta.references = references;
        rule.meta.cis = cis;
    }
    for (id, cis) in by_rule {
        let numbers: Vec<&str> = cis.iter().map(|r| r.number.as_str()).collect();
        tracing::debug!(
            rule = id,
            "benchmark names a rule the baseline does not have"
        );
        warnings.push(Diagnostic {
            level: Level::Warning,
            file: format!("baseline/cis/{}.toml", benchmark.baseline),
            line: 0,
            col: 0,
            message: format!(
                "{} {} names rule `{id}`, which this baseline does not have",
                benchmark.info,
                numbers.join(", ")
            ),
        });
    }
}

fn reindex(rules: &[Rule]) -> HashMap<String, usize> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.meta.id.clone(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, version: &str) -> OsRelease {
        OsRelease {
            id: id.into(),
            version_id: version.into(),
            ..OsRelease::default()
        }
    }

    #[test]
    fn refs_distinguish_names_and_files() {
        assert_eq!(
            BaselineRef::parse("common"),
            BaselineRef::Name("common".into())
        );
        assert_eq!(
            BaselineRef::parse("site.toml"),
            BaselineRef::File("site.toml".into())
        );
        assert_eq!(
            BaselineRef::parse("./common"),
            BaselineRef::File("./common".into())
        );
    }

    #[test]
    fn every_embedded_baseline_loads_and_is_named_after_its_file() {
        for (stem, _) in embedded::EMBEDDED {
            let layer = embedded::load(stem).unwrap().unwrap();
            assert_eq!(layer.name, *stem);
            assert!(layer.warnings.is_empty(), "{stem}: {:?}", layer.warnings);
            let b = Baseline::embedded(stem).unwrap();
            assert!(b.warnings.is_empty(), "{stem}: {:?}", b.warnings);
            assert!(!b.rules.is_empty());
            for r in &b.rules {
                assert!(
                    !r.meta.references.is_empty(),
                    "{}: every shipped rule cites a reference",
                    r.meta.id
                );
            }
        }
    }

    #[test]
    fn auto_selection_prefers_the_most_specific_match() {
        assert_eq!(
            embedded::select(&os("debian", "12")).unwrap().name,
            "debian-12"
        );
        assert_eq!(
            embedded::select(&os("amzn", "2023")).unwrap().name,
            "amazon-linux-2023"
        );
        // "2" is Amazon Linux 2 only: no prefix match against 2023 (or 2023 against 2)
        assert_eq!(
            embedded::select(&os("amzn", "2")).unwrap().name,
            "amazon-linux-2"
        );
        assert_eq!(
            embedded::select(&os("debian", "13")).unwrap().name,
            "common"
        );
        assert_eq!(embedded::select(&os("", "")).unwrap().name, "common");
    }

    #[test]
    fn layers_override_and_digest_changes_with_content() {
        let debian = Baseline::embedded("debian-12").unwrap();
        let common = Baseline::embedded("common").unwrap();
        assert_eq!(
            debian
                .layers
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            vec!["common", "debian-12"]
        );
        assert_ne!(debian.digest, common.digest);
        assert_eq!(
            debian.digest,
            Baseline::embedded("debian-12").unwrap().digest,
            "digest is deterministic"
        );
        let al = Baseline::embedded("amazon-linux-2023").unwrap();
        let shadow = al.rule("etc-shadow-permissions").unwrap();
        assert_eq!(
            shadow.meta.origin.file, "baseline/amazon-linux-2023.toml",
            "the later layer's rule replaced common's"
        );
        assert_eq!(
            al.rules
                .iter()
                .filter(|r| r.meta.id == "etc-shadow-permissions")
                .count(),
            1
        );
    }
}
