//! The HTML report of a validation (`--report FILE.html`): one
//! self-contained page (no scripts, no external files) with the verdict,
//! the counts per class, the mismatch share over event time as an inline
//! SVG chart, the fields that differ most, and examples of each class.

use std::fmt::Write as _;

use super::pairing::Class;
use super::summary::Summary;

/// Bars in the mismatch-over-time chart at most.
const BARS: usize = 60;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What the page is about.
pub struct Title<'a> {
    /// The left topic.
    pub left: &'a str,
    /// The right topic.
    pub right: &'a str,
    /// How records were keyed.
    pub key: &'a str,
    /// The largest share that passes.
    pub max_mismatch: f64,
}

/// The report page.
pub fn html(summary: &Summary, title: &Title<'_>) -> String {
    let share = summary.mismatch_share();
    let pass = share <= title.max_mismatch;
    let total = summary.total_left + summary.total_right;
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>partita validate: {left} vs {right}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 1.6em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.verdict {{ display: inline-block; padding: 4px 12px; border-radius: 4px; color: #fff; font-weight: bold; }}
.pass {{ background: #2e7d32; }} .fail {{ background: #c62828; }}
code {{ background: #f4f4f4; padding: 1px 4px; }}
pre {{ background: #f8f8f8; padding: 6px; white-space: pre-wrap; word-break: break-all; margin: 0; }}
</style></head><body>
<h1>Validation: <code>{left}</code> (left) against <code>{right}</code> (right)</h1>
<p>Matched by key <code>{key}</code>. {total} records ({tl} left, {tr} right) in {secs:.1}s.</p>
<p><span id="verdict" class="verdict {cls}">{verdict}</span>
mismatch share <strong id="share">{share:.4}%</strong> (allowed {allowed:.4}%)</p>
<h2>Records per class</h2>
<table id="counts"><tr><th>class</th><th>records</th><th>share</th></tr>
"#,
        left = esc(title.left),
        right = esc(title.right),
        key = esc(title.key),
        tl = summary.total_left,
        tr = summary.total_right,
        secs = summary.seconds,
        cls = if pass { "pass" } else { "fail" },
        verdict = if pass { "PASS" } else { "FAIL" },
        share = share * 100.0,
        allowed = title.max_mismatch * 100.0,
    );
    for c in Class::ALL {
        let (n, pct) = (summary.count(c), summary.percent(c));
        let _ = writeln!(
            h,
            r#"<tr data-class="{name}"><td>{name}</td><td class="n">{n}</td><td class="n">{pct:.2}%</td></tr>"#,
            name = c.name()
        );
    }
    h.push_str("</table>\n<h2>Mismatch share over event time</h2>\n");
    h.push_str(&timeline_svg(summary));
    h.push_str("<h2>Fields that differ most</h2>\n");
    let top = summary.top_fields();
    if top.is_empty() {
        h.push_str("<p id=\"fields\">No field differs.</p>\n");
    } else {
        h.push_str("<table id=\"fields\"><tr><th>field</th><th>mismatched pairs</th></tr>\n");
        for (f, n) in top.iter().take(20) {
            let name = if f.is_empty() { "(whole value)" } else { f };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"n\">{n}</td></tr>",
                esc(name)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Examples</h2>\n");
    for c in Class::ALL.iter().filter(|c| **c != Class::Match) {
        let Some(examples) = summary.examples.get(c) else {
            continue;
        };
        let _ = writeln!(
            h,
            "<h3>{}</h3>\n<table class=\"examples\"><tr><th>key</th><th>left</th><th>right</th><th>difference</th></tr>",
            c.name()
        );
        for e in examples {
            let side = |s: &str| {
                let r = &e[s];
                if r.is_null() {
                    return String::new();
                }
                format!(
                    "{}@{} ts {}<pre>{}</pre>",
                    r["partition"],
                    r["offset"],
                    r["timestamp"],
                    esc(&r["value"]
                        .as_str()
                        .map_or_else(|| r["value"].to_string(), str::to_string))
                )
            };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(e["key"].as_str().unwrap_or_default()),
                side("left"),
                side("right"),
                esc(e["diff_text"].as_str().unwrap_or_default())
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// The share of non-matches per slice of event time, as bars.
fn timeline_svg(summary: &Summary) -> String {
    let (Some((&first, _)), Some((&last, _))) = (
        summary.timeline.first_key_value(),
        summary.timeline.last_key_value(),
    ) else {
        return "<p id=\"timeline\">No records.</p>\n".to_string();
    };
    let span = (last - first + 1).max(1);
    let per_bar = (span + BARS as i64 - 1) / BARS as i64;
    let mut bars = vec![(0u64, 0u64); ((span + per_bar - 1) / per_bar) as usize];
    for (&second, &(n, bad)) in &summary.timeline {
        let b = &mut bars[((second - first) / per_bar) as usize];
        b.0 += n;
        b.1 += bad;
    }
    let (w, h) = (720.0, 160.0);
    let bw = w / bars.len() as f64;
    let mut s = format!(
        "<svg id=\"timeline\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"mismatch share over time\">\n",
        h + 20.0,
        h + 20.0
    );
    for (i, (n, bad)) in bars.iter().enumerate() {
        let share = if *n == 0 {
            0.0
        } else {
            *bad as f64 / *n as f64
        };
        let bh = (share * h).max(if *bad > 0 { 1.0 } else { 0.0 });
        if *n > 0 {
            // The slice had records: a pale bar behind, so that a slice
            // where everything matched shows as one.
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{h}\" fill=\"#e8f5e9\"/>",
                i as f64 * bw,
                (bw - 1.0).max(1.0)
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{:.1}% of {n}</title></rect>",
            i as f64 * bw,
            h - bh,
            (bw - 1.0).max(1.0),
            if *bad > 0 { "#c62828" } else { "#2e7d32" },
            share * 100.0
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"0\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#888\"/>\
         <text x=\"0\" y=\"{}\" font-size=\"11\">event time {first}s</text>\
         <text x=\"{w}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{last}s (each bar {per_bar}s; height: share not matching)</text>",
        h + 15.0,
        h + 15.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_verdict_counts_and_escapes_text() {
        let mut s = Summary {
            total_left: 2,
            total_right: 2,
            ..Summary::default()
        };
        s.counts.insert(Class::Match, 2);
        s.counts.insert(Class::OnlyLeft, 1);
        s.counts.insert(Class::OnlyRight, 1);
        s.timeline.insert(10, (2, 0));
        s.timeline.insert(12, (2, 2));
        let page = html(
            &s,
            &Title {
                left: "legacy<out>",
                right: "new",
                key: "/id",
                max_mismatch: 0.0,
            },
        );
        assert!(page.contains("legacy&lt;out&gt;"));
        assert!(page.contains(r#"<span id="verdict" class="verdict fail">FAIL</span>"#));
        assert!(page.contains(
            r#"<tr data-class="only_left"><td>only_left</td><td class="n">1</td><td class="n">25.00%</td></tr>"#
        ));
        assert_eq!(
            page.matches("<rect").count(),
            5,
            "a bar per second here, with a pale one behind those with records"
        );
    }
}
