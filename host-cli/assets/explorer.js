// The explorer's script: plain JavaScript, no framework, no build step. It instantiates the
// kernel's WebAssembly module (embedded as base64, like the blob), lays out the module's memory
// (blob, arena, prompt, outputs), and on every change of the prompt or of an ablation calls the
// module and redraws. What the page reads back is also written, unformatted, to the JSON
// element #readout, for anyone (or any test) that wants the numbers rather than the text.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('data').textContent);
  const cfg = data.config;
  const HEADS = cfg.n_layers * cfg.n_heads;
  const TERMS = data.terms.length;
  const TOP_K = 8;        // next tokens shown
  const ROW_K = 6;        // entries per circuit row
  const CONTINUE = 12;    // greedy tokens
  const MESSAGE = 1024;   // bytes for an error message
  const $ = (id) => document.getElementById(id);

  // --- small functions --------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  function base64(id) {
    const s = atob(document.getElementById(id).textContent.trim());
    const bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return bytes;
  }
  const show = (id) => (data.vocab ? JSON.stringify(data.vocab[id]) : `#${id}`);
  const text = (id) => (data.vocab ? data.vocab[id] : `#${id} `);
  const headName = (k) => `${Math.floor(k / cfg.n_heads)}.${k % cfg.n_heads}`;
  const fmt = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  // Attention weight -> white to blue, as [r, g, b] and as a CSS colour.
  function rgb(v) {
    const t = Math.max(0, Math.min(1, v));
    return [Math.round(255 * (1 - 0.85 * t)), Math.round(255 * (1 - 0.6 * t)), 255];
  }
  const colour = (v) => `rgb(${rgb(v).join(',')})`;
  function softmax(logits) {
    let max = -Infinity;
    for (const x of logits) max = Math.max(max, x);
    let sum = 0;
    const p = Array.from(logits, (x) => { const e = Math.exp(x - max); sum += e; return e; });
    return p.map((e) => e / sum);
  }
  function topK(values, k) {
    const ids = Array.from(values.keys());
    ids.sort((a, b) => values[b] - values[a] || a - b);
    return ids.slice(0, k);
  }

  // --- the prompt: text through the vocabulary (longest match, as the CLI), or token ids --
  function encode(s) {
    const ids = [];
    let at = 0;
    while (at < s.length) {
      let best = -1;
      for (let i = 0; i < data.vocab.length; i++) {
        const t = data.vocab[i];
        if (t && s.startsWith(t, at) && (best < 0 || t.length > data.vocab[best].length)) best = i;
      }
      if (best < 0) throw new Error(`the prompt has ${JSON.stringify(s[at])} at character ${at}, which is not in the vocabulary`);
      ids.push(best);
      at += data.vocab[best].length;
    }
    return ids;
  }
  function parseIds(s) {
    const ids = s.split(/[\s,]+/).filter((x) => x !== '').map((x) => {
      const v = Number(x);
      if (!Number.isInteger(v) || v < 0 || v >= cfg.d_vocab) throw new Error(`${JSON.stringify(x)} is not a token id below d_vocab = ${cfg.d_vocab}`);
      return v;
    });
    return ids;
  }
  function promptTokens() {
    const s = $('prompt').value;
    const ids = $('mode').value === 'ids' ? parseIds(s) : encode(s);
    if (ids.length === 0) throw new Error('the prompt has no tokens');
    if (ids.length > cfg.n_ctx) throw new Error(`the prompt is ${ids.length} tokens long, longer than the context n_ctx = ${cfg.n_ctx}`);
    return ids;
  }

  // --- the module and its memory ----------------------------------------------------------
  const blobBytes = base64('blob');
  const module = new WebAssembly.Module(base64('wasm'));
  const ex = new WebAssembly.Instance(module, {}).exports;
  const align = (n) => Math.ceil(n / 16) * 16;
  const mem = {};
  (function layout() {
    let at = align(ex.__heap_base.value);
    const take = (bytes) => { const p = at; at = align(at + bytes); return p; };
    mem.blob = take(blobBytes.length);
    // Sizes that need the blob are asked of the module once it is in memory.
    const grow = (end) => {
      const missing = Math.ceil(end / 65536) - ex.memory.buffer.byteLength / 65536;
      if (missing > 0) ex.memory.grow(missing);
    };
    grow(at + MESSAGE);
    mem.msg = take(MESSAGE);
    new Uint8Array(ex.memory.buffer, mem.blob, blobBytes.length).set(blobBytes);
    mem.arenaLen = check(ex.tl_arena_len(mem.blob, blobBytes.length, mem.msg, MESSAGE));
    mem.arena = take(4 * mem.arenaLen);
    mem.tokens = take(4 * cfg.n_ctx);
    mem.ablation = take(HEADS);
    mem.out = take(4 * outLayout(cfg.n_ctx).len);
    mem.genTokens = take(4 * CONTINUE);
    mem.genProbs = take(4 * CONTINUE);
    mem.rowsLen = (1 + 2 * HEADS) * ROW_K;
    mem.rowIds = take(4 * mem.rowsLen);
    mem.rowValues = take(4 * mem.rowsLen);
    mem.scratch = take(4 * (cfg.d_model + cfg.d_head));
    grow(at);
    const moduleLen = check(ex.tl_out_len(mem.blob, blobBytes.length, cfg.n_ctx, mem.msg, MESSAGE));
    if (moduleLen !== outLayout(cfg.n_ctx).len) throw new Error('the page and the module disagree on the output layout');
  })();
  // A call's answer: the value, or the module's error message as an exception.
  function check(rc) {
    if (rc >= 0) return rc;
    const bytes = new Uint8Array(ex.memory.buffer, mem.msg, -rc - 1);
    throw new Error(new TextDecoder().decode(bytes));
  }
  // The output of tl_run, as web/src/explore.rs `Layout` lays it out (f32 elements).
  function outLayout(n) {
    const o = { logits: 0 };
    o.terms = o.logits + cfg.d_vocab;
    o.patterns = o.terms + TERMS;
    o.nextLogprob = o.patterns + HEADS * n * n;
    o.scores = o.nextLogprob + n;
    o.target = o.scores + HEADS * 3;
    o.loss = o.target + 1;
    o.len = o.loss + 1;
    return o;
  }
  const f32 = (ptr, len) => new Float32Array(ex.memory.buffer, ptr, len);
  const u32 = (ptr, len) => new Uint32Array(ex.memory.buffer, ptr, len);

  // One run of the prompt with `codes` (one ablation code per head): copies of what it wrote.
  function run(tokens, codes, target) {
    const n = tokens.length;
    const o = outLayout(n);
    u32(mem.tokens, n).set(tokens);
    new Uint8Array(ex.memory.buffer, mem.ablation, HEADS).set(codes);
    check(ex.tl_run(mem.blob, blobBytes.length, mem.arena, mem.arenaLen, mem.tokens, n,
      mem.ablation, HEADS, target == null ? -1 : target, mem.out, o.len, mem.msg, MESSAGE));
    const out = f32(mem.out, o.len).slice();
    return {
      logits: out.subarray(o.logits, o.logits + cfg.d_vocab),
      terms: Array.from(out.subarray(o.terms, o.terms + TERMS)),
      patterns: out.subarray(o.patterns, o.patterns + HEADS * n * n),
      scores: out.subarray(o.scores, o.scores + HEADS * 3),
      target: out[o.target],
      loss: out[o.loss],
      n,
    };
  }
  function generate(tokens, codes) {
    u32(mem.tokens, tokens.length).set(tokens);
    new Uint8Array(ex.memory.buffer, mem.ablation, HEADS).set(codes);
    const count = check(ex.tl_generate(mem.blob, blobBytes.length, mem.arena, mem.arenaLen,
      mem.tokens, tokens.length, mem.ablation, HEADS, mem.genTokens, mem.genProbs, CONTINUE,
      mem.msg, MESSAGE));
    return { ids: Array.from(u32(mem.genTokens, count)), probs: Array.from(f32(mem.genProbs, count)) };
  }
  function circuitRows(token) {
    check(ex.tl_circuit_rows(mem.blob, blobBytes.length, token, ROW_K, mem.scratch,
      cfg.d_model + cfg.d_head, mem.rowIds, mem.rowValues, mem.rowsLen, mem.msg, MESSAGE));
    const ids = u32(mem.rowIds, mem.rowsLen), values = f32(mem.rowValues, mem.rowsLen);
    const row = (r) => Array.from({ length: ROW_K }, (_, j) => [ids[r * ROW_K + j], values[r * ROW_K + j]])
      .filter(([id]) => id < cfg.d_vocab);
    return { direct: row(0), ov: (k) => row(1 + 2 * k), qk: (k) => row(2 + 2 * k) };
  }

  // --- the page's state -------------------------------------------------------------------
  const state = {
    tokens: [], codes: new Uint8Array(HEADS), target: null, from: null, pinned: null,
    result: null, clean: null, updates: 0, ms: null,
  };

  // --- layout of the page -----------------------------------------------------------------
  $('model').textContent = `Model: ${data.model}. Context ${cfg.n_ctx} tokens.`;
  const app = $('app');
  const start = data.prompt.text != null ? data.prompt.text : data.prompt.ids.join(', ');
  app.append(
    el('h2', { text: 'Prompt' }),
    el('div', {},
      el('select', { id: 'mode', onchange: update },
        el('option', { value: 'text', text: 'text (through the vocabulary)' }),
        el('option', { value: 'ids', text: 'token ids' })),
      ' ', el('span', { class: 'note', text: 'Every change re-runs the model. Hover a token: where each head looks from it. Click a token: its circuit rows.' })),
    el('textarea', { id: 'prompt', rows: 3, oninput: update }),
    el('div', { id: 'status' }),
    el('div', { id: 'tokens' }),
    el('h2', { text: 'Next token' }),
    el('p', { class: 'note', id: 'loss' }),
    el('table', { id: 'top' }),
    el('h2', { id: 'attribution-title' }),
    el('p', { class: 'note', text: 'The path expansion of the last position: the direct path, one term per head and the biases (the kernel\'s attribution). Click a next token above to split its logit instead.' }),
    el('table', { id: 'attribution' }),
    el('p', { id: 'attribution-sum' }),
    el('h2', { text: 'Greedy continuation' }),
    el('p', {}, el('span', { id: 'continuation' })),
    el('h2', { text: 'Heads' }),
    el('div', {},
      'Click a head to ablate it, with ',
      el('select', { id: 'ablate-mode' },
        el('option', { value: '1', text: 'zero ablation (its output set to 0)' }),
        el('option', { value: '2', text: 'mean ablation (its output set to its mean over the prompt)' })),
      '; click again to restore it.'),
    el('p', { class: 'note', text: `Beside each head: previous-token, duplicate and induction scores (the mean attention on each kind's targets), on this prompt (computed here) and on ${data.host.sequences} repeated random sequences of ${data.host.length} tokens (computed by tinylens explore, as tinylens heads does).` }),
    el('div', { id: 'heads' }),
    el('h2', { id: 'circuits-title' }),
    el('p', { class: 'note', text: 'One row of each circuit, top entries, by the kernel\'s circuits module: the direct path W_E W_U (next tokens this token favours), each head\'s full OV circuit W_E W_V W_O W_U (what attending to this token boosts) and full QK circuit W_E W_Q W_K^T W_E^T (what a query at this token looks for).' }),
    el('table', { id: 'circuits' }),
    el('div', { id: 'host-tables' }),
    el('script', { type: 'application/json', id: 'readout' }));
  $('prompt').value = start;
  if (data.prompt.ids != null || !data.vocab) $('mode').value = 'ids';

  // One card per head: the heatmap of its pattern, its scores, the row from the hovered token.
  const cards = [];
  for (let k = 0; k < HEADS; k++) {
    const canvas = el('canvas', { width: 200, height: 200 });
    const card = el('div', { class: 'head', 'data-head': headName(k), onclick: () => toggle(k) },
      el('b', { text: `head ${headName(k)}` }), el('span', { class: 'state' }),
      canvas, el('div', { class: 'scores' }), el('div', { class: 'strip' }));
    canvas.addEventListener('mousemove', (e) => {
      if (!state.result) return;
      const q = Math.floor(e.offsetY / (200 / state.result.n));
      if (q !== state.from && q >= 0 && q < state.result.n) hover(q);
    });
    $('heads').append(card);
    cards.push(card);
  }
  function toggle(k) {
    state.codes[k] = state.codes[k] ? 0 : Number($('ablate-mode').value);
    update();
  }

  // --- drawing ----------------------------------------------------------------------------
  function drawTokens() {
    const strip = $('tokens');
    strip.replaceChildren(...state.tokens.map((t, q) => el('span', {
      text: text(t), title: `position ${q}: token ${t}`, 'data-position': q,
      class: (q === state.from ? 'from ' : '') + (q === state.pinned ? 'pinned' : ''),
      onmouseenter: () => hover(q), onclick: () => { state.pinned = state.pinned === q ? null : q; drawTokens(); drawCircuits(); },
    })));
  }
  function drawTop() {
    const r = state.result, p = softmax(r.logits), c = state.clean && softmax(state.clean.logits);
    const rows = topK(r.logits, TOP_K).map((id, i) => el('tr', {
      class: 'pick' + (id === r.target ? ' chosen' : ''), 'data-token': id,
      onclick: () => { state.target = state.target === id ? null : id; update(); },
    }, el('td', { class: 'num', text: i + 1 }), el('td', { text: show(id) }),
    el('td', { class: 'num', text: fmt(p[id]) }), el('td', { class: 'num', text: fmt(r.logits[id]) }),
    c ? el('td', { class: 'num', text: `clean ${fmt(c[id])}` }) : null));
    $('top').replaceChildren(el('tr', {}, el('th', { text: '#' }), el('th', { text: 'token' }),
      el('th', { text: 'probability' }), el('th', { text: 'logit' })), ...rows);
    const ablated = state.clean ? ` (clean: ${fmt(state.clean.loss, 4)}, with the ablation ${state.clean.loss <= r.loss ? '+' : ''}${fmt(r.loss - state.clean.loss, 4)})` : '';
    $('loss').textContent = r.n > 1 ? `Loss over the prompt (mean next-token cross-entropy): ${fmt(r.loss, 4)}${ablated}.` : 'One token: no loss over the prompt.';
  }
  function drawAttribution() {
    const r = state.result, t = r.target;
    const largest = Math.max(1e-9, ...r.terms.map(Math.abs));
    const clean = state.clean && state.clean.terms;
    $('attribution-title').textContent = `Attribution of logit[${show(t)}]`;
    $('attribution').replaceChildren(...r.terms.map((v, k) => el('tr', {},
      el('td', { text: data.terms[k] }), el('td', { class: 'num', text: fmt(v) }),
      el('td', {}, el('span', { class: `bar ${v >= 0 ? 'pos' : 'neg'}`, style: `width:${Math.round(160 * Math.abs(v) / largest)}px` })),
      clean ? el('td', { class: 'num', text: `clean ${fmt(clean[k])}` }) : null)));
    const sum = r.terms.reduce((a, b) => a + b, 0);
    $('attribution-sum').textContent = `sum of the terms ${fmt(sum, 5)} = logit ${fmt(r.logits[t], 5)} (difference ${Math.abs(sum - r.logits[t]).toExponential(1)})`;
  }
  function drawHeads() {
    const r = state.result, n = r.n, cell = 200 / n;
    // Each heatmap is drawn as an n x n image (one pixel per weight), then scaled up.
    const small = el('canvas', { width: n, height: n }), sg = small.getContext('2d');
    const image = sg.createImageData(n, n);
    for (let k = 0; k < HEADS; k++) {
      const card = cards[k], code = state.codes[k];
      card.className = 'head' + (code === 1 ? ' zero' : code === 2 ? ' mean' : '');
      card.querySelector('.state').textContent = code === 1 ? ' zero-ablated' : code === 2 ? ' mean-ablated' : '';
      image.data.fill(255);
      for (let q = 0; q < n; q++) {
        for (let j = 0; j <= q; j++) {
          const [red, green] = rgb(r.patterns[(k * n + q) * n + j]);
          image.data[4 * (q * n + j)] = red;
          image.data[4 * (q * n + j) + 1] = green;
        }
      }
      sg.putImageData(image, 0, 0);
      const g = card.querySelector('canvas').getContext('2d');
      g.imageSmoothingEnabled = false;
      g.drawImage(small, 0, 0, 200, 200);
      if (state.from != null) {
        g.strokeStyle = '#d8823b';
        g.strokeRect(0.5, state.from * cell + 0.5, 199, Math.max(1, cell - 1));
      }
      const s = (a, i) => fmt(a[k * 3 + i], 2), h = data.host;
      card.querySelector('.scores').textContent =
        `prev ${s(r.scores, 0)} dup ${s(r.scores, 1)} ind ${s(r.scores, 2)} (prompt)\n` +
        `prev ${fmt(h.prev[k], 2)} dup ${fmt(h.duplicate[k], 2)} ind ${fmt(h.induction[k], 2)} (random)`;
    }
    drawRows();
  }
  // Where each head looks from the hovered position: the prompt coloured by that pattern row.
  function drawRows() {
    const r = state.result, n = r.n, q = state.from;
    for (let k = 0; k < HEADS; k++) {
      const strip = cards[k].querySelector('.strip');
      if (q == null) { strip.replaceChildren('hover a token to see where this head looks from it'); continue; }
      strip.replaceChildren(el('div', { text: `from ${q} ${show(state.tokens[q])}:` }),
        ...state.tokens.slice(0, q + 1).map((t, j) => {
          const w = r.patterns[(k * n + q) * n + j];
          return el('span', { text: text(t), style: `background:${colour(w)}`, title: `${j}: ${fmt(w, 4)}`, 'data-weight': w });
        }));
    }
  }
  function drawContinuation() {
    const g = generate(state.tokens, state.codes);
    state.continuation = g;
    $('continuation').replaceChildren(
      ...g.ids.map((id, i) => el('span', { text: text(id), title: `step ${i + 1}: ${show(id)}, p = ${fmt(g.probs[i])}` })),
      el('span', { class: 'note', text: `  (${g.ids.length} steps on the KV cache, each the most likely token${state.codes.some((c) => c) ? ', with the ablation' : ''})` }));
  }
  // The rows of the chosen next token, or of the prompt token clicked (click it again to go back).
  function drawCircuits() {
    const q = state.pinned != null && state.pinned < state.tokens.length ? state.pinned : null;
    const token = q != null ? state.tokens[q] : state.result.target;
    const rows = circuitRows(token);
    state.circuitToken = token;
    state.circuitRows = { direct: rows.direct, ov: cards.map((_, k) => rows.ov(k)), qk: cards.map((_, k) => rows.qk(k)) };
    const cells = (row) => el('td', { text: row.map(([id, v]) => `${show(id)} ${fmt(v, 2)}`).join('  ') });
    $('circuits-title').textContent = q != null
      ? `Circuit rows of ${show(token)}, the prompt token at position ${q} (click it again for the chosen next token's)`
      : `Circuit rows of the chosen next token ${show(token)} (click a prompt token for its rows)`;
    const trs = [el('tr', {}, el('td', { text: 'direct path' }), cells(rows.direct))];
    for (let k = 0; k < HEADS; k++) {
      trs.push(el('tr', {}, el('td', { text: `head ${headName(k)} OV` }), cells(rows.ov(k))));
      trs.push(el('tr', {}, el('td', { text: `head ${headName(k)} QK` }), cells(rows.qk(k))));
    }
    $('circuits').replaceChildren(...trs);
  }
  // The host's tables: composition scores (two layers or more), skip-trigrams (one layer).
  function drawHostTables() {
    const box = $('host-tables');
    const comp = data.host.composition;
    if (comp) {
      box.append(el('h2', { text: 'Composition scores' }), el('p', { class: 'note', text:
        `How much a later head reads what an earlier one writes: ||A B|| / (||A|| ||B||), A the earlier head's W_V W_O, B the later head's W_Q W_K^T (Q), W_K W_Q^T (K) or W_V W_O (V). Two random heads of this shape score about ${fmt(comp.baseline, 3)}. Computed by tinylens explore (as tinylens heads does).` }));
      for (const mode of comp.modes) {
        const s = comp.scores[mode], later = [];
        for (let k = cfg.n_heads; k < HEADS; k++) later.push(k);
        const head = el('tr', {}, el('th', { text: `${mode}: earlier \\ later` }), ...later.map((k) => el('th', { text: headName(k) })));
        const rows = [];
        for (let a = 0; a < HEADS - cfg.n_heads; a++) {
          rows.push(el('tr', {}, el('th', { text: headName(a) }), ...later.map((b) => {
            const v = s[a * HEADS + b], aLayer = Math.floor(a / cfg.n_heads), bLayer = Math.floor(b / cfg.n_heads);
            return aLayer < bLayer ? el('td', { text: fmt(v, 2), style: `background:${colour(v / Math.max(0.3, 3 * comp.baseline))}` }) : el('td', { text: '' });
          })));
        }
        box.append(el('table', { class: 'grid' }, head, ...rows));
      }
    }
    if (data.skip_trigrams) {
      box.append(el('h2', { text: 'Skip-trigrams' }), el('p', { class: 'note', text:
        '"source ... destination out": per head, the source tokens with the strongest OV rows, the destinations whose queries attend to them most (QK column) and the out tokens attending to them boosts (OV row). Computed by tinylens explore (as tinylens circuits does).' }));
      for (const h of data.skip_trigrams) {
        box.append(el('table', {}, el('tr', {}, el('th', { text: `head ${h.head}: source` }), el('th', { text: 'destinations' }), el('th', { text: 'outs' })),
          ...h.rows.map((r) => el('tr', {}, el('td', { text: show(r.source) }),
            el('td', { text: r.destinations.map(show).join(' ') }), el('td', { text: r.outs.map(show).join(' ') })))));
      }
    }
  }

  // --- events -----------------------------------------------------------------------------
  function hover(q) {
    state.from = q;
    $('tokens').querySelectorAll('span').forEach((s, i) => s.classList.toggle('from', i === q));
    drawHeads();
    writeReadout();
  }
  function update() {
    const t0 = performance.now();
    try {
      state.tokens = promptTokens();
    } catch (e) {
      $('status').textContent = e.message;
      state.error = e.message;
      writeReadout();
      return;
    }
    $('status').textContent = '';
    state.error = null;
    if (state.from != null && state.from >= state.tokens.length) state.from = null;
    try {
      const target = state.target != null && state.target < cfg.d_vocab ? state.target : null;
      state.result = run(state.tokens, state.codes, target);
      state.result.target = Math.round(state.result.target);
      state.clean = state.codes.some((c) => c) ? run(state.tokens, new Uint8Array(HEADS), state.result.target) : null;
    } catch (e) {
      $('status').textContent = `the kernel refused: ${e.message}`;
      state.error = e.message;
      writeReadout();
      return;
    }
    // Where the time goes, stage by stage (milliseconds, in the readout).
    const marks = [t0], stages = {};
    const stage = (name) => { marks.push(performance.now()); stages[name] = marks.at(-1) - marks.at(-2); };
    stage('tokenize and run');
    drawTokens();
    drawTop();
    drawAttribution();
    stage('tables');
    drawHeads();
    stage('heatmaps');
    drawContinuation();
    stage('continuation');
    drawCircuits();
    stage('circuit rows');
    document.body.getBoundingClientRect(); // the layout of the redrawn page, inside the timing
    stage('layout');
    state.ms = performance.now() - t0;
    state.stages = stages;
    state.updates++;
    writeReadout();
  }
  function writeReadout() {
    const r = state.result;
    const p = r ? softmax(r.logits) : [];
    const rows = {};
    if (r && state.from != null) {
      for (let k = 0; k < HEADS; k++) {
        rows[headName(k)] = Array.from(cards[k].querySelectorAll('.strip span'), (s) => Number(s.dataset.weight));
      }
    }
    $('readout').textContent = JSON.stringify({
      updates: state.updates, ms: state.ms, stages: state.stages, error: state.error || null,
      tokens: state.tokens, ablation: Array.from(state.codes),
      top: r ? topK(r.logits, TOP_K).map((id) => ({ id, prob: p[id], logit: r.logits[id] })) : [],
      logits: r ? Array.from(r.logits) : [],
      target: r ? r.target : null, terms: r ? r.terms : [], loss: r ? r.loss : null,
      clean_loss: state.clean ? state.clean.loss : null,
      continuation: state.continuation ? state.continuation.ids : [],
      from: state.from, rows,
      circuit_token: state.circuitToken, circuit_rows: state.circuitRows,
    });
  }
  drawHostTables();
  update();
})();
