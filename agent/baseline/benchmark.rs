//! CIS benchmarks: for each distribution baseline, the recommendation list of its current CIS
//! Benchmark (number, server level, automated or manual) and the rules that check each one. The
//! lists live in `baseline/cis/*.toml`, embedded like the baselines; a rule's CIS numbers and
//! level come from here, so a rule of `common` cites Debian's numbers under `debian-12` and
//! Amazon Linux's under `amazon-linux-2023`. The profiles select on those levels, and
//! `baseline coverage` prints the list with the rules (or why none).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::diag::{Diagnostic, Level, SourceFile};
use crate::report::BenchmarkInfo;
use crate::rule::CisRecommendation;

/// (baseline name, recommendation list) for each baseline that has a CIS benchmark.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "debian-12",
        include_str!("../../baseline/cis/debian-12.toml"),
    ),
    (
        "ubuntu-22.04",
        include_str!("../../baseline/cis/ubuntu-22.04.toml"),
    ),
    (
        "ubuntu-24.04",
        include_str!("../../baseline/cis/ubuntu-24.04.toml"),
    ),
    ("rhel-9", include_str!("../../baseline/cis/rhel-9.toml")),
    (
        "amazon-linux-2023",
        include_str!("../../baseline/cis/amazon-linux-2023.toml"),
    ),
    (
        "amazon-linux-2",
        include_str!("../../baseline/cis/amazon-linux-2.toml"),
    ),
];

/// One benchmark's recommendations, in the benchmark's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benchmark {
    pub info: BenchmarkInfo,
    /// The embedded baseline it belongs to.
    pub baseline: String,
    pub recommendations: Vec<Recommendation>,
}

/// One recommendation of a benchmark.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recommendation {
    pub number: String,
    /// The server level: 1 or 2.
    pub level: u8,
    /// The benchmark assesses it automatically (`Automated`) or leaves it to a person (`Manual`).
    pub automated: bool,
    /// The rules that check it; empty when none does.
    pub rules: Vec<String>,
    /// Why no rule checks it (present exactly when `rules` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    benchmark: RawBenchmark,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBenchmark {
    name: String,
    version: String,
    baseline: String,
    recommendations: Vec<RawRecommendation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecommendation {
    number: String,
    level: u8,
    automated: bool,
    #[serde(default)]
    rules: Vec<String>,
    reason: Option<String>,
}

impl Benchmark {
    /// The embedded benchmark of baseline `name`, if it has one.
    pub fn embedded(name: &str) -> Option<Benchmark> {
        let (stem, text) = EMBEDDED.iter().find(|(stem, _)| *stem == name)?;
        let source = SourceFile::new(format!("baseline/cis/{stem}.toml"), text.to_string());
        // the embedded lists are checked by the tests below; a broken one is a build defect
        Some(Benchmark::parse(&source).unwrap_or_else(|d| panic!("{}", d[0])))
    }

    /// The embedded text of baseline `name`'s benchmark (for the baseline digest).
    pub fn embedded_text(name: &str) -> Option<&'static str> {
        EMBEDDED
            .iter()
            .find(|(stem, _)| *stem == name)
            .map(|(_, text)| *text)
    }

    /// Parse and validate a recommendation list.
    pub fn parse(source: &SourceFile) -> Result<Benchmark, Vec<Diagnostic>> {
        let error = |message: String| vec![source.diag(Level::Error, None, message)];
        let file: File = toml::from_str(&source.text)
            .map_err(|e| vec![source.diag(Level::Error, e.span(), e.message().to_string())])?;
        let raw = file.benchmark;
        let mut seen = HashMap::new();
        let mut recommendations = Vec::with_capacity(raw.recommendations.len());
        for r in raw.recommendations {
            let well_formed = !r.number.is_empty()
                && r.number
                    .split('.')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
            if !well_formed {
                return Err(error(format!(
                    "recommendation number `{}` is not dotted digits",
                    r.number
                )));
            }
            if seen.insert(r.number.clone(), ()).is_some() {
                return Err(error(format!("recommendation {} listed twice", r.number)));
            }
            if !matches!(r.level, 1 | 2) {
                return Err(error(format!(
                    "recommendation {}: level {} (expected 1 or 2)",
                    r.number, r.level
                )));
            }
            match (&r.rules.is_empty(), &r.reason) {
                (true, None) => {
                    return Err(error(format!(
                        "recommendation {}: no rule checks it, so `reason` must say why",
                        r.number
                    )))
                }
                (false, Some(_)) => {
                    return Err(error(format!(
                        "recommendation {}: `reason` is for recommendations no rule checks",
                        r.number
                    )))
                }
                _ => {}
            }
            recommendations.push(Recommendation {
                number: r.number,
                level: r.level,
                automated: r.automated,
                rules: r.rules,
                reason: r.reason,
            });
        }
        Ok(Benchmark {
            info: BenchmarkInfo {
                name: raw.name,
                version: raw.version,
            },
            baseline: raw.baseline,
            recommendations,
        })
    }

    /// Each rule id with the recommendations it checks, in the benchmark's order.
    pub fn by_rule(&self) -> BTreeMap<&str, Vec<CisRecommendation>> {
        let mut map: BTreeMap<&str, Vec<CisRecommendation>> = BTreeMap::new();
        for r in &self.recommendations {
            for id in &r.rules {
                map.entry(id.as_str()).or_default().push(CisRecommendation {
                    number: r.number.clone(),
                    level: r.level,
                });
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Benchmark, String> {
        Benchmark::parse(&SourceFile::new("t.toml", text)).map_err(|d| d[0].message.clone())
    }

    const HEAD: &str = "[benchmark]\nname = \"CIS Test Linux Benchmark\"\nversion = \"v1.0.0\"\nbaseline = \"test\"\n";

    #[test]
    fn rules_get_their_numbers_and_levels() {
        let b = parse(&format!(
            "{HEAD}recommendations = [\n\
             {{ number = \"1.1\", level = 1, automated = true, rules = [\"a\", \"b\"] }},\n\
             {{ number = \"1.2\", level = 2, automated = true, rules = [\"a\"] }},\n\
             {{ number = \"1.3\", level = 2, automated = false, reason = \"manual\" }},\n]\n"
        ))
        .unwrap();
        assert_eq!(b.info.cite("1.1"), "CIS Test Linux Benchmark v1.0.0 1.1");
        let map = b.by_rule();
        let numbers = |id: &str| -> Vec<(String, u8)> {
            map[id]
                .iter()
                .map(|r| (r.number.clone(), r.level))
                .collect()
        };
        assert_eq!(numbers("a"), [("1.1".into(), 1), ("1.2".into(), 2)]);
        assert_eq!(numbers("b"), [("1.1".into(), 1)]);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn a_broken_list_is_refused_with_the_reason() {
        let cases = [
            ("{ number = \"1.x\", level = 1, automated = true, rules = [\"a\"] }", "not dotted digits"),
            ("{ number = \"1.1\", level = 3, automated = true, rules = [\"a\"] }", "expected 1 or 2"),
            ("{ number = \"1.1\", level = 1, automated = true }", "must say why"),
            ("{ number = \"1.1\", level = 1, automated = true, rules = [\"a\"], reason = \"x\" }", "no rule checks"),
            ("{ number = \"1.1\", level = 1, automated = true, rules = [\"a\"] }, { number = \"1.1\", level = 1, automated = true, rules = [\"a\"] }", "twice"),
            ("{ number = \"1.1\", level = 1, automated = true, rule = [\"a\"] }", "unknown field"),
        ];
        for (entry, want) in cases {
            let err = parse(&format!("{HEAD}recommendations = [{entry}]\n")).unwrap_err();
            assert!(err.contains(want), "{entry}: {err}");
        }
    }

    #[test]
    fn every_embedded_list_parses_and_names_rules_of_its_baseline() {
        for (stem, _) in EMBEDDED {
            let b = Benchmark::embedded(stem).unwrap();
            assert_eq!(b.baseline, *stem);
            assert!(b.info.name.starts_with("CIS ") && b.info.name.ends_with(" Benchmark"));
            assert!(b.info.version.starts_with('v'));
            let baseline = crate::baseline::Baseline::embedded(stem).unwrap();
            for r in &b.recommendations {
                for id in &r.rules {
                    assert!(
                        baseline.rule(id).is_some(),
                        "{stem} {}: rule `{id}` is not in the baseline",
                        r.number
                    );
                }
            }
        }
    }

    #[test]
    fn shipped_rules_cite_cis_linux_numbers_only_through_the_lists() {
        // a number written in a rule would go stale with the next benchmark version, and a
        // common rule cannot carry every distribution's number: they come from baseline/cis/
        for (stem, _) in crate::baseline::embedded::EMBEDDED {
            let layer = crate::baseline::embedded::load(stem).unwrap().unwrap();
            for rule in &layer.rules {
                for r in &rule.meta.references {
                    let by_hand = r.starts_with("CIS ")
                        && !r.starts_with("CIS Amazon Web Services Foundations");
                    assert!(!by_hand, "{stem}: {}: `{r}`", rule.meta.id);
                }
            }
        }
    }
}
