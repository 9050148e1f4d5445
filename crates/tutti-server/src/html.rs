//! Requester HTML made safe to show inside Tutti's own pages.
//!
//! A job's instructions and layout are its requester's HTML, shown on the
//! worker page in the app's origin, where every form carries a CSRF value.
//! So they pass through an allow-list first: text, structure, tables,
//! images and links stay; form controls (`form`, `input`, `button`,
//! `select`, `textarea`), `form*` attributes, `style`, `script`, `base`,
//! `meta`, `link`, `iframe`, ids and `data-*` attributes (which the page's
//! script looks up) and event handlers do not. Links open outside the page
//! and carry no referrer.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// The allow-list: ammonia's defaults (no form controls, no script or
/// style, no ids), plus `class` for the page's own styles.
static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.add_generic_attributes(["class"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank");
    b
});

/// Instructions are the same for every task of a job: cleaned once.
static MEMO: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);
const MEMO_ENTRIES: usize = 512;

/// `html` with everything outside the allow-list taken out.
pub fn clean(html: &str) -> String {
    if html.is_empty() {
        return String::new();
    }
    CLEANER.clean(html).to_string()
}

/// [`clean`], remembered: for HTML that repeats (a job's instructions).
pub fn clean_memo(html: &str) -> String {
    if html.is_empty() {
        return String::new();
    }
    let mut memo = MEMO.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = memo.get(html) {
        return c.clone();
    }
    let c = clean(html);
    if memo.len() >= MEMO_ENTRIES {
        memo.clear();
    }
    memo.insert(html.to_owned(), c.clone());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reviewed_hijack_loses_its_form_controls() {
        let attack = "<style>form.answers button{display:none}</style><div class=\"answers\">\
            <button data-key=\"1\" form=\"other-form\" formaction=\"/admin/users\" name=\"action\" value=\"release\">\
            <kbd>1</kbd> Yes</button></div><input form=\"other-form\" type=\"hidden\" name=\"name\" value=\"evil_admin2\">";
        let c = clean(attack);
        for gone in [
            "<button",
            "<input",
            "<style",
            "form=",
            "formaction",
            "data-key",
            "display:none",
        ] {
            assert!(!c.contains(gone), "{gone} survived in {c}");
        }
        assert!(c.contains("<kbd>1</kbd> Yes"), "{c}");
    }

    #[test]
    fn markup_for_reading_stays() {
        let c = clean(
            "<p class=\"hint\">Look at <b>the name</b></p><table><tr><td>x</td></tr></table><img src=\"https://example.org/a.png\" alt=\"a\">",
        );
        assert!(
            c.contains("<p class=\"hint\">Look at <b>the name</b></p>"),
            "{c}"
        );
        assert!(c.contains("<td>x</td>"), "{c}");
        assert!(
            c.contains("<img src=\"https://example.org/a.png\" alt=\"a\">"),
            "{c}"
        );
    }

    #[test]
    fn pages_cannot_be_redirected_or_rebased_and_ids_do_not_clash() {
        let c = clean(
            "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\"><base href=\"https://evil.example/\">\
             <link rel=\"stylesheet\" href=\"https://evil.example/x.css\"><div id=\"answer-form\" onclick=\"x()\">t</div>\
             <a href=\"javascript:alert(1)\">j</a><form action=\"/admin\"><select><option>1</option></select><textarea>t</textarea></form>",
        );
        for gone in [
            "<meta",
            "<base",
            "<link",
            "id=",
            "onclick",
            "javascript:",
            "<form",
            "<select",
            "<textarea",
        ] {
            assert!(!c.contains(gone), "{gone} survived in {c}");
        }
    }

    #[test]
    fn links_open_elsewhere_without_a_referrer() {
        let c = clean("<a href=\"https://example.org\">x</a>");
        assert!(c.contains("rel=\"noopener noreferrer nofollow\""), "{c}");
        assert!(c.contains("target=\"_blank\""), "{c}");
    }

    #[test]
    fn remembered_cleaning_gives_the_same_html() {
        let html = "<p>a<script>x</script></p>";
        assert_eq!(clean_memo(html), clean(html));
        assert_eq!(clean_memo(html), clean(html));
    }
}
