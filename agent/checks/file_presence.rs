//! `[[file_absent]]` and `[[file_present]]`: whether paths (globs allowed) exist in the sysroot.
//! Absent rules are how image hygiene says "no SSH host keys, no shell histories, no
//! authorized_keys in the AMI"; present rules say "this must be there" (an audit config, a banner).
//! Symlinks count as present even when dangling: a link left in an image is still a leftover.
//! An absent path written `~/...` is looked for in the home directory of every interactive user
//! but root (a login shell, from the audited `/etc/passwd` and `/etc/shells`), wherever those homes
//! are, as the CIS audits of `.forward` and `.netrc` do.

use std::os::unix::fs::MetadataExt;

use serde::Deserialize;
use toml::Spanned;

use super::validate_path;
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::accounts::interactive_users;
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
        /// Absolute path inside the sysroot; glob patterns allowed; `~/REST`: REST in the home
        /// of every interactive user other than root.
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
        match self.path.get_ref().strip_prefix("~/") {
            Some(rest) => validate_path(diags, &Spanned::new(self.path.span(), format!("/{rest}"))),
            None => validate_path(diags, &self.path),
        }
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

impl FileAbsentCheck {
    /// The in-root patterns to look at, each with the user whose home it is in (for `~/`).
    fn patterns(&self, cx: &Context<'_>) -> Result<Vec<(String, Option<String>)>, String> {
        let Some(rest) = self.path.strip_prefix("~/") else {
            return Ok(vec![(self.path.clone(), None)]);
        };
        let users = interactive_users(cx.sysroot)?;
        Ok(users
            .into_iter()
            .filter(|u| u.uid != 0 && u.home.starts_with('/'))
            .map(|u| {
                let home = glob::Pattern::escape(u.home.trim_end_matches('/'));
                (format!("{home}/{rest}"), Some(u.name))
            })
            .collect())
    }
}

impl Check for FileAbsentCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let patterns = match self.patterns(cx) {
            Ok(p) => p,
            Err(e) => return Outcome::error(format!("cannot list the interactive users: {e}")),
        };
        let mut paths = Vec::new();
        for (pattern, user) in patterns {
            match cx.sysroot.glob(&pattern) {
                Ok(found) => paths.extend(found.into_iter().map(|p| (p, user.clone()))),
                Err(e) => return Outcome::error(e),
            }
        }
        let mut found = Vec::new();
        for (p, user) in &paths {
            let path = p.display().to_string();
            let md = match cx.sysroot.symlink_metadata(p) {
                Ok(md) => md,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Outcome::error(e),
            };
            if self.empty_ok && md.is_file() && md.size() == 0 {
                continue;
            }
            let what = match user {
                Some(user) => format!("must not exist (in the home of interactive user {user})"),
                None => "must not exist".to_string(),
            };
            found.push(Evidence::new(what).path(path).found(describe(&md)));
        }
        if found.is_empty() {
            let scope = if self.path.starts_with("~/") {
                " in the homes of the interactive users other than root"
            } else {
                ""
            };
            Outcome::pass(Evidence::new(format!(
                "nothing matches {}{scope}",
                self.path
            )))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostFacts;
    use crate::rule::Stage;
    use crate::sysroot::Sysroot;
    use std::fs;

    fn absent(path: &str, files: &[(&str, &str)]) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = dir.path().join(p.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let sysroot = Sysroot::open(dir.path()).unwrap();
        let facts = HostFacts::gather(&sysroot);
        let cx = Context::new(&sysroot, Stage::Run, &facts, true);
        FileAbsentCheck {
            path: path.into(),
            empty_ok: false,
        }
        .evaluate(&cx)
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/srv/alice:/bin/bash\nsvc:x:998:998::/var/lib/svc:/usr/sbin/nologin\nbob:x:1001:1001::/home/bob:/bin/sh\n";

    #[test]
    fn home_paths_follow_the_account_database() {
        // alice's home is outside /home; svc has no login shell; root has its own rule
        let files = [
            ("/etc/passwd", PASSWD),
            ("/srv/alice/.netrc", "machine x login y password z\n"),
            ("/var/lib/svc/.netrc", "x"),
            ("/root/.netrc", "x"),
            ("/home/bob/.forward", "x"),
        ];
        let Outcome::Fail { evidence } = absent("~/.netrc", &files) else {
            panic!("expected a failure")
        };
        assert_eq!(evidence.len(), 1, "{evidence:?}");
        assert_eq!(evidence[0].path.as_deref(), Some("/srv/alice/.netrc"));
        assert!(evidence[0].message.contains("interactive user alice"));
        assert!(matches!(absent("~/.rhosts", &files), Outcome::Pass { .. }));
        let Outcome::Fail { evidence } = absent("~/.forward", &files) else {
            panic!("expected a failure")
        };
        assert_eq!(evidence[0].path.as_deref(), Some("/home/bob/.forward"));
    }

    #[test]
    fn an_unreadable_account_database_is_an_error_not_a_pass() {
        let o = absent(
            "~/.netrc",
            &[("/etc/passwd", "root:x:0:0::/root:/bin/bash\nbad\n")],
        );
        assert!(matches!(o, Outcome::Error { .. }), "{o:?}");
        let o = absent("~/.netrc", &[]);
        assert!(matches!(o, Outcome::Error { .. }), "{o:?}");
    }
}
