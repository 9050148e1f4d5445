//! Pattern files: CSV or TSV (told apart by the header line), UTF-8 with or
//! without a byte-order mark, LF or CRLF line ends, a header naming the
//! columns `label` and `pattern`, and optionally `kind` (`keyword`, the
//! default, or `regex`) and `priority` (an integer, default 0; where one
//! author gets several labels, the production step prefers the label of
//! higher priority among those with equally many rows). Fields may be
//! quoted as in CSV.
//!
//! A file is refused whole, with the line of the first problem: no
//! patterns, a missing column, an empty label or pattern, an unknown kind,
//! a regex that does not compile, a keyword listed twice, or one keyword
//! (after folding) given two different labels.

use crate::matcher::fold;
use std::collections::HashMap;
use std::fmt;

/// How a pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A literal, matched case- and width-insensitively.
    Keyword,
    /// A regular expression (Rust `regex` syntax), matched as written.
    Regex,
}

/// One line of a pattern file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The label it gives.
    pub label: String,
    /// The keyword or expression.
    pub pattern: String,
    /// How it matches.
    pub kind: Kind,
    /// Its priority (higher wins ties in the production step).
    pub priority: i32,
    /// Its line in the file (the header is line 1).
    pub line: usize,
}

/// A checked pattern file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSet {
    /// The patterns, in file order.
    pub patterns: Vec<Pattern>,
    /// The distinct labels, in order of first appearance.
    pub labels: Vec<String>,
}

impl PatternSet {
    /// A label's priority: the highest of its patterns'.
    pub fn label_priority(&self, label: usize) -> i32 {
        let name = &self.labels[label];
        self.patterns
            .iter()
            .filter(|p| &p.label == name)
            .map(|p| p.priority)
            .max()
            .unwrap_or(0)
    }
}

/// Why a pattern file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The line (1 is the header), or 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for PatternError {}

fn err(line: usize, message: impl Into<String>) -> PatternError {
    PatternError {
        line,
        message: message.into(),
    }
}

/// Splits one line into fields: `delim`-separated, with CSV quoting.
fn fields(line: &str, delim: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.is_empty() && !was_quoted {
            quoted = true;
            was_quoted = true;
        } else if c == delim {
            out.push(std::mem::take(&mut cur));
            was_quoted = false;
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(cur);
    Ok(out)
}

impl PatternSet {
    /// Reads and checks a pattern file.
    pub fn parse(bytes: &[u8]) -> Result<Self, PatternError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            err(line, "is not valid UTF-8")
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let header = lines
            .next()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| {
                err(
                    0,
                    "the pattern file is empty; its first line must be label,pattern[,kind]",
                )
            })?;
        let delim = if header.contains('\t') { '\t' } else { ',' };
        let names: Vec<String> = fields(header, delim)
            .map_err(|m| err(1, m))?
            .into_iter()
            .map(|n| n.trim().to_lowercase())
            .collect();
        let col = |name: &str| names.iter().position(|n| n == name);
        let (Some(label_col), Some(pattern_col)) = (col("label"), col("pattern")) else {
            return Err(err(
                1,
                format!(
                    "the header must name the columns label and pattern (and optionally kind); it names {}",
                    names.join(", ")
                ),
            ));
        };
        let kind_col = col("kind");
        let priority_col = col("priority");
        let mut patterns = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        let mut keywords: HashMap<String, (usize, String)> = HashMap::new();
        let mut regexes: HashMap<String, usize> = HashMap::new();
        for (n, line) in lines.enumerate() {
            let line_no = n + 2;
            if line.trim().is_empty() {
                continue;
            }
            let f = fields(line, delim).map_err(|m| err(line_no, m))?;
            let get = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
            let label = get(label_col);
            let raw = f.get(pattern_col).map(String::as_str).unwrap_or("");
            if label.is_empty() {
                return Err(err(line_no, "the label is empty"));
            }
            if raw.trim().is_empty() {
                return Err(err(line_no, "the pattern is empty"));
            }
            let kind = match kind_col.map(get).unwrap_or("") {
                "" | "keyword" => Kind::Keyword,
                "regex" => Kind::Regex,
                other => {
                    return Err(err(
                        line_no,
                        format!("unknown kind {other:?}; use keyword or regex"),
                    ));
                }
            };
            let priority = match priority_col.map(get).unwrap_or("") {
                "" => 0,
                p => p
                    .parse::<i32>()
                    .map_err(|_| err(line_no, format!("the priority {p:?} is not an integer")))?,
            };
            // Keywords are trimmed; a regex is kept exactly as written.
            let pattern = match kind {
                Kind::Keyword => raw.trim(),
                Kind::Regex => raw,
            };
            match kind {
                Kind::Keyword => {
                    let folded = fold(pattern);
                    if let Some((first, other_label)) = keywords.get(&folded) {
                        return Err(err(
                            line_no,
                            if other_label == label {
                                format!("the keyword {pattern:?} is already on line {first}")
                            } else {
                                format!(
                                    "the keyword {pattern:?} is already on line {first} with the label {other_label}; \
                                     one keyword cannot give two labels"
                                )
                            },
                        ));
                    }
                    keywords.insert(folded, (line_no, label.to_owned()));
                }
                Kind::Regex => {
                    if let Err(e) = regex::Regex::new(pattern) {
                        let first = e.to_string();
                        let first = first.lines().last().unwrap_or("").trim().to_owned();
                        return Err(err(
                            line_no,
                            format!("the regex {pattern:?} does not compile: {first}"),
                        ));
                    }
                    if let Some(first) = regexes.insert(pattern.to_owned(), line_no) {
                        return Err(err(
                            line_no,
                            format!("the regex {pattern:?} is already on line {first}"),
                        ));
                    }
                }
            }
            if !labels.iter().any(|l| l == label) {
                labels.push(label.to_owned());
            }
            patterns.push(Pattern {
                label: label.to_owned(),
                pattern: pattern.to_owned(),
                kind,
                priority,
                line: line_no,
            });
        }
        if patterns.is_empty() {
            return Err(err(0, "the pattern file has a header but no patterns"));
        }
        Ok(Self { patterns, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_tsv_files_with_a_bom_and_crlf_are_read() {
        let csv = "\u{feff}label,pattern,kind\r\n/female,Mary\r\n/male,\"Smith, John\",keyword\r\n/male,^mr\\b,regex\r\n\r\n";
        let set = PatternSet::parse(csv.as_bytes()).unwrap();
        assert_eq!(set.labels, ["/female", "/male"]);
        assert_eq!(set.patterns[1].pattern, "Smith, John");
        assert_eq!(set.patterns[2].kind, Kind::Regex);
        assert_eq!(set.patterns[2].line, 4);
        assert_eq!(set.patterns[2].priority, 0);
        let ranked = PatternSet::parse(b"label,pattern,priority\n/a,x,2\n/b,y\n/a,z,-1\n").unwrap();
        assert_eq!((ranked.label_priority(0), ranked.label_priority(1)), (2, 0));
        let tsv = "pattern\tlabel\nAnna\t/female\n";
        let set = PatternSet::parse(tsv.as_bytes()).unwrap();
        assert_eq!(
            (
                set.patterns[0].label.as_str(),
                set.patterns[0].pattern.as_str()
            ),
            ("/female", "Anna")
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_the_reason() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"", 0, "empty"),
            (b"label,pattern\n", 0, "no patterns"),
            (
                b"name,word\nx,y\n",
                1,
                "must name the columns label and pattern",
            ),
            (b"label,pattern\n/f,\n", 2, "pattern is empty"),
            (b"label,pattern\n,Mary\n", 2, "label is empty"),
            (b"label,pattern,kind\n/f,Mary,glob\n", 2, "unknown kind"),
            (
                b"label,pattern,priority\n/f,Mary,high\n",
                2,
                "not an integer",
            ),
            (b"label,pattern,kind\n/f,(a,regex\n", 2, "does not compile"),
            (b"label,pattern\n/f,Mary\n/f,MARY\n", 3, "already on line 2"),
            (b"label,pattern\n/f,Mary\n/m,mary\n", 3, "two labels"),
            (b"label,pattern\n/f,\"Mary\n", 2, "not closed"),
            (b"label,pattern\n/f,Ma\xffry\n", 2, "UTF-8"),
        ];
        for (bytes, line, words) in cases {
            let e = PatternSet::parse(bytes).unwrap_err();
            assert_eq!(e.line, *line, "{e}");
            assert!(e.message.contains(words), "{e}");
        }
    }
}
