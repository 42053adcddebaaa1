/* attnscope compare: the offline comparison report. Reads the data of `attnscope compare`
 * (compare.json plus the embedded maps) from <script id="attnscope-data"> and draws it with
 * plotly.js; no network access. */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let D;
  try {
    D = JSON.parse($('attnscope-data').textContent);
  } catch (e) {
    $('fatal').hidden = false;
    $('fatal').textContent = 'The comparison data could not be read: ' + e;
    return;
  }
  const runs = D.runs, L = D.layers.length, H = D.heads.length;
  const cfg = { displaylogo: false, responsive: true };
  const layout = (title, extra) => Object.assign({
    title: { text: title, font: { size: 14 } }, margin: { l: 70, r: 20, t: 40, b: 60 },
    paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)', font: { size: 12 },
  }, extra || {});
  const fill = (sel, items) => {
    sel.innerHTML = '';
    items.forEach(([v, t]) => { const o = document.createElement('option'); o.value = v; o.textContent = t; sel.appendChild(o); });
  };
  // Text for HTML (elements and quoted attributes) and for plotly's labels, titles and hover
  // templates, which decode only &amp; &lt; &gt; and numeric entities: every string from the data.
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' }[c]));
  const fmt = (v, d) => (v === null || v === undefined ? '–' : Number(v).toFixed(d === undefined ? 4 : d));
  const tokenLabels = (toks) => toks.map((t, i) => i + ' ' + esc(t));

  $('cmp-title').textContent = runs.map((r) => r.name).join(' vs ');
  $('cmp-subtitle').textContent = runs.length + ' runs, ' + L + ' layers x ' + H + ' heads, ' + D.probes.length +
    ' common probes; each run after the first is compared with the first';
  $('runs-table').innerHTML = '<tr><th>run</th><th>path</th><th>compared epoch</th><th>step</th></tr>' +
    runs.map((r) => `<tr><td>${esc(r.name)}</td><td style="text-align:left">${esc(r.path)}</td><td>${esc(r.epoch)}</td><td>${esc(r.step)}</td></tr>`).join('');

  fill($('sel-pair'), D.pairs.map((p, i) => [i, runs[p.b].name]));
  fill($('sel-layer'), D.layers.map((l, i) => [i, 'layer ' + l]));
  fill($('sel-head'), D.heads.map((h, i) => [i, 'head ' + h]));
  fill($('sel-probe'), D.probes.map((p, i) => [i, i + ': ' + (p.text.length > 60 ? p.text.slice(0, 57) + '...' : p.text)]));
  const metrics = Object.keys(D.pairs[0].metric_diff_matched || {}).sort((a, b) => (b === 'entropy_norm') - (a === 'entropy_norm'));
  fill($('sel-metric'), metrics.map((m) => [m, m]));
  const curveKeys = [];
  runs.forEach((r) => r.curves.forEach((row) => Object.keys(row).forEach((k) => {
    if (k !== 'epoch' && k !== 'step' && k !== 'seconds' && !curveKeys.includes(k)) curveKeys.push(k);
  })));
  curveKeys.sort((a, b) => (b === 'val_loss') - (a === 'val_loss'));
  fill($('sel-curve'), curveKeys.map((k) => [k, k]));
  let matchMode = 'matched';
  document.querySelectorAll('#seg-match button').forEach((b) => b.addEventListener('click', () => {
    matchMode = b.dataset.mode;
    document.querySelectorAll('#seg-match button').forEach((x) => x.classList.toggle('on', x === b));
    drawDiff();
  }));

  const sel = () => ({ pair: +$('sel-pair').value, l: +$('sel-layer').value, h: +$('sel-head').value, p: +$('sel-probe').value });

  function drawMatching() {
    const { pair, l } = sel();
    const P = D.pairs[pair], b = runs[P.b];
    const js = P.js[l], z = [];
    for (let i = 0; i < H; i++) z.push(js.slice(i * H, i * H + H));
    const ya = D.heads.map((h) => esc(runs[0].name + ' H' + h)), xb = D.heads.map((h) => esc(b.name + ' H' + h));
    const match = P.matching[l];
    Plotly.react('plot-js', [
      { type: 'heatmap', z, x: xb, y: ya, zmin: 0, zmax: 1, colorscale: 'Viridis', colorbar: { title: 'JS (bits)' },
        hovertemplate: '%{y} vs %{x}<br>JS %{z:.4f}<extra></extra>' },
      { type: 'scatter', mode: 'markers', x: match.map((j) => xb[j]), y: ya, marker: { symbol: 'circle-open', size: 18, color: '#fff', line: { width: 2 } },
        hoverinfo: 'skip', showlegend: false },
    ], layout(esc('layer ' + D.layers[l] + ': ' + runs[0].name + ' (rows) vs ' + b.name + ' (columns)'), { yaxis: { autorange: 'reversed' }, margin: { l: 150, r: 20, t: 40, b: 110 } }), cfg);
    let rows = '<tr><th>' + esc(runs[0].name) + '</th><th>matched ' + esc(b.name) + '</th><th>JS matched</th><th>JS same index</th></tr>';
    for (let i = 0; i < H; i++) {
      rows += `<tr><td>H${esc(D.heads[i])}</td><td>H${esc(D.heads[match[i]])}${match[i] !== i ? ' ⇄' : ''}</td><td>${fmt(js[i * H + match[i]])}</td><td>${fmt(js[i * H + i])}</td></tr>`;
    }
    $('match-table').innerHTML = rows;
  }

  function headMap(div, run, r, l, h, p, title) {
    const toks = tokenLabels(D.probes[p].tokens);
    const m = D.maps && D.maps[r] && D.maps[r][p] ? D.maps[r][p][l][h] : null;
    if (!m) { Plotly.purge(div); return false; }
    const n = toks.length, z = [];
    for (let i = 0; i < n; i++) z.push(m.slice(i * n, i * n + n));
    Plotly.react(div, [{ type: 'heatmap', z, x: toks, y: toks, zmin: 0, zmax: 1, colorscale: 'Viridis',
      hovertemplate: 'query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>' }],
    layout(title, { yaxis: { autorange: 'reversed', title: 'query', type: 'category' }, xaxis: { title: 'key', type: 'category' }, margin: { l: 110, r: 20, t: 40, b: 110 } }), cfg);
    return true;
  }

  function drawHeads() {
    const { pair, l, h, p } = sel();
    const P = D.pairs[pair], hb = P.matching[l][h];
    const js = P.js[l][h * H + hb];
    const okA = headMap('plot-head-a', runs[0], 0, l, h, p, esc(runs[0].name + ' · L' + D.layers[l] + ' H' + D.heads[h]));
    const okB = headMap('plot-head-b', runs[P.b], P.b, l, hb, p, esc(runs[P.b].name + ' · L' + D.layers[l] + ' H' + D.heads[hb] + ' (matched, JS ' + fmt(js, 3) + ')'));
    $('maps-missing').hidden = okA && okB;
  }

  function drawDiff() {
    const { pair } = sel();
    const m = $('sel-metric').value;
    if (!m) { $('sec-diff').hidden = true; return; }
    const P = D.pairs[pair];
    const v = (matchMode === 'matched' ? P.metric_diff_matched : P.metric_diff)[m];
    const z = [];
    let vabs = 1e-9;
    for (let l = 0; l < L; l++) {
      z.push(v.slice(l * H, l * H + H));
      v.slice(l * H, l * H + H).forEach((x) => { if (x !== null) vabs = Math.max(vabs, Math.abs(x)); });
    }
    Plotly.react('plot-diff', [{ type: 'heatmap', z, x: D.heads.map((h) => esc('H' + h)), y: D.layers.map((l) => esc('L' + l)),
      zmin: -vabs, zmax: vabs, colorscale: 'RdBu', reversescale: true, colorbar: { title: 'difference' },
      hovertemplate: '%{y} %{x}<br>' + esc(m) + ' difference %{z:.4f}<extra></extra>' }],
    layout(esc(m + ': ' + runs[P.b].name + ' minus ' + runs[0].name) + (matchMode === 'matched' ? ' (matched heads)' : ' (same index)'),
      { yaxis: { autorange: 'reversed' } }), cfg);
  }

  function drawTimeline() {
    const { l, h } = sel();
    const m = $('sel-metric').value;
    const traces = [];
    runs.forEach((r, k) => {
      const t = r.timelines;
      if (!t || !t[m]) return;
      const hh = k === 0 ? h : D.pairs[k - 1].matching[l][h];
      traces.push({ type: 'scatter', mode: 'lines+markers', name: esc(r.name + ' H' + D.heads[hh]), x: t.epochs,
        y: t.epochs.map((_, e) => t[m][(e * L + l) * H + hh]), line: { dash: k === 0 ? 'solid' : 'dash' } });
    });
    $('sec-timelines').hidden = traces.length === 0;
    if (traces.length) Plotly.react('plot-timeline', traces, layout(esc(m + ' · layer ' + D.layers[l] + ' head ' + D.heads[h] + ' and its matches'), { xaxis: { title: 'epoch' } }), cfg);
  }

  function drawCurves() {
    const k = $('sel-curve').value;
    if (!k) { $('sec-curves').hidden = true; return; }
    const traces = runs.map((r) => ({ type: 'scatter', mode: 'lines', name: esc(r.name),
      x: r.curves.map((row) => row.epoch), y: r.curves.map((row) => (row[k] === undefined ? null : row[k])) }));
    Plotly.react('plot-curves', traces, layout(esc(k), { xaxis: { title: 'epoch' }, yaxis: { type: k.includes('loss') ? 'log' : 'linear' } }), cfg);
  }

  const all = () => { drawMatching(); drawHeads(); drawDiff(); drawTimeline(); drawCurves(); };
  ['sel-pair', 'sel-layer', 'sel-head', 'sel-probe', 'sel-metric', 'sel-curve'].forEach((id) => $(id).addEventListener('change', all));
  all();
  document.body.dataset.ready = '1';
})();
