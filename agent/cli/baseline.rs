//! `ec2-harden baseline list|show|validate` and `ec2-harden explain`: what the baselines hold and
//! why a rule exists, without looking at any host.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use ec2_harden::baseline::coverage::Coverage;
use ec2_harden::baseline::{benchmark, embedded, Baseline, BaselineError, BaselineRef, Layer};

use super::{out, refs, CliResult, Exit, Failure, ProfileArg};

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// List the embedded baselines with their rule counts.
    List,
    /// Show a baseline's layers and rules (NAME or FILE); --raw prints its TOML source.
    Show {
        #[arg(value_name = "NAME|FILE")]
        name: String,
        #[arg(long)]
        raw: bool,
    },
    /// Validate a baseline file (and what it extends); exit 2 with FILE:LINE:COL errors.
    Validate {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Each recommendation of the baseline's CIS benchmark with the rules that check it under a
    /// profile, or why none does; and the share of automated recommendations covered.
    Coverage {
        #[arg(value_name = "NAME|FILE")]
        name: String,
        /// cis-level1-server lists Level 1 only; cis-level2-server and ec2 list both levels.
        #[arg(long, value_enum, default_value = "cis-level2-server")]
        profile: ProfileArg,
        #[arg(long, value_enum, default_value = "text")]
        format: CoverageFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoverageFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rule id, e.g. etc-shadow-permissions.
    pub rule_id: String,
    /// Look the rule up in these baselines (default: every embedded baseline).
    #[arg(long = "baseline", value_name = "FILE|NAME")]
    pub baselines: Vec<String>,
}

pub fn baseline(cmd: BaselineCommand) -> CliResult {
    match cmd {
        BaselineCommand::List => {
            let mut text = format!(
                "{:<24} {:<9} {:>6}  {:<26} {}\n",
                "NAME", "VERSION", "RULES", "MATCH", "DESCRIPTION"
            );
            for layer in embedded::all().map_err(Failure::internal)? {
                let resolved = Baseline::embedded(&layer.name).map_err(Failure::internal)?;
                let matches = layer.distro.as_ref().map_or_else(
                    || "(any Linux)".to_string(),
                    |m| {
                        let v = if m.version_id.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", m.version_id.join("|"))
                        };
                        format!("{}{v}", m.id.join("|"))
                    },
                );
                text.push_str(&format!(
                    "{:<24} {:<9} {:>6}  {:<26} {}\n",
                    layer.name,
                    layer.version,
                    resolved.rules.len(),
                    matches,
                    layer.description
                ));
            }
            out(&text)?;
            Ok(Exit::Clean)
        }
        BaselineCommand::Show { name, raw } => {
            let r = BaselineRef::parse(&name);
            if raw {
                let text = match &r {
                    BaselineRef::Name(n) => embedded::EMBEDDED
                        .iter()
                        .find(|(stem, _)| stem == n)
                        .map(|(_, text)| text.to_string())
                        .ok_or_else(|| {
                            Failure::config(BaselineError::UnknownName { name: n.clone() })
                        })?,
                    BaselineRef::File(p) => {
                        ec2_harden::baseline::read_source(p).map_err(Failure::config)?
                    }
                };
                out(&text)?;
                return Ok(Exit::Clean);
            }
            let b = Baseline::resolve_only(&[r]).map_err(Failure::config)?;
            let mut text = format!("baseline {} ({})\nlayers:", b.name, b.digest);
            for l in &b.layers {
                text.push_str(&format!(" {} {} [{}];", l.name, l.version, l.source));
            }
            text.push_str(&format!(
                "\n{} rules, {} waivers\n\n",
                b.rules.len(),
                b.waivers.len()
            ));
            for r in &b.rules {
                let stages: Vec<&str> = r.meta.stages.iter().map(|s| s.as_str()).collect();
                text.push_str(&format!(
                    "{:<44} {:<8} {:<14} {:<10} {}\n",
                    r.meta.id,
                    r.meta.severity,
                    stages.join(","),
                    r.meta.family,
                    r.meta.title
                ));
            }
            text.push_str("\nfile integrity (fim) paths, most specific wins:\n");
            for p in &b.fim.paths {
                text.push_str(&format!("  {:<9} {}\n", p.policy.as_str(), p.path));
            }
            out(&text)?;
            Ok(Exit::Clean)
        }
        BaselineCommand::Coverage {
            name,
            profile,
            format,
        } => {
            let b =
                Baseline::resolve_only(&[BaselineRef::parse(&name)]).map_err(Failure::config)?;
            let profile = profile.into();
            let Some(coverage) = Coverage::of(&b, profile) else {
                return Err(Failure::config(anyhow::anyhow!(
                    "baseline `{}` has no CIS benchmark (those that do: {})",
                    b.name,
                    benchmark::EMBEDDED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let text = match format {
                CoverageFormat::Text => coverage.render_text(),
                CoverageFormat::Json => {
                    let mut json =
                        serde_json::to_string_pretty(&coverage).map_err(Failure::internal)?;
                    json.push('\n');
                    json
                }
            };
            out(&text)?;
            Ok(Exit::Clean)
        }
        BaselineCommand::Validate { file } => {
            let layer = Layer::load_file(&file).map_err(Failure::config)?;
            let own = layer.rules.len();
            let waivers = layer.waivers.len();
            let b = Baseline::resolve_only(&[BaselineRef::File(file.clone())])
                .map_err(Failure::config)?;
            for w in &b.warnings {
                tracing::warn!("{w}");
            }
            out(&format!(
                "ok: {}: {own} rules, {waivers} waivers; {} rules with what it extends ({} warning{})\n",
                file.display(),
                b.rules.len(),
                b.warnings.len(),
                if b.warnings.len() == 1 { "" } else { "s" }
            ))?;
            Ok(Exit::Clean)
        }
    }
}

pub fn explain(args: ExplainArgs) -> CliResult {
    let candidates: Vec<Baseline> = if args.baselines.is_empty() {
        embedded::names()
            .into_iter()
            .map(Baseline::embedded)
            .collect::<Result<_, _>>()
            .map_err(Failure::internal)?
    } else {
        vec![Baseline::resolve_only(&refs(&args.baselines)).map_err(Failure::config)?]
    };
    let Some(rule) = candidates.iter().rev().find_map(|b| b.rule(&args.rule_id)) else {
        let mut ids: Vec<&str> = candidates
            .iter()
            .flat_map(|b| b.rules.iter().map(|r| r.meta.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let near: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| {
                id.contains(args.rule_id.as_str())
                    || args
                        .rule_id
                        .split('-')
                        .filter(|w| w.len() > 2)
                        .any(|w| id.contains(w))
            })
            .take(8)
            .collect();
        return Err(Failure::config(anyhow::anyhow!(
            "no rule `{}` in the baselines searched{}",
            args.rule_id,
            if near.is_empty() {
                String::new()
            } else {
                format!("; similar: {}", near.join(", "))
            }
        )));
    };
    let m = &rule.meta;
    let stages: Vec<&str> = m.stages.iter().map(|s| s.as_str()).collect();
    let mut text = format!(
        "{}\n  {}\n\nseverity:    {}\nstages:      {}\nfamily:      {} (kind {})\ndefined at:  {}\n\nWhy:\n{}\n\nFix:\n{}\n",
        m.id,
        m.title,
        m.severity,
        stages.join(", "),
        m.family,
        m.kind,
        m.origin,
        indent(&m.rationale),
        indent(&m.remediation)
    );
    // the benchmark citations are listed per baseline below, not as the last baseline's
    let mut cited = Vec::new();
    for b in &candidates {
        let (Some(bench), Some(r)) = (&b.benchmark, b.rule(&args.rule_id)) else {
            continue;
        };
        for c in &r.meta.cis {
            cited.push((b.name.clone(), bench.info.cite(&c.number), c.level));
        }
    }
    let own: Vec<&String> = m
        .references
        .iter()
        .filter(|r| !cited.iter().any(|(_, cite, _)| cite == *r))
        .collect();
    if !own.is_empty() {
        text.push_str("\nReferences:\n");
        for r in own {
            text.push_str(&format!("  - {r}\n"));
        }
    }
    if !cited.is_empty() {
        text.push_str("\nCIS recommendations it checks:\n");
        for (baseline, cite, level) in &cited {
            text.push_str(&format!(
                "  - {cite} (Level {level}; baseline {baseline})\n"
            ));
        }
    }
    out(&text)?;
    Ok(Exit::Clean)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
