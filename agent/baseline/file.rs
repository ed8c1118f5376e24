//! The raw TOML model of one baseline file, as serde reads it: a `[baseline]` header, `[[waiver]]`
//! tables, and one `[[<kind>]]` array per rule kind (registered in [`super::kinds`]). Every struct
//! denies unknown fields, and the values we validate later are `Spanned` so that messages point at
//! `FILE:LINE:COL`. Nothing here is trusted yet: [`super::layer`] validates it.

use serde::Deserialize;
use toml::Spanned;

/// `[baseline]`: what this file is and how it layers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: Spanned<String>,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Baselines (by name) this one is layered on, bottom first.
    #[serde(default)]
    pub extends: Vec<Spanned<String>>,
    /// Which systems this baseline is auto-selected for.
    #[serde(default, rename = "match")]
    pub distro: Option<DistroMatch>,
    /// Rule ids from lower layers that this layer switches off.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
}

/// `[baseline.match]`: `/etc/os-release` values this baseline is for.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DistroMatch {
    /// `ID` values, e.g. `["amzn"]`.
    pub id: Vec<String>,
    /// `VERSION_ID` values; `"9"` also matches `9.4`. Empty: any version.
    #[serde(default)]
    pub version_id: Vec<String>,
}

/// `[[waiver]]`: an accepted exception to a rule, until a date.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaiver {
    pub rule: Spanned<String>,
    pub reason: Spanned<String>,
    pub expires: Spanned<toml::value::Datetime>,
}

/// `[fim]`: which paths the file-integrity manifest covers (see [`crate::fim::policy`]). Layers
/// append their `[[fim.path]]` rules to the built-in defaults and to lower layers' rules; the most
/// specific rule wins, a later one on a tie.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFim {
    /// `false` drops the built-in default paths (`/usr/bin`, `/etc`, ... and their exclusions);
    /// lower layers' rules are kept.
    #[serde(default = "yes")]
    pub defaults: bool,
    /// `[[fim.path]]` rules: an absolute in-root glob and a policy.
    #[serde(default)]
    pub path: Vec<Spanned<crate::fim::PathRule>>,
}

fn yes() -> bool {
    true
}

/// Declares the rule kinds: the `BaselineFile` struct with one `[[kind]]` array per kind, and the
/// `KINDS` table (kind name, default family). Invoked once, in [`super::kinds`].
macro_rules! declare_kinds {
    ( $( $kind:ident => $ty:ty, family = $family:literal; )* ) => {
        /// One baseline file as written: header, waivers, and an array per rule kind.
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct BaselineFile {
            pub baseline: toml::Spanned<$crate::baseline::file::Header>,
            #[serde(default)]
            pub waiver: Vec<toml::Spanned<$crate::baseline::file::RawWaiver>>,
            #[serde(default)]
            pub fim: Option<$crate::baseline::file::RawFim>,
            $(
                #[serde(default)]
                pub $kind: Vec<toml::Spanned<$ty>>,
            )*
        }

        /// Every declarative rule kind: its TOML table name and the family its rules default to.
        pub const KINDS: &[$crate::checks::KindInfo] = &[
            $( $crate::checks::KindInfo { name: stringify!($kind), family: $family }, )*
        ];

        impl BaselineFile {
            /// Validate and compile every rule of every kind, in no particular order; the caller
            /// orders them by position in the file. Each entry: the rule's byte offset, its id (with
            /// span, for duplicate detection), and the compiled rule unless it had errors.
            pub fn compile_rules(
                &self,
                diags: &mut $crate::diag::Diagnostics<'_>,
            ) -> Vec<(usize, toml::Spanned<String>, Option<$crate::checks::Rule>)> {
                use $crate::checks::params::HasCommon as _;
                let mut out = Vec::new();
                $(
                    for params in &self.$kind {
                        let rule = $crate::baseline::layer::compile_rule(
                            stringify!($kind), $family, params, diags,
                        );
                        out.push((params.span().start, params.get_ref().common().id.clone(), rule));
                    }
                )*
                out
            }
        }
    };
}
pub(crate) use declare_kinds;
