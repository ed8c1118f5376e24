//! `baseline coverage`: a baseline's CIS benchmark recommendation by recommendation, with the rules
//! a profile runs for each, or why none does; and the share of automated recommendations covered,
//! per level. What auditors ask for ("which CIS recommendations does this image check?") and what
//! the docs' coverage tables are printed from.

use serde::Serialize;

use super::{Baseline, Benchmark, Recommendation};
use crate::report::BenchmarkInfo;
use crate::rule::Profile;

/// Automated recommendations covered, of those in scope, at one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    pub covered: usize,
    pub automated: usize,
}

impl Share {
    pub fn percent(self) -> f64 {
        if self.automated == 0 {
            100.0
        } else {
            (self.covered as f64 * 1000.0 / self.automated as f64).round() / 10.0
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub benchmark: BenchmarkInfo,
    pub baseline: String,
    pub profile: Profile,
    /// Automated recommendations with at least one rule: all levels in scope, then per level.
    pub automated: Share,
    pub level1: Share,
    pub level2: Share,
    /// Manual recommendations in scope (a person's review; no rule is expected).
    pub manual: usize,
    /// The recommendations in the profile's scope, each with the rules of the baseline that
    /// check it, or why none does.
    pub recommendations: Vec<Recommendation>,
}

impl Coverage {
    /// The coverage of `baseline`'s benchmark under `profile`; `None` when it has no benchmark.
    /// `cis-level1-server` scopes to Level 1 recommendations; the others list every server
    /// recommendation (the EC2 profile runs every rule of the baseline).
    pub fn of(baseline: &Baseline, profile: Profile) -> Option<Coverage> {
        let benchmark: &Benchmark = baseline.benchmark.as_ref()?;
        let mut lines = Vec::new();
        let (mut level1, mut level2, mut manual) = (Share::default(), Share::default(), 0);
        for r in &benchmark.recommendations {
            if profile == Profile::CisLevel1Server && r.level != 1 {
                continue;
            }
            let rules: Vec<String> = r
                .rules
                .iter()
                .filter(|id| baseline.rule(id).is_some())
                .cloned()
                .collect();
            let reason = if !rules.is_empty() {
                None
            } else if !r.rules.is_empty() {
                Some(format!(
                    "its rules ({}) are disabled in this baseline",
                    r.rules.join(", ")
                ))
            } else {
                r.reason.clone()
            };
            if r.automated {
                let share = if r.level == 1 {
                    &mut level1
                } else {
                    &mut level2
                };
                share.automated += 1;
                share.covered += usize::from(!rules.is_empty());
            } else {
                manual += 1;
            }
            lines.push(Recommendation {
                number: r.number.clone(),
                level: r.level,
                automated: r.automated,
                rules,
                reason,
            });
        }
        Some(Coverage {
            benchmark: benchmark.info.clone(),
            baseline: baseline.name.clone(),
            profile,
            automated: Share {
                covered: level1.covered + level2.covered,
                automated: level1.automated + level2.automated,
            },
            level1,
            level2,
            manual,
            recommendations: lines,
        })
    }

    /// The summary lines: benchmark, profile, shares.
    pub fn summary(&self) -> String {
        let share = |s: Share| format!("{} of {} ({:.1} %)", s.covered, s.automated, s.percent());
        let mut text = format!(
            "{} {} for baseline {}, profile {}\nautomated recommendations checked: {}",
            self.benchmark.name,
            self.benchmark.version,
            self.baseline,
            self.profile,
            share(self.automated)
        );
        text.push_str(&format!("; Level 1 {}", share(self.level1)));
        if self.profile != Profile::CisLevel1Server {
            text.push_str(&format!("; Level 2 {}", share(self.level2)));
        }
        text.push_str(&format!(
            "\nmanual recommendations (a person's review): {}\n",
            self.manual
        ));
        text
    }

    /// The summary, then one line per recommendation.
    pub fn render_text(&self) -> String {
        let mut text = self.summary();
        text.push_str(&format!(
            "\n{:<12} {:<5} {:<10} RULES\n",
            "NUMBER", "LEVEL", "ASSESSED"
        ));
        for l in &self.recommendations {
            let what = if l.rules.is_empty() {
                format!(
                    "not covered: {}",
                    l.reason.as_deref().unwrap_or("no rule checks it")
                )
            } else {
                l.rules.join(", ")
            };
            text.push_str(&format!(
                "{:<12} {:<5} {:<10} {what}\n",
                l.number,
                l.level,
                if l.automated { "automated" } else { "manual" }
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_reports_its_coverage_consistently() {
        for (name, _) in super::super::benchmark::EMBEDDED {
            let baseline = Baseline::embedded(name).unwrap();
            let all = Coverage::of(&baseline, Profile::CisLevel2Server).unwrap();
            let l1 = Coverage::of(&baseline, Profile::CisLevel1Server).unwrap();
            assert_eq!(l1.level1, all.level1, "{name}");
            assert!(l1.recommendations.iter().all(|l| l.level == 1));
            let count = |c: &Coverage| {
                c.recommendations
                    .iter()
                    .filter(|l| l.automated && !l.rules.is_empty())
                    .count()
            };
            assert_eq!(count(&all), all.automated.covered, "{name}");
            assert_eq!(
                all.recommendations.len(),
                all.automated.automated + all.manual
            );
            for l in &all.recommendations {
                assert_eq!(
                    l.rules.is_empty(),
                    l.reason.is_some(),
                    "{name} {}",
                    l.number
                );
            }
            // the EC2 profile runs every rule: it covers what cis-level2-server does
            let ec2 = Coverage::of(&baseline, Profile::Ec2).unwrap();
            assert_eq!(ec2.automated, all.automated, "{name}");
        }
        let common = Baseline::embedded("common").unwrap();
        assert!(Coverage::of(&common, Profile::Ec2).is_none());
    }
}
