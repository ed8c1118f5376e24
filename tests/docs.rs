//! The documentation stays true to the code and usable: every rule kind has its section in
//! docs/rule-kinds.md naming its default family, every embedded baseline is in docs/baselines.md,
//! relative links in README.md and docs/*.md point at files that exist, the README stays a short
//! front door, and no page reads like a development log. Reads only the repository's files: no
//! root, no network.

use std::fs;
use std::path::{Path, PathBuf};

use ec2_harden::baseline::embedded;
use ec2_harden::baseline::kinds::KINDS;
use regex::Regex;

const README_MAX_BYTES: usize = 15_000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// README.md and every docs/*.md, sorted.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.insert(0, repo().join("README.md"));
    pages
}

/// The lines of `## heading` sections: from the heading (exclusive) to the next `## ` line.
fn section<'a>(text: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| l.trim_end() != heading);
    lines.next()?;
    Some(lines.take_while(|l| !l.starts_with("## ")).collect())
}

#[test]
fn every_rule_kind_has_a_section_naming_its_family() {
    let text = read(&repo().join("docs/rule-kinds.md"));
    let mut problems = Vec::new();
    for kind in KINDS {
        let heading = format!("## `{}`", kind.name);
        match section(&text, &heading) {
            None => problems.push(format!("no `{heading}` section")),
            Some(body) => {
                let family = format!("`{}`", kind.family);
                if !body.iter().any(|l| l.contains(&family)) {
                    problems.push(format!(
                        "section `{heading}` does not mention its default family {family}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/rule-kinds.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_embedded_baseline_is_documented() {
    let text = read(&repo().join("docs/baselines.md"));
    let missing: Vec<&str> = embedded::names()
        .into_iter()
        .filter(|name| !text.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/baselines.md does not mention the embedded baselines {missing:?}"
    );
}

#[test]
fn relative_links_resolve() {
    // [text](target) and ![alt](target), with an optional "title"; code blocks are skipped
    let link = Regex::new(r#"\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).expect("regex");
    let mut broken = Vec::new();
    for page in pages() {
        let dir = page.parent().expect("page has a directory");
        let mut in_code = false;
        for (n, line) in read(&page).lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if in_code {
                continue;
            }
            for cap in link.captures_iter(line) {
                let target = &cap[1];
                if target.starts_with("http://")
                    || target.starts_with("https://")
                    || target.starts_with("mailto:")
                    || target.starts_with('#')
                {
                    continue;
                }
                let file = target.split('#').next().unwrap_or_default();
                if !dir.join(file).exists() {
                    broken.push(format!(
                        "{}:{}: {target}",
                        page.strip_prefix(repo()).unwrap_or(&page).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to missing files:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn readme_is_a_short_front_door() {
    let size = read(&repo().join("README.md")).len();
    assert!(
        size <= README_MAX_BYTES,
        "README.md is {size} bytes, more than {README_MAX_BYTES}: move the detail into docs/"
    );
}

#[test]
fn no_development_log_phrases() {
    let phrases = Regex::new(r"(?i)development vm|issue \d|earlier measurements|this session")
        .expect("regex");
    let mut found = Vec::new();
    for page in pages() {
        for (n, line) in read(&page).lines().enumerate() {
            if let Some(m) = phrases.find(line) {
                found.push(format!(
                    "{}:{}: {:?}",
                    page.strip_prefix(repo()).unwrap_or(&page).display(),
                    n + 1,
                    m.as_str()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the documentation describes what is, not how it came to be:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_cis_page_shows_the_coverage_baseline_coverage_prints() {
    use ec2_harden::baseline::coverage::Coverage;
    use ec2_harden::baseline::{benchmark, Baseline};
    use ec2_harden::rule::Profile;
    let text = read(&repo().join("docs/cis.md"));
    for (name, _) in benchmark::EMBEDDED {
        let b = Baseline::embedded(name).unwrap();
        let summary = Coverage::of(&b, Profile::CisLevel2Server)
            .unwrap()
            .summary();
        let line = summary.lines().nth(1).unwrap();
        let row = format!("| `{name}` | {line} |");
        assert!(
            text.contains(&row),
            "docs/cis.md: the coverage row of {name} should read\n{row}"
        );
        let head = format!(
            "| `{name}` | {} {} |",
            b.benchmark.as_ref().unwrap().info.name,
            b.benchmark.as_ref().unwrap().info.version
        );
        assert!(
            text.contains(&head),
            "docs/cis.md: the benchmark row should read\n{head}"
        );
    }
}
