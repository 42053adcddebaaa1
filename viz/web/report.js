/* attnscope report front-end (plain ES2020, no build step, no network).
 *
 * Reads the data blob of docs/report-data.md from <script id="attnscope-data">, decodes the
 * quantised attention maps once (base64 -> zlib inflate -> Uint8Array) and draws the views with
 * plotly.js (global Plotly) and umap-js (global UMAP). Views that depend on the selection are
 * redrawn when it changes; views outside the viewport are only marked stale and redrawn when they
 * scroll into view (or on print), so that playing through the epochs stays smooth on big runs.
 */
(() => {
  'use strict';

  // ------------------------------------------------------------------------------- utilities
  const $ = (id) => document.getElementById(id);
  const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  // Text for HTML (elements and quoted attributes) and for plotly's labels, titles and hover
  // templates, which decode only &amp; &lt; &gt; and numeric entities: every string from the data.
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' }[c]));
  const trunc = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  const clamp = (x, lo, hi) => Math.max(lo, Math.min(hi, x));
  function fmt(x, d = 3) {
    const v = num(x);
    if (v === null) return '–';
    if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
    if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
    return v.toFixed(d);
  }
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const nextFrame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));

  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "DejaVu Sans", Arial, sans-serif';
  const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f',
    '#79706e', '#1f9e89', '#8c564b', '#17becf', '#bcbd22', '#393b79', '#d6616b'];
  const color = (i) => PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
  const PATTERN_COLORS = { diagonal: '#4e79a7', bos: '#f28e2b', broadcast: '#e15759', uniform: '#9aa3ad', local: '#59a14f', mixed: '#b07aa1', block: '#edc948' };
  const PATTERN_SHORT = { diagonal: 'diag', bos: 'bos', broadcast: 'bcast', uniform: 'unif', local: 'local', mixed: 'mixed', block: 'block' };
  const VIRIDIS_STOPS = ['#440154', '#472c7a', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];
  const DIVERGING_STOPS = ['#2166ac', '#4393c3', '#92c5de', '#d1e5f0', '#f7f7f7', '#fddbc7', '#f4a582', '#d6604d', '#b2182b'];
  const toScale = (stops) => stops.map((c, i) => [i / (stops.length - 1), c]);
  const VIRIDIS = toScale(VIRIDIS_STOPS);
  const DIVERGING = toScale(DIVERGING_STOPS);
  function lut(stops) {
    const rgb = stops.map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
    const out = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; ++i) {
      const t = (i / 255) * (rgb.length - 1), k = Math.min(rgb.length - 2, Math.floor(t)), f = t - k;
      for (let c = 0; c < 3; ++c) out[i * 3 + c] = rgb[k][c] + (rgb[k + 1][c] - rgb[k][c]) * f;
    }
    return out;
  }
  const VIRIDIS_LUT = lut(VIRIDIS_STOPS), DIVERGING_LUT = lut(DIVERGING_STOPS);

  const METRIC_DESC = {
    confidence_max: 'largest attention weight seen',
    confidence_avg: 'mean over query rows of the largest weight',
    focus: 'row entropy in nats (low = focused)',
    sparsity: 'share of weights below 0.01',
    distribution: 'median weight of a row',
    uniformity: 'standard deviation of a row’s weights',
    entropy_norm: 'row entropy / log(length): 1 = uniform, 0 = one key',
    effective_tokens: 'exp(entropy): how many keys a row spreads over',
    gini: 'Gini coefficient of a row (0 = uniform, 1 = one key)',
    diagonal_mean: 'attention of a token to itself',
    first_token_mass: 'attention to the first token',
    last_token_mass: 'attention to the last token',
    local_mass: 'attention within ±2 positions',
    mean_distance: 'mean |query − key| distance attended',
    broadcast_mass: 'attention to the key (other than the first) that rows favour most',
    weight_mean: 'mean attention weight',
    weight_max: 'largest attention weight',
    weight_min: 'smallest attention weight',
    diagonal_std: 'standard deviation of the self-attention a_ii over the rows of a map',
    matrix_std: 'standard deviation of all weights of a map (one matrix)',
    matrix_gini: 'Gini coefficient of all weights of a map (one matrix)',
    matrix_median: 'median of all weights of a map (one matrix)',
    block_score: 'how much more attention stays inside contiguous segments than chance (modularity of the best split)',
    max_entropy: 'ln(keys a row may attend to): the entropy of uniform attention',
    js_prev: 'Jensen–Shannon divergence (bits) of the probe maps from the previous recorded epoch: how fast the head still changes',
    js_final: 'Jensen–Shannon divergence (bits) of the probe maps from the final epoch',
    head_importance: 'Michel et al. (2019): mean |dLoss/dgate| of the head, L2-normalised per layer',
  };

  // What a click on a metric shows: its formula (row i of a head's map over its n keys a_i1..a_in;
  // per-row values are averaged over the real query rows of every probe or validation example),
  // how to read it, and where it comes from.
  const ROW = 'per query row i over its n keys (a causal model: row i over keys 0..i), averaged over rows';
  const METRIC_DOCS = {
    confidence_max: { f: 'max over rows of max_j a_ij', read: 'Near 1: some query puts almost all its weight on one key. A single sharp row is enough to raise it.', ref: 'Attention Atlas (“confidence”)' },
    confidence_avg: { f: `mean_i max_j a_ij (${ROW})`, read: 'How peaked the typical row is: 1/n for uniform rows, 1 for one-hot rows.', ref: 'Attention Atlas (“confidence”); Voita et al. 2019 use the same quantity to find confident heads' },
    focus: { f: `H_i = −Σ_j a_ij ln a_ij (nats, ${ROW})`, read: 'Row entropy: 0 = one key, ln n = uniform. Depends on length; entropy_norm removes that.', ref: 'Clark et al. 2019, “What does BERT look at?” (attention entropy)' },
    entropy_norm: { f: `H_i / ln n (${ROW}; rows of one key count 0)`, read: '0 = every row on one key, 1 = uniform. Comparable across lengths. The “uniform” class is entropy_norm ≥ 0.9.', ref: 'Clark et al. 2019; normalisation as in the attention-fundamentals document' },
    effective_tokens: { f: `exp(H_i) (${ROW})`, read: 'The number of keys a row behaves as if it spread evenly over: 1 = one key, n = all.', ref: 'perplexity of the attention distribution (Clark et al. 2019)' },
    sparsity: { f: `|{j : a_ij < 0.01}| / n (${ROW})`, read: 'Share of keys a row ignores. High values with low entropy: a sparse, focused head.', ref: 'Attention Atlas (“sparsity”)' },
    distribution: { f: `median_j a_ij (${ROW})`, read: 'The median weight of a row: near 1/n for spread rows, near 0 for focused ones.', ref: 'Attention Atlas (“distribution”)' },
    uniformity: { f: `sqrt(Σ_j (a_ij − 1/n)² / n) (${ROW})`, read: 'Standard deviation of a row’s weights: 0 = uniform; larger = uneven.', ref: 'Attention Atlas (“uniformity”)' },
    gini: { f: `Σ_k (2k − n − 1) a_i(k) / (n Σ_j a_ij), a_i(k) sorted ascending (${ROW})`, read: '0 = uniform, (n−1)/n = one key: inequality of the weights, insensitive to their scale.', ref: 'Hurley & Rickard 2009, “Comparing measures of sparsity”' },
    diagonal_mean: { f: `a_ii (${ROW})`, read: 'Attention of a token to itself. The “diagonal” class is ≥ 0.5.', ref: 'Kovaleva et al. 2019, “Revealing the dark secrets of BERT” (diagonal pattern)' },
    first_token_mass: { f: `a_i0 (${ROW})`, read: 'Attention to the first token (<s>, [CLS]). High values are often a no-op “sink” rather than meaning. The “bos” class is ≥ 0.5.', ref: 'Clark et al. 2019 ([CLS]/[SEP] attention); Kovaleva et al. 2019 (vertical pattern)' },
    last_token_mass: { f: `a_i,n−1 (${ROW})`, read: 'Attention to the last real token (</s>, [SEP], or “=” in min/max).', ref: 'Clark et al. 2019 ([SEP] attention)' },
    local_mass: { f: `Σ_{|i−j| ≤ 2} a_ij (${ROW})`, read: 'Attention within two positions of the query. The “local” class is ≥ 0.8.', ref: 'Voita et al. 2019 (positional heads); Kovaleva et al. 2019 (block pattern)' },
    mean_distance: { f: `Σ_j a_ij |i − j| (${ROW})`, read: 'How far a head looks, in tokens: 0 = itself, near n/3 = spread over the sequence.', ref: 'Vig & Belinkov 2019, “Analyzing the structure of attention in a transformer LM” (attention distance)' },
    broadcast_mass: { f: 'the key k ≠ 0 with the largest column mean; mean_i a_ik', read: 'All rows attending to the same (non-first) key: a vertical stripe. The “broadcast” class is ≥ 0.5.', ref: 'Kovaleva et al. 2019 (vertical pattern)' },
    weight_mean: { f: 'mean of all real weights', read: 'The average weight, 1/n for any map: a check more than a metric.', ref: '—' },
    weight_max: { f: 'max of all weights', read: 'The largest weight anywhere in the head’s maps.', ref: '—' },
    weight_min: { f: 'min of all weights', read: 'The smallest weight: 0 when some key is fully ignored.', ref: '—' },
    diagonal_std: { f: 'sqrt(mean_i (a_ii − mean_k a_kk)²) per map, averaged over maps weighted by their rows', read: 'Whether self-attention is even along the diagonal (0) or strong on some tokens only. Beside diagonal_mean: a diagonal head with a high std attends to itself on particular tokens.', ref: 'attention-fundamentals document (diagonal statistics)' },
    matrix_std: { f: 'std of all allowed weights a_ij of a map as one matrix (a causal map: j ≤ i), averaged over maps weighted by rows', read: 'Unevenness of the whole map. Unlike uniformity (the mean of per-row stds) it also sees rows that differ from each other.', ref: 'attention-fundamentals document (matrix-level statistics)' },
    matrix_gini: { f: 'Gini of all allowed weights of a map, sorted ascending: Σ_k (2k − K − 1) w_(k) / (K Σ w)', read: '0 = every weight equal; near 1 = a few entries hold the map. The per-row gini averages rows instead.', ref: 'Hurley & Rickard 2009; attention-fundamentals document' },
    matrix_median: { f: 'median of all allowed weights of a map', read: 'The typical entry of the whole map: near 0 for sparse heads. distribution is the mean of per-row medians.', ref: 'attention-fundamentals document' },
    block_score: { f: 'max over splits of the n positions into contiguous segments c (≥ 2 tokens each) of (1/n) Σ_c [W_cc − |c| in_c / n]; W_cc = attention of c’s rows to c’s keys, in_c = attention c’s keys receive (Newman’s modularity; dynamic programming, O(n²))', read: '0 = no more attention inside segments than uniform attention would give; 1 − 1/m = m segments each attending only within itself (0.5 for two). The “block” class is ≥ 0.3 with effective_tokens ≥ 2 (rows spread inside the block, so that an offset diagonal is not a block), checked after local.', ref: 'Kovaleva et al. 2019 (block pattern); Newman 2006 (modularity)' },
    max_entropy: { f: `ln n (${ROW})`, read: 'The entropy of uniform attention over the keys a row may see: entropy_norm = focus / max_entropy row by row. It grows with the sequence length.', ref: 'attention-fundamentals document' },
    js_prev: { f: 'mean over real rows of JS(a_i^(e) ‖ a_i^(e−1)), bits', read: 'How much the head still changes between recorded epochs: 0 = settled, 1 = disjoint rows.', ref: 'Jensen–Shannon divergence (Lin 1991)' },
    js_final: { f: 'mean over real rows of JS(a_i^(e) ‖ a_i^(final)), bits', read: 'How far the head is from where it ends: reaches 0 at the last epoch; when it first stays near 0 the head has formed.', ref: 'Lin 1991' },
    head_importance: { f: 'mean |∂L / ∂g_h| at gate g_h = 1, L2-normalised per layer', read: 'How much the loss depends on the head: near 0 = prunable.', ref: 'Michel et al. 2019, “Are sixteen heads really better than one?”' },
  };

  function showDoc(name) {
    const d = METRIC_DOCS[name];
    if (!d) return;
    let panel = document.getElementById('metric-doc');
    if (!panel) {
      panel = document.createElement('aside');
      panel.id = 'metric-doc';
      panel.className = 'metric-doc';
      panel.setAttribute('role', 'dialog');
      document.body.appendChild(panel);
      panel.addEventListener('click', (ev) => { if (ev.target.closest('.close')) panel.hidden = true; });
      document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') panel.hidden = true; });
    }
    panel.innerHTML = `<button type="button" class="close" aria-label="close">×</button><h3>${esc(name.replace(/_/g, ' '))}</h3>` +
      `<p class="formula"><code>${esc(d.f)}</code></p><p><b>How to read it.</b> ${esc(d.read)}</p><p class="ref"><b>Reference.</b> ${esc(d.ref)}</p>`;
    panel.dataset.metric = name;
    panel.hidden = false;
  }

  // The browser's colour scheme (report.css follows it too), read once: plots are drawn in it.
  const DARK = typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d', 'select2d'] };
  function baseLayout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 14 }, x: 0.01, xanchor: 'left', yref: 'container', y: 1, yanchor: 'top', pad: { t: 14 } },
      font: { family: FONT, size: 12, color: DARK ? '#d7dde4' : '#1d232b' },
      paper_bgcolor: DARK ? '#1b2129' : '#ffffff',
      plot_bgcolor: DARK ? '#1b2129' : '#ffffff',
      margin: { l: 60, r: 24, t: 60, b: 50 },
      hoverlabel: { font: { family: FONT } },
    }, extra || {});
  }
  const axis = (extra) => Object.assign({ gridcolor: DARK ? '#2c343e' : '#eef1f4', zeroline: false, linecolor: DARK ? '#46505c' : '#c9d0d8', automargin: true }, extra || {});
  function vline(x, xref = 'x', yref = 'y domain', lineColor = '#d8443b', dash = 'dot') {
    return { type: 'line', xref, yref, x0: x, x1: x, y0: 0, y1: 1, line: { color: lineColor, width: 1.5, dash }, layer: 'above' };
  }
  // Traces are rebuilt only when their key changes: Plotly.react then sees the same arrays and
  // only redraws what moved (the epoch marker), which keeps playback light.
  const traceCache = {};
  function cachedTraces(name, key, build) {
    const c = traceCache[name];
    if (c && c.key === key) return c.traces;
    const traces = build();
    traceCache[name] = { key, traces };
    return traces;
  }
  function plot(id, traces, layout) {
    const el = typeof id === 'string' ? $(id) : id;
    if (el.querySelector(':scope > p.note')) el.innerHTML = '';
    return Plotly.react(el, traces, layout, PLOT_CONFIG);
  }
  /** A note in place of a plot (the plot, if any, is taken down first). */
  function noteIn(id, html) {
    const el = $(id);
    if (el.classList.contains('js-plotly-plot')) Plotly.purge(el);
    el.innerHTML = `<p class="note">${html}</p>`;
  }

  // ------------------------------------------------------------------------------- data
  function fatal(msg) {
    $('loading').hidden = true;
    const f = $('fatal');
    f.hidden = false;
    f.textContent = msg;
    console.error(`attnscope report: ${msg}`);
  }

  let D;
  try {
    D = JSON.parse($('attnscope-data').textContent);
  } catch (err) {
    fatal(`The embedded data could not be read: ${err.message}`);
    return;
  }
  if (typeof Plotly === 'undefined') { fatal('plotly.js is missing from this page (the libs placeholder was not filled).'); return; }
  if (!D || D.version !== 1) { fatal(`Unsupported report data version ${D && D.version} (this page reads version 1).`); return; }

  // layer, head and epoch numbers are written into the page as they are: numbers only
  const numbers = (a) => (Array.isArray(a) ? a.map(Number) : []);
  const layers = numbers(D.layers), heads = numbers(D.heads), epochs = numbers(D.epochs), probes = D.probes || [];
  const L = layers.length, H = heads.length, E = epochs.length, P = probes.length;
  const lens = probes.map((p) => (Number.isInteger(p.length) ? p.length : (p.tokens || []).length));
  const toks = probes.map((p, i) => Array.from({ length: lens[i] }, (_, k) => String((p.tokens || [])[k] ?? `#${k}`)));
  const probeOff = [];
  let perEpoch = 0;
  for (let p = 0; p < P; ++p) { probeOff.push(perEpoch); perEpoch += L * H * lens[p] * lens[p]; }
  const run = D.run || {};
  const task = run.task || '';
  const metrics = D.metrics || null;
  if (metrics && Array.isArray(metrics.epochs)) metrics.epochs = numbers(metrics.epochs);
  const analysis = D.analysis || {};
  const patternClasses = D.pattern_classes || [];
  const hasMinmax = !!D.minmax;
  const hasMaps = typeof D.maps?.probs?.zlib_base64 === 'string' && P > 0;
  const hasPooled = !!(D.pooled && Array.isArray(D.pooled.values) && D.pooled.values.length);

  const layerName = (l) => `layer ${layers[l]}`;
  const headName = (h) => `head ${heads[h]}`;
  const hl = (l, h) => `L${layers[l]} H${heads[h]}`;
  // a frozen model's snapshot (attnscope snapshot) names its source, not "before training"
  // (names of layers, heads and epochs are HTML: written into the page and into plotly's labels)
  const snapshotOf = typeof D.model?.source === 'string' ? esc(D.model.source.split('/').filter(Boolean).pop() ?? '') : null;
  const epochName = (e) =>
    `epoch ${epochs[e]}${snapshotOf ? ` (snapshot of ${snapshotOf})` : epochs[e] === 0 ? ' (before training)' : ''}`;
  // probes[p].index: the probe's number in the run's recorded probe set (when only some are embedded)
  const pid = (p) => (Number.isInteger(probes[p]?.index) ? probes[p].index : p);
  const probeName = (p, n = 48) => `probe #${pid(p)} “${esc(trunc(String(probes[p].text ?? toks[p].join(' ')), n))}”`;
  const patternName = (code) => {
    const c = num(code);
    if (c === null) return null;
    return patternClasses[c] ?? `class ${c}`;
  };
  const patternColor = (name) => (name ? (Object.hasOwn(PATTERN_COLORS, name) ? PATTERN_COLORS[name] : color(patternClasses.indexOf(name) + 7)) : '#d5dae0');

  async function inflate(b64) {
    let bytes;
    if (typeof Uint8Array.fromBase64 === 'function') {
      bytes = Uint8Array.fromBase64(b64);
    } else {
      const bin = atob(b64);
      bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; ++i) bytes[i] = bin.charCodeAt(i);
    }
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  const maps = {}; // kind -> { bytes, scale, offset }
  function block(kind, e, p, l, h) {
    const m = maps[kind], n = lens[p];
    const o = e * perEpoch + probeOff[p] + (l * H + h) * n * n;
    return { bytes: m.bytes, o, n, scale: m.scale, offset: m.offset };
  }
  /** The decoded map of (e, p, l, h) as a Float32Array of n*n values, row-major (query, key). */
  function getMap(kind, e, p, l, h) {
    const b = block(kind, e, p, l, h), out = new Float32Array(b.n * b.n);
    for (let k = 0; k < out.length; ++k) out[k] = b.offset + b.scale * b.bytes[b.o + k];
    return out;
  }
  function rowsOf(flat, n) {
    const z = [];
    for (let i = 0; i < n; ++i) z.push(Array.from(flat.subarray(i * n, i * n + n)));
    return z;
  }
  const scoreRangeCache = new Map();
  /** Largest |score| of (p, l, h) over all epochs: a fixed symmetric scale while playing. */
  function scoreRange(p, l, h) {
    const key = `${p},${l},${h}`;
    if (!scoreRangeCache.has(key)) {
      let m = 0;
      for (let e = 0; e < E; ++e) {
        const b = block('scores', e, p, l, h);
        for (let k = 0; k < b.n * b.n; ++k) m = Math.max(m, Math.abs(b.offset + b.scale * b.bytes[b.o + k]));
      }
      scoreRangeCache.set(key, m || 1);
    }
    return scoreRangeCache.get(key);
  }

  /** metrics index for recorded epoch e: exact match, else the latest metrics epoch before it. */
  function metricIndex(e) {
    if (!metrics || !Array.isArray(metrics.epochs) || !metrics.epochs.length) return -1;
    const ep = epochs[e];
    let best = -1;
    for (let m = 0; m < metrics.epochs.length; ++m) {
      if (metrics.epochs[m] === ep) return m;
      if (metrics.epochs[m] <= ep && (best < 0 || metrics.epochs[m] > metrics.epochs[best])) best = m;
    }
    return best >= 0 ? best : 0;
  }
  const metricValue = (name, m, l, h) => (m < 0 ? null : num(metrics?.values?.[name]?.[m]?.[l]?.[h]));
  const analysisValue = (name, e, l, h) => num(analysis?.[name]?.[e]?.[l]?.[h]);
  const hasAnalysis = (name) => Array.isArray(analysis[name]) && analysis[name].some((a) => JSON.stringify(a).match(/\d/));

  // ------------------------------------------------------------------------------- tick labels
  /** Numeric axis with token tick labels, thinned so that they never overlap. */
  function tokenAxis(tokens, px, extra) {
    const n = tokens.length, fs = n > 40 ? 9 : n > 24 ? 10 : 11;
    const step = Math.max(1, Math.ceil((n * (fs + 3)) / Math.max(60, px)));
    const vals = [], text = [];
    for (let i = 0; i < n; i += step) { vals.push(i); text.push(esc(trunc(tokens[i], 10))); }
    return axis(Object.assign({ tickmode: 'array', tickvals: vals, ticktext: text, tickfont: { size: fs, family: FONT },
      showgrid: false, range: [-0.5, n - 0.5] }, extra || {}));
  }
  const rotateFor = (tokens, px) => {
    const longest = Math.max(1, ...tokens.map((t) => Math.min(10, t.length)));
    return tokens.length * (longest * 7 + 8) < px ? 0 : -90;
  };
  const plotWidth = (id, fallback) => Math.max(200, ($(id) && $(id).clientWidth) || fallback);

  // ------------------------------------------------------------------------------- state + scheduling
  const S = {
    e: Math.max(0, E - 1), l: 0, h: 0, p: 0, mode: 'probs', playing: false,
    t2tHeads: new Set([0]), t2tQuery: null, query: 'auto', metric: 'entropy_norm', target: null,
    sortKey: null, sortDir: -1, gridK: 0, gridMode: 'probs', valColour: null, stepQuery: null,
  };
  const views = [];
  let frame = 0;
  function view(name, section, deps, render, heavy = false) {
    const v = { name, section, deps: new Set(deps), render, dirty: true, visible: false, heavy };
    views.push(v);
    return v;
  }
  const timings = {};
  function runView(v) {
    v.dirty = false;
    const t0 = performance.now();
    try {
      const r = v.render();
      timings[v.name] = performance.now() - t0;
      if (r && typeof r.catch === 'function') r.catch((err) => console.error(`attnscope report: view ${v.name}:`, err));
    } catch (err) {
      console.error(`attnscope report: view ${v.name}:`, err);
    }
  }
  function changed(...keys) {
    for (const v of views) if (keys.some((k) => v.deps.has(k))) v.dirty = true;
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; for (const v of views) if (v.dirty && v.visible) runView(v); });
  }
  async function flushAll() {
    for (const v of views) if (v.dirty) { runView(v); await nextFrame(); }
  }

  /** Of per-epoch rows thinned to null: the chosen epoch if embedded, else the nearest earlier one. */
  function embeddedAt(rows, ok = Array.isArray) {
    for (let e = S.e; e >= 0; --e) if (ok(rows[e])) return e;
    return rows.findIndex((r) => ok(r));
  }

  // ------------------------------------------------------------------------------- controls
  const slider = $('epoch-slider');
  function epochLabel() {
    const best = D.best_epoch !== null && D.best_epoch !== undefined && epochs[S.e] === D.best_epoch ? '<span class="best">★ best</span>' : '';
    $('epoch-label').innerHTML = `epoch <b>${epochs[S.e]}</b>${epochs[S.e] === 0 ? ' (init)' : ''} · ${S.e + 1}/${E}${best}`;
  }
  function setEpoch(e) {
    e = clamp(e | 0, 0, E - 1);
    if (e === S.e) return;
    S.e = e;
    slider.value = String(e);
    epochLabel();
    changed('e');
  }
  function setHead(l, h) {
    if (l === S.l && h === S.h) return;
    S.l = l; S.h = h;
    $('sel-layer').value = String(l);
    $('sel-head').value = String(h);
    S.t2tHeads = new Set([h]);
    changed('l', 'h', 't2t');
  }
  function setProbe(p) {
    if (p === S.p) return;
    S.p = p;
    $('sel-probe').value = String(p);
    S.t2tQuery = null;
    if (S.query !== 'auto' && S.query !== 'mean' && S.query >= lens[p]) S.query = 'auto';
    fillQuerySelect();
    fillStepQuery();
    changed('p', 't2t');
  }
  let playTimer = 0;
  function setPlaying(on) {
    S.playing = on;
    const b = $('btn-play');
    b.classList.toggle('playing', on);
    b.innerHTML = on ? '&#10074;&#10074;' : '&#9654;';
    b.setAttribute('aria-label', on ? 'Pause' : 'Play');
    clearTimeout(playTimer);
    if (on) {
      if (S.e >= E - 1) setEpoch(0);
      const tick = () => {
        if (!S.playing) return;
        if (S.e >= E - 1) { setPlaying(false); return; }
        setEpoch(S.e + 1);
        playTimer = setTimeout(tick, Number($('sel-speed').value) || 450);
      };
      playTimer = setTimeout(tick, Number($('sel-speed').value) || 450);
    }
  }
  function segment(id, onPick) {
    const seg = $(id);
    seg.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-mode]');
      if (!b || b.disabled) return;
      for (const x of seg.querySelectorAll('button')) x.classList.toggle('on', x === b);
      onPick(b.dataset.mode);
    });
  }
  function fillQuerySelect() {
    if (!hasMaps) return;
    const sel = $('sel-query'), n = lens[S.p];
    const auto = defaultQuery(S.p);
    let html = `<option value="auto">${esc(`${auto}: ${trunc(toks[S.p][auto] ?? '', 12)}`)} (default)</option><option value="mean">mean over query rows</option>`;
    for (let i = 0; i < n; ++i) html += `<option value="${i}">${i}: ${esc(trunc(toks[S.p][i], 14))}</option>`;
    sel.innerHTML = html;
    sel.value = String(S.query);
  }
  function defaultQuery(p) { return task === 'minmax' ? Math.max(0, lens[p] - 1) : 0; }

  function setupControls() {
    $('sel-layer').innerHTML = layers.map((x, l) => `<option value="${l}">${x}</option>`).join('');
    $('sel-head').innerHTML = heads.map((x, h) => `<option value="${h}">${x}</option>`).join('');
    $('sel-probe').innerHTML = probes.map((pr, p) => `<option value="${p}">#${pid(p)} ${esc(trunc(String(pr.text ?? toks[p].join(' ')), 44))} (${lens[p]})</option>`).join('');
    $('sel-layer').addEventListener('change', (ev) => setHead(Number(ev.target.value), S.h));
    $('sel-head').addEventListener('change', (ev) => setHead(S.l, Number(ev.target.value)));
    $('sel-probe').addEventListener('change', (ev) => setProbe(Number(ev.target.value)));
    slider.max = String(Math.max(0, E - 1));
    slider.value = String(S.e);
    slider.addEventListener('input', () => { if (S.playing) setPlaying(false); setEpoch(Number(slider.value)); });
    $('btn-play').addEventListener('click', () => setPlaying(!S.playing));
    epochLabel();
    segment('seg-mode', (m) => { S.mode = m; changed('mode'); });
    if (!maps.scores) {
      const b = $('seg-mode').querySelector('[data-mode=scores]');
      b.disabled = true;
      b.title = run.scores_omitted
        ? 'The pre-softmax scores were recorded but left out of this report to keep it small (choose fewer probes with attnscope render --probes).'
        : 'The pre-softmax scores were not recorded for this run (hooks.attention.sites: attn.scores).';
    }
    if (!hasMaps) {
      $('sel-probe').disabled = true;
      for (const b of $('seg-mode').querySelectorAll('button')) b.disabled = true;
    }
    $('sel-query').addEventListener('change', (ev) => {
      const v = ev.target.value;
      S.query = v === 'auto' || v === 'mean' ? v : Number(v);
      changed('query');
    });
    fillQuerySelect();
  }

  // ------------------------------------------------------------------------------- run summary
  function kvTable(id, obj) {
    const rows = Object.entries(obj || {}).filter(([, v]) => v !== undefined);
    $(id).innerHTML = rows.length
      ? rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'number' ? fmt(v, 4) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))}</td></tr>`).join('')
      : '<tr><td class="na">none</td></tr>';
  }
  function setupSummary() {
    const name = run.name || 'run';
    document.title = `attnscope · ${name}`;
    $('run-title').textContent = `${name}`;
    const model = run.model || {};
    const parts = [task && `task ${task}`, model.name && `model ${model.name}`, `${L} layer${L === 1 ? '' : 's'} × ${H} head${H === 1 ? '' : 's'} stored`,
      `${E} recorded epochs`, `${P} probes`];
    $('run-subtitle').textContent = parts.filter(Boolean).join(' · ');
    kvTable('model-table', model);
    kvTable('final-table', run.final);
    const sites = [hasMaps ? 'attn.probs' : null, D.maps?.scores ? 'attn.scores' : run.scores_omitted ? 'attn.scores (not embedded)' : null,
      hasPooled ? 'pooled' : null].filter(Boolean).join(', ') || 'none embedded';
    const lmin = P ? Math.min(...lens) : 0, lmax = P ? Math.max(...lens) : 0;
    kvTable('rec-table', {
      source: run.source, 'attnscope version': run.attnscope_version,
      'recorded epochs': E ? `${E} (${epochs[0]} … ${epochs[E - 1]})` : 'none',
      'best epoch': D.best_epoch ?? 'none',
      probes: P ? `${P}${num(run.probes_recorded) > P ? ` of ${run.probes_recorded}` : ''} (${lmin === lmax ? lmin : `${lmin}–${lmax}`} tokens)` : 'none',
      'stored layers': layers.join(', '), 'stored heads': heads.join(', '),
      'metric epochs': metrics?.epochs?.length ?? 0, sites,
    });
    $('config-pre').textContent = run.config_yaml || '(no configuration recorded)';
    const notes = [];
    const recorded = num(run.probes_recorded);
    if (recorded !== null && recorded > P) {
      notes.push(`${P} of the ${recorded} recorded probes are embedded in this report, to keep it small; choose others with <code>attnscope render --probes</code>.`);
    }
    if (run.scores_omitted) notes.push('The pre-softmax scores were recorded but are left out of this report to keep it small.');
    if (!hasMaps) notes.push('No attention maps are embedded (the <code>attn.probs</code> site was not recorded), so the head map, head grid, token, focus and 3-D views are left out.');
    $('summary-note').innerHTML = notes.join('<br>');
    $('summary-note').hidden = !notes.length;
    $('foot').textContent = `attnscope ${run.attnscope_version || ''} · ${run.source || ''} · a self-contained page: nothing is loaded from the network.`;
  }

  function curvesView() {
    const c = D.curves || {}, x = c.epoch || [];
    const skip = new Set(['epoch', 'step', 'seconds', 'time', 'wall_time', 'elapsed']);
    const keys = Object.keys(c).filter((k) => !skip.has(k) && Array.isArray(c[k]) && c[k].some((v) => num(v) !== null));
    const lossK = keys.filter((k) => /loss/i.test(k));
    const lrK = keys.filter((k) => /^lr$|learning_rate|^lr_/i.test(k));
    const restK = keys.filter((k) => !lossK.includes(k) && !lrK.includes(k));
    const ep = epochs[S.e];
    const best = num(D.best_epoch);
    const shapes = () => [vline(ep), ...(best !== null ? [vline(best, 'x', 'y domain', '#c9961a', 'dash')] : [])];
    const annotations = best !== null ? [{ x: best, y: 1, xref: 'x', yref: 'y domain', text: 'best', showarrow: false, font: { size: 10, color: '#a07712' }, yanchor: 'bottom' }] : [];
    const dash = (k) => (/^train/i.test(k) ? 'dot' : 'solid');
    const lines = (ks) => cachedTraces(`curves:${ks.join(',')}`, 'all', () => ks.map((k, i) => ({ type: 'scatter', mode: 'lines', name: esc(k), x, y: c[k].map(num), line: { width: 1.8, color: color(i), dash: dash(k) }, connectgaps: false })));
    const logy = (ks) => {
      const v = ks.flatMap((k) => c[k].map(num)).filter((y) => y !== null);
      return v.length && Math.min(...v) > 0 && Math.max(...v) / Math.min(...v) > 50;
    };
    const legend = { orientation: 'h', x: 0, y: -0.22, font: { size: 11 } };
    const done = [];
    const draw = (id, ks, title, yextra, allowLog) => {
      $(id).hidden = !ks.length;
      if (!ks.length) return;
      done.push(plot(id, lines(ks), baseLayout(title, {
        xaxis: axis({ title: { text: 'epoch', standoff: 4 } }), yaxis: axis(Object.assign(allowLog && logy(ks) ? { type: 'log' } : {}, yextra || {})),
        shapes: shapes(), annotations, legend, margin: { l: 60, r: 20, t: 44, b: 80 }, uirevision: id,
      })));
    };
    draw('plot-loss', lossK, `Loss${lossK.length > 1 ? ': train vs validation' : ''}`, {}, true);
    const inUnit = restK.every((k) => c[k].every((v) => num(v) === null || (v >= 0 && v <= 1)));
    draw('plot-taskmetrics', restK, `Task metrics`, inUnit ? { range: [-0.02, 1.02] } : {});
    const lrMax = Math.max(0, ...lrK.flatMap((k) => c[k].map(num)).filter((v) => v !== null));
    draw('plot-lr', lrK, 'Learning rate', { exponentformat: 'e', range: [0, (lrMax || 1) * 1.12] });
    if (!x.length) $('plot-loss').hidden = $('plot-taskmetrics').hidden = $('plot-lr').hidden = true;
    return Promise.all(done);
  }

  // ------------------------------------------------------------------------------- head map
  function headMapView() {
    const { e, p, l, h } = S, n = lens[p], mode = maps[S.mode] ? S.mode : 'probs';
    const flat = getMap(mode, e, p, l, h), z = rowsOf(flat, n), tk = toks[p];
    const text = [];
    for (let i = 0; i < n; ++i) {
      const r = [];
      for (let j = 0; j < n; ++j) r.push(`query ${i} “${esc(trunc(tk[i], 16))}” → key ${j} “${esc(trunc(tk[j], 16))}”`);
      text.push(r);
    }
    const scores = mode === 'scores', px = plotWidth('plot-headmap', 560) - 140;
    const m = scores ? scoreRange(p, l, h) : 1;
    const trace = {
      type: 'heatmap', z, x: [...Array(n).keys()], y: [...Array(n).keys()], text,
      colorscale: scores ? DIVERGING : VIRIDIS, zmin: scores ? -m : 0, zmax: m, zmid: scores ? 0 : undefined,
      xgap: n <= 16 ? 1 : 0, ygap: n <= 16 ? 1 : 0,
      texttemplate: n <= 10 ? '%{z:.2f}' : undefined, textfont: { size: 12 },
      hovertemplate: `%{text}<br>${scores ? 'score' : 'attention'} %{z:.3f}<extra></extra>`,
      colorbar: { title: { text: scores ? 'score' : 'attention', side: 'right' }, thickness: 14, len: 0.85 },
    };
    const title = `<b>${layerName(l)}, ${headName(h)}</b> · ${epochName(e)} · ${scores ? 'scores (pre-softmax)' : 'attention probabilities'}<br><span style="font-size:12px;color:#5b6673">${probeName(p, 60)}</span>`;
    return plot('plot-headmap', [trace], baseLayout(title, {
      xaxis: tokenAxis(tk, px, { title: { text: 'key', standoff: 6 }, side: 'bottom', tickangle: rotateFor(tk, px), constrain: 'domain' }),
      yaxis: tokenAxis(tk, px, { title: { text: 'query', standoff: 6 }, autorange: false, range: [n - 0.5, -0.5], scaleanchor: 'x', constrain: 'domain' }),
      margin: { l: 70, r: 20, t: 70, b: 60 },
    }));
  }

  // Attention × gradient per head for the probe (Hao et al. 2021): Σ_ij A_ij ∂y/∂A_ij, the
  // first-order change of the prediction when the head's attention is scaled; click a cell to select the head.
  function attnGradView() {
    const { e, p } = S, ag = analysis.attn_grad?.[e]?.[p];
    if (!Array.isArray(ag)) { $('plot-attngrad').hidden = true; return null; }
    $('plot-attngrad').hidden = false;
    const L = layers.length, H = heads.length, z = [];
    for (let l = 0; l < L; ++l) z.push(ag.slice(l * H, l * H + H).map(num));
    const m = Math.max(1e-12, ...z.flat().map((v) => Math.abs(v || 0)));
    const trace = {
      type: 'heatmap', z, x: heads.map((_, h) => headName(h)), y: layers.map((_, l) => layerName(l)), colorscale: DIVERGING,
      zmin: -m, zmax: m, zmid: 0, xgap: 1, ygap: 1, texttemplate: L * H <= 48 ? '%{z:.2g}' : undefined,
      hovertemplate: '%{y}, %{x}: %{z:.4g}<extra>attention × gradient</extra>',
      colorbar: { title: { text: 'Σ A·∂y/∂A', side: 'right' }, thickness: 12, len: 0.85 },
    };
    const done = plot('plot-attngrad', [trace], baseLayout(`Attention × gradient per head · ${epochName(e)} · probe #${pid(p)}`, {
      yaxis: axis({ autorange: 'reversed', type: 'category' }), xaxis: axis({ type: 'category' }), margin: { l: 70, r: 16, t: 40, b: 40 },
    }));
    const el = $('plot-attngrad');
    if (!el.dataset.clicks && typeof el.on === 'function') {  // a cell selects its head
      el.dataset.clicks = '1';
      el.on('plotly_click', (ev) => {
        const pt = ev?.points?.[0];
        if (!pt) return;
        const l = layers.findIndex((_, k) => layerName(k) === pt.y), h = heads.findIndex((_, k) => headName(k) === pt.x);
        if (l >= 0 && h >= 0) setHead(l, h);
      });
    }
    return done;
  }

  function tokenImportanceView() {
    const { e, p } = S, n = lens[p], tk = toks[p];
    const ti = analysis.token_importance?.[e]?.[p], tr = analysis.token_importance_rollout?.[e]?.[p];
    const tf = analysis.token_importance_flow?.[e]?.[p], tg = analysis.grad_input?.[e]?.[p];
    if (!Array.isArray(ti) && !Array.isArray(tr)) { $('plot-tokimp').hidden = true; return null; }
    const x = [...Array(n).keys()], px = plotWidth('plot-tokimp', 560) - 80;
    const traces = [];
    if (Array.isArray(ti)) traces.push({ type: 'bar', name: 'attention received', x, y: ti.slice(0, n).map(num), marker: { color: '#4e79a7' } });
    const readout = D.run?.model?.causal ? 'last token' : 'first token';
    if (Array.isArray(tr)) traces.push({ type: 'bar', name: `rollout (${readout})`, x, y: tr.slice(0, n).map(num), marker: { color: '#f28e2b' } });
    if (Array.isArray(tf) && tf.slice(0, n).some((v) => v !== null)) traces.push({ type: 'bar', name: `flow (${readout})`, x, y: tf.slice(0, n).map(num), marker: { color: '#59a14f' } });
    if (Array.isArray(tg) && tg.slice(0, n).some((v) => v !== null)) {  // signed; scaled to sum |.| = 1
      const g = tg.slice(0, n).map(num), s = g.reduce((a, v) => a + Math.abs(v || 0), 0) || 1;
      traces.push({ type: 'bar', name: 'gradient × input (signed)', x, y: g.map((v) => (v === null ? null : v / s)), marker: { color: '#b07aa1' } });
    }
    for (const t of traces) { t.customdata = tk.map((s) => esc(s)); t.hovertemplate = `%{x}: “%{customdata}” %{y:.3f}<extra>${t.name}</extra>`; }
    return plot('plot-tokimp', traces, baseLayout(`Token importance · ${epochName(e)} · probe #${pid(p)}`, {
      barmode: 'group', bargap: 0.25, xaxis: tokenAxis(tk, px, { tickangle: rotateFor(tk, px) }), yaxis: axis({ rangemode: 'tozero' }),
      legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.18, font: { size: 11 } }, margin: { l: 50, r: 16, t: 40, b: 40 },
    }));
  }

  // ------------------------------------------------------------------------------- token to token
  function setupT2T() {
    const chips = $('t2t-chips');
    chips.innerHTML = heads.map((x, h) => `<button type="button" class="chip" data-h="${h}" style="background:${color(h)}" title="${esc(headName(h))}">${x}</button>`).join('');
    chips.addEventListener('click', (ev) => {
      const b = ev.target.closest('.chip');
      if (!b) return;
      const h = Number(b.dataset.h);
      if (S.t2tHeads.has(h)) S.t2tHeads.delete(h); else S.t2tHeads.add(h);
      changed('t2t');
    });
    $('t2t-all').addEventListener('click', () => { S.t2tHeads = new Set(heads.map((_, h) => h)); changed('t2t'); });
    $('t2t-one').addEventListener('click', () => { S.t2tHeads = new Set([S.h]); changed('t2t'); });
    $('t2t').addEventListener('click', (ev) => {
      const g = ev.target.closest('.tok.left');
      if (!g) return;
      const i = Number(g.dataset.i);
      S.t2tQuery = S.t2tQuery === i ? null : i;
      changed('t2t');
    });
  }
  function t2tView() {
    const { e, p, l } = S, n = lens[p], tk = toks[p];
    for (const c of $('t2t-chips').children) c.classList.toggle('on', S.t2tHeads.has(Number(c.dataset.h)));
    const hs = [...S.t2tHeads].sort((a, b) => a - b);
    const q = S.t2tQuery !== null && S.t2tQuery < n ? S.t2tQuery : null;
    const rowH = n > 44 ? 14 : n > 28 ? 16 : n > 12 ? 20 : n > 6 ? 30 : 44;
    const longest = Math.max(2, ...tk.map((t) => Math.min(14, t.length)));
    const lw = Math.round(longest * 7.4 + 30), gap = clamp(Math.round(n * 6), 220, 280);
    const W = lw * 2 + gap, top = 26, Hh = top + n * rowH + 10;
    const x1 = lw, x2 = lw + gap;
    const yOf = (i) => top + i * rowH + rowH / 2;
    const mapsH = hs.map((h) => getMap('probs', e, p, l, h));
    const thr = q === null ? (n > 30 ? 0.04 : 0.02) : 0.003;
    let lines = '';
    hs.forEach((h, k) => {
      const M = mapsH[k], c = color(h);
      for (let i = q === null ? 0 : q; i < (q === null ? n : q + 1); ++i) {
        for (let j = 0; j < n; ++j) {
          const w = M[i * n + j];
          if (!(w >= thr)) continue;
          lines += `<line class="t2t-line" data-q="${i}" data-k="${j}" data-h="${h}" x1="${x1}" y1="${yOf(i)}" x2="${x2}" y2="${yOf(j)}" stroke="${c}" stroke-opacity="${Math.min(1, 0.08 + 0.92 * w).toFixed(3)}" stroke-width="${(0.8 + 2.6 * w).toFixed(2)}"/>`;
        }
      }
    });
    // key shading when one query is picked: summed attention over the shown heads
    const keyW = new Float32Array(n);
    if (q !== null) for (const M of mapsH) for (let j = 0; j < n; ++j) keyW[j] += M[q * n + j] / mapsH.length;
    let left = '', right = '';
    for (let i = 0; i < n; ++i) {
      const t = esc(trunc(tk[i], 14));
      left += `<g class="tok left${q === i ? ' sel' : ''}" data-i="${i}"><rect class="tok-bg" x="2" y="${yOf(i) - rowH / 2 + 1}" width="${lw - 8}" height="${rowH - 2}" rx="3"/><text x="${lw - 10}" y="${yOf(i)}" text-anchor="end" dominant-baseline="central">${t}</text><title>query ${i}: ${esc(tk[i])}</title></g>`;
      const wgt = q === null ? 0 : keyW[i];
      right += `<g class="tok right" data-i="${i}"><rect x="${x2 + 4}" y="${yOf(i) - rowH / 2 + 1}" width="${lw - 8}" height="${rowH - 2}" rx="3" fill="#2f6fb3" fill-opacity="${(0.55 * wgt).toFixed(3)}"/><text x="${x2 + 10}" y="${yOf(i)}" dominant-baseline="central">${t}</text><title>key ${i}: ${esc(tk[i])}${q === null ? '' : ` ← ${(keyW[i]).toFixed(3)}`}</title></g>`;
    }
    $('t2t').innerHTML = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" role="img" aria-label="token to token attention">`
      + `<text class="colhead" x="${lw - 10}" y="14" text-anchor="end">query</text><text class="colhead" x="${x2 + 10}" y="14">key</text>`
      + `<g class="lines">${lines}</g>${left}${right}</svg>`;
    const headsTxt = hs.length ? (hs.length === H && H > 1 ? 'all heads' : `${hs.length > 1 ? 'heads' : 'head'} ${hs.map((h) => heads[h]).join(', ')}`) : 'no head selected';
    $('t2t-title').innerHTML = `Token to token · ${layerName(l)}, ${headsTxt} · ${epochName(e)} · probe #${pid(p)}${q === null ? '' : ` · query ${q} “${esc(trunc(tk[q], 14))}”`}`;
  }

  // ------------------------------------------------------------------------------- head grid
  let gridBuilt = false;
  function buildGrid() {
    const g = $('head-grid');
    let html = '<div></div>' + heads.map((x) => `<div class="lab">head ${x}</div>`).join('');
    for (let l = 0; l < L; ++l) {
      html += `<div class="lab rlab">layer ${layers[l]}</div>`;
      for (let h = 0; h < H; ++h) html += `<canvas data-l="${l}" data-h="${h}" width="1" height="1"></canvas>`;
    }
    g.innerHTML = html;
    g.addEventListener('click', (ev) => {
      const c = ev.target.closest('canvas');
      if (c) setHead(Number(c.dataset.l), Number(c.dataset.h));
    });
    gridBuilt = true;
  }
  function drawScaleBar(scores) {
    const el = $('head-grid-scale');
    el.innerHTML = `<span>${scores ? '−max' : '0'}</span><canvas width="256" height="1"></canvas><span>${scores ? '+max (per map; white = 0)' : '1'}</span>`;
    const c = el.querySelector('canvas'), ctx = c.getContext('2d'), img = ctx.createImageData(256, 1);
    const T = scores ? DIVERGING_LUT : VIRIDIS_LUT;
    for (let i = 0; i < 256; ++i) { img.data[i * 4] = T[i * 3]; img.data[i * 4 + 1] = T[i * 3 + 1]; img.data[i * 4 + 2] = T[i * 3 + 2]; img.data[i * 4 + 3] = 255; }
    ctx.putImageData(img, 0, 0);
  }
  function gridView() {
    if (!gridBuilt) buildGrid();
    const { e, p } = S, n = lens[p], scores = S.mode === 'scores' && !!maps.scores, kind = scores ? 'scores' : 'probs';
    const avail = $('head-grid').clientWidth || 1200;
    const cell = clamp(Math.floor((avail - 70) / H) - 8, 48, 150);
    $('head-grid').style.gridTemplateColumns = `auto repeat(${H}, ${cell + 4}px)`;
    const m = metricIndex(e);
    for (const c of $('head-grid').querySelectorAll('canvas')) {
      const l = Number(c.dataset.l), h = Number(c.dataset.h);
      if (c.width !== n) { c.width = n; c.height = n; }
      c.style.width = c.style.height = `${cell}px`;
      const ctx = c.getContext('2d'), img = ctx.createImageData(n, n), M = getMap(kind, e, p, l, h);
      let mx = 1;
      if (scores) { mx = 0; for (const v of M) mx = Math.max(mx, Math.abs(v)); mx = mx || 1; }
      const T = scores ? DIVERGING_LUT : VIRIDIS_LUT;
      for (let k = 0; k < n * n; ++k) {
        const t = scores ? (M[k] / mx + 1) / 2 : M[k];
        const i = clamp(Math.round(t * 255), 0, 255) * 3;
        img.data[k * 4] = T[i]; img.data[k * 4 + 1] = T[i + 1]; img.data[k * 4 + 2] = T[i + 2]; img.data[k * 4 + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
      c.classList.toggle('sel', l === S.l && h === S.h);
      const pat = patternName(metricValue('pattern', m, l, h));
      c.title = `${layerName(l)}, ${headName(h)}${pat ? ` · pattern ${pat}` : ''}${metricValue('entropy_norm', m, l, h) !== null ? ` · entropy_norm ${fmt(metricValue('entropy_norm', m, l, h))}` : ''}\nclick to select`;
    }
    drawScaleBar(scores);
    $('grid-title').innerHTML = `All heads · ${epochName(e)} · ${probeName(p, 60)} · ${scores ? 'scores' : 'probabilities'}`;
  }

  // ------------------------------------------------------------------------------- specialisation timeline
  function metricOptions() {
    const opts = [];
    for (const name of metrics?.names || []) if (name !== 'pattern' && metrics.values?.[name]) opts.push({ value: name, label: name, src: 'metrics' });
    for (const name of ['js_prev', 'js_final', 'head_importance']) if (hasAnalysis(name)) opts.push({ value: name, label: `${name} (analysis)`, src: 'analysis' });
    return opts;
  }
  let metricOpts = [];
  function setupTimeline() {
    metricOpts = metricOptions();
    const sel = $('sel-metric');
    sel.innerHTML = metricOpts.map((o) => `<option value="${esc(o.value)}">${esc(o.label)}</option>`).join('');
    if (!metricOpts.some((o) => o.value === S.metric) && metricOpts.length) S.metric = metricOpts[0].value;
    sel.value = S.metric;
    sel.addEventListener('change', () => { S.metric = sel.value; changed('metric'); });
    $('metric-desc').addEventListener('click', (ev) => {
      const info = ev.target.closest('[data-doc]');
      if (info) showDoc(info.dataset.doc);
    });
    const legend = patternClasses.map((c) => `<span><span class="sw" style="background:${patternColor(c)}"></span>${esc(c)}</span>`).join('');
    $('pattern-legend').innerHTML = `${legend}<span><span class="sw" style="background:#d5dae0"></span>no value</span>`;
    $('pattern-map').addEventListener('click', (ev) => {
      const c = ev.target.closest('.cell');
      if (c) setHead(Number(c.dataset.l), Number(c.dataset.h));
    });
  }
  function timelineView() {
    const opt = metricOpts.find((o) => o.value === S.metric);
    $('metric-desc').innerHTML = opt ? `${esc(METRIC_DESC[opt.value] || '')}${METRIC_DOCS[opt.value] ? ` <span class="info" data-doc="${esc(opt.value)}" role="button" tabindex="0">ⓘ formula</span>` : ''}` : '';
    if (!opt) {
      noteIn('plot-timeline', 'No per-head metrics were recorded for this run.');
      return null;
    }
    const fromMetrics = opt.src === 'metrics';
    const xs = fromMetrics ? metrics.epochs : epochs;
    const val = (i, l, h) => (fromMetrics ? metricValue(opt.value, i, l, h) : analysisValue(opt.value, i, l, h));
    const cols = Math.min(L, L <= 4 ? L : 3), rows = Math.ceil(L / cols);
    const traces = [], shapes = [], annotations = [];
    const gapX = 0.06, gapY = rows > 1 ? 0.12 : 0, w = (1 - gapX * (cols - 1)) / cols, hgt = (1 - gapY * (rows - 1)) / rows;
    const layout = baseLayout(`${esc(opt.value)} per head over training · one panel per layer`, {
      showlegend: H > 1, legend: { orientation: 'h', x: 0, xref: 'container', y: 0, yref: 'container', yanchor: 'bottom', font: { size: 11 }, traceorder: 'normal' },
      margin: { l: 60, r: 20, t: 64, b: H > 1 ? 46 + 22 * Math.ceil(H / 12) : 50 }, height: rows * 240 + 110 + (H > 1 ? 22 * Math.ceil(H / 12) : 0), uirevision: 'timeline',
    });
    for (let l = 0; l < L; ++l) {
      const r = Math.floor(l / cols), c = l % cols, k = l === 0 ? '' : String(l + 1);
      const x0 = c * (w + gapX), y1 = 1 - r * (hgt + gapY);
      layout[`xaxis${k}`] = axis({ domain: [x0, x0 + w], anchor: `y${k}`, title: r === rows - 1 ? { text: 'epoch', standoff: 4 } : undefined });
      layout[`yaxis${k}`] = axis({ domain: [y1 - hgt, y1], anchor: `x${k}` });
      annotations.push({ text: `<b>${layerName(l)}</b>`, x: x0 + w / 2, y: y1, xref: 'paper', yref: 'paper', xanchor: 'center', yanchor: 'bottom', showarrow: false, font: { size: 12 } });
      shapes.push(vline(epochs[S.e], `x${k}`, `y${k} domain`));
    }
    traces.push(...cachedTraces('timeline', `${opt.value},${S.l},${S.h}`, () => {
      const out = [];
      for (let l = 0; l < L; ++l) {
        const k = l === 0 ? '' : String(l + 1);
        for (let h = 0; h < H; ++h) {
          const sel = l === S.l && h === S.h;
          out.push({
            type: 'scatter', mode: xs.length > 60 ? 'lines' : 'lines+markers', x: xs, y: xs.map((_, i) => val(i, l, h)),
            name: headName(h), legendgroup: `h${h}`, showlegend: l === 0, xaxis: `x${k}`, yaxis: `y${k}`,
            line: { color: color(h), width: sel ? 3.2 : 1.6 }, marker: { size: sel ? 5 : 3 },
            hovertemplate: `${hl(l, h)} · epoch %{x}: %{y:.4f}<extra></extra>`,
          });
        }
      }
      return out;
    }));
    layout.shapes = shapes;
    layout.annotations = annotations;
    return plot('plot-timeline', traces, layout);
  }
  function patternMapView() {
    const m = metricIndex(S.e);
    const g = $('pattern-map');
    g.style.gridTemplateColumns = `auto repeat(${H}, minmax(44px, 64px))`;
    let html = '<div></div>' + heads.map((x) => `<div class="lab">head ${x}</div>`).join('');
    for (let l = 0; l < L; ++l) {
      html += `<div class="lab">layer ${layers[l]}</div>`;
      for (let h = 0; h < H; ++h) {
        const name = patternName(metricValue('pattern', m, l, h));
        html += `<div class="cell${l === S.l && h === S.h ? ' sel' : ''}" data-l="${l}" data-h="${h}" style="background:${patternColor(name)}" title="${esc(`${layerName(l)}, ${headName(h)}: ${name || 'no value'}`)}">${esc(name ? PATTERN_SHORT[name] || name : '–')}</div>`;
      }
    }
    g.innerHTML = html;
    const me = m >= 0 ? metrics.epochs[m] : null;
    $('pattern-title').innerHTML = `Pattern class · ${epochName(S.e)}${me !== null && me !== epochs[S.e] ? ` (metrics of epoch ${me})` : ''}`;
  }
  function patternTimeView() {
    if (!metrics?.values?.pattern) { noteIn('plot-pattern-time', 'No pattern classes were recorded.'); return null; }
    const K = Math.max(1, patternClasses.length), xs = metrics.epochs;
    const ylab = [];
    for (let l = 0; l < L; ++l) for (let h = 0; h < H; ++h) ylab.push(hl(l, h));
    const scale = [];
    for (let k = 0; k < K; ++k) { const c = patternColor(patternClasses[k]); scale.push([k / K, c], [(k + 1) / K, c]); }
    const rows = L * H, rowPx = clamp(Math.floor(520 / rows), 9, 30);
    const yax = tokenAxis(ylab, rows * rowPx, { autorange: false, range: [rows - 0.5, -0.5] });
    const traces = cachedTraces('pattern-time', 'all', () => {
      const z = [], text = [];
      for (let l = 0; l < L; ++l) for (let h = 0; h < H; ++h) {
        z.push(xs.map((_, m) => metricValue('pattern', m, l, h)));
        text.push(xs.map((_, m) => esc(patternName(metricValue('pattern', m, l, h)) || 'no value')));
      }
      return [{
        type: 'heatmap', z, x: xs, y: [...Array(rows).keys()], text, colorscale: scale, zmin: -0.5, zmax: K - 0.5, showscale: false,
        hovertemplate: '%{customdata} · epoch %{x}: %{text}<extra></extra>', customdata: z.map((_, r) => xs.map(() => ylab[r])), ygap: rows <= 24 ? 1 : 0,
      }];
    });
    return plot('plot-pattern-time', traces, baseLayout('', {
      height: rows * rowPx + 70, xaxis: axis({ title: { text: 'epoch', standoff: 4 }, showgrid: false }), yaxis: yax,
      shapes: [vline(epochs[S.e], 'x', 'y domain', '#1d232b', 'dot')], margin: { l: 70, r: 20, t: 10, b: 50 },
    }));
  }

  // ------------------------------------------------------------------------------- metric table
  function tableColumns() {
    const cols = [
      { key: 'layer', label: 'layer', get: (l) => layers[l], cls: 'l', plain: true },
      { key: 'head', label: 'head', get: (l, h) => heads[h], cls: 'l', plain: true },
      { key: 'pattern', label: 'pattern', get: (l, h, m) => patternName(metricValue('pattern', m, l, h)), cls: 'l', text: true },
    ];
    for (const name of ['js_prev', 'js_final', 'head_importance']) {
      if (analysis[name]) cols.push({ key: name, label: name.replace(/_/g, ' '), get: (l, h, m, e) => analysisValue(name, e, l, h), desc: METRIC_DESC[name] });
    }
    for (const name of metrics?.names || []) {
      if (name === 'pattern') continue;
      cols.push({ key: name, label: name.replace(/_/g, ' '), get: (l, h, m) => metricValue(name, m, l, h), desc: METRIC_DESC[name] });
    }
    return cols;
  }
  let tableCols = [];
  function setupTable() {
    tableCols = tableColumns();
    $('metric-table').addEventListener('click', (ev) => {
      const info = ev.target.closest('[data-doc]');
      if (info) { showDoc(info.dataset.doc); return; }
      const th = ev.target.closest('th[data-key]');
      if (th) {
        const k = th.dataset.key;
        if (S.sortKey === k) S.sortDir = -S.sortDir;
        else { S.sortKey = k; S.sortDir = k === 'layer' || k === 'head' || k === 'pattern' ? 1 : -1; }
        changed('sort');
        return;
      }
      const tr = ev.target.closest('tr[data-l]');
      if (tr) setHead(Number(tr.dataset.l), Number(tr.dataset.h));
    });
  }
  function tableView() {
    const e = S.e, m = metricIndex(e);
    const rows = [];
    for (let l = 0; l < L; ++l) for (let h = 0; h < H; ++h) rows.push({ l, h, v: tableCols.map((c) => c.get(l, h, m, e)) });
    const ci = tableCols.findIndex((c) => c.key === S.sortKey);
    if (ci >= 0) {
      rows.sort((a, b) => {
        const x = a.v[ci], y = b.v[ci];
        if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
        if (y === null || y === undefined) return -1;
        return (typeof x === 'string' ? x.localeCompare(y) : x - y) * S.sortDir;
      });
    }
    const ranges = tableCols.map((c, k) => {
      if (c.plain || c.text) return null;
      const v = rows.map((r) => r.v[k]).filter((x) => x !== null);
      return v.length ? [Math.min(...v), Math.max(...v)] : null;
    });
    const head = tableCols.map((c) => `<th data-key="${esc(c.key)}" class="${c.cls || ''}"${c.desc ? ` title="${esc(c.desc)}"` : ''}>${esc(c.label)}${METRIC_DOCS[c.key] ? `<span class="info" data-doc="${esc(c.key)}" role="button" tabindex="0" aria-label="explain ${esc(c.label)}">ⓘ</span>` : ''}${S.sortKey === c.key ? `<span class="arrow">${S.sortDir > 0 ? '▲' : '▼'}</span>` : ''}</th>`).join('');
    const body = rows.map((r) => `<tr data-l="${r.l}" data-h="${r.h}"${r.l === S.l && r.h === S.h ? ' class="sel"' : ''}>${tableCols.map((c, k) => {
      const v = r.v[k];
      if (c.text) return `<td class="l">${v ? `<span class="pill" style="background:${patternColor(v)}">${esc(v)}</span>` : '<span class="na">–</span>'}</td>`;
      if (c.plain) return `<td class="l">${esc(v)}</td>`;
      if (v === null) return '<td class="na">–</td>';
      const rg = ranges[k], t = rg && rg[1] > rg[0] ? (v - rg[0]) / (rg[1] - rg[0]) : 0;
      return `<td style="background:rgba(47,111,179,${(0.04 + 0.26 * t).toFixed(3)})">${fmt(v, 3)}</td>`;
    }).join('')}</tr>`).join('');
    $('metric-table').innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
    const me = m >= 0 ? metrics.epochs[m] : null;
    $('table-title').innerHTML = `Head metrics · ${epochName(e)}${me !== null && me !== epochs[e] ? ` (metrics of epoch ${me})` : ''}`;
  }

  // ------------------------------------------------------------------------------- focus parcoords
  const focusCache = new Map();
  function focusAt(e) {
    if (focusCache.has(e)) return focusCache.get(e);
    // x·ln(x) of each byte value: the row entropy is ln(t) − Σ x ln x / t for a row of sum t
    const m = maps.probs, xlnx = new Float64Array(256);
    for (let k = 0; k < 256; ++k) { const x = m.offset + m.scale * k; xlnx[k] = x > 0 ? x * Math.log(x) : 0; }
    const out = [];
    for (let l = 0; l < L; ++l) for (let h = 0; h < H; ++h) {
      const acc = [0, 0, 0, 0, 0];
      let rows = 0;
      for (let p = 0; p < P; ++p) {
        const b = block('probs', e, p, l, h), n = b.n;
        if (!n) continue;
        const third = new Uint8Array(n);
        for (let j = 0; j < n; ++j) third[j] = Math.min(2, Math.floor(((j + 0.5) * 3) / n));
        const logn = n > 1 ? Math.log(n) : 1;
        for (let i = 0; i < n; ++i) {
          const o = b.o + i * n;
          let tot = 0, ent = 0;
          const t3 = [0, 0, 0];
          for (let j = 0; j < n; ++j) { const k = b.bytes[o + j], x = b.offset + b.scale * k; t3[third[j]] += x; tot += x; ent -= xlnx[k]; }
          if (tot <= 0) continue;
          ent = ent / tot + Math.log(tot);
          acc[0] += t3[0] / tot; acc[1] += t3[1] / tot; acc[2] += t3[2] / tot;
          acc[3] += n > 1 ? ent / logn : 0; acc[4] += (b.offset + b.scale * b.bytes[o]) / tot;
          rows++;
        }
      }
      out.push({ l, h, v: acc.map((x) => (rows ? x / rows : null)) });
    }
    focusCache.set(e, out);
    return out;
  }
  function focusView() {
    const f = focusAt(S.e);
    const unit = [0, 1];
    const dims = [
      { label: 'layer', values: f.map((r) => layers[r.l]), tickvals: layers, range: [Math.min(...layers), Math.max(...layers) + (L === 1 ? 1 : 0)] },
      { label: 'head', values: f.map((r) => heads[r.h]), tickvals: H <= 16 ? heads : undefined, range: [Math.min(...heads), Math.max(...heads) + (H === 1 ? 1 : 0)] },
      { label: 'begin third', values: f.map((r) => r.v[0]), range: unit },
      { label: 'middle third', values: f.map((r) => r.v[1]), range: unit },
      { label: 'end third', values: f.map((r) => r.v[2]), range: unit },
      { label: 'entropy_norm', values: f.map((r) => r.v[3]), range: unit },
      { label: 'first_token_mass', values: f.map((r) => r.v[4]), range: unit },
    ];
    const scale = [];
    for (let l = 0; l < Math.max(1, L); ++l) scale.push([l / Math.max(1, L), color(l)], [(l + 1) / Math.max(1, L), color(l)]);
    return plot('plot-parcoords', [{
      type: 'parcoords', dimensions: dims,
      line: { color: f.map((r) => r.l), colorscale: scale, cmin: -0.5, cmax: Math.max(1, L) - 0.5, showscale: false },
      labelfont: { size: 12 }, tickfont: { size: 10 }, rangefont: { size: 1, color: 'rgba(0,0,0,0)' },
    }], baseLayout(`Focus patterns · ${epochName(S.e)} · ${P} probes · ${L * H} heads, coloured by layer`, {
      margin: { l: 50, r: 80, t: 96, b: 24 },
      annotations: L > 1 ? layers.map((x, l) => ({ text: `<span style="color:${color(l)}">■</span> layer ${x}`, xref: 'paper', yref: 'paper', x: 1, xanchor: 'right', y: 1.2, yanchor: 'bottom', showarrow: false, xshift: -(L - 1 - l) * 70, font: { size: 11 } })) : [],
    }));
  }

  // ------------------------------------------------------------------------------- 3-D views
  function scene(xTok, yTicks, yTitle, xTitle) {
    const thin = (arr, max) => { const s = Math.max(1, Math.ceil(arr.length / max)); return arr.map((_, i) => i).filter((i) => i % s === 0); };
    const xi = thin(xTok, 16), yi = thin(yTicks, 16);
    return {
      // (3-D tick labels are drawn as plain text: no HTML escaping here)
      xaxis: { title: { text: xTitle }, tickmode: 'array', tickvals: xi, ticktext: xi.map((i) => trunc(xTok[i], 8)), tickfont: { size: 10 }, backgroundcolor: '#fafbfc' },
      yaxis: { title: { text: yTitle }, tickmode: 'array', tickvals: yi, ticktext: yi.map((i) => trunc(yTicks[i], 8)), tickfont: { size: 10 }, backgroundcolor: '#fafbfc' },
      zaxis: { title: { text: 'attention' }, range: [0, 1], tickvals: [0, 0.25, 0.5, 0.75, 1], tickfont: { size: 10 } },
      camera: { eye: { x: 1.4, y: -1.4, z: 0.78 }, center: { x: 0, y: 0, z: -0.2 } },
      aspectmode: 'manual', aspectratio: { x: 1.25, y: 1.25, z: 0.7 },
    };
  }
  function landscapeView() {
    const { e, p } = S, n = lens[p], tk = toks[p];
    const qi = S.query === 'auto' ? defaultQuery(p) : S.query;
    const z = [], ylab = [];
    for (let l = 0; l < L; ++l) for (let h = 0; h < H; ++h) {
      const M = getMap('probs', e, p, l, h), row = new Array(n).fill(0);
      if (qi === 'mean') { for (let i = 0; i < n; ++i) for (let j = 0; j < n; ++j) row[j] += M[i * n + j] / n; }
      else for (let j = 0; j < n; ++j) row[j] = M[qi * n + j];
      z.push(row);
      ylab.push(hl(l, h));
    }
    const ys = [...Array(L * H).keys()];
    if (z.length === 1) { z.push(z[0].slice()); ylab.push(ylab[0]); ys.push(1); } // one head: a ribbon
    const from = qi === 'mean' ? 'mean over query rows' : `query ${qi} “${esc(trunc(tk[qi], 12))}”`;
    return plot('plot-landscape', [{
      type: 'surface', z, x: [...Array(n).keys()], y: ys, colorscale: VIRIDIS, cmin: 0, cmax: 1,
      colorbar: { title: { text: 'attention' }, thickness: 12, len: 0.7 },
      customdata: ylab.map((lab) => tk.map((t) => `${lab} → “${esc(trunc(t, 12))}”`)),
      hovertemplate: '%{customdata}: %{z:.3f}<extra></extra>',
    }], baseLayout(`<b>Attention landscape</b> · all heads · ${epochName(e)}<br><span style="font-size:12px;color:#5b6673">probe #${pid(p)}, from ${from}</span>`, {
      scene: scene(tk, ylab, 'layer·head', 'key'), margin: { l: 24, r: 0, t: 64, b: 0 }, uirevision: 'landscape',
    }));
  }
  function surfaceView() {
    const { e, p, l, h } = S, n = lens[p], tk = toks[p];
    const M = getMap('probs', e, p, l, h);
    return plot('plot-surface', [{
      type: 'surface', z: rowsOf(M, n), x: [...Array(n).keys()], y: [...Array(n).keys()], colorscale: VIRIDIS, cmin: 0, cmax: 1,
      colorbar: { title: { text: 'attention' }, thickness: 12, len: 0.7 },
      customdata: tk.map((q) => tk.map((k) => `“${esc(trunc(q, 12))}” → “${esc(trunc(k, 12))}”`)),
      hovertemplate: '%{customdata}: %{z:.3f}<extra></extra>',
    }], baseLayout(`<b>${layerName(l)}, ${headName(h)}</b> · query × key · ${epochName(e)}<br><span style="font-size:12px;color:#5b6673">${probeName(p, 50)}</span>`, {
      scene: scene(tk, tk, 'query', 'key'), margin: { l: 24, r: 0, t: 64, b: 0 }, uirevision: 'surface',
    }));
  }

  // ------------------------------------------------------------------------------- embedding
  const targetKeys = [...new Set(probes.flatMap((pr) => Object.keys(pr.targets || {}).filter((k) => num(pr.targets[k]) !== null)))];
  const umapCache = new Map();
  function umapAt(e) {
    if (umapCache.has(e)) return umapCache.get(e);
    let res;
    if (typeof UMAP === 'undefined' || !UMAP.UMAP) res = { error: 'umap-js is missing from this page.' };
    else if (P < 4) res = { error: `UMAP needs at least 4 probes (this run has ${P}).` };
    else {
      const X = (D.pooled.values[e] || []).map((r) => (r || []).map((v) => num(v) ?? 0));
      const k = clamp(Math.round(Math.sqrt(P)) + 1, 2, Math.min(15, P - 1));
      const u = new UMAP.UMAP({ nComponents: 2, nNeighbors: k, minDist: 0.1, spread: 1.0, nEpochs: 400, random: mulberry32(42) });
      res = { xy: u.fit(X), k };
    }
    umapCache.set(e, res);
    return res;
  }
  function scatterTraces(xy, e) {
    const key = S.target;
    const vals = probes.map((pr, p) => (key === null ? p : num(pr.targets?.[key])));
    const hover = probes.map((pr, p) => `#${pid(p)} ${esc(trunc(String(pr.text ?? ''), 40))}<br>${esc(key ?? 'probe')} = ${fmt(vals[p], 4)}`);
    const uniq = [...new Set(vals.filter((v) => v !== null))];
    const categorical = key !== null && uniq.length <= 8 && uniq.every(Number.isInteger);
    const traces = [];
    const pts = (idx) => ({ x: idx.map((p) => xy[p]?.[0] ?? null), y: idx.map((p) => xy[p]?.[1] ?? null), text: idx.map((p) => hover[p]), customdata: idx });
    if (categorical) {
      uniq.sort((a, b) => a - b).forEach((v, i) => {
        const idx = probes.map((_, p) => p).filter((p) => vals[p] === v);
        traces.push(Object.assign({ type: 'scatter', mode: 'markers', name: `${esc(key)} = ${v}`, marker: { size: 9, color: color(i), line: { width: 0.5, color: '#fff' } }, hovertemplate: '%{text}<extra></extra>' }, pts(idx)));
      });
    } else {
      const idx = probes.map((_, p) => p);
      traces.push(Object.assign({ type: 'scatter', mode: 'markers', name: esc(key ?? 'probe'), showlegend: false,
        marker: { size: 9, color: vals, colorscale: VIRIDIS, showscale: true, colorbar: { title: { text: esc(key ?? 'probe #') }, thickness: 12 }, line: { width: 0.5, color: '#fff' } },
        hovertemplate: '%{text}<extra></extra>' }, pts(idx)));
    }
    traces.push(Object.assign({ type: 'scatter', mode: 'markers', name: `probe #${pid(S.p)}`, showlegend: true, hoverinfo: 'skip',
      marker: { size: 16, color: 'rgba(0,0,0,0)', line: { width: 2.5, color: '#d8443b' } } }, pts([S.p])));
    return traces;
  }
  function embedLayout(title) {
    return baseLayout(title, {
      xaxis: axis({ showticklabels: false, title: { text: '' } }), yaxis: axis({ showticklabels: false, scaleanchor: undefined }),
      legend: { orientation: 'h', x: 0, y: -0.04, yanchor: 'top', font: { size: 11 } }, margin: { l: 20, r: 20, t: 72, b: 40 },
    });
  }
  function setupEmbed() {
    if (!hasPooled) { $('embed-body').hidden = true; $('embed-missing').hidden = false; return; }
    const sel = $('sel-target');
    sel.innerHTML = targetKeys.map((k) => `<option value="${esc(k)}">${esc(k)}</option>`).join('') + '<option value="">probe index</option>';
    S.target = targetKeys.length ? targetKeys[0] : null;
    sel.value = S.target ?? '';
    sel.addEventListener('change', () => { S.target = sel.value === '' ? null : sel.value; changed('target'); });
  }
  function bindClick(id) {
    const el = $(id);
    if (el.dataset.bound) return;
    el.dataset.bound = '1';
    el.on('plotly_click', (ev) => {
      const pt = ev.points && ev.points[0];
      if (pt && Number.isInteger(pt.customdata)) setProbe(pt.customdata);
    });
  }
  function pooledDims() {
    const pd = D.pooled || {};
    return pd.basis === 'principal components' && num(pd.model_dim) !== null
      ? `${esc(pd.dim)} principal coordinates of the ${pd.model_dim}-dim vectors` : `dim ${esc(pd.dim ?? '?')}`;
  }
  async function umapView() {
    if (!hasPooled) return;
    const e = S.e, u = umapAt(e);
    if (u.error) { noteIn('plot-umap', esc(u.error)); return; }
    await plot('plot-umap', scatterTraces(u.xy, e), embedLayout(`<b>UMAP</b> of the pooled vectors · ${epochName(e)}<br><span style="font-size:12px;color:#5b6673">${P} probes, ${pooledDims()}, n_neighbors ${u.k}, seed 42</span>`));
    bindClick('plot-umap');
  }
  async function pcaView() {
    if (!hasPooled) return;
    const e = S.e, pca = D.pooled.pca?.[e];
    if (!Array.isArray(pca) || !pca.length) { noteIn('plot-pca', 'No PCA in the data for this epoch (it needs at least 3 probes).'); return; }
    const xy = pca.map((r) => (Array.isArray(r) ? r.map(num) : [null, null]));
    await plot('plot-pca', scatterTraces(xy, e), embedLayout(`<b>PCA</b> of the pooled vectors · ${epochName(e)}<br><span style="font-size:12px;color:#5b6673">first two principal components, as in the run's PNG figure</span>`));
    bindClick('plot-pca');
  }

  // ------------------------------------------------------------------------------- model internals
  // D.internals: q, k, v (and context) of the first probes for the step-by-step view; hidden-state
  // and feed-forward output norms per token and layer for every probe.
  const IN = D.internals || null;
  const hasQkv = !!(IN && Array.isArray(IN.qkv) && IN.qkv.some((r) => Array.isArray(r)));
  const hasNorms = !!(IN && Array.isArray(IN.norms) && IN.norms.length);
  const hasInternals = hasQkv || hasNorms;
  function fillStepQuery() {
    if (!hasQkv) return;
    const n = lens[S.p];
    if (S.stepQuery === null || S.stepQuery >= n) S.stepQuery = defaultQuery(S.p);
    $('sel-step-query').innerHTML = Array.from({ length: n }, (_, i) => `<option value="${i}">${i}: ${esc(trunc(toks[S.p][i] ?? '', 14))}</option>`).join('');
    $('sel-step-query').value = String(S.stepQuery);
  }
  function setupInternals() {
    if (!hasInternals) return;
    $('step-body').hidden = !hasQkv;
    $('step-missing').hidden = hasQkv;
    $('norms-body').hidden = !hasNorms;
    $('norms-missing').hidden = hasNorms;
    fillStepQuery();
    $('sel-step-query').addEventListener('change', (ev) => { S.stepQuery = Number(ev.target.value); changed('stepq'); });
  }
  /** One query of one head recomputed from the stored q, k, v: scores, softmax, weighted values. */
  function stepOf(e, p, l, h, i) {
    const at = IN.qkv[e]?.[p];
    if (!at) return null;
    const q = at['attn.q'][l][h], k = at['attn.k'][l][h], v = at['attn.v'][l][h];
    const n = k.length, d = q[i].length, scale = num(IN.score_scale?.[l]) ?? Math.sqrt(d);
    const keys = Array.from({ length: n }, (_, j) => j).filter((j) => !D.run?.model?.causal || j <= i);
    const scores = keys.map((j) => q[i].reduce((s, x, c) => s + x * k[j][c], 0) / scale);
    const top = Math.max(...scores), ex = scores.map((x) => Math.exp(x - top)), z = ex.reduce((a, b) => a + b, 0);
    const probs = ex.map((x) => x / z);
    const weighted = keys.map((j, r) => v[j].map((x) => x * probs[r]));
    const context = Array.from({ length: d }, (_, c) => weighted.reduce((s, row) => s + row[c], 0));
    const recorded = at['attn.context'] ? at['attn.context'][l][h][i] : null;
    return { keys, scores, probs, weighted, context, recorded, d, scale };
  }
  function stepView() {
    if (!hasQkv) return null;
    const e = embeddedAt(IN.qkv), p = S.p, l = S.l, h = S.h;
    const ids = ['plot-step-scores', 'plot-step-probs', 'plot-step-values'];
    if (p >= (IN.qkv_probes ?? 0)) {
      for (const id of ids) noteIn(id, `q, k and v are embedded for the first ${esc(IN.qkv_probes)} probe(s) of this report only (its size budget); choose one of them, or render fewer probes (<code>attnscope render --probes</code>).`);
      return null;
    }
    const i = Math.min(S.stepQuery ?? 0, lens[p] - 1);
    const st = stepOf(e, p, l, h, i);
    if (!st) { for (const id of ids) noteIn(id, 'Not embedded for this epoch.'); return null; }
    const tk = toks[p], names = st.keys.map((j) => `${j}: ${esc(trunc(tk[j] ?? '', 10))}`);
    const where = `${hl(l, h)} · query ${i} “${esc(trunc(tk[i] ?? '', 12))}” · ${epochName(e)}`;
    plot('plot-step-scores', [{ type: 'bar', x: names, y: st.scores, marker: { color: '#3b528b' }, hovertemplate: '%{x}: %{y:.4f}<extra></extra>' }],
      baseLayout(`<b>1 · scores</b> q·k / ${fmt(st.scale, 3)} for every key${D.run?.model?.causal ? ' (causal: keys ≤ query)' : ''}<br><span style="font-size:12px">${where}</span>`,
        { xaxis: axis({ tickangle: names.length > 12 ? -60 : 0, tickfont: { size: 10 } }), yaxis: axis({ title: { text: 'score' } }), showlegend: false }));
    const traces = [{ type: 'bar', name: 'softmax of the scores', x: names, y: st.probs, marker: { color: '#21918c' }, hovertemplate: '%{x}: %{y:.4f}<extra></extra>' }];
    let check = '';
    if (hasMaps) {
      const row = getMap('probs', e, p, l, h).subarray(i * lens[p], (i + 1) * lens[p]);
      const rec = st.keys.map((j) => row[j]);
      traces.push({ type: 'scatter', mode: 'markers', name: 'recorded attention (8-bit)', x: names, y: rec, marker: { color: '#d8443b', size: 7, symbol: 'diamond' }, hovertemplate: '%{x}: %{y:.4f}<extra></extra>' });
      check = ` · max |Δ| from the recorded row ${fmt(Math.max(...rec.map((x, r) => Math.abs(x - st.probs[r]))), 3)}`;
    }
    plot('plot-step-probs', traces, baseLayout(`<b>2 · softmax</b> = the weights${check}<br><span style="font-size:12px">${where}</span>`,
      { xaxis: axis({ tickangle: names.length > 12 ? -60 : 0, tickfont: { size: 10 } }), yaxis: axis({ title: { text: 'weight' }, rangemode: 'tozero' }), legend: { orientation: 'h', y: -0.3 } }));
    const rows = [...st.weighted, st.context, ...(st.recorded ? [st.recorded] : [])];
    const ylab = [...names.map((x, r) => `${x} × ${fmt(st.probs[r], 2)}`), 'Σ = output', ...(st.recorded ? ['recorded attn.context'] : [])];
    const diff = st.recorded ? Math.max(...st.context.map((x, c) => Math.abs(x - st.recorded[c]))) : null;
    const lim = Math.max(1e-9, ...rows.flat().map((x) => Math.abs(x)));
    plot('plot-step-values', [{ type: 'heatmap', z: rows, y: ylab.map((_, r) => r), x: Array.from({ length: st.d }, (_, c) => c), colorscale: DIVERGING, zmin: -lim, zmax: lim,
      text: rows.map((r, a) => r.map((x, c) => `${ylab[a]}, dim ${c}: ${fmt(x, 4)}`)), hoverinfo: 'text', colorbar: { thickness: 12 } }],
    baseLayout(`<b>3 · weights × values</b>: each key's value vector scaled by its weight; their sum is the head's output for the query${diff !== null ? ` (recorded context: largest difference ${fmt(diff, 3)})` : ''}`,
      { margin: { l: 170, r: 24, t: 60, b: 40 }, xaxis: axis({ title: { text: `dimension of the head (d = ${st.d})` } }),
        yaxis: axis({ tickvals: ylab.map((_, r) => r), ticktext: ylab.map((x) => trunc(x, 30)), autorange: 'reversed', tickfont: { size: 10 } }) }));
    return null;
  }
  function normsView() {
    if (!hasNorms) return null;
    const e = embeddedAt(IN.norms), p = S.p, row = IN.norms[e]?.[p];
    if (!row) { noteIn('plot-norms', 'Not embedded for this epoch.'); return null; }
    const tk = toks[p].slice(0, lens[p]).map((t, j) => `${j}: ${esc(trunc(t, 8))}`);
    const ylab = ['embeddings', ...layers.map((x) => `after layer ${x}`)];
    const z = row.hidden.map((r) => r ?? tk.map(() => null));
    plot('plot-norms', [{ type: 'heatmap', z, x: tk, y: ylab, colorscale: VIRIDIS, colorbar: { title: { text: '‖h‖' }, thickness: 12 }, hovertemplate: '%{y}, %{x}: ‖h‖ = %{z:.3f}<extra></extra>' }],
      baseLayout(`<b>Hidden-state norm</b> ‖h‖ per token and layer<br><span style="font-size:12px">probe #${pid(p)} · ${epochName(e)}</span>`,
        { xaxis: axis({ tickangle: tk.length > 12 ? -60 : 0, tickfont: { size: 10 } }), yaxis: axis({ autorange: 'reversed' }) }));
    const mean = (r) => { const v = (r || []).map(num).filter((x) => x !== null); return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null; };
    const traces = [];
    IN.norms.forEach((per, k) => {
      const r = per?.[p];
      if (!r) return;
      const cur = k === e;
      traces.push({ type: 'scatter', mode: cur ? 'lines+markers' : 'lines', name: cur ? `hidden state, ${epochName(k)}` : `epoch ${epochs[k]}`, x: ylab, y: r.hidden.map(mean),
        line: { color: cur ? '#d8443b' : (DARK ? '#56606b' : '#c3c9d0'), width: cur ? 2.5 : 1 }, showlegend: cur || k === 0, hovertemplate: `epoch ${epochs[k]}, %{x}: %{y:.3f}<extra></extra>` });
      if (cur && Array.isArray(r.ffn) && r.ffn.length) {
        traces.push({ type: 'scatter', mode: 'lines+markers', name: 'feed-forward output', x: ylab.slice(1), y: r.ffn.map(mean), line: { color: '#21918c', dash: 'dot' } });
      }
    });
    plot('plot-norms-mean', traces, baseLayout(`<b>Mean norm per layer</b> over the probe's tokens<br><span style="font-size:12px">red: ${epochName(e)}; grey: the other recorded epochs</span>`,
      { xaxis: axis({ tickangle: -30 }), yaxis: axis({ title: { text: 'mean ‖·‖' }, rangemode: 'tozero' }), legend: { orientation: 'h', y: -0.35 } }));
    return null;
  }

  // ------------------------------------------------------------------------------- validation set
  // Every validation example's 2-D coordinates per embedded epoch (D.validation), coloured by one
  // of the fixed colourings (target, heavy atoms, scaffold) or the epoch's own (prediction, error,
  // k-means cluster).
  const VS = D.validation || null;
  const hasValidation = !!(VS && Array.isArray(VS.epochs) && VS.epochs.some((r) => r && Array.isArray(r.xy)));
  const validationEpoch = () => embeddedAt(VS.epochs, (r) => !!r && Array.isArray(r.xy));
  function validationColourings(e) {
    return [...(VS.fixed || []), ...((VS.epochs[e] && VS.epochs[e].colourings) || [])];
  }
  function setupValidation() {
    if (!hasValidation) return;
    const names = validationColourings(validationEpoch()).map((c) => c.name);
    const sel = $('sel-valcolour');
    sel.innerHTML = names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('');
    S.valColour = names.find((n) => /^k-means/.test(n)) ?? names[0];
    sel.value = S.valColour;
    sel.addEventListener('change', () => { S.valColour = sel.value; changed('valcolour'); });
  }
  function validationView() {
    const e = validationEpoch(), row = VS.epochs[e];
    const cols = validationColourings(e);
    const col = cols.find((c) => c.name === S.valColour) || cols[0];
    const n = row.xy.length, text = VS.text || [];
    const vals = (col?.values || []).map(num);
    const hover = row.xy.map((_, i) => `${esc(trunc(String(text[i] ?? `#${i}`), 60))}<br>${esc(col?.name ?? '')} = ${fmt(vals[i], 4)}`);
    const type = n > 1500 ? 'scattergl' : 'scatter';
    const pts = (idx) => ({ x: idx.map((i) => row.xy[i][0]), y: idx.map((i) => row.xy[i][1]), text: idx.map((i) => hover[i]), customdata: idx });
    const traces = [];
    const size = n > 2000 ? 4 : n > 400 ? 6 : 8;
    const isScaffold = /^scaffold/.test(col?.name ?? ''), isCluster = /^k-means/.test(col?.name ?? '');
    if (col && col.categorical) {
      const all = row.xy.map((_, i) => i);
      const none = all.filter((i) => vals[i] === null);
      if (none.length) traces.push(Object.assign({ type, mode: 'markers', name: isScaffold ? 'other scaffolds' : 'none', marker: { size, color: DARK ? '#56606b' : '#c3c9d0' }, hovertemplate: '%{text}<extra></extra>' }, pts(none)));
      [...new Set(vals.filter((v) => v !== null))].sort((a, b) => a - b).forEach((v) => {
        const idx = all.filter((i) => vals[i] === v);
        const name = esc(isScaffold ? trunc(String(VS.scaffolds?.[v] ?? v), 30) : isCluster ? `cluster ${v} (${idx.length})` : `${v}`);
        traces.push(Object.assign({ type, mode: 'markers', name, marker: { size, color: color(v), opacity: 0.85 }, hovertemplate: '%{text}<extra></extra>' }, pts(idx)));
      });
    } else {
      traces.push(Object.assign({ type, mode: 'markers', name: esc(col?.name ?? ''), showlegend: false,
        marker: { size, color: vals, colorscale: VIRIDIS, showscale: true, opacity: 0.85, colorbar: { title: { text: esc(trunc(col?.name ?? '', 18)) }, thickness: 12 } },
        hovertemplate: '%{text}<extra></extra>' }, pts(row.xy.map((_, i) => i))));
    }
    $('validation-title').innerHTML = `The validation set in embedding space · ${epochName(e)}`;
    return plot('plot-validation', traces, baseLayout(`<b>${n}</b> validation examples, pooled vectors, PCA to 2-D · coloured by ${esc(col?.name ?? '')}`, {
      xaxis: axis({ showticklabels: false, title: { text: 'PC 1' } }), yaxis: axis({ showticklabels: false, title: { text: 'PC 2' } }),
      legend: { orientation: 'h', x: 0, y: -0.06, yanchor: 'top', font: { size: 11 } }, margin: { l: 40, r: 20, t: 60, b: 40 },
    }));
  }

  // ------------------------------------------------------------------------------- min/max panel
  const MM = D.minmax || {};
  let mmSeries = null;
  /** From the probe maps: per op and head, mean attention from "=" to the op token and to the answer operand. */
  function minmaxSeries() {
    if (mmSeries) return mmSeries;
    const parsed = [];
    probes.forEach((pr, p) => {
      const t = toks[p], n = lens[p], eq = t.lastIndexOf('=');
      const oi = t.findIndex((x) => x === 'max' || x === 'min');
      if (eq < 0 || oi < 1 || oi + 1 >= n) return;
      const a = Number(t[oi - 1]), b = Number(t[oi + 1]);
      if (!Number.isFinite(a) || !Number.isFinite(b)) return;
      const ans = a === b ? -1 : (t[oi] === 'max') === (a > b) ? oi - 1 : oi + 1;
      parsed.push({ p, n, eq, oi, ans, op: t[oi] });
    });
    const ops = [...new Set(parsed.map((x) => x.op))].sort();
    const out = {};
    for (const op of ops) {
      out[op] = heads.map(() => ({ toOp: [], toAns: [] }));
      const ps = parsed.filter((x) => x.op === op);
      for (let e = 0; e < E; ++e) {
        for (let h = 0; h < H; ++h) {
          let so = 0, sa = 0, na = 0;
          for (const x of ps) {
            const b = block('probs', e, x.p, 0, h), row = b.o + x.eq * x.n;
            so += b.offset + b.scale * b.bytes[row + x.oi];
            if (x.ans >= 0) { sa += b.offset + b.scale * b.bytes[row + x.ans]; na++; }
          }
          out[op][h].toOp.push(ps.length ? so / ps.length : null);
          out[op][h].toAns.push(na ? sa / na : null);
        }
      }
    }
    mmSeries = { ops, out };
    return mmSeries;
  }
  function mmEqView() {
    const { ops, out } = minmaxSeries();
    if (!ops.length) { noteIn('plot-mm-eq', 'The probes are not of the form “a op b =”.'); return null; }
    const traces = [], layout = baseLayout(`Attention from “=” over training (probe maps, ${layerName(0)})`, {
      legend: { orientation: 'h', x: 0, y: -0.2, font: { size: 11 } }, margin: { l: 55, r: 20, t: 60, b: 80 }, uirevision: 'mmeq',
    });
    const shapes = [], annotations = [], w = (1 - 0.08 * (ops.length - 1)) / ops.length;
    ops.forEach((op, i) => {
      const k = i === 0 ? '' : String(i + 1), x0 = i * (w + 0.08);
      layout[`xaxis${k}`] = axis({ domain: [x0, x0 + w], anchor: `y${k}`, title: { text: 'epoch', standoff: 4 } });
      layout[`yaxis${k}`] = axis({ domain: [0, 1], anchor: `x${k}`, range: [-0.02, 1.02] });
      annotations.push({ text: `<b>“${op}” probes</b>`, x: x0 + w / 2, y: 1, xref: 'paper', yref: 'paper', yanchor: 'bottom', showarrow: false });
      shapes.push(vline(epochs[S.e], `x${k}`, `y${k} domain`));
      heads.forEach((hid, h) => {
        traces.push({ type: 'scatter', mode: 'lines', x: epochs, y: out[op][h].toAns, name: `head ${hid} → answer operand`, legendgroup: `a${h}`, showlegend: i === 0,
          xaxis: `x${k}`, yaxis: `y${k}`, line: { color: color(h), width: 2 }, hovertemplate: `${op}: head ${hid} → answer operand, epoch %{x}: %{y:.3f}<extra></extra>` });
        traces.push({ type: 'scatter', mode: 'lines', x: epochs, y: out[op][h].toOp, name: `head ${hid} → “${op}” token`, legendgroup: `o${h}`, showlegend: i === 0,
          xaxis: `x${k}`, yaxis: `y${k}`, line: { color: color(h), width: 2, dash: 'dash' }, hovertemplate: `${op}: head ${hid} → operator, epoch %{x}: %{y:.3f}<extra></extra>` });
      });
    });
    if (ops.length > 1) for (const t of traces) if (t.showlegend) t.name = t.name.replace(/“(max|min)” token/, 'operator');
    layout.shapes = shapes;
    layout.annotations = annotations;
    return plot('plot-mm-eq', traces, layout);
  }
  function mmOverView() {
    const ot = Array.isArray(MM.over_training) ? MM.over_training : [];
    if (!ot.length) { noteIn('plot-mm-over', 'No mechanism-over-training data for this run.'); return null; }
    const ops = [...new Set(ot.flatMap((r) => Object.keys(r).filter((k) => k !== 'epoch' && r[k] && typeof r[k] === 'object')))];
    const x = ot.map((r) => r.epoch), traces = [];
    ops.forEach((key, i) => {
      const g = (k) => ot.map((r) => num(r[key]?.[k]));
      const op = esc(key);
      traces.push({ type: 'scatter', mode: 'lines', x, y: g('picker_picks_answer'), name: `${op}: picker picks the answer`, line: { color: color(i * 2), width: 2 },
        customdata: g('picker_head'), hovertemplate: `${op}: picker (head %{customdata}) picks the answer on %{y:.3f} of pairs, epoch %{x}<extra></extra>` });
      traces.push({ type: 'scatter', mode: 'lines', x, y: g('sink_mass_on_op'), name: `${op}: sink mass on “${op}”`, line: { color: color(i * 2), width: 2, dash: 'dash' },
        customdata: g('sink_head'), hovertemplate: `${op}: sink (head %{customdata}) puts %{y:.3f} on the operator, epoch %{x}<extra></extra>` });
    });
    return plot('plot-mm-over', traces, baseLayout('Mechanism over training (mechanism.json: over_training)', {
      xaxis: axis({ title: { text: 'epoch', standoff: 4 } }), yaxis: axis({ range: [-0.02, 1.02] }), shapes: [vline(epochs[S.e])],
      legend: { orientation: 'h', x: 0, y: -0.2, font: { size: 11 } }, margin: { l: 55, r: 20, t: 60, b: 80 }, uirevision: 'mmover',
    }));
  }
  function mmFinalTable() {
    const fin = Array.isArray(MM.final) ? MM.final : [];
    if (!fin.length) { $('mm-final').innerHTML = '<tbody><tr><td class="l na">No final mechanism in the data.</td></tr></tbody>'; return; }
    const nh = Math.max(0, ...fin.map((r) => (Array.isArray(r.mean_attention_from_eq) ? r.mean_attention_from_eq.length : 0)));
    const pos = ['a', 'op', 'b', '='];
    let head = '<th class="l">operator</th><th>accuracy</th><th>picker head</th><th>picker picks answer</th><th>sink head</th><th>sink mass on op</th><th class="l">mechanism shown</th>';
    for (let h = 0; h < nh; ++h) head += `<th>head ${heads[h] ?? h}: “=” → ${pos.join(' / ')}</th>`;
    const body = fin.map((r) => {
      let row = `<td class="l"><b>${esc(r.op ?? '?')}</b></td><td>${fmt(r.accuracy, 4)}</td><td>${fmt(r.picker_head)}</td><td>${fmt(r.picker_picks_answer, 4)}</td><td>${fmt(r.sink_head)}</td><td>${fmt(r.sink_mass_on_op, 4)}</td><td class="l">${r.mechanism_shown === true ? 'yes' : r.mechanism_shown === false ? 'no' : '–'}</td>`;
      for (let h = 0; h < nh; ++h) row += `<td>${(r.mean_attention_from_eq?.[h] || []).map((v) => fmt(v, 3)).join(' / ') || '–'}</td>`;
      return `<tr>${row}</tr>`;
    }).join('');
    $('mm-final').innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
  }
  function mmGridView() {
    const g = MM.grid;
    const mode = S.gridMode === 'scores' && g?.scores ? 'scores' : 'probs';
    const data = g?.[mode];
    if (!g || !Array.isArray(data) || !data.length) {
      $('plot-mm-grid').hidden = $('mm-grid-controls').hidden = true;
      $('mm-grid-missing').hidden = false;
      return null;
    }
    const ops = g.ops || data.map((_, i) => `op ${i}`), nh = Math.max(...data.map((x) => x.length));
    const k = S.gridK, posName = ['a', 'operator', 'b'][k];
    let mx = 0;
    if (mode === 'scores') for (const o of data) for (const hh of o) for (const r of hh?.[k] || []) for (const v of r) if (num(v) !== null) mx = Math.max(mx, Math.abs(v));
    const traces = [], layout = baseLayout(`Attention from “=” to <b>${posName}</b> over all (a, b) · final model · ${mode === 'scores' ? 'scores (pre-softmax)' : 'probabilities'}`, {
      coloraxis: mode === 'scores' ? { colorscale: DIVERGING, cmin: -(mx || 1), cmax: mx || 1, cmid: 0, colorbar: { title: { text: 'score' }, thickness: 14 } }
        : { colorscale: VIRIDIS, cmin: 0, cmax: 1, colorbar: { title: { text: 'attention' }, thickness: 14 } },
      margin: { l: 60, r: 20, t: 60, b: 50 }, annotations: [],
    });
    // one row when it fits (max·h0, max·h1, min·h0, min·h1), else one row per operator
    const oneRow = ops.length * nh <= 4, rows = oneRow ? 1 : ops.length, cols = oneRow ? ops.length * nh : nh;
    const gx = 0.05, gy = 0.12, w = (1 - gx * (cols - 1)) / cols, hh = (1 - gy * (rows - 1)) / rows;
    const width = plotWidth('plot-mm-grid', 1300) - 160;
    layout.height = Math.round(rows * Math.min(460, width / cols) + (rows - 1) * 60 + 120);
    ops.forEach((op, i) => {
      for (let h = 0; h < nh; ++h) {
        const idx = i * nh + h, s = idx === 0 ? '' : String(idx + 1);
        const r = oneRow ? 0 : i, c = oneRow ? idx : h, x0 = c * (w + gx), y1 = 1 - r * (hh + gy);
        const z = data[i]?.[h]?.[k];
        if (!Array.isArray(z)) continue;
        traces.push({ type: 'heatmap', z: z.map((r) => r.map(num)), coloraxis: 'coloraxis', xaxis: `x${s}`, yaxis: `y${s}`,
          hovertemplate: `${esc(op)} · head ${heads[h] ?? h}: a %{y}, b %{x}: %{z:.3f}<extra></extra>` });
        const N = z.length;
        layout[`xaxis${s}`] = axis({ domain: [x0, x0 + w], anchor: `y${s}`, title: { text: 'b', standoff: 2 }, showgrid: false, range: [-0.5, N - 0.5], constrain: 'domain' });
        layout[`yaxis${s}`] = axis({ domain: [y1 - hh, y1], anchor: `x${s}`, title: { text: 'a', standoff: 2 }, showgrid: false, range: [-0.5, N - 0.5], scaleanchor: `x${s}`, constrain: 'domain' });
        layout.annotations.push({ text: `<b>${esc(op)}</b> · head ${heads[h] ?? h}`, x: x0 + w / 2, y: y1, xref: 'paper', yref: 'paper', yanchor: 'bottom', showarrow: false });
      }
    });
    return plot('plot-mm-grid', traces, layout);
  }
  function setupMinmax() {
    $('mm-grid-k').addEventListener('change', (ev) => { S.gridK = Number(ev.target.value); changed('grid'); });
    segment('mm-grid-mode', (m) => { S.gridMode = m; changed('grid'); });
    if (!MM.grid?.scores) {
      const b = $('mm-grid-mode').querySelector('[data-mode=scores]');
      b.disabled = true;
      b.title = 'No scores grid in the data.';
    }
    mmFinalTable();
  }

  // ------------------------------------------------------------------------------- wiring
  // ------------------------------------------------------------------------------- head redundancy
  // Average linkage (UPGMA) on a distance matrix d [n*n]: merges {a, b, height} in order, leaves
  // 0..n-1 and merge k as cluster n+k (as viz/figures_redundancy.cpp and scipy).
  function averageLinkage(d, n) {
    const members = [];
    let alive = [];
    for (let i = 0; i < n; ++i) { members.push([i]); alive.push(i); }
    const dist = (a, b) => {
      let s = 0;
      for (const i of members[a]) for (const j of members[b]) s += d[i * n + j] ?? 0;
      return s / (members[a].length * members[b].length);
    };
    const merges = [];
    while (alive.length > 1) {
      let best = Infinity, bi = 0, bj = 1;
      for (let i = 0; i < alive.length; ++i) for (let j = i + 1; j < alive.length; ++j) {
        const x = dist(alive[i], alive[j]);
        if (x < best) { best = x; bi = i; bj = j; }
      }
      const a = alive[bi], b = alive[bj];
      members.push(members[a].concat(members[b]));
      merges.push({ a, b, height: best });
      alive.splice(bj, 1);
      alive[bi] = n + merges.length - 1;
    }
    return merges;
  }
  function leafOrder(merges, n) {
    if (n === 1) return [0];
    const out = [];
    const walk = (id) => { if (id < n) out.push(id); else { walk(merges[id - n].a); walk(merges[id - n].b); } };
    walk(n + merges.length - 1);
    return out;
  }
  const RED_THRESHOLDS = [0.2, 0.35, 0.5];
  let redOrder = [];
  const hasRedundancy = () => Array.isArray(analysis.head_js) && analysis.head_js.some((r) => Array.isArray(r));
  const redundancyEpoch = () => embeddedAt(analysis.head_js);
  function redundancyView() {
    const n = L * H, e = redundancyEpoch(), d = analysis.head_js[e];
    const merges = averageLinkage(d, n), order = leafOrder(merges, n);
    redOrder = order;
    const labels = order.map((k) => hl(Math.floor(k / H), k % H));
    const z = order.map((i) => order.map((j) => d[i * n + j]));
    // dendrogram as line shapes in the top 22% of the plot (x in column units)
    const pos = new Array(2 * n - 1).fill(0), height = new Array(2 * n - 1).fill(0);
    order.forEach((k, i) => { pos[k] = i; });
    const hmax = Math.max(1e-6, ...merges.map((m) => m.height));
    const shapes = [];
    const yOf = (h) => 0.78 + 0.22 * (h / hmax);
    const line = (x0, y0, x1, y1) => shapes.push({ type: 'line', xref: 'x', yref: 'paper', x0, y0, x1, y1, line: { color: DARK ? '#9aa6b2' : '#4a5562', width: 1 } });
    merges.forEach((m, k) => {
      const xa = pos[m.a], xb = pos[m.b], ya = height[m.a], yb = height[m.b];
      line(xa, yOf(ya), xa, yOf(m.height));
      line(xb, yOf(yb), xb, yOf(m.height));
      line(xa, yOf(m.height), xb, yOf(m.height));
      pos[n + k] = (xa + xb) / 2;
      height[n + k] = m.height;
    });
    const sel = order.indexOf(S.l * H + S.h);
    if (sel >= 0) shapes.push({ type: 'rect', xref: 'x', yref: 'y', x0: sel - 0.5, x1: sel + 0.5, y0: -0.5, y1: n - 0.5, line: { color: '#d8443b', width: 1.5 } });
    $('redundancy-title').innerHTML = `Head redundancy · ${epochName(e)}`;
    Plotly.react($('plot-redundancy'), [{
      type: 'heatmap', z, x: labels.map((_, i) => i), y: labels.map((_, i) => i), text: z.map((r, i) => r.map((v, j) => `${labels[i]} ↔ ${labels[j]}: ${v === null ? '–' : v.toFixed(3)}`)),
      hoverinfo: 'text', colorscale: VIRIDIS, zmin: 0, colorbar: { title: { text: 'JS distance' }, thickness: 12, len: 0.75, y: 0.39 },
    }], baseLayout('', {
      margin: { l: 70, r: 20, t: 20, b: 70 }, shapes,
      xaxis: axis({ tickvals: labels.map((_, i) => i), ticktext: labels, tickfont: { size: 9 }, domain: [0, 1] }),
      yaxis: axis({ tickvals: labels.map((_, i) => i), ticktext: labels, tickfont: { size: 9 }, autorange: 'reversed', domain: [0, 0.76] }),
    }), PLOT_CONFIG);
    const el = $('plot-redundancy');
    if (!el.dataset.clicks && typeof el.on === 'function') {  // a cell selects its row's head
      el.dataset.clicks = '1';
      el.on('plotly_click', (ev) => {
        const k = redOrder[ev?.points?.[0]?.y];
        if (k !== undefined) setHead(Math.floor(k / H), k % H);
      });
    }
    // clusters over training
    const xs = [], ys = RED_THRESHOLDS.map(() => []);
    analysis.head_js.forEach((row, k) => {
      if (!Array.isArray(row)) return;
      const ms = averageLinkage(row, n);
      xs.push(epochs[k]);
      RED_THRESHOLDS.forEach((t, i) => ys[i].push(n - ms.filter((m) => m.height <= t).length));
    });
    Plotly.react($('plot-clusters'), RED_THRESHOLDS.map((t, i) => ({
      type: 'scatter', mode: xs.length < 40 ? 'lines+markers' : 'lines', name: `closer than ${t} merged`, x: xs, y: ys[i],
    })), baseLayout(`Distinct head clusters over training (of ${n} heads)`, {
      shapes: [vline(epochs[e])], xaxis: axis({ title: { text: 'epoch' } }), yaxis: axis({ title: { text: 'clusters' }, rangemode: 'tozero' }),
      legend: { orientation: 'h', y: -0.2 },
    }), PLOT_CONFIG);
    return null;
  }
  function registerViews() {
    view('curves', 'sec-summary', ['e'], curvesView);
    if (hasMaps) registerMapViews();
    if (hasMinmax) {
      if (hasMaps) view('mm-eq', 'sec-minmax', ['e'], mmEqView);
      else noteIn('plot-mm-eq', 'No probe maps are embedded, so the attention from “=” over training is not shown.');
      view('mm-over', 'sec-minmax', ['e'], mmOverView);
      view('mm-grid', 'sec-minmax', ['grid', 'resize'], mmGridView);
    }
    view('timeline', 'sec-timeline', ['e', 'l', 'h', 'metric'], timelineView);
    view('patterns', 'sec-timeline', ['e', 'l', 'h'], patternMapView);
    view('pattern-time', 'sec-timeline', ['e'], patternTimeView);
    view('table', 'sec-table', ['e', 'l', 'h', 'sort'], tableView);
    if (hasRedundancy()) view('redundancy', 'sec-redundancy', ['e', 'l', 'h'], redundancyView);
    if (hasMaps) {
      // WebGL views: drawn when first scrolled to (or on print / flush), not on load
      view('focus', 'sec-focus', ['e'], focusView, true);
      view('landscape', 'sec-3d', ['e', 'p', 'query'], landscapeView, true);
      view('surface', 'sec-3d', ['e', 'p', 'l', 'h'], surfaceView, true);
    }
    if (hasPooled) {
      view('umap', 'sec-embed', ['e', 'p', 'target'], umapView);
      view('pca', 'sec-embed', ['e', 'p', 'target'], pcaView);
    }
    if (hasInternals) {
      view('step', 'sec-internals', ['e', 'p', 'l', 'h', 'stepq', 'resize'], stepView);
      view('norms', 'sec-internals', ['e', 'p', 'resize'], normsView);
    }
    if (hasValidation) view('validation', 'sec-validation', ['e', 'valcolour', 'resize'], validationView);
    observeSections();
  }
  function registerMapViews() {
    view('headmap', 'sec-headmap', ['e', 'p', 'l', 'h', 'mode', 'resize'], headMapView);
    view('tokimp', 'sec-headmap', ['e', 'p', 'resize'], tokenImportanceView);
    view('attngrad', 'sec-headmap', ['e', 'p', 'l', 'h', 'resize'], attnGradView);
    view('t2t', 'sec-headmap', ['e', 'p', 'l', 'h', 't2t'], t2tView);
    view('grid', 'sec-grid', ['e', 'p', 'l', 'h', 'mode', 'resize'], gridView);
  }
  function observeSections() {
    // A view is "visible" while its section is near the viewport; stale views redraw on entry.
    const io = new IntersectionObserver((entries) => {
      for (const en of entries) {
        for (const v of views) {
          if (v.section !== en.target.id) continue;
          v.visible = en.isIntersecting;
          if (v.visible && v.dirty) changed();
        }
      }
    }, { rootMargin: '300px 0px' });
    for (const id of new Set(views.map((v) => v.section))) io.observe($(id));
    window.addEventListener('beforeprint', () => { for (const v of views) if (v.dirty) runView(v); });
    let resizeTimer = 0;
    window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => changed('resize'), 250); });
  }

  async function main() {
    const t0 = performance.now();
    if (!E || !L || !H) throw new Error('The data holds no recorded epochs, layers or heads.');
    if (hasMaps && typeof DecompressionStream === 'undefined') throw new Error('This browser has no DecompressionStream; open the report in a current Chrome, Edge, Firefox or Safari.');
    for (const kind of hasMaps ? ['probs', 'scores'] : []) {
      const m = D.maps[kind];
      if (!m || typeof m.zlib_base64 !== 'string') continue;
      const bytes = await inflate(m.zlib_base64);
      if (bytes.length !== E * perEpoch) {
        throw new Error(`maps.${kind} holds ${bytes.length} bytes; the probes, layers, heads and epochs call for ${E * perEpoch} (E=${E}, P=${P}, L=${L}, H=${H}).`);
      }
      maps[kind] = { bytes, scale: num(m.scale) ?? 1 / 255, offset: num(m.offset) ?? 0 };
      m.zlib_base64 = null; // let the string go
    }
    const decodeMs = performance.now() - t0;

    setupSummary();
    setupControls();
    setupT2T();
    setupTimeline();
    setupTable();
    setupEmbed();
    setupInternals();
    setupValidation();
    if (hasMinmax) setupMinmax();
    $('loading').hidden = true;
    const shown = ['sec-summary', ...(hasMaps ? ['sec-headmap'] : []), ...(hasMinmax ? ['sec-minmax'] : []),
      ...(hasMaps ? ['sec-grid'] : []), 'sec-timeline', 'sec-table', ...(hasRedundancy() ? ['sec-redundancy'] : []),
      ...(hasMaps ? ['sec-focus', 'sec-3d'] : []), 'sec-embed', ...(hasInternals ? ['sec-internals'] : []), ...(hasValidation ? ['sec-validation'] : [])];
    for (const id of shown) $(id).hidden = false;
    $('toc').innerHTML = shown.map((id) => `<a href="#${id}">${$(id).dataset.title}</a>`).join('');
    registerViews();
    // First draw: every view once (the WebGL ones only if in sight), in page order, yielding
    // between views so that the page stays live.
    await nextFrame();
    for (const v of views) { if (v.dirty && (!v.heavy || v.visible)) { runView(v); await nextFrame(); } }
    return { decodeMs, totalMs: performance.now() - t0 };
  }

  const ready = main().catch((err) => { fatal(err && err.message ? err.message : String(err)); return { error: String(err) }; });
  // For tests and the curious: the selection state, and a way to draw every stale view now.
  window.attnscope = {
    ready, state: S, flush: flushAll, timings, setEpoch: (e) => setEpoch(e), setHead: (l, h) => setHead(l, h), setProbe: (p) => setProbe(p),
  };
})();
