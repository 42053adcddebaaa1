#!/usr/bin/env node
// Writes a synthetic report data JSON that follows docs/report-data.md (version 1), so that the
// report front-end can be built and tested without a trained run or the C++ renderer.
//
//   node make_sample.mjs [minmax|chemberta|stress] OUT.json [--seed N]
//
//   minmax     1 layer, 2 heads, 64 probes "a max b =" (T = 4), 76 recorded epochs (0..750 by 10),
//              probs + scores, min/max mechanism panel data (over_training, final, (a, b) grid),
//              no pooled site.
//   chemberta  4 layers, 8 heads, 12 SMILES probes of 10..40 tokens, 21 epochs, probs + scores,
//              pooled vectors (dim 32) + PCA, probe targets.
//   stress     6 layers, 12 heads, 32 probes of 20..60 tokens, 21 recorded epochs (0..100 by 5),
//              metrics every epoch (M != E), probs only, head_importance all null, pooled vectors.
//
// The maps are made from per-head "roles" that sharpen over training; metrics, analyses and the
// min/max mechanism numbers are computed from those maps with the same formulas as the C++ side.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const args = process.argv.slice(2);
let seed = 1;
const pos = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--seed') seed = Number(args[++i]);
  else pos.push(args[i]);
}
const kind = pos[0] || 'minmax';
const outPath = pos[1] || `sample-${kind}.json`;
if (!['minmax', 'chemberta', 'stress'].includes(kind)) {
  console.error(`make_sample: unknown kind "${kind}" (minmax | chemberta | stress)`);
  process.exit(2);
}

// ---------------------------------------------------------------- deterministic randomness
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(seed * 7919 + (kind === 'minmax' ? 1 : kind === 'chemberta' ? 2 : 3));
function gauss() {
  const u = Math.max(rand(), 1e-12), v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
const randint = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const round = (x, d = 5) => (x === null || !Number.isFinite(x) ? null : Number(x.toPrecision(d)));
const sigmoid = (x) => 1 / (1 + Math.exp(-x));

// ---------------------------------------------------------------- the run's shape
let L, H, epochs, metricEpochs, probes, model, task, configYaml, withScores, withPooled;
if (kind === 'minmax') {
  L = 1; H = 2;
  epochs = Array.from({ length: 76 }, (_, i) => i * 10);
  metricEpochs = epochs.slice();
  task = 'minmax';
  withScores = true; withPooled = false;
  model = { name: 'minmax_attention', layers: 1, heads: 2, d_model: 32, d_head: 16, vocab: 130, max_len: 4 };
  probes = [];
  for (let p = 0; p < 64; ++p) {
    const a = randint(0, 127), b = randint(0, 127), op = p % 2 === 0 ? 'max' : 'min';
    probes.push({ text: `${a} ${op} ${b} =`, tokens: [String(a), op, String(b), '='], length: 4,
      targets: { answer: op === 'max' ? Math.max(a, b) : Math.min(a, b), a, b, is_max: op === 'max' ? 1 : 0 } });
  }
  configYaml = `# attnscope resolved configuration (every key; defaults included)
run:
  name: minmax
  out_dir: runs
  seed: 0
data:
  task: minmax
  minmax_numbers: 128
  train_fraction: 0.3333333333333333
model:
  name: minmax_attention
  d_model: 32
  n_heads: 2
  d_head: 16
optim:
  name: adamw
  lr: 0.002
  betas: [0.9, 0.99]
  weight_decay: 1.0
train:
  epochs: 750
  best_metric: val_acc
  best_mode: max
hooks:
  attention:
    enabled: true
    sites: [attn.probs, attn.scores]
    every: 10
    probes: 64
    metrics_every: 10
`;
} else {
  const stress = kind === 'stress';
  L = stress ? 6 : 4; H = stress ? 12 : 8;
  epochs = stress ? Array.from({ length: 21 }, (_, i) => i * 5) : Array.from({ length: 21 }, (_, i) => i);
  metricEpochs = stress ? Array.from({ length: 101 }, (_, i) => i) : epochs.slice();
  task = 'chemberta';
  withScores = !stress; withPooled = true;
  model = { name: 'roberta', layers: L, heads: H, d_model: stress ? 768 : 384, d_head: stress ? 64 : 48,
    vocab: 767, max_len: 514, tokenizer: 'bpe' };
  const atoms = ['C', 'C', 'C', 'c', 'c', 'c', 'O', 'N', 'n', 'Cl', 'F', 'S', '[C@@H]', '[nH]', 'Br', '[O-]', '[N+]'];
  const P = stress ? 32 : 12, lo = stress ? 20 : 10, hi = stress ? 60 : 40;
  probes = [];
  for (let p = 0; p < P; ++p) {
    const n = p === 0 ? hi : p === 1 ? lo : randint(lo, hi);
    const body = [];
    let open = 0, ring = 0;
    while (body.length < n - 2) {
      const r = rand(), left = n - 2 - body.length;
      if (r < 0.12 && left > 3) { body.push('('); open++; }
      else if (r < 0.22 && open > 0) { body.push(')'); open--; }
      else if (r < 0.3 && left > 2) body.push('=');
      else if (r < 0.36) body.push(String(++ring % 3 + 1));
      else body.push(atoms[randint(0, atoms.length - 1)]);
    }
    const tokens = ['<s>', ...body, '</s>'];
    const heavy = body.filter((t) => /[A-Za-z]/.test(t)).length;
    probes.push({ text: body.join(''), tokens, length: n,
      targets: { logp: round(-1 + 0.12 * heavy + gauss() * 0.6, 4), mw: round(12.5 * heavy + 40 * rand(), 5),
        active: rand() < 0.4 ? 1 : 0 } });
  }
  configYaml = `# attnscope resolved configuration (every key; defaults included)
run:
  name: ${stress ? 'stress' : 'chemberta-bbbp'}
  out_dir: runs
  seed: 0
data:
  task: chemberta
  dataset: data/bbbp.csv
  smiles_column: smiles
  target_column: p_np
model:
  name: roberta
  layers: ${L}
  n_heads: ${H}
  d_model: ${model.d_model}
  pretrained: models/ChemBERTa-77M-MLM
optim:
  name: adamw
  lr: 5e-05
  schedule: linear
  warmup_steps: 100
train:
  epochs: ${epochs[epochs.length - 1]}
  best_metric: val_loss
  best_mode: min
hooks:
  attention:
    enabled: true
    sites: [${stress ? 'attn.probs, pooled' : 'attn.probs, attn.scores, pooled'}]
    every: ${stress ? 5 : 1}
    probes: ${P}
    metrics_every: 1
`;
}
const E = epochs.length, P = probes.length;
const lastEpoch = epochs[E - 1];

// ---------------------------------------------------------------- the maps
// Per-head roles for the encoder kinds.
const ROLES = ['bos', 'diagonal', 'prev', 'next', 'eos', 'uniform', 'local', 'mixed', 'bos', 'prev', 'local', 'mixed'];
const role = [];
for (let l = 0; l < L; ++l) {
  role.push([]);
  const order = ROLES.slice(0, H).map((r) => [r, rand()]).sort((x, y) => x[1] - y[1]).map((x) => x[0]);
  for (let h = 0; h < H; ++h) role[l].push(order[h]);
}
// A stable noise field per (p, l, h, i, j) plus a small epoch jitter.
function noiseField(n) { const a = new Float32Array(n * n); for (let k = 0; k < a.length; ++k) a[k] = gauss(); return a; }

function progress(epoch, l, h) {
  if (kind === 'minmax') return sigmoid((epoch - 420 - 40 * h) / 45);
  const span = lastEpoch;
  return 0.15 + 0.85 * (1 - Math.exp(-epoch / (span / (3 + l * 0.7 + h * 0.15))));
}

// logits of one (probe, layer, head) at progress s; noise g (stable), jitter j (per epoch)
function logitsMinmax(p, h, s, g, jit) {
  const pr = probes[p], n = 4, out = new Float32Array(16);
  const a = Number(pr.tokens[0]), b = Number(pr.tokens[2]), op = pr.tokens[1];
  // max: head 0 picks, head 1 sinks on the operator; min: the other way round
  const picker = op === 'max' ? 0 : 1;
  for (let i = 0; i < n; ++i) {
    for (let k = 0; k < n; ++k) {
      let x = 0;
      if (i === 3) {
        if (h === picker) {
          const d = (op === 'max' ? 1 : -1) * (a - b) / 128 * 5;
          x = k === 0 ? d : k === 2 ? -d : -6;
        } else {
          x = k === 1 ? 7.5 : k === 3 ? -8 : 0;
        }
      } else {
        x = h === 0 ? (i === k ? 2.5 : 0) : (k === 0 ? 2.5 : 0);
      }
      out[i * n + k] = s * x + (1 - 0.8 * s) * 0.9 * g[i * n + k] + 0.12 * jit[i * n + k];
    }
  }
  return out;
}

function logitsEncoder(p, l, h, s, g, jit) {
  const n = probes[p].length, out = new Float32Array(n * n), r = role[l][h];
  for (let i = 0; i < n; ++i) {
    for (let k = 0; k < n; ++k) {
      let x = 0;
      switch (r) {
        case 'bos': x = k === 0 ? 6 : 0; break;
        case 'eos': x = k === n - 1 ? 6 : 0; break;
        case 'diagonal': x = k === i ? 5 : 0; break;
        case 'prev': x = k === Math.max(0, i - 1) ? 5.5 : 0; break;
        case 'next': x = k === Math.min(n - 1, i + 1) ? 5.5 : 0; break;
        case 'uniform': x = 0; break;
        case 'local': x = -1.6 * Math.abs(i - k); break;
        default: x = (k === 0 ? 2.6 : 0) + (Math.abs(i - k) <= 1 ? 2 : 0);
      }
      const noise = (r === 'uniform' ? 0.25 : 1) * (1 - 0.55 * s) * g[i * n + k];
      out[i * n + k] = s * x + noise + 0.15 * jit[i * n + k];
    }
  }
  return out;
}

function softmaxRows(z, n) {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; ++i) {
    let m = -Infinity;
    for (let k = 0; k < n; ++k) m = Math.max(m, z[i * n + k]);
    let s = 0;
    for (let k = 0; k < n; ++k) { const v = Math.exp(z[i * n + k] - m); out[i * n + k] = v; s += v; }
    for (let k = 0; k < n; ++k) out[i * n + k] /= s;
  }
  return out;
}

// probs[e][p][l][h] and scores likewise, as Float32Array n*n
const probsF = [], scoresF = [];
const noise = [];
for (let p = 0; p < P; ++p) {
  noise.push([]);
  for (let l = 0; l < L; ++l) { noise[p].push([]); for (let h = 0; h < H; ++h) noise[p][l].push(noiseField(probes[p].length)); }
}
let smin = Infinity, smax = -Infinity;
for (let e = 0; e < E; ++e) {
  probsF.push([]); scoresF.push([]);
  for (let p = 0; p < P; ++p) {
    const n = probes[p].length;
    probsF[e].push([]); scoresF[e].push([]);
    for (let l = 0; l < L; ++l) {
      probsF[e][p].push([]); scoresF[e][p].push([]);
      for (let h = 0; h < H; ++h) {
        const s = progress(epochs[e], l, h), jit = noiseField(n);
        const z = kind === 'minmax' ? logitsMinmax(p, h, s, noise[p][l][h], jit) : logitsEncoder(p, l, h, s, noise[p][l][h], jit);
        for (const v of z) { if (v < smin) smin = v; if (v > smax) smax = v; }
        scoresF[e][p][l].push(withScores ? z : null);
        probsF[e][p][l].push(softmaxRows(z, n));
      }
    }
  }
}

function quantise(get, scale, offset) {
  let total = 0;
  for (const pr of probes) total += pr.length * pr.length * L * H;
  const bytes = new Uint8Array(total * E);
  let o = 0;
  for (let e = 0; e < E; ++e) for (let p = 0; p < P; ++p) for (let l = 0; l < L; ++l) for (let h = 0; h < H; ++h) {
    for (const v of get(e, p, l, h)) bytes[o++] = Math.max(0, Math.min(255, Math.round((v - offset) / scale)));
  }
  return bytes;
}
const enc = (bytes) => zlib.deflateSync(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { level: 9 }).toString('base64');
const maps = {};
{
  const scale = 1 / 255;
  maps.probs = { scale, offset: 0, zlib_base64: enc(quantise((e, p, l, h) => probsF[e][p][l][h], scale, 0)) };
  if (withScores) {
    const lo = Math.floor(smin * 10) / 10, scaleS = (Math.ceil(smax * 10) / 10 - lo) / 255;
    maps.scores = { scale: scaleS, offset: lo, zlib_base64: enc(quantise((e, p, l, h) => scoresF[e][p][l][h], scaleS, lo)) };
  }
}

// ---------------------------------------------------------------- metrics (as hooks/attention_metrics.cpp)
const METRICS = ['confidence_max', 'confidence_avg', 'focus', 'sparsity', 'distribution', 'uniformity', 'entropy_norm',
  'effective_tokens', 'gini', 'diagonal_mean', 'first_token_mass', 'last_token_mass', 'local_mass', 'mean_distance',
  'broadcast_mass', 'weight_mean', 'weight_max', 'weight_min', 'pattern'];
const ROW = ['confidence_avg', 'focus', 'entropy_norm', 'effective_tokens', 'sparsity', 'uniformity', 'distribution',
  'gini', 'diagonal_mean', 'first_token_mass', 'last_token_mass', 'local_mass', 'mean_distance', 'broadcast_mass', 'weight_mean'];
function classify(m) {
  if (m.diagonal_mean >= 0.5) return 0;
  if (m.first_token_mass >= 0.5) return 1;
  if (m.broadcast_mass >= 0.5) return 2;
  if (m.entropy_norm >= 0.9) return 3;
  if (m.local_mass >= 0.8) return 4;
  return 5;
}
function headMetrics(e, l, h) {
  const sums = new Float64Array(ROW.length);
  let rows = 0, mx = -1, mn = 2;
  for (let p = 0; p < P; ++p) {
    const n = probes[p].length, w = probsF[e][p][l][h], col = new Float64Array(n);
    for (let i = 0; i < n; ++i) {
      const r = w.subarray(i * n, i * n + n);
      let rmax = 0, ent = 0, sum = 0, sparse = 0, local = 0, dist = 0;
      for (let j = 0; j < n; ++j) {
        const x = r[j];
        rmax = Math.max(rmax, x); if (x > 0) ent -= x * Math.log(x);
        sum += x; sparse += x < 0.01 ? 1 : 0; if (Math.abs(i - j) <= 2) local += x;
        dist += x * Math.abs(i - j); col[j] += x; mx = Math.max(mx, x); mn = Math.min(mn, x);
      }
      const mean = sum / n;
      let v = 0; for (let j = 0; j < n; ++j) v += (r[j] - mean) ** 2;
      const sorted = Array.from(r).sort((x, y) => x - y);
      let gini = 0; for (let k = 0; k < n; ++k) gini += (2 * (k + 1) - n - 1) * sorted[k];
      gini = sum > 0 ? gini / (n * sum) : 0;
      const median = 0.5 * (sorted[(n - 1) >> 1] + sorted[n >> 1]);
      const vals = [rmax, ent, n > 1 ? ent / Math.log(n) : 0, Math.exp(ent), sparse / n, Math.sqrt(v / n), median,
        gini, r[i], r[0], r[n - 1], local, dist, 0, mean];
      for (let m = 0; m < ROW.length; ++m) sums[m] += vals[m];
    }
    let top = n > 1 ? 1 : 0;
    for (let j = 1; j < n; ++j) if (col[j] > col[top]) top = j;
    let b = 0; for (let i = 0; i < n; ++i) b += w[i * n + top];
    sums[13] += b;
    rows += n;
  }
  const out = {};
  ROW.forEach((name, m) => { out[name] = sums[m] / rows; });
  out.confidence_max = mx; out.weight_max = mx; out.weight_min = mn;
  out.pattern = classify(out);
  return out;
}
const perEpochMetrics = [];
for (let e = 0; e < E; ++e) {
  perEpochMetrics.push([]);
  for (let l = 0; l < L; ++l) { perEpochMetrics[e].push([]); for (let h = 0; h < H; ++h) perEpochMetrics[e][l].push(headMetrics(e, l, h)); }
}
const metrics = { epochs: metricEpochs, names: METRICS, values: {} };
for (const name of METRICS) {
  metrics.values[name] = metricEpochs.map((ep) => {
    // exact at recorded epochs, interpolated (+ a little noise) between them
    let e1 = epochs.findIndex((x) => x >= ep);
    if (e1 < 0) e1 = E - 1;
    const e0 = Math.max(0, epochs[e1] === ep ? e1 : e1 - 1);
    const t = epochs[e1] === epochs[e0] ? 0 : (ep - epochs[e0]) / (epochs[e1] - epochs[e0]);
    const M = [];
    for (let l = 0; l < L; ++l) {
      M.push([]);
      for (let h = 0; h < H; ++h) {
        const a = perEpochMetrics[e0][l][h][name], b = perEpochMetrics[e1][l][h][name];
        if (name === 'pattern') { M[l].push(t < 0.5 ? a : b); continue; }
        const jit = t > 0 && t < 1 ? 1 + 0.01 * gauss() : 1;
        M[l].push(round((a + (b - a) * t) * jit));
      }
    }
    return M;
  });
}

// ---------------------------------------------------------------- analyses
function jsBits(P1, P2) {
  let s = 0;
  for (let k = 0; k < P1.length; ++k) {
    const a = P1[k] + 1e-12, b = P2[k] + 1e-12, m = 0.5 * (a + b);
    s += 0.5 * a * Math.log2(a / m) + 0.5 * b * Math.log2(b / m);
  }
  return s;
}
function headJS(e1, e2, l, h) {
  let s = 0, rows = 0;
  for (let p = 0; p < P; ++p) {
    const n = probes[p].length;
    for (let i = 0; i < n; ++i) {
      s += jsBits(probsF[e1][p][l][h].subarray(i * n, i * n + n), probsF[e2][p][l][h].subarray(i * n, i * n + n));
      rows++;
    }
  }
  return s / rows;
}
const T = Math.max(...probes.map((p) => p.length));
const analysis = { js_prev: [], js_final: [], head_importance: [], token_importance: [], token_importance_rollout: [] };
for (let e = 0; e < E; ++e) {
  const jp = [], jf = [], hi = [];
  for (let l = 0; l < L; ++l) {
    jp.push([]); jf.push([]); hi.push([]);
    const raw = [];
    for (let h = 0; h < H; ++h) {
      jp[l].push(round(e === 0 ? 0 : headJS(e, e - 1, l, h), 4));
      jf[l].push(round(headJS(e, E - 1, l, h), 4));
      raw.push(0.2 + rand() * progress(epochs[e], l, h));
    }
    const norm = Math.hypot(...raw);
    for (let h = 0; h < H; ++h) {
      const missing = kind === 'stress' || (kind === 'chemberta' && e === 0);
      hi[l].push(missing ? null : round(raw[h] / norm, 4));
    }
  }
  analysis.js_prev.push(jp); analysis.js_final.push(jf); analysis.head_importance.push(hi);
  const ti = [], tr = [];
  for (let p = 0; p < P; ++p) {
    const n = probes[p].length, recv = new Float64Array(T);
    let roll = null;
    for (let l = 0; l < L; ++l) {
      const A = new Float64Array(n * n);
      for (let h = 0; h < H; ++h) {
        const w = probsF[e][p][l][h];
        for (let k = 0; k < n * n; ++k) { recv[k % n] += w[k]; A[k] += w[k] / H; }
      }
      for (let i = 0; i < n; ++i) for (let k = 0; k < n; ++k) A[i * n + k] = 0.5 * A[i * n + k] + (i === k ? 0.5 : 0);
      if (!roll) roll = A;
      else { // roll = A @ roll
        const R = new Float64Array(n * n);
        for (let i = 0; i < n; ++i) for (let k = 0; k < n; ++k) { let s = 0; for (let m = 0; m < n; ++m) s += A[i * n + m] * roll[m * n + k]; R[i * n + k] = s; }
        roll = R;
      }
    }
    const tot = recv.reduce((a, b) => a + b, 0);
    ti.push(Array.from(recv, (v) => round(v / tot, 4)));
    const rs = roll.subarray(0, n).reduce((a, b) => a + b, 0);
    tr.push(Array.from({ length: T }, (_, k) => (k < n ? round(roll[k] / rs, 4) : 0)));
  }
  analysis.token_importance.push(ti); analysis.token_importance_rollout.push(tr);
}

// ---------------------------------------------------------------- training curves
const curves = { epoch: [], step: [], train_loss: [], val_loss: [], lr: [], seconds: [] };
if (kind === 'minmax') { curves.train_acc = []; curves.val_acc = []; } else { curves.val_rmse = []; curves.val_r2 = []; }
for (let ep = 1; ep <= lastEpoch; ++ep) {
  curves.epoch.push(ep); curves.step.push(kind === 'minmax' ? ep : ep * 51);
  curves.seconds.push(round(0.01 + 0.002 * rand(), 4));
  if (kind === 'minmax') {
    const g = sigmoid((ep - 430) / 40), tr = sigmoid((ep - 120) / 30);
    curves.train_loss.push(round(4.95 * (1 - tr) + 0.006 + 0.05 * (1 - tr) * rand() + 0.3 * tr * (1 - g) * Math.exp(-(ep - 120) / 400)));
    curves.val_loss.push(round(4.94 * (1 - g) + 0.04 + 0.8 * tr * (1 - g) + 0.02 * rand()));
    curves.train_acc.push(round(Math.min(1, tr * (0.97 + 0.03 * g))));
    curves.val_acc.push(round(Math.min(1, 0.9914 * g + 0.004 * rand() * g)));
    curves.lr.push(0.002);
  } else {
    const t = ep / lastEpoch;
    curves.train_loss.push(round(0.35 + 0.6 * Math.exp(-4 * t) + 0.03 * gauss() * (1 - t)));
    curves.val_loss.push(round(0.5 + 0.45 * Math.exp(-3 * t) + 0.08 * t * t + 0.02 * gauss()));
    curves.val_rmse.push(round(0.72 + 0.4 * Math.exp(-3 * t) + 0.05 * t * t + 0.01 * gauss()));
    curves.val_r2.push(round(0.62 - 0.5 * Math.exp(-3 * t) - 0.04 * t * t + 0.01 * gauss()));
    curves.lr.push(round(ep <= 2 ? 5e-5 * ep / 2 : 5e-5 * (1 - (ep - 2) / (lastEpoch - 1))));
  }
}
const final = {};
for (const [k, v] of Object.entries(curves)) final[k] = v[v.length - 1];
let bestEpoch = null;
{
  const key = kind === 'minmax' ? 'val_acc' : 'val_loss', arr = curves[key];
  let bi = 0;
  for (let i = 1; i < arr.length; ++i) if (kind === 'minmax' ? arr[i] > arr[bi] : arr[i] < arr[bi]) bi = i;
  bestEpoch = curves.epoch[bi];
}

// ---------------------------------------------------------------- pooled vectors + PCA
let pooled;
if (withPooled) {
  const D = 32, dirs = [0, 1, 2].map(() => Array.from({ length: D }, gauss));
  const base = probes.map(() => Array.from({ length: D }, gauss));
  const values = [], pca = [];
  for (let e = 0; e < E; ++e) {
    const s = progress(epochs[e], L - 1, 0);
    const X = probes.map((pr, p) => Array.from({ length: D }, (_, d) =>
      base[p][d] * (1.2 - 0.7 * s) + s * (pr.targets.logp * 0.9 * dirs[0][d] + (pr.targets.active ? 2.2 : -0.8) * dirs[1][d] +
        pr.targets.mw / 300 * dirs[2][d]) + 0.1 * gauss()));
    values.push(X.map((r) => r.map((v) => round(v, 4))));
    // 2-D PCA by power iteration on the centred covariance
    const mean = Array.from({ length: D }, (_, d) => X.reduce((a, r) => a + r[d], 0) / P);
    const C = X.map((r) => r.map((v, d) => v - mean[d]));
    const comps = [];
    for (let c = 0; c < 2; ++c) {
      let v = Array.from({ length: D }, (_, d) => (d === c ? 1 : 0.1));
      for (let it = 0; it < 200; ++it) {
        const proj = C.map((r) => r.reduce((a, x, d) => a + x * v[d], 0));
        let w = Array.from({ length: D }, (_, d) => C.reduce((a, r, i) => a + r[d] * proj[i], 0));
        for (const u of comps) { const dot = w.reduce((a, x, d) => a + x * u[d], 0); w = w.map((x, d) => x - dot * u[d]); }
        const nrm = Math.hypot(...w) || 1; v = w.map((x) => x / nrm);
      }
      comps.push(v);
    }
    pca.push(C.map((r) => comps.map((u) => round(r.reduce((a, x, d) => a + x * u[d], 0), 4))));
  }
  pooled = { dim: D, model_dim: D, basis: 'model', values, pca };
}

// ---------------------------------------------------------------- min/max mechanism data
let minmax;
if (kind === 'minmax') {
  const N = 128, ops = ['max', 'min'];
  const overTraining = epochs.map((ep, e) => {
    const row = { epoch: ep };
    for (const op of ops) {
      const ps = probes.map((pr, p) => p).filter((p) => probes[p].tokens[1] === op);
      const mass = [0, 1].map((h) => ps.reduce((a, p) => a + probsF[e][p][0][h][3 * 4 + 1], 0) / ps.length);
      const sink = mass[1] > mass[0] ? 1 : 0, picker = 1 - sink;
      const valid = ps.filter((p) => probes[p].targets.a !== probes[p].targets.b);
      const picks = valid.filter((p) => {
        const w = probsF[e][p][0][picker], { a, b } = probes[p].targets;
        const ansPos = (op === 'max') === (a > b) ? 0 : 2;
        return w[12 + ansPos] > w[12 + (2 - ansPos)];
      }).length;
      row[op] = { picker_head: picker, picker_picks_answer: round(picks / Math.max(1, valid.length), 6),
        sink_head: sink, sink_mass_on_op: round(mass[sink], 6) };
    }
    return row;
  });
  // the final model over the whole (a, b) grid (no per-probe noise)
  const zero = new Float32Array(16), s = progress(lastEpoch, 0, 0);
  const grid = { ops, probs: [], scores: [] };
  const finalMech = [];
  for (const op of ops) {
    const gp = [], gs = [];
    const meanEq = [[0, 0, 0, 0], [0, 0, 0, 0]];
    let pickerRight = 0, pairs = 0;
    for (let h = 0; h < 2; ++h) {
      const P3 = [0, 1, 2].map(() => []), S3 = [0, 1, 2].map(() => []);
      for (let a = 0; a < N; ++a) {
        for (const arr of [...P3, ...S3]) arr.push([]);
        for (let b = 0; b < N; ++b) {
          probes.push({ tokens: [String(a), op, String(b), '='], length: 4 });
          const z = logitsMinmax(probes.length - 1, h, s, zero, zero);
          probes.pop();
          const pr = softmaxRows(z, 4);
          for (let k = 0; k < 3; ++k) { P3[k][a].push(round(pr[12 + k], 4)); S3[k][a].push(round(z[12 + k], 4)); }
          for (let k = 0; k < 4; ++k) meanEq[h][k] += pr[12 + k] / (N * N);
          if (h === (op === 'max' ? 0 : 1) && a !== b) {
            pairs++;
            const ansPos = (op === 'max') === (a > b) ? 0 : 2;
            if (pr[12 + ansPos] > pr[12 + 2 - ansPos]) pickerRight++;
          }
        }
      }
      gp.push(P3); gs.push(S3);
    }
    grid.probs.push(gp); grid.scores.push(gs);
    const picker = op === 'max' ? 0 : 1, sink = 1 - picker;
    finalMech.push({ accuracy: round(0.99 + 0.005 * rand(), 6), mean_attention_from_eq: meanEq.map((r) => r.map((v) => round(v, 6))),
      mechanism_shown: true, op, picker_head: picker, picker_picks_answer: round(pickerRight / pairs, 6),
      sink_head: sink, sink_mass_on_op: round(meanEq[sink][1], 6) });
  }
  minmax = { numbers: N, over_training: overTraining, final: finalMech, grid };
}

// ---------------------------------------------------------------- write
const data = {
  version: 1,
  maps_order: 'epoch, probe, layer, head; each block length x length bytes',
  run: {
    name: kind === 'minmax' ? 'minmax' : kind === 'stress' ? 'stress' : 'chemberta-bbbp',
    source: `runs/${kind === 'minmax' ? 'minmax' : kind === 'stress' ? 'stress' : 'chemberta-bbbp'}/attention.h5`,
    attnscope_version: '0.1.0',
    model,
    config_yaml: configYaml,
    task,
    final,
    // as attnscope render writes them (beyond docs/report-data.md): how many probes made it in
    probes_embedded: P,
    maps_bytes: (maps.probs.zlib_base64.length + (maps.scores ? maps.scores.zlib_base64.length : 0)),
    probes_recorded: kind === 'stress' ? 64 : P,
    scores_omitted: kind === 'stress',
  },
  layers: Array.from({ length: L }, (_, i) => i),
  heads: Array.from({ length: H }, (_, i) => i),
  epochs,
  best_epoch: bestEpoch,
  probes: probes.map((pr, index) => Object.assign({ index }, pr)),
  maps,
  metrics,
  pattern_classes: ['diagonal', 'bos', 'broadcast', 'uniform', 'local', 'mixed'],
  analysis,
  curves,
};
if (pooled) data.pooled = pooled;
if (minmax) data.minmax = minmax;
fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
fs.writeFileSync(outPath, JSON.stringify(data));
console.log(`make_sample: ${kind}: L=${L} H=${H} E=${E} P=${P} T=${T} -> ${outPath} (${(fs.statSync(outPath).size / 1e6).toFixed(2)} MB)`);
