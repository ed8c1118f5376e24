//! `[[file_content]]`: lines of text files that must, or must not, be there. Each line of each file
//! matched by `paths` (globs, in order) is tested on its own against the regexes, after comment
//! lines (`comment` prefix, `#` by default) are dropped. `must_match`: at least one line of the set
//! matches (a `Defaults use_pty` anywhere in sudoers); `must_not_match`: no line matches, every
//! offending line being evidence with its file and line (a `NOPASSWD: ALL`, an OS version in
//! `/etc/issue`), unless the line also matches `unless` (an allowed exception). Binary content is an
//! error, never a silent pass.

use regex::Regex;
use toml::Spanned;

use super::expect::compile_regex;
use super::{validate_paths, IfMissing};
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::rule::{Evidence, Outcome};

rule_params! {
    /// TOML parameters of `[[file_content]]`.
    pub struct FileContent {
        /// Files to read, in order; globs allowed.
        pub paths: Spanned<Vec<Spanned<String>>>,
        /// Some line must match this regex.
        #[serde(default)]
        pub must_match: Option<Spanned<String>>,
        /// No line may match this regex...
        #[serde(default)]
        pub must_not_match: Option<Spanned<String>>,
        /// ...unless it also matches this one (an allowed exception).
        #[serde(default)]
        pub unless: Option<Spanned<String>>,
        /// Lines starting (after blanks) with this are comments and skipped; "" keeps every line.
        #[serde(default = "hash")]
        pub comment: String,
        /// When none of the files exist: `not-applicable` (default), `fail`, `pass`.
        #[serde(default)]
        pub missing_file: IfMissing,
    }
}

fn hash() -> String {
    "#".into()
}

#[derive(Debug)]
pub struct FileContentCheck {
    paths: Vec<String>,
    must_match: Option<Regex>,
    must_not_match: Option<Regex>,
    unless: Option<Regex>,
    comment: String,
    missing_file: IfMissing,
}

/// The line tests a `file_content` or `audit_rules` rule compiles: at least one of `must_match`
/// and `must_not_match`, regexes that compile, `unless` only with `must_not_match`. Errors go to
/// `diags`; the caller checks them.
pub(crate) fn compile_line_tests(
    kind: &str,
    id: &Spanned<String>,
    must_match: Option<&Spanned<String>>,
    must_not_match: Option<&Spanned<String>>,
    unless: Option<&Spanned<String>>,
    diags: &mut Diagnostics<'_>,
) -> FileContentCheck {
    if must_match.is_none() && must_not_match.is_none() {
        diags.error(
            id.span(),
            format!(
                "rule `{}`: {kind} needs must_match and/or must_not_match",
                id.get_ref()
            ),
        );
    }
    let must_match = must_match.and_then(|r| compile_regex(r, diags));
    let compiled_not = must_not_match.and_then(|r| compile_regex(r, diags));
    let compiled_unless = unless.and_then(|r| compile_regex(r, diags));
    if let (Some(u), None) = (unless, must_not_match) {
        diags.error(u.span(), "`unless` only qualifies `must_not_match`");
    }
    FileContentCheck::lines(must_match, compiled_not, compiled_unless)
}

impl CompileCheck for FileContent {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let paths = validate_paths(diags, &self.paths);
        let lines = compile_line_tests(
            "file_content",
            &self.id,
            self.must_match.as_ref(),
            self.must_not_match.as_ref(),
            self.unless.as_ref(),
            diags,
        );
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(FileContentCheck {
            paths,
            comment: self.comment.clone(),
            missing_file: self.missing_file,
            ..lines
        }))
    }
}

/// Cut a line for evidence: enough to recognise it, never a whole minified blob.
fn excerpt(line: &str) -> String {
    const MAX: usize = 200;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

impl FileContentCheck {
    /// A check of the lines of files chosen at evaluation time (the `audit_rules` kind): comments
    /// start with `#`, and a missing file set fails.
    pub(crate) fn lines(
        must_match: Option<Regex>,
        must_not_match: Option<Regex>,
        unless: Option<Regex>,
    ) -> FileContentCheck {
        FileContentCheck {
            paths: Vec::new(),
            must_match,
            must_not_match,
            unless,
            comment: "#".into(),
            missing_file: IfMissing::Fail,
        }
    }

    /// Whether some line must match (`must_match`), as opposed to only forbidding lines.
    pub(crate) fn requires_a_line(&self) -> bool {
        self.must_match.is_some()
    }

    /// Judge the lines of `files` (in-root paths, in order); `described` names them in messages.
    pub(crate) fn judge(
        &self,
        cx: &Context<'_>,
        files: &[std::path::PathBuf],
        described: &str,
    ) -> Outcome {
        let mut read_any = false;
        let mut matched: Option<Evidence> = None;
        let mut offending = Vec::new();
        for file in files {
            let path = file.display().to_string();
            let bytes = match cx.sysroot.read(file) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::InvalidInput
                        && cx.sysroot.metadata(file).is_ok_and(|m| m.is_dir()) =>
                {
                    continue
                }
                Err(e) => return Outcome::error(e),
            };
            read_any = true;
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::error(format!(
                        "{path}: not a text file (invalid UTF-8 at byte {})",
                        e.valid_up_to()
                    ))
                }
            };
            for (i, line) in text.lines().enumerate() {
                let trimmed = line.trim_start();
                if !self.comment.is_empty() && trimmed.starts_with(&self.comment) {
                    continue;
                }
                if matched.is_none() && self.must_match.as_ref().is_some_and(|re| re.is_match(line))
                {
                    matched = Some(
                        Evidence::new("required line present")
                            .path(path.clone())
                            .line(i + 1)
                            .found(excerpt(line.trim())),
                    );
                }
                if let Some(re) = &self.must_not_match {
                    if re.is_match(line) && !self.unless.as_ref().is_some_and(|u| u.is_match(line))
                    {
                        offending.push(
                            Evidence::new("forbidden line")
                                .path(path.clone())
                                .line(i + 1)
                                .found(excerpt(line.trim()))
                                .expected(format!("no line matching /{re}/")),
                        );
                    }
                }
            }
        }
        if !read_any {
            return self
                .missing_file
                .outcome(format!("none of {described} exists"));
        }
        let mut fails = offending;
        if let (Some(re), None) = (&self.must_match, &matched) {
            fails.insert(
                0,
                Evidence::new(format!("no line matches in {described}"))
                    .expected(format!("a line matching /{re}/")),
            );
        }
        if !fails.is_empty() {
            return Outcome::Fail { evidence: fails };
        }
        Outcome::pass(
            matched.unwrap_or_else(|| Evidence::new(format!("no forbidden line in {described}"))),
        )
    }
}

impl Check for FileContentCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let files = match super::expand(cx.sysroot, &self.paths) {
            Ok(files) => files,
            Err(e) => return Outcome::error(e),
        };
        self.judge(cx, &files, &self.paths.join(", "))
    }
}
