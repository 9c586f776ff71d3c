//! The loss curve of a training run: CSV for tools, SVG for eyes.

use std::fmt::Write;

/// `step,loss,lr`, one row per step.
pub fn csv(losses: &[f32], lrs: &[f64]) -> String {
    let mut out = String::from("step,loss,lr\n");
    for (i, (l, r)) in losses.iter().zip(lrs).enumerate() {
        let _ = writeln!(out, "{i},{l},{r:e}");
    }
    out
}

/// A line plot of the loss against the step: every step in light grey, a running mean over
/// 1% of the steps in blue, with the axes labelled.
pub fn svg(losses: &[f32]) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 360.0, 56.0, 40.0, 28.0, 16.0);
    let max = losses.iter().copied().fold(f32::MIN, f32::max).max(1e-6) as f64;
    let n = losses.len().max(2) as f64;
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1.0);
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let points = |values: &mut dyn Iterator<Item = (usize, f64)>| {
        values
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let window = (losses.len() / 100).max(1);
    let mut sum = 0.0f64;
    let smooth: Vec<(usize, f64)> = losses
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            sum += v as f64;
            if i >= window {
                sum -= losses[i - window] as f64;
            }
            (i, sum / (i + 1).min(window) as f64)
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="16" font-size="13">training loss (cross-entropy, nats) per step</text>"#
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            w - right,
            left - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for k in 0..=4 {
        let i = ((losses.len().saturating_sub(1)) * k) / 4;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{i}</text>"#,
            x(i),
            h - bottom + 16.0
        );
    }
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#bbb" stroke-width="0.7" points="{}"/>"##,
        points(&mut losses.iter().enumerate().map(|(i, &v)| (i, v as f64)))
    );
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f5fbf" stroke-width="1.6" points="{}"/>"##,
        points(&mut smooth.into_iter())
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">step</text>"#,
        (left + w - right) / 2.0,
        h - 6.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_svg_hold_every_step() {
        let losses = [3.0, 2.5, 2.0];
        let c = csv(&losses, &[1e-3, 1e-3, 5e-4]);
        assert_eq!(c.lines().count(), 4);
        assert!(c.starts_with("step,loss,lr\n0,3,1e-3"));
        let s = svg(&losses);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<polyline").count(), 2);
    }
}
