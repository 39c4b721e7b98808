//! `index.html`: one self-contained page per study (styles, script and data inline, nothing
//! fetched) whose script draws the interactive front from the study's data.
//!
//! The charts are a small hand-written SVG renderer (`html/chart.js`) rather than a chart
//! library: the page needs one log-x scatter and one step line, which take a few hundred lines,
//! while the libraries that fit (uPlot, Chart.js) weigh 50–200 kB and draw on a canvas, where a
//! browser test cannot count or hover the points as elements.

use super::confirmed::Confirmation;
use super::page_data::page_data;
use super::{Front, Rendering, ReportContext};
use crate::search::store::TrialRow;

/// The skeleton, with `{{title}}`, `{{css}}`, `{{data}}` and `{{js}}` where the rest goes.
const TEMPLATE: &str = include_str!("html/page.html");
const CSS: &str = include_str!("html/page.css");
/// The SVG renderer (scales, ticks, axes, marks), then the report that uses it.
const JS: [&str; 2] = [include_str!("html/chart.js"), include_str!("html/page.js")];

/// Text for an HTML text node or a quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside `<script type="application/json">`: no `<`, so no text of the study (a
/// design name, an error message) can close the element; `\u003c` reads back as `<`.
fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// `template` with each `{{name}}` replaced by its value, in one pass: text inserted is never
/// searched again, so a study's own text holding `{{js}}` stays as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let hit = after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (v, end))
        });
        match hit {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The page of a study: its data as JSON inside the template, with the styles and the script.
pub(crate) fn index_html(
    ctx: &ReportContext,
    trials: &[TrialRow],
    front: &Front,
    history: &[(usize, f64)],
    confirmation: &Confirmation,
) -> Result<String, Rendering> {
    let data = page_data(ctx, trials, front, history, confirmation);
    let json = serde_json::to_string(&data).map_err(Rendering::Json)?;
    let title = escape(&format!("pets study {}: Pareto front", ctx.study));
    let (data, js) = (script_json(&json), JS.concat());
    Ok(fill(
        TEMPLATE,
        &[
            ("title", title.as_str()),
            ("css", CSS),
            ("data", data.as_str()),
            ("js", js.as_str()),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once() {
        let out = fill("a{{x}}b{{y}}c{{z}}", &[("x", "{{y}}"), ("y", "2")]);
        assert_eq!(out, "a{{y}}b2c{{z}}");
        assert_eq!(fill("{{", &[]), "{{");
    }

    #[test]
    fn study_text_cannot_leave_its_element() {
        assert_eq!(
            script_json(r#"{"design":"</script><script>alert(1)"}"#),
            r#"{"design":"\u003c/script>\u003cscript>alert(1)"}"#
        );
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_is_one_file_with_nothing_to_fetch() {
        for asset in [TEMPLATE, CSS, JS[0], JS[1]] {
            // SVG's namespace is a name, never fetched.
            let asset = asset.replace("http://www.w3.org/2000/svg", "");
            for fetch in [
                "http:",
                "https:",
                "src=",
                "@import",
                "url(",
                "fetch(",
                "XMLHttpRequest",
            ] {
                assert!(!asset.contains(fetch), "an asset holds {fetch}");
            }
        }
        for placeholder in ["{{title}}", "{{css}}", "{{data}}", "{{js}}"] {
            assert!(TEMPLATE.contains(placeholder), "{placeholder}");
        }
    }
}
