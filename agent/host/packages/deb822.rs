//! The control-file format dpkg and apt use (deb822): paragraphs separated by blank lines, each a
//! list of `Field: value` lines, continuation lines starting with a space or tab. The package
//! databases and indexes we read (`/var/lib/dpkg/status`, apt's `Packages` and `Release`) are
//! large, so this is a borrowing, allocation-light walk that keeps only the first line of each
//! field (every field we need is single-line) and the line number each paragraph starts at.

/// One paragraph: its fields in order (name, first-line value) and where it starts.
#[derive(Debug, Default)]
pub struct Paragraph<'a> {
    /// 1-based line number of the paragraph's first field.
    pub line: usize,
    pub fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// The value of the first field named `name` (field names are case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A line that is neither a field, a continuation nor blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub text: String,
}

/// Walks the paragraphs of `text`, calling `each` for every non-empty one. Malformed lines are
/// collected (and skipped) rather than stopping the walk, so a damaged file still yields what it
/// can and says exactly where it is damaged.
pub fn paragraphs<'a>(text: &'a str, mut each: impl FnMut(&Paragraph<'a>)) -> Vec<Malformed> {
    let mut bad = Vec::new();
    let mut para = Paragraph::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            if !para.fields.is_empty() {
                each(&para);
                para.fields.clear();
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if para.fields.is_empty() {
                bad.push(Malformed {
                    line: index + 1,
                    text: line.chars().take(80).collect(),
                });
            }
            continue;
        }
        if line.starts_with('#') && para.fields.is_empty() {
            continue; // comments are allowed in deb822 sources, never inside dpkg's files
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                if para.fields.is_empty() {
                    para.line = index + 1;
                }
                para.fields.push((name, value.trim()));
            }
            _ => bad.push(Malformed {
                line: index + 1,
                text: line.chars().take(80).collect(),
            }),
        }
    }
    if !para.fields.is_empty() {
        each(&para);
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_paragraphs_with_line_numbers_and_reports_garbage() {
        let text = "Package: a\nVersion: 1\nDescription: x\n more\n .\n\n\n\
                    Package: b\r\nVersion: 2\r\n\r\ngarbage here\nPackage: c\n";
        let mut seen = Vec::new();
        let bad = paragraphs(text, |p| {
            seen.push((p.line, p.get("package").unwrap(), p.get("Version")));
        });
        assert_eq!(
            seen,
            vec![(1, "a", Some("1")), (8, "b", Some("2")), (12, "c", None)]
        );
        assert_eq!(
            bad,
            vec![Malformed {
                line: 11,
                text: "garbage here".into()
            }]
        );
    }
}
