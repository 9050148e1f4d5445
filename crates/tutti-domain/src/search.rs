//! What the words in a results search box mean.
//!
//! A search is a list of terms that must all occur in a row's values (not
//! its column names), each as a substring, in any case. Terms are separated
//! by white space; a phrase in double quotes is one term, spaces and all, so
//! `item 42` finds a row holding `42 items` while `"item 42"` does not. An
//! unclosed quote runs to the end. Terms are kept lower-cased, which is how
//! the stores compare them.

use crate::FieldError;

/// Most characters a search may have.
pub const MAX_CHARS: usize = 200;
/// Most terms a search may have.
pub const MAX_TERMS: usize = 16;

/// A checked search: one to [`MAX_TERMS`] non-empty, lower-cased terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSearch {
    terms: Vec<String>,
}

impl TextSearch {
    /// Parses what a person typed; `Ok(None)` when it holds no term (empty,
    /// blank or only quotes). `field` names the input in errors.
    pub fn parse(field: &str, text: &str) -> Result<Option<Self>, FieldError> {
        if text.chars().count() > MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("search at most {MAX_CHARS} characters"),
            ));
        }
        let mut terms: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        let end = |current: &mut String, terms: &mut Vec<String>| {
            if !current.is_empty() {
                let term = current.to_lowercase();
                if !terms.contains(&term) {
                    terms.push(term);
                }
                current.clear();
            }
        };
        for c in text.chars() {
            match c {
                '"' => {
                    end(&mut current, &mut terms);
                    quoted = !quoted;
                }
                c if c.is_whitespace() && !quoted => end(&mut current, &mut terms),
                c => current.push(c),
            }
        }
        end(&mut current, &mut terms);
        if terms.len() > MAX_TERMS {
            return Err(FieldError::new(
                field,
                format!(
                    "search at most {MAX_TERMS} words or quoted phrases (this has {})",
                    terms.len()
                ),
            ));
        }
        Ok((!terms.is_empty()).then_some(Self { terms }))
    }

    /// The terms, lower-cased, without repeats, in the order typed.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        TextSearch::parse("q", text)
            .unwrap()
            .map(|s| s.terms().to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn words_are_separate_terms_in_lower_case() {
        assert_eq!(terms("  Golden   DOG\tpark "), ["golden", "dog", "park"]);
    }

    #[test]
    fn a_quoted_phrase_is_one_term_with_its_spaces() {
        assert_eq!(terms(r#"cat "item 42" x"#), ["cat", "item 42", "x"]);
        assert_eq!(terms(r#""  two  spaces ""#), ["  two  spaces "]);
    }

    #[test]
    fn an_unclosed_quote_runs_to_the_end() {
        assert_eq!(terms(r#"a "b c"#), ["a", "b c"]);
    }

    #[test]
    fn a_blank_search_or_bare_quotes_search_nothing() {
        assert_eq!(TextSearch::parse("q", "").unwrap(), None);
        assert_eq!(TextSearch::parse("q", "   ").unwrap(), None);
        assert_eq!(TextSearch::parse("q", r#""" """#).unwrap(), None);
    }

    #[test]
    fn repeated_terms_count_once() {
        assert_eq!(terms("dog Dog DOG cat"), ["dog", "cat"]);
    }

    #[test]
    fn wildcards_and_quotes_inside_words_are_plain_characters() {
        assert_eq!(terms("50% a_b back\\slash"), ["50%", "a_b", "back\\slash"]);
        assert_eq!(terms(r#"it"s"#), ["it", "s"]);
    }

    #[test]
    fn too_long_or_too_many_terms_are_refused_naming_the_field() {
        let long = "x".repeat(MAX_CHARS + 1);
        let e = TextSearch::parse("q", &long).unwrap_err();
        assert_eq!(e.field, "q");
        let many: Vec<String> = (0..=MAX_TERMS).map(|i| format!("w{i}")).collect();
        let e = TextSearch::parse("q", &many.join(" ")).unwrap_err();
        assert_eq!(e.field, "q");
        assert!(e.message.contains("17"), "{}", e.message);
        assert!(TextSearch::parse("q", &many[..MAX_TERMS].join(" ")).is_ok());
    }

    #[test]
    fn non_ascii_terms_are_lower_cased_too() {
        assert_eq!(terms("ÄRGER Straße"), ["ärger", "straße"]);
    }
}
