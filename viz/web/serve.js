// attnscope serve: the page. Asks the server's JSON API (/api/info, /api/attention, /api/molecule;
// docs/serve.md) and draws what it answers: tokens, every layer x head map, the chosen head with its
// token-to-token view, per-head metrics, token importance, the prediction and masked-LM top-5.
// Talks to its own origin only; plotly.js is inlined by the server.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d', 'select2d'] };
  const VIRIDIS = [[0, '#440154'], [0.25, '#3b528b'], [0.5, '#21918c'], [0.75, '#5ec962'], [1, '#fde725']];
  const SHOWN_METRICS = ['entropy_norm', 'confidence_max', 'first_token_mass', 'diagonal_mean', 'local_mass',
    'broadcast_mass', 'mean_distance', 'effective_tokens', 'gini'];
  const RECENT_KEY = 'attnscope-serve-recent';
  let info = null;
  let result = null;   // the last /api/attention answer
  let maps = null;     // Float32Array [L,H,T,T]
  let sel = { layer: 0, head: 0, query: 0 };
  let molRequest = 0;

  const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
  // Text for HTML (elements and quoted attributes) and for plotly's labels, which decode only
  // &amp; &lt; &gt; and numeric entities: every string from the server goes through it.
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' }[c]));
  const shown = (t) => (t === '' ? '␣' : t.replace(/\n/g, '⏎'));

  async function api(path, body) {
    const res = await fetch(path, body === undefined ? {} : {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    const type = res.headers.get('Content-Type') || '';
    const data = type.includes('json') ? await res.json() : await res.text();
    if (!res.ok) throw new Error((data && data.error) || `HTTP ${res.status}`);
    return data;
  }

  function decode(r) {
    if (r.encoding === 'float') return Float32Array.from(r.maps);
    const bin = atob(r.maps);
    const out = new Float32Array(bin.length);
    for (let i = 0; i < bin.length; ++i) out[i] = bin.charCodeAt(i) / 255;
    return out;
  }
  const at = (l, h, q, k) => maps[((l * result.heads + h) * result.length + q) * result.length + k];

  function fill(select, values, labels, chosen) {
    select.innerHTML = values.map((v, i) => `<option value="${esc(v)}"${v === chosen ? ' selected' : ''}>${esc(labels[i])}</option>`).join('');
  }

  // ---- recent inputs (this browser only) ----
  function recentList() {
    try { return JSON.parse(localStorage.getItem(RECENT_KEY) || '[]'); } catch { return []; }
  }
  function remember(input, pair) {
    const list = recentList().filter((e) => !(e.input === input && e.pair === pair));
    list.unshift({ input, pair });
    try { localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 12))); } catch { /* private mode */ }
    drawRecent();
  }
  function drawRecent() {
    const el = $('recent');
    el.innerHTML = '';
    for (const e of recentList()) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = e.pair ? `${e.input} ‖ ${e.pair}` : e.input;
      b.title = b.textContent;
      b.addEventListener('click', () => { $('input').value = e.input; $('pair').value = e.pair || ''; submit(); });
      el.appendChild(b);
    }
  }

  // ---- drawing ----
  function drawTokens() {
    $('tokens').innerHTML = result.tokens.map((t, i) =>
      `<span class="tok${result.special[i] ? ' special' : ''}${i === sel.query ? ' on' : ''}" data-i="${i}" title="id ${esc(result.ids[i])}">${esc(shown(t))}</span>`).join('');
  }

  function drawGrid() {
    const { layers: L, heads: H, length: T } = result;
    const grid = $('grid');
    grid.style.gridTemplateColumns = `repeat(${H}, minmax(60px, 140px))`;
    grid.innerHTML = '';
    for (let l = 0; l < L; ++l) {
      for (let h = 0; h < H; ++h) {
        const fig = document.createElement('figure');
        fig.className = l === sel.layer && h === sel.head ? 'on' : '';
        fig.dataset.l = l; fig.dataset.h = h;
        const c = document.createElement('canvas');
        c.width = T; c.height = T;
        const ctx = c.getContext('2d');
        const img = ctx.createImageData(T, T);
        for (let q = 0; q < T; ++q) {
          for (let k = 0; k < T; ++k) {
            const v = Math.sqrt(at(l, h, q, k));  // sqrt: weak weights stay visible
            const o = (q * T + k) * 4;
            img.data[o] = 255 - 225 * v; img.data[o + 1] = 255 - 170 * v; img.data[o + 2] = 255 - 80 * v; img.data[o + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
        const cap = document.createElement('figcaption');
        cap.textContent = `L${l} H${h} · ${result.patterns[l][h]}`;
        fig.append(c, cap);
        grid.appendChild(fig);
      }
    }
  }

  function drawHead() {
    const { length: T } = result;
    const labels = result.tokens.map((t, i) => `${i}:${esc(shown(t))}`);
    const z = [];
    for (let q = 0; q < T; ++q) {
      const row = [];
      for (let k = 0; k < T; ++k) row.push(result.causal && k > q ? null : at(sel.layer, sel.head, q, k));
      z.push(row);
    }
    Plotly.react($('plot-head'), [{
      type: 'heatmap', z, x: labels, y: labels, colorscale: VIRIDIS, zmin: 0, zmax: 1,
      hovertemplate: 'query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>', colorbar: { title: { text: 'attention' }, thickness: 12 },
    }], {
      title: { text: `layer ${sel.layer} head ${sel.head} · ${esc(result.patterns[sel.layer][sel.head])}`, font: { size: 14 } },
      margin: { l: 90, r: 20, t: 40, b: 90 }, yaxis: { autorange: 'reversed', type: 'category', tickfont: { size: 10 } },
      xaxis: { type: 'category', tickfont: { size: 10 } },
    }, PLOT_CONFIG);
  }

  function drawFlow() {
    const T = result.length;
    const rowH = 18, w = 420, x0 = 120, x1 = 300;
    const h = T * rowH + 10;
    let lines = '';
    for (let k = 0; k < T; ++k) {
      const v = at(sel.layer, sel.head, sel.query, k);
      if (v < 0.01) continue;
      lines += `<line x1="${x0}" y1="${sel.query * rowH + 14}" x2="${x1}" y2="${k * rowH + 14}" stroke="#2f6fb3" stroke-opacity="${Math.min(1, 0.15 + v).toFixed(3)}" stroke-width="${(0.5 + 6 * v).toFixed(2)}" data-key="${k}"/>`;
    }
    const col = (x, anchor, cls) => result.tokens.map((t, i) =>
      `<text x="${x}" y="${i * rowH + 18}" text-anchor="${anchor}" class="${cls}" data-i="${i}" style="cursor:pointer;font:12px ui-monospace,monospace;fill:${i === sel.query && cls === 'q' ? '#d8443b' : '#1d232b'}">${esc(shown(t))}</text>`).join('');
    $('flow').innerHTML = `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="token to token attention">${lines}${col(x0 - 8, 'end', 'q')}${col(x1 + 8, 'start', 'k')}</svg>`;
  }

  function drawMetrics() {
    const names = result.metric_names;
    const idx = SHOWN_METRICS.map((m) => names.indexOf(m)).filter((i) => i >= 0);
    let html = `<thead><tr><th class="l">layer</th><th class="l">head</th><th class="l">pattern</th>${idx.map((i) => `<th>${esc(names[i])}</th>`).join('')}</tr></thead><tbody>`;
    for (let l = 0; l < result.layers; ++l) {
      for (let h = 0; h < result.heads; ++h) {
        const on = l === sel.layer && h === sel.head;
        html += `<tr data-l="${l}" data-h="${h}" class="${on ? 'on sel' : ''}"><td class="l">${l}</td><td class="l">${h}</td><td class="l">${esc(result.patterns[l][h])}</td>${
          idx.map((i) => `<td>${fmt(result.metrics[l][h][i])}</td>`).join('')}</tr>`;
      }
    }
    $('metrics').innerHTML = `${html}</tbody>`;
  }

  function drawImportance() {
    const x = result.tokens.map((t, i) => `${i}:${esc(shown(t))}`);
    Plotly.react($('plot-importance'), [
      { type: 'bar', name: 'attention received', x, y: result.importance.attention, marker: { color: '#2f6fb3' } },
      { type: 'bar', name: 'rollout', x, y: result.importance.rollout, marker: { color: '#e08b3a' } },
      ...(Array.isArray(result.importance.flow) ? [{ type: 'bar', name: 'flow', x, y: result.importance.flow, marker: { color: '#59a14f' } }] : []),
    ], { barmode: 'group', margin: { l: 50, r: 10, t: 10, b: 70 }, legend: { orientation: 'h', y: 1.15 },
      xaxis: { type: 'category', tickfont: { size: 10 } }, yaxis: { title: { text: 'share' } } }, PLOT_CONFIG);
  }

  function topTable(title, top) {
    return `<h3>${esc(title)}</h3><table class="data"><thead><tr><th class="l">token</th><th>probability</th><th class="l"></th></tr></thead><tbody>${
      top.map((t) => `<tr><td class="l"><code>${esc(shown(t.token))}</code></td><td>${fmt(t.probability, 4)}</td><td class="l"><span class="pred-bar" style="width:${Math.round(120 * t.probability)}px"></span></td></tr>`).join('')}</tbody></table>`;
  }

  function drawPrediction() {
    const p = result.prediction;
    let html = '';
    if (p) {
      if (p.untrained_head) html += '<p class="note">This model\'s task head is not trained (initialised at load): its outputs mean nothing.</p>';
      if (p.problem === 'minmax') {
        html += `<p>answer: <b>${esc(p.label)}</b> (expected ${esc(p.expected)}: ${p.correct ? 'right' : 'wrong'})</p>${topTable('answer tokens', p.top)}`;
      } else if (p.problem === 'regression') {
        html += `<table class="data"><tbody>${p.outputs.map((o) => `<tr><td class="l">${esc(o.label)}</td><td>${fmt(o.value, 4)}</td></tr>`).join('')}</tbody></table>`;
      } else {
        if (p.label !== undefined) html += `<p>predicted: <b>${esc(p.label)}</b></p>`;
        html += `<table class="data"><thead><tr><th class="l">label</th><th>probability</th><th>logit</th><th class="l"></th></tr></thead><tbody>${
          p.outputs.map((o) => `<tr><td class="l">${esc(o.label)}</td><td>${fmt(o.probability, 4)}</td><td>${fmt(o.logit, 3)}</td><td class="l"><span class="pred-bar" style="width:${Math.round(120 * o.probability)}px"></span></td></tr>`).join('')}</tbody></table>`;
      }
    } else if (result.next_token) {
      html += topTable('next token', result.next_token);
    } else if (!result.masks.length) {
      html += `<p class="hint">${info.head === 'masked_lm' ? `Put ${esc(info.mask_token)} in the input to see the model's top-5 tokens there.` : 'This model has no task head.'}</p>`;
    }
    $('prediction').innerHTML = html;
    $('masks').innerHTML = result.masks.map((m) => topTable(`${info.mask_token} at token ${m.position}`, m.top)).join('');
  }

  async function drawMolecule() {
    if (!result.molecule) { $('mol').hidden = true; return; }
    if (info.mask_token && result.vocab_tokens.includes(info.mask_token)) {
      $('mol-img').innerHTML = `<p class="note">A masked input is not a whole molecule: no drawing.</p>`;
      $('mol').hidden = false;
      return;
    }
    const ticket = ++molRequest;
    try {
      const svg = await api('/api/molecule', { input: result.input, checkpoint: $('sel-checkpoint').value || undefined,
        layer: sel.layer, head: sel.head, query: sel.query });
      if (ticket !== molRequest) return;
      const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
      $('mol-img').innerHTML = `<img alt="molecule coloured by attention" src="${url}">`;
      $('mol').hidden = false;
    } catch (err) {
      if (ticket !== molRequest) return;
      $('mol-img').innerHTML = `<p class="note">${esc(err.message)}</p>`;
      $('mol').hidden = false;
    }
  }

  function drawSelection() {
    fill($('sel-layer'), [...Array(result.layers).keys()], [...Array(result.layers).keys()].map(String), sel.layer);
    fill($('sel-head'), [...Array(result.heads).keys()], [...Array(result.heads).keys()].map(String), sel.head);
    fill($('sel-query'), [...Array(result.length).keys()], result.tokens.map((t, i) => `${i}: ${shown(t)}`), sel.query);
    drawTokens();
    for (const f of $('grid').children) f.className = +f.dataset.l === sel.layer && +f.dataset.h === sel.head ? 'on' : '';
    drawHead();
    drawFlow();
    drawMetrics();
    drawMolecule();
  }

  function drawAll() {
    sel.layer = Math.min(sel.layer, result.layers - 1);
    sel.head = Math.min(sel.head, result.heads - 1);
    sel.query = Math.min(sel.query, result.length - 1);
    if (info.input === 'minmax' && +document.body.dataset.renders === 0) sel.query = result.length - 1;  // "=" reads the answer
    drawGrid();
    drawSelection();
    drawImportance();
    drawPrediction();
    $('timing').textContent = `${result.length} tokens · answered in ${fmt(result.milliseconds, 1)} ms${result.checkpoint ? ` · checkpoint ${result.checkpoint} (epoch ${result.epoch})` : ''}`;
    document.body.dataset.renders = String(+document.body.dataset.renders + 1);
    document.body.dataset.state = 'ready';
  }

  async function submit() {
    const input = $('input').value;
    const pair = info.pair ? $('pair').value : '';
    $('input-error').textContent = '';
    $('submit').disabled = true;
    document.body.dataset.state = 'busy';
    try {
      const body = { input };
      if ($('want-flow').checked) body.flow = true;
      if (pair.trim()) body.pair = pair;
      if ($('sel-checkpoint').value) body.checkpoint = $('sel-checkpoint').value;
      result = await api('/api/attention', body);
      maps = decode(result);
      remember(input, pair.trim() ? pair : '');
      drawAll();
    } catch (err) {
      $('input-error').textContent = err.message;
      document.body.dataset.state = 'error';
    } finally {
      $('submit').disabled = false;
    }
  }

  function choose(l, h, q) {
    if (!result) return;
    if (l !== undefined) sel.layer = l;
    if (h !== undefined) sel.head = h;
    if (q !== undefined) sel.query = q;
    drawSelection();
  }

  async function start() {
    try {
      info = await api('/api/info');
    } catch (err) {
      $('fatal').hidden = false;
      $('fatal').textContent = `The server did not answer /api/info: ${err.message}`;
      return;
    }
    $('title').textContent = `${info.architecture}`;
    $('subtitle').textContent = `${info.family} · ${info.layers} layers × ${info.heads} heads · ${info.input} input · ${info.model}` +
      (info.epoch !== null ? ` · epoch ${info.epoch}` : '');
    const example = info.input === 'minmax' ? 'e.g. 3 max 5 or 17 min 4' : info.input === 'smiles' ? `e.g. CC(=O)Oc1ccccc1C(=O)O${info.head === 'masked_lm' ? ` or CC(=O)O${info.mask_token}1ccccc1C(=O)O` : ''}`
      : `e.g. The cat sat on the mat.${info.head === 'masked_lm' ? ` or The cat sat on the ${info.mask_token}.` : ''}`;
    $('input').placeholder = `${info.input === 'smiles' ? 'SMILES' : info.input === 'minmax' ? 'a max b / a min b' : 'text'} (${example})`;
    $('input').maxLength = info.limits.max_input_chars;
    $('pair').hidden = !info.pair;
    if (info.checkpoints.length) {
      $('ctl-checkpoint').hidden = false;
      fill($('sel-checkpoint'), info.checkpoints.map((c) => c.name),
        info.checkpoints.map((c) => `${c.name}${c.epoch !== null ? ` (epoch ${c.epoch})` : ''}`),
        (info.checkpoints.find((c) => c.default) || info.checkpoints[0]).name);
    }
    $('report-link').hidden = !info.report;
    drawRecent();
    $('ask').addEventListener('submit', (e) => { e.preventDefault(); submit(); });
    $('input').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); submit(); } });
    $('sel-checkpoint').addEventListener('change', () => { if (result) submit(); });
    $('want-flow').addEventListener('change', () => { if (result) submit(); });
    $('sel-layer').addEventListener('change', (e) => choose(+e.target.value));
    $('sel-head').addEventListener('change', (e) => choose(undefined, +e.target.value));
    $('sel-query').addEventListener('change', (e) => choose(undefined, undefined, +e.target.value));
    $('grid').addEventListener('click', (e) => {
      const f = e.target.closest('figure');
      if (f) choose(+f.dataset.l, +f.dataset.h);
    });
    $('metrics').addEventListener('click', (e) => {
      const r = e.target.closest('tr[data-l]');
      if (r) choose(+r.dataset.l, +r.dataset.h);
    });
    const pickToken = (e) => {
      const t = e.target.closest('[data-i]');
      if (t) choose(undefined, undefined, +t.dataset.i);
    };
    $('tokens').addEventListener('click', pickToken);
    $('flow').addEventListener('click', pickToken);
    document.body.dataset.state = 'idle';
  }
  start();
}());
