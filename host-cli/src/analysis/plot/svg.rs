//! SVG, written by hand: heatmaps (attention patterns, score grids) and signed bar charts
//! (attribution). Every cell and bar carries a `<title>`, so hovering shows its value.

use std::fmt::Write;

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A colour for `value`: white to blue on `[0, max]`, or, when `signed`, red (negative) to
/// white to blue (positive) on `[-max, max]`.
pub fn colour(value: f32, max: f32, signed: bool) -> String {
    let max = if max > 0.0 { max } else { 1.0 };
    let t = (value / max).clamp(-1.0, 1.0);
    let (r, g, b) = if t >= 0.0 || !signed {
        let t = t.max(0.0);
        (255.0 * (1.0 - t * 0.85), 255.0 * (1.0 - t * 0.6), 255.0)
    } else {
        let t = -t;
        (255.0, 255.0 * (1.0 - t * 0.7), 255.0 * (1.0 - t * 0.7))
    };
    format!("rgb({},{},{})", r as u8, g as u8, b as u8)
}

/// A heatmap of `values` (`[rows, cols]`), labelled, as one `<svg>` element. `mask` hides
/// cells (e.g. above the causal diagonal) by drawing them grey.
pub struct Heatmap<'a> {
    /// Title above the map.
    pub title: &'a str,
    /// `[rows, cols]`
    pub values: &'a [f32],
    /// Label of each row.
    pub row_labels: &'a [String],
    /// Label of each column.
    pub col_labels: &'a [String],
    /// Colour scale maximum (absolute).
    pub max: f32,
    /// Red for negative values.
    pub signed: bool,
    /// Whether cell `(r, c)` exists.
    pub mask: &'a dyn Fn(usize, usize) -> bool,
    /// Axis names, for the tooltips: (rows, columns).
    pub axes: (&'a str, &'a str),
}

impl Heatmap<'_> {
    /// The `<svg>` element.
    pub fn render(&self) -> String {
        let (rows, cols) = (self.row_labels.len(), self.col_labels.len());
        // Small grids get cells wide enough to print their value.
        let cell = match rows.max(cols) {
            0..=12 => 34,
            13..=40 => 16,
            _ => 8,
        };
        let with_text = cell >= 34;
        let left = 8 * self
            .row_labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1)
            + 10;
        let top = 8 * self
            .col_labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1)
            + 28;
        let title_w = 7 * self.title.chars().count() + 10;
        let (w, h) = (
            (left + cols * cell + 10).max(title_w),
            top + rows * cell + 10,
        );
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="11">"#
        );
        let _ = write!(
            s,
            r#"<text x="2" y="13" font-weight="bold">{}</text>"#,
            escape(self.title)
        );
        for (c, label) in self.col_labels.iter().enumerate() {
            let x = left + c * cell + cell / 2 + 4;
            let _ = write!(
                s,
                r#"<text transform="translate({x},{}) rotate(-90)">{}</text>"#,
                top - 4,
                escape(label)
            );
        }
        for (r, label) in self.row_labels.iter().enumerate() {
            let y = top + r * cell + cell / 2 + 4;
            let _ = write!(
                s,
                r#"<text x="{}" y="{y}" text-anchor="end">{}</text>"#,
                left - 4,
                escape(label)
            );
            for c in 0..cols {
                let (x, y) = (left + c * cell, top + r * cell);
                if !(self.mask)(r, c) {
                    let _ = write!(
                        s,
                        r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="#eee"/>"##
                    );
                    continue;
                }
                let v = self.values[r * cols + c];
                let _ = write!(
                    s,
                    r#"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{}"><title>{} {} ({r}) / {} {} ({c}): {v:.4}</title></rect>"#,
                    colour(v, self.max, self.signed),
                    self.axes.0,
                    escape(label),
                    self.axes.1,
                    escape(&self.col_labels[c]),
                );
                if with_text {
                    let _ = write!(
                        s,
                        r#"<text x="{}" y="{}" text-anchor="middle" font-size="10" pointer-events="none">{v:.2}</text>"#,
                        x + cell / 2,
                        y + cell / 2 + 4
                    );
                }
            }
        }
        s.push_str("</svg>");
        s
    }
}

/// A horizontal signed bar chart: one bar per `(label, value)`, the largest magnitude full
/// width, positive blue to the right, negative red to the left.
pub fn bars(title: &str, items: &[(String, f32)]) -> String {
    let label_w = 8 * items
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(1)
        + 12;
    let (half, row) = (220usize, 20usize);
    let (w, h) = (label_w + 2 * half + 90, 30 + row * items.len() + 10);
    let max = items
        .iter()
        .fold(0.0f32, |m, (_, v)| m.max(v.abs()))
        .max(1e-12);
    let zero = label_w + half;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="bars" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<text x="4" y="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = write!(
        s,
        r##"<line x1="{zero}" y1="24" x2="{zero}" y2="{}" stroke="#444"/>"##,
        h - 6
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 28 + i * row;
        let len = (v.abs() / max * half as f32) as usize;
        let (x, fill) = if *v >= 0.0 {
            (zero, "#3b6fd8")
        } else {
            (zero - len, "#d84b3b")
        };
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{x}" y="{y}" width="{}" height="{}" fill="{fill}"><title>{}: {v:.4}</title></rect><text x="{}" y="{}">{v:+.3}</text>"#,
            label_w - 6,
            y + 13,
            escape(label),
            len.max(1),
            row - 4,
            escape(label),
            label_w + 2 * half + 6,
            y + 13
        );
    }
    s.push_str("</svg>");
    s
}

/// Several SVG elements side by side in one SVG document.
pub fn document(title: &str, parts: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- {} -->\n{}\n",
        escape(title),
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            // Stack the parts vertically inside one outer <svg>.
            let mut y = 0usize;
            let mut width = 0usize;
            let mut inner = String::new();
            for p in parts {
                let dim = |key: &str| -> usize {
                    p.split(&format!("{key}=\""))
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let (w, h) = (dim("width"), dim("height"));
                let _ = write!(inner, r#"<g transform="translate(0,{y})">{p}</g>"#);
                y += h + 10;
                width = width.max(w);
            }
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}">{inner}</svg>"#
            )
        }
    )
}
