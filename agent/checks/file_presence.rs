//! `[[file_absent]]` and `[[file_present]]`: whether paths (globs allowed) exist in the sysroot.
//! Absent rules are how image hygiene says "no SSH host keys, no shell histories, no
//! authorized_keys in the AMI"; present rules say "this must be there" (an audit config, a banner).
//! Symlinks count as present even when dangling: a link left in an image is still a leftover.

use std::os::unix::fs::MetadataExt;

use serde::Deserialize;
use toml::Spanned;

use super::validate_path;
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::rule::{Evidence, Outcome};

/// The type a present path must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
}

rule_params! {
    /// TOML parameters of `[[file_absent]]`.
    pub struct FileAbsent {
        /// Absolute path inside the sysroot; glob patterns allowed.
        pub path: Spanned<String>,
        /// An empty regular file counts as absent (e.g. `/etc/machine-id` in an image).
        #[serde(default)]
        pub empty_ok: bool,
    }
}

rule_params! {
    /// TOML parameters of `[[file_present]]`.
    pub struct FilePresent {
        /// Absolute path inside the sysroot; glob patterns allowed (at least one match needed).
        pub path: Spanned<String>,
        /// The type each match must have (symlinks are followed for `file` and `dir`).
        #[serde(default, rename = "type")]
        pub file_type: Option<FileType>,
        /// Matches must not be empty files.
        #[serde(default)]
        pub non_empty: bool,
    }
}

#[derive(Debug)]
pub struct FileAbsentCheck {
    path: String,
    empty_ok: bool,
}

#[derive(Debug)]
pub struct FilePresentCheck {
    path: String,
    file_type: Option<FileType>,
    non_empty: bool,
}

impl CompileCheck for FileAbsent {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        validate_path(diags, &self.path);
        (!diags.errors_since(mark)).then(|| {
            Box::new(FileAbsentCheck {
                path: self.path.get_ref().clone(),
                empty_ok: self.empty_ok,
            }) as Box<dyn Check>
        })
    }
}

impl CompileCheck for FilePresent {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        validate_path(diags, &self.path);
        (!diags.errors_since(mark)).then(|| {
            Box::new(FilePresentCheck {
                path: self.path.get_ref().clone(),
                file_type: self.file_type,
                non_empty: self.non_empty,
            }) as Box<dyn Check>
        })
    }
}

fn describe(md: &std::fs::Metadata) -> String {
    let ft = md.file_type();
    if ft.is_symlink() {
        "symlink".into()
    } else if ft.is_dir() {
        "directory".into()
    } else if ft.is_file() {
        format!("file, {} bytes", md.size())
    } else {
        "special file".into()
    }
}

impl Check for FileAbsentCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let paths = match cx.sysroot.glob(&self.path) {
            Ok(p) => p,
            Err(e) => return Outcome::error(e),
        };
        let mut found = Vec::new();
        for p in &paths {
            let path = p.display().to_string();
            let md = match cx.sysroot.symlink_metadata(p) {
                Ok(md) => md,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Outcome::error(e),
            };
            if self.empty_ok && md.is_file() && md.size() == 0 {
                continue;
            }
            found.push(
                Evidence::new("must not exist")
                    .path(path)
                    .found(describe(&md)),
            );
        }
        if found.is_empty() {
            Outcome::pass(Evidence::new(format!("nothing matches {}", self.path)))
        } else {
            Outcome::Fail { evidence: found }
        }
    }
}

impl Check for FilePresentCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let paths = match cx.sysroot.glob(&self.path) {
            Ok(p) => p,
            Err(e) => return Outcome::error(e),
        };
        if paths.is_empty() {
            return Outcome::fail(Evidence::new(format!("{} does not exist", self.path)));
        }
        let outcomes = paths
            .iter()
            .map(|p| {
                let path = p.display().to_string();
                let md = match self.file_type {
                    Some(FileType::Symlink) => cx.sysroot.symlink_metadata(p),
                    _ => cx.sysroot.metadata(p),
                };
                let md = match md {
                    Ok(md) => md,
                    Err(e) if e.is_not_found() => {
                        return Outcome::fail(Evidence::new("dangling symlink").path(path))
                    }
                    Err(e) => return Outcome::error(e),
                };
                let type_ok = match self.file_type {
                    None => true,
                    Some(FileType::File) => md.is_file(),
                    Some(FileType::Dir) => md.is_dir(),
                    Some(FileType::Symlink) => md.file_type().is_symlink(),
                };
                if !type_ok {
                    let want =
                        format!("{:?}", self.file_type.unwrap_or(FileType::File)).to_lowercase();
                    return Outcome::fail(
                        Evidence::new("wrong type")
                            .path(path)
                            .found(describe(&md))
                            .expected(want),
                    );
                }
                if self.non_empty && md.is_file() && md.size() == 0 {
                    return Outcome::fail(Evidence::new("is empty").path(path).expected("content"));
                }
                Outcome::pass(Evidence::new("present").path(path).found(describe(&md)))
            })
            .collect();
        Outcome::combine(outcomes, "nothing to check")
    }
}
