//! `[[systemd_unit]]`: whether systemd units start at boot, read from the unit files and their
//! symlinks in the sysroot (no `systemctl`, no running systemd needed, so images work too). A unit is
//! *installed* when a unit file of its name (or its template `name@.service`) exists in a unit
//! directory (`/etc`, `/run`, `/usr/local/lib`, `/usr/lib`, `/lib` `systemd/system`, the first one
//! that has it winning); *masked* when that first one is a link to `/dev/null`; *enabled* when a
//! `*.wants/` or `*.requires/` directory of any unit directory links it in and it is not masked.
//! `state = "disabled"` passes when no listed unit is enabled (not installed counts as disabled);
//! `state = "enabled"` passes when at least one listed unit is (e.g. chrony or systemd-timesyncd).

use serde::Deserialize;
use toml::Spanned;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::systemd::UnitIndex;
use crate::rule::{Evidence, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    Enabled,
    Disabled,
}

rule_params! {
    /// TOML parameters of `[[systemd_unit]]`.
    pub struct SystemdUnit {
        /// Unit names, e.g. `["avahi-daemon.service", "avahi-daemon.socket"]`.
        pub units: Spanned<Vec<String>>,
        pub state: UnitState,
    }
}

#[derive(Debug)]
pub struct SystemdUnitCheck {
    units: Vec<String>,
    state: UnitState,
}

const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".timer",
    ".target",
    ".mount",
    ".path",
    ".automount",
    ".swap",
];

impl CompileCheck for SystemdUnit {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        if self.units.get_ref().is_empty() {
            diags.error(self.units.span(), "`units` must list at least one unit");
        }
        for u in self.units.get_ref() {
            let ok = UNIT_SUFFIXES
                .iter()
                .any(|s| u.ends_with(s) && u.len() > s.len())
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
            if !ok {
                diags.error(
                    self.units.span(),
                    format!("`{u}` is not a systemd unit name like sshd.service"),
                );
            }
        }
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(SystemdUnitCheck {
            units: self.units.get_ref().clone(),
            state: self.state,
        }))
    }
}

impl Check for SystemdUnitCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let idx = cx.cache.get(|| UnitIndex::read(cx.sysroot));
        if !idx.errors.is_empty() {
            return Outcome::error(format!(
                "cannot read systemd unit directories: {}",
                idx.errors.join("; ")
            ));
        }
        let mut enabled = Vec::new();
        let mut others = Vec::new();
        for unit in &self.units {
            let wanted = idx.wanted_by.get(unit).or_else(|| {
                idx.aliases
                    .get(unit)
                    .and_then(|real| idx.wanted_by.get(real))
            });
            match (idx.file(unit), wanted) {
                (Some((path, true)), _) => {
                    others.push(Evidence::new(format!("{unit} is masked")).path(path.clone()))
                }
                (Some(_), Some(link)) => {
                    enabled.push(Evidence::new(format!("{unit} is enabled")).path(link.clone()))
                }
                (Some((path, false)), None) => others.push(
                    Evidence::new(format!("{unit} is installed but not enabled"))
                        .path(path.clone()),
                ),
                (None, Some(link)) => others.push(
                    Evidence::new(format!("{unit} is linked but has no unit file"))
                        .path(link.clone()),
                ),
                (None, None) => others.push(Evidence::new(format!("{unit} is not installed"))),
            }
        }
        match self.state {
            UnitState::Disabled if enabled.is_empty() => Outcome::Pass { evidence: others },
            UnitState::Disabled => Outcome::Fail {
                evidence: enabled
                    .into_iter()
                    .map(|e| e.expected("disabled or masked"))
                    .collect(),
            },
            UnitState::Enabled if !enabled.is_empty() => Outcome::Pass { evidence: enabled },
            UnitState::Enabled => {
                let mut evidence: Vec<Evidence> = others;
                if let Some(first) = evidence.first_mut() {
                    first.expected = Some(format!("one of {} enabled", self.units.join(", ")));
                }
                Outcome::Fail { evidence }
            }
        }
    }
}
