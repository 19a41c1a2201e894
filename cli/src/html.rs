//! The report as one self-contained HTML page a coordinator can send to a funder: figures,
//! bar charts and line charts drawn as inline SVG, tables per month. No script, no font, no
//! image and no style sheet is fetched from anywhere, so it opens offline and leaks nothing.

use std::fmt::Write;

use waymark_core as wc;

use crate::words::Words;

/// Colours of the line chart series and of the bars (readable on white, distinct in grey).
const COLOURS: &[&str] = &["#1f5f8b", "#c0392b", "#2e8b57", "#8e44ad"];

/// Text made safe inside HTML elements and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// A taxonomy key as a label: `debt_bondage` -> `Debt bondage`, `12_17` -> `12–17`.
pub fn label(key: &str) -> String {
    let digits = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    let chars: Vec<char> = key.chars().collect();
    let s: String = chars
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            '_' if digits(i.checked_sub(1).map(|j| chars[j]))
                && digits(chars.get(i + 1).copied()) =>
            {
                '–'
            }
            '_' => ' ',
            c => *c,
        })
        .collect();
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

fn day(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// One line saying what the report covers.
pub fn describe_filter(r: &wc::Report, names: &[(String, String)], words: &Words) -> String {
    let f = &r.filter;
    let mut parts = Vec::new();
    match (f.from, f.to) {
        (Some(a), Some(b)) => {
            parts.push(words.fill("{from} to {to}", &[("from", &day(a)), ("to", &day(b - 1))]))
        }
        (Some(a), None) => parts.push(words.fill("from {from}", &[("from", &day(a))])),
        (None, Some(b)) => parts.push(words.fill("until {to}", &[("to", &day(b - 1))])),
        (None, None) => parts.push(words.get("all records").into()),
    }
    if let Some(a) = &f.area {
        parts.push(words.fill("area {area}", &[("area", a)]));
    }
    if let Some(t) = &f.topic {
        parts.push(words.fill("workshop topic {topic}", &[("topic", &label(t))]));
    }
    if let Some(w) = &f.worker {
        let name = names
            .iter()
            .find(|(a, _)| a == w)
            .map_or(w.as_str(), |(_, n)| n.as_str());
        parts.push(words.fill("recorded by {name}", &[("name", name)]));
    }
    words.fill(
        "Report: {scope}; follow-ups overdue as of {today}",
        &[("scope", &parts.join(", ")), ("today", &r.today)],
    )
}

/// A horizontal bar chart of counts, largest first.
fn bar_chart(title: &str, counts: &[wc::Count], colour: &str, words: &Words) -> String {
    let title = words.get(title);
    let mut s = String::new();
    let _ = write!(s, "<figure><figcaption>{}</figcaption>", esc(title));
    if counts.is_empty() {
        let _ = write!(
            s,
            "<p class=\"empty\">{}</p></figure>",
            esc(words.get("No records."))
        );
        return s;
    }
    let (label_w, bar_w, row_h) = (210.0, 360.0, 26.0);
    let width = label_w + bar_w + 60.0;
    let height = row_h * counts.len() as f64 + 8.0;
    let max = counts.iter().map(|c| c.count).max().unwrap_or(1).max(1) as f64;
    let _ = write!(
        s,
        "<svg class=\"chart bar-chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        t = esc(title)
    );
    for (i, c) in counts.iter().enumerate() {
        let y = 4.0 + row_h * i as f64;
        let w = (c.count.max(0) as f64 / max * bar_w).max(1.0);
        let name = esc(&label(&c.key));
        let _ = write!(
            s,
            "<text class=\"label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{name}</text>\
             <rect class=\"bar\" x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bh}\" fill=\"{colour}\">\
             <title>{name}: {n}</title></rect>\
             <text class=\"value\" x=\"{vx:.1}\" y=\"{ty}\">{n}</text>",
            lx = label_w - 8.0,
            ty = y + row_h * 0.62,
            bh = row_h - 8.0,
            vx = label_w + w + 6.0,
            n = c.count,
        );
    }
    s.push_str("</svg></figure>");
    s
}

/// Grid steps of a line chart's value axis.
const STEPS: u32 = 5;

/// A round number at or above `max` for the top of an axis, so that each of the `STEPS` grid
/// lines falls on a whole number (the charts count people and records).
fn nice_max(max: f64) -> f64 {
    if max <= f64::from(STEPS) {
        return f64::from(STEPS);
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(max)
}

/// A line chart with one series per (name, values), one point per month.
fn line_chart(
    title: &str,
    months: &[String],
    series: &[(&str, Vec<f64>)],
    words: &Words,
) -> String {
    let title = words.get(title);
    let mut s = String::new();
    let _ = write!(s, "<figure><figcaption>{}</figcaption>", esc(title));
    if months.is_empty() {
        let _ = write!(
            s,
            "<p class=\"empty\">{}</p></figure>",
            esc(words.get("No records."))
        );
        return s;
    }
    let (width, height) = (720.0, 280.0);
    let (left, right, top, bottom) = (56.0, 40.0, 16.0, 64.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = nice_max(
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0, f64::max),
    );
    let x = |i: usize| {
        if months.len() == 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (months.len() - 1) as f64
        }
    };
    let y = |v: f64| top + plot_h - v / max * plot_h;
    let _ = write!(
        s,
        "<svg class=\"chart line-chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        t = esc(title)
    );
    for step in 0..=STEPS {
        let v = max * f64::from(step) / f64::from(STEPS);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"axis\" x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{v}</text>",
            x2 = width - right,
            yy = y(v),
            tx = left - 6.0,
            ty = y(v) + 4.0,
        );
    }
    // Label at most about twelve months so the labels never overlap.
    let every = months.len().div_ceil(12).max(1);
    for (i, m) in months.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            s,
            "<text class=\"axis\" x=\"{xx:.1}\" y=\"{yy}\" text-anchor=\"middle\">{m}</text>",
            xx = x(i),
            yy = top + plot_h + 18.0,
            m = esc(m),
        );
    }
    for (n, (name, values)) in series.iter().enumerate() {
        let name = words.get(name);
        let colour = COLOURS[n % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" points=\"{}\"/>",
            points.join(" ")
        );
        for (i, v) in values.iter().enumerate() {
            let _ = write!(
                s,
                "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\">\
                 <title>{} {}: {v}</title></circle>",
                x(i),
                y(*v),
                esc(name),
                esc(&months[i]),
            );
        }
        let lx = left + 170.0 * n as f64;
        let ly = height - 18.0;
        let _ = write!(
            s,
            "<rect class=\"legend\" x=\"{lx}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{ly}\">{}</text>",
            ly - 5.0,
            lx + 20.0,
            esc(name),
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn html_table(t: &wc::Table) -> String {
    let mut s = String::new();
    let _ = write!(s, "<table><caption>{}</caption><thead><tr>", esc(&t.title));
    for c in &t.columns {
        let _ = write!(s, "<th>{}</th>", esc(&label(c)));
    }
    s.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        s.push_str("<tr>");
        for c in row {
            let class = match c {
                wc::Cell::Int(_) | wc::Cell::Float(_) => " class=\"num\"",
                _ => "",
            };
            let _ = write!(s, "<td{class}>{}</td>", esc(&c.display()));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// The report's style sheet (the dashboard serves it too).
pub const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #222;
       max-width: 980px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; }
.filter { color: #555; margin-top: 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .8rem; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .8rem; }
.figure .n { font-size: 1.7rem; font-weight: 600; display: block; }
.figure .what { color: #555; font-size: .9rem; }
figure { margin: 1.2rem 0; } figcaption { font-weight: 600; margin-bottom: .4rem; }
svg text { font-size: 12px; fill: #333; } svg .grid { stroke: #e3e3e3; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #777; }
footer { color: #777; font-size: .85rem; margin-top: 3rem; }
";

/// The whole HTML page for a report.
pub fn page(r: &wc::Report, names: &[(String, String)], words: &Words) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\
         <h1>{h1}</h1><p class=\"filter\">{filter}</p>",
        lang = words.lang(),
        title = esc(words.get("Waymark report")),
        h1 = esc(words.get("Outreach and awareness report")),
        filter = esc(&describe_filter(r, names, words))
    );
    s.push_str(&sections(r, words));
    let _ = writeln!(
        s,
        "<footer>{}</footer></body></html>",
        esc(words.get(
            "Made with Waymark from the team's merged records. Attendance counts named \
             attendees (withdrawn excluded) and anonymous tallies. Months are UTC."
        ))
    );
    s
}

/// The report's figures, charts per month and per breakdown, and tables, as HTML for a page's
/// body (the report file's and the dashboard's).
pub fn sections(r: &wc::Report, words: &Words) -> String {
    let (v, w) = (&r.visits, &r.workshops);
    let months: Vec<String> = r.months.iter().map(|m| m.month.clone()).collect();
    let per_month = |f: &dyn Fn(&wc::MonthFigures) -> i64| -> Vec<f64> {
        r.months.iter().map(|m| f(m) as f64).collect()
    };
    let figures: [(&str, String); 8] = [
        ("Visits", v.visits.to_string()),
        ("People reached", v.people_reached.to_string()),
        ("Referrals", v.referrals.to_string()),
        (
            "Follow-ups overdue",
            words.fill(
                "{n} of {total}",
                &[
                    ("n", &v.follow_ups_overdue.to_string()),
                    ("total", &v.follow_ups_due.to_string()),
                ],
            ),
        ),
        ("Workshops", w.workshops.to_string()),
        ("Attendance", w.attendance.to_string()),
        (
            "Risk indicators observed",
            v.indicators
                .iter()
                .map(|c| c.count)
                .sum::<i64>()
                .to_string(),
        ),
        (
            "Average feedback (1-5)",
            w.feedback_average
                .map_or_else(|| "–".to_string(), |a| format!("{a:.1}")),
        ),
    ];
    let mut s = String::from("<section class=\"figures\">");
    for (what, n) in &figures {
        let _ = write!(
            s,
            "<div class=\"figure\"><span class=\"n\">{}</span><span class=\"what\">{}</span></div>",
            esc(n),
            esc(words.get(what))
        );
    }
    let _ = write!(s, "</section><h2>{}</h2>", esc(words.get("Per month")));
    s.push_str(&line_chart(
        "Visits and workshops per month",
        &months,
        &[
            ("Visits", per_month(&|m| m.visits.visits)),
            ("Workshops", per_month(&|m| m.workshops.workshops)),
        ],
        words,
    ));
    s.push_str(&line_chart(
        "People reached and workshop attendance per month",
        &months,
        &[
            ("People reached", per_month(&|m| m.visits.people_reached)),
            ("Attendance", per_month(&|m| m.workshops.attendance)),
        ],
        words,
    ));
    let _ = write!(s, "<h2>{}</h2>", esc(words.get("Field visits")));
    s.push_str(&bar_chart("Visits by type", &v.by_type, COLOURS[0], words));
    s.push_str(&bar_chart("Visits by area", &v.by_area, COLOURS[0], words));
    s.push_str(&bar_chart(
        "Risk indicators observed (visits)",
        &v.indicators,
        COLOURS[1],
        words,
    ));
    s.push_str(&bar_chart(
        "Referrals by kind",
        &v.referrals_by_kind,
        COLOURS[2],
        words,
    ));
    s.push_str(&bar_chart(
        "Referrals by status",
        &v.referrals_by_status,
        COLOURS[2],
        words,
    ));
    let _ = write!(s, "<h2>{}</h2>", esc(words.get("Awareness workshops")));
    s.push_str(&bar_chart(
        "Workshops by topic",
        &w.by_topic,
        COLOURS[3],
        words,
    ));
    s.push_str(&bar_chart(
        "Workshops by audience",
        &w.by_audience,
        COLOURS[3],
        words,
    ));
    s.push_str(&bar_chart(
        "Attendance by age band",
        &w.by_age_band,
        COLOURS[3],
        words,
    ));
    s.push_str(&bar_chart(
        "Attendance by gender",
        &w.by_gender,
        COLOURS[3],
        words,
    ));
    let _ = write!(s, "<h2>{}</h2>", esc(words.get("Tables")));
    let mut tables = r.tables();
    words.tables(&mut tables);
    for t in tables {
        if !t.rows.is_empty() {
            s.push_str(&html_table(&t));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_records_cannot_inject_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let chart = bar_chart(
            "Visits by area",
            &[wc::Count {
                key: "<img src=x>".into(),
                count: 3,
            }],
            "#000",
            &Words::new("en"),
        );
        assert!(!chart.contains("<img"));
    }

    #[test]
    fn keys_read_as_labels() {
        assert_eq!(label("debt_bondage"), "Debt bondage");
        assert_eq!(label("12_17"), "12–17");
        assert_eq!(label("60_plus"), "60 plus");
        assert_eq!(label(""), "");
    }

    #[test]
    fn axis_tops_are_round_numbers() {
        for (max, top) in [
            (0.0, 5.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (23.0, 25.0),
            (36.0, 50.0),
        ] {
            assert_eq!(nice_max(max), top);
        }
        assert_eq!(nice_max(180.0), 200.0);
        // Every grid line on a whole number.
        for max in [1.0, 6.0, 13.0, 49.0, 230.0, 9_999.0] {
            let step = nice_max(max) / f64::from(STEPS);
            assert_eq!(step.fract(), 0.0, "{max}");
        }
    }
}
