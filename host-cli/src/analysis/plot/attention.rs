//! The attention page: one self-contained HTML file (inline CSS, script and data; no
//! network), like CircuitsVis' attention patterns. Every head of every layer is drawn as a
//! heatmap (row = destination, column = source); hovering a cell shows its weight, and
//! hovering a token of the prompt colours the tokens it attends to in the selected head.

use super::svg::{escape, Heatmap};

/// The attention patterns of one prompt.
pub struct Patterns<'a> {
    /// Token texts: `[seq]`
    pub tokens: &'a [String],
    /// `n_layers`
    pub n_layers: usize,
    /// `n_heads`
    pub n_heads: usize,
    /// Per layer `hook_pattern`: `[n_heads, seq, seq]`
    pub pattern: &'a [Vec<f32>],
}

impl Patterns<'_> {
    /// The `[seq, seq]` pattern of `layer.head`.
    pub fn head(&self, layer: usize, head: usize) -> &[f32] {
        let s = self.tokens.len();
        &self.pattern[layer][head * s * s..(head + 1) * s * s]
    }

    /// The SVG heatmap of `layer.head`.
    pub fn heatmap(&self, layer: usize, head: usize) -> String {
        let labels: Vec<String> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{i}:{t}"))
            .collect();
        Heatmap {
            title: &format!("head {layer}.{head}"),
            values: self.head(layer, head),
            row_labels: &labels,
            col_labels: &labels,
            max: 1.0,
            signed: false,
            mask: &|r, c| c <= r,
            axes: ("destination", "source"),
        }
        .render()
    }
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } .note { color: #555; max-width: 60em; }
#tokens span { font-family: monospace; padding: 2px 3px; margin: 1px; border: 1px solid #ccc;
  display: inline-block; cursor: pointer; white-space: pre; }
#grid { display: flex; flex-wrap: wrap; gap: 14px; margin-top: 1em; }
.head { border: 2px solid transparent; padding: 4px; cursor: pointer; }
.head.selected { border-color: #3b6fd8; }
#info { font-family: monospace; min-height: 1.4em; margin: .5em 0; }
"#;

const SCRIPT: &str = r#"
(function () {
  const data = JSON.parse(document.getElementById('data').textContent);
  const seq = data.tokens.length;
  let selected = [data.n_layers - 1, 0];
  const info = document.getElementById('info');
  const grid = document.getElementById('grid');
  const strip = document.getElementById('tokens');
  const NS = 'http://www.w3.org/2000/svg';
  function colour(v) {
    const t = Math.max(0, Math.min(1, v));
    return `rgb(${Math.round(255 * (1 - 0.85 * t))},${Math.round(255 * (1 - 0.6 * t))},255)`;
  }
  function weight(l, h, q, k) { return data.pattern[l][(h * seq + q) * seq + k]; }
  const cell = seq > 40 ? 6 : 12;
  let rendered = 0;
  for (let l = 0; l < data.n_layers; l++) {
    for (let h = 0; h < data.n_heads; h++) {
      const box = document.createElement('div');
      box.className = 'head';
      box.dataset.head = `${l}.${h}`;
      const title = document.createElement('div');
      title.textContent = `head ${l}.${h}`;
      box.appendChild(title);
      const svg = document.createElementNS(NS, 'svg');
      svg.setAttribute('class', 'heatmap');
      svg.setAttribute('width', seq * cell);
      svg.setAttribute('height', seq * cell);
      for (let q = 0; q < seq; q++) {
        for (let k = 0; k <= q; k++) {
          const r = document.createElementNS(NS, 'rect');
          const w = weight(l, h, q, k);
          r.setAttribute('x', k * cell); r.setAttribute('y', q * cell);
          r.setAttribute('width', cell); r.setAttribute('height', cell);
          r.setAttribute('fill', colour(w));
          r.addEventListener('mouseenter', () => {
            info.textContent = `head ${l}.${h}: destination ${q} ${JSON.stringify(data.tokens[q])}` +
              ` -> source ${k} ${JSON.stringify(data.tokens[k])}: ${w.toFixed(4)}`;
          });
          svg.appendChild(r);
        }
      }
      box.appendChild(svg);
      box.addEventListener('click', () => { selected = [l, h]; select(); });
      grid.appendChild(box);
      rendered++;
    }
  }
  data.tokens.forEach((t, q) => {
    const span = document.createElement('span');
    span.textContent = t;
    span.title = `position ${q}`;
    span.addEventListener('mouseenter', () => {
      const [l, h] = selected;
      strip.querySelectorAll('span').forEach((s, k) => {
        s.style.background = k <= q ? colour(weight(l, h, q, k)) : '';
      });
      info.textContent = `head ${l}.${h}: attention of position ${q} ${JSON.stringify(t)}`;
    });
    strip.appendChild(span);
  });
  function select() {
    grid.querySelectorAll('.head').forEach((b) => {
      b.classList.toggle('selected', b.dataset.head === `${selected[0]}.${selected[1]}`);
    });
  }
  select();
  document.body.setAttribute('data-rendered-heads', String(rendered));
})();
"#;

/// The whole page: the data as JSON in a `<script type="application/json">`, a script that
/// draws every head, and, for readers without a script, the same heatmaps as static SVG in a
/// `<noscript>`; `after` (HTML, e.g. more heatmaps) goes at the end of the body.
pub fn page(title: &str, p: &Patterns<'_>, after: &str) -> String {
    let data = serde_json::json!({
        "tokens": p.tokens,
        "n_layers": p.n_layers,
        "n_heads": p.n_heads,
        "pattern": p.pattern,
    });
    // `</` cannot appear inside a script element.
    let json = data.to_string().replace("</", "<\\/");
    let mut fallback = String::new();
    for l in 0..p.n_layers {
        for h in 0..p.n_heads {
            fallback.push_str(&p.heatmap(l, h));
        }
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title><style>{STYLE}</style></head>
<body>
<h1>{t}</h1>
<p class="note">Attention patterns (TransformerLens <code>hook_pattern</code>): in each head,
row = destination (query) position, column = source (key) position; darker is more attention.
Hover a cell for its weight; click a head to select it, then hover a token of the prompt to
colour the tokens it attends to.</p>
<div id="tokens"></div>
<div id="info"></div>
<div id="grid"></div>
<noscript>{fallback}</noscript>
<script type="application/json" id="data">{json}</script>
<script>{SCRIPT}</script>
{after}
</body></html>
"#,
        t = escape(title)
    )
}
