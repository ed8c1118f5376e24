//! Baseline diagnostics: every problem found while parsing or validating a baseline points at
//! `FILE:LINE:COL`, computed from the byte span the TOML parser or a `Spanned` field gave us.

use std::fmt;
use std::ops::Range;

/// Whether a diagnostic stops the baseline from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One problem in one baseline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub file: String,
    /// 1-based line and column (in characters); 0 when the problem has no position (whole file).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {level}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {level}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// The text of one baseline file and its display name, able to turn byte offsets into positions.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// `baseline/common.toml` for embedded baselines, else the path as given.
    pub name: String,
    pub text: String,
    /// Byte offsets where lines start, computed on first use, so that positioning every rule
    /// of a large file costs a binary search each, not a rescan of the text.
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
            line_starts: std::sync::OnceLock::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; columns count characters, not bytes.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // the last line start at or before the offset
        let line = starts.partition_point(|&s| s <= offset);
        let line_start = starts[line - 1];
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    pub fn diag(
        &self,
        level: Level,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = span.map_or((0, 0), |s| self.position(s.start));
        Diagnostic {
            level,
            file: self.name.clone(),
            line,
            col,
            message: message.into(),
        }
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diag(Level::Error, Some(span), message)
    }

    pub fn warning(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diag(Level::Warning, Some(span), message)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Accumulates diagnostics for one file during validation.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    pub source: &'a SourceFile,
    pub list: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(source: &'a SourceFile) -> Self {
        Diagnostics {
            source,
            list: Vec::new(),
        }
    }
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.list.push(self.source.error(span, message));
    }
    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.list.push(self.source.warning(span, message));
    }
    /// A mark to pass to [`Diagnostics::errors_since`].
    pub fn mark(&self) -> usize {
        self.list.len()
    }
    /// True when an error was reported after `mark` was taken.
    pub fn errors_since(&self, mark: usize) -> bool {
        self.list[mark.min(self.list.len())..]
            .iter()
            .any(|d| d.level == Level::Error)
    }
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.level == Level::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let src = SourceFile::new("x.toml", "a = 1\nbé = 2\n");
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(6), (2, 1));
        // byte 9 is after "bé " (b=1 byte, é=2 bytes, space=1): column 4
        assert_eq!(src.position(10), (2, 4));
        assert_eq!(src.error(6..7, "bad").to_string(), "x.toml:2:1: error: bad");
        // past the end, inside a multi-byte character, on a newline
        assert_eq!(src.position(1000), (3, 1));
        assert_eq!(src.position(8), (2, 2));
        assert_eq!(src.position(5), (1, 6));
    }

    #[test]
    fn positioning_every_line_of_a_large_file_is_not_quadratic() {
        let text = "k = 1\n".repeat(200_000);
        let src = SourceFile::new("big.toml", text);
        let start = std::time::Instant::now();
        for line in (0..200_000).step_by(7) {
            assert_eq!(src.position(line * 6 + 2), (line + 1, 3));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
