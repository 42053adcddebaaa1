#!/usr/bin/env node
// Browser test of a rendered report.html (headless Chromium through playwright-core).
//
//   node report_test.mjs REPORT.html OUTDIR [--sections] [--validation] [--internals]
//
// Opens the report from file://, fails on any console error or page error, on any Content
// Security Policy message (the page runs its scripts by hash, without eval) and on any request
// other than file:, data: or blob:, moves the epoch slider and checks that the head map's data
// changed, clicks a token in the token-to-token view and checks that the attention lines
// changed, (with --validation) checks the validation-set view: every example plotted, the colouring
// select and the epoch slider change it, (with --internals) checks the step-by-step view of one
// query (the softmax of the recomputed scores against the recorded row) and the hidden-state norms,
// then writes OUTDIR/report.png (full page; with --sections also one PNG per section at
// 2x). Exit 0 = pass, 1 = fail (with a message), 77 = skipped (no Chromium or no playwright-core;
// the ctest skip code).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { ARGS, CHROMIUM, loadChromium, timedLog } from './browser.mjs';


const argv = process.argv.slice(2);
const sections = argv.includes('--sections');
const wantValidation = argv.includes('--validation');
const wantInternals = argv.includes('--internals');
const [reportArg, outArg] = argv.filter((a) => !a.startsWith('--'));
if (!reportArg || !outArg) {
  console.error('usage: node report_test.mjs REPORT.html OUTDIR [--sections]');
  process.exit(2);
}
const chromium = await loadChromium('report_test');
const report = path.resolve(reportArg);
if (!fs.existsSync(report)) {
  console.error(`report_test: FAIL: ${report} does not exist`);
  process.exit(1);
}
const outDir = path.resolve(outArg);
fs.mkdirSync(outDir, { recursive: true });

const log = timedLog('report_test');
const problems = [];
const errors = [];
const offline = [];
let context;
let userDir;
const watchdog = setTimeout(() => finish(`timed out after 60 s`), 60000);

async function finish(failure) {
  clearTimeout(watchdog);
  try { if (context) await context.close(); } catch { /* already gone */ }
  try { if (userDir) fs.rmSync(userDir, { recursive: true, force: true }); } catch { /* ignore */ }
  const all = [...(failure ? [failure] : []), ...problems,
    ...errors.map((e) => `console/page error: ${e}`), ...offline.map((u) => `network request: ${u}`)];
  if (all.length) {
    console.error(`report_test: FAIL (${report}):\n  - ${all.join('\n  - ')}`);
    process.exit(1);
  }
  log(`PASS (${report})`);
  process.exit(0);
}
function check(cond, msg) { if (!cond) problems.push(msg); return !!cond; }

try {
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnscope-report-test-'));
  context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, args: ARGS, headless: true,
    viewport: { width: 1440, height: 900 }, deviceScaleFactor: sections ? 2 : 1,
  });
  // Anything that is not file:, data: or blob: is recorded and refused.
  await context.route((u) => !/^(file|data|blob):/i.test(u.href), (route) => {
    offline.push(route.request().url());
    return route.abort();
  });
  context.on('request', (r) => {
    const u = r.url();
    if (!/^(file|data|blob):/i.test(u) && !offline.includes(u)) offline.push(u);
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', (err) => errors.push(String(err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err)));

  // violations of the page's Content-Security-Policy, also those the page's code catches (a refused eval)
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
  await page.goto(pathToFileURL(report).href, { waitUntil: 'load', timeout: 30000 });
  await page.waitForFunction(() => window.attnscope && window.attnscope.ready, null, { timeout: 20000 });
  const ready = await page.evaluate(() => window.attnscope.ready);
  if (!ready || ready.error) await finish(`the report did not start: ${ready && ready.error}`);
  log(`loaded (maps decoded in ${ready.decodeMs.toFixed(0)} ms, first draw done after ${ready.totalMs.toFixed(0)} ms)`);
  check(await page.locator('#fatal').isHidden(), 'the page shows a fatal error');
  if (process.env.REPORT_TEST_TIMINGS) {
    const t = await page.evaluate(() => window.attnscope.timings);
    log(`first draw per view (ms): ${Object.entries(t).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
  }

  // --- epoch slider -> head map data
  if (!(await page.locator('#sec-headmap').isVisible())) await finish('the report shows no head map (no attention maps embedded?)');
  await page.locator('#plot-headmap').scrollIntoViewIfNeeded();
  const zOf = () => page.evaluate(() => JSON.stringify(document.getElementById('plot-headmap').data?.[0]?.z ?? null));
  await page.waitForFunction(() => document.getElementById('plot-headmap').data, null, { timeout: 10000 });
  const z0 = await zOf();
  check(z0 !== 'null', 'the head map has no data');
  const max = Number(await page.locator('#epoch-slider').getAttribute('max'));
  const cur = Number(await page.locator('#epoch-slider').inputValue());
  const target = cur !== 0 ? 0 : max; // the untrained maps against the trained ones
  const tSlide = Date.now();
  await page.locator('#epoch-slider').fill(String(target));
  try {
    await page.waitForFunction((before) => JSON.stringify(document.getElementById('plot-headmap').data?.[0]?.z ?? null) !== before, z0, { timeout: 5000 });
    log(`epoch slider ${cur} -> ${target}: head map data changed (${Date.now() - tSlide} ms)`);
  } catch {
    check(false, `moving the epoch slider from ${cur} to ${target} did not change the head map's data (.data[0].z)`);
  }
  const label = await page.locator('#epoch-label').textContent();
  check(/epoch/.test(label), `the epoch label reads "${label}"`);

  // --- play / pause
  const beforePlay = Number(await page.locator('#epoch-slider').inputValue());
  await page.locator('#btn-play').click();
  await page.waitForFunction((v) => Number(document.getElementById('epoch-slider').value) !== v, beforePlay, { timeout: 5000 })
    .catch(() => check(false, 'pressing play did not move the epoch slider'));
  // pause: in one task of the page, so that no playback tick runs between the check and the click
  // (on a loaded machine a short run can play to its end, and stop by itself, before a separate
  // click lands; that click would then start it again)
  const stillPlaying = await page.evaluate(() => {
    const button = document.getElementById('btn-play');
    if (!window.attnscope.state.playing) button.click();  // it ended by itself: play again
    if (!window.attnscope.state.playing) return 'pressing play did not start playback';
    button.click();
    return window.attnscope.state.playing ? 'pressing pause did not stop playback' : '';
  });
  check(!stillPlaying, stillPlaying);

  // --- token-to-token: click a query token, the lines change; click again, they come back
  await page.locator('#t2t').scrollIntoViewIfNeeded();
  const linesOf = () => page.evaluate(() => [...document.querySelectorAll('#t2t line.t2t-line')]
    .map((l) => `${l.dataset.h}:${l.dataset.q}>${l.dataset.k}@${l.getAttribute('stroke-opacity')}`).join(' '));
  await page.waitForFunction(() => document.querySelectorAll('#t2t line.t2t-line').length > 0, null, { timeout: 5000 })
    .catch(() => check(false, 'the token-to-token view draws no lines'));
  const before = await linesOf();
  const qs = [...new Set(before.split(' ').filter(Boolean).map((s) => Number(s.split(':')[1].split('>')[0])))];
  const q0 = qs.length ? qs[qs.length - 1] : 0;
  await page.locator(`#t2t .tok.left[data-i="${q0}"]`).click();
  try {
    await page.waitForFunction((b) => [...document.querySelectorAll('#t2t line.t2t-line')]
      .map((l) => `${l.dataset.h}:${l.dataset.q}>${l.dataset.k}@${l.getAttribute('stroke-opacity')}`).join(' ') !== b, before, { timeout: 5000 });
    const after = await linesOf();
    const onlyPicked = after.split(' ').filter(Boolean).every((s) => Number(s.split(':')[1].split('>')[0]) === q0);
    check(after.length > 0 && onlyPicked, `after clicking query token ${q0} the view should show only its lines (got: ${after.slice(0, 120)})`);
    check(await page.locator(`#t2t .tok.left.sel[data-i="${q0}"]`).count() === 1, `query token ${q0} is not marked as selected`);
    log(`token-to-token: clicked query ${q0}: ${before.split(' ').length} lines -> ${after.split(' ').length}`);
  } catch {
    check(false, `clicking query token ${q0} in the token-to-token view did not change the highlighted lines`);
  }
  await page.locator(`#t2t .tok.left[data-i="${q0}"]`).click();
  await page.waitForFunction((b) => [...document.querySelectorAll('#t2t line.t2t-line')]
    .map((l) => `${l.dataset.h}:${l.dataset.q}>${l.dataset.k}@${l.getAttribute('stroke-opacity')}`).join(' ') === b, before, { timeout: 5000 })
    .catch(() => check(false, 'clicking the token again did not bring all lines back'));

  // --- every other control once (errors surface through the console / page error checks). The
  // controls are driven through DOM events, without scrolling, so that only one flush draws.
  const pick = (sel, how) => page.evaluate(([q, h]) => {
    const el = document.querySelector(q);
    if (!el || el.disabled || el.closest('[hidden]')) return false;
    if (el.tagName === 'SELECT') {
      const opts = [...el.options];
      if (!opts.length) return false;
      el.value = h === 'last' ? opts[opts.length - 1].value : h === 'second' ? opts[Math.min(1, opts.length - 1)].value : h;
      el.dispatchEvent(new Event('change', { bubbles: true }));
    } else el.click();
    return true;
  }, [sel, how]);
  const flush = () => page.evaluate(() => window.attnscope.flush());
  await pick('#sel-layer', 'last');
  await pick('#sel-head', 'last');
  await pick('#sel-probe', 'last');
  if (await pick('#seg-mode [data-mode=scores]')) {
    await flush();
    const zs = await page.evaluate(() => document.getElementById('plot-headmap').data[0].z.flat());
    check(zs.some((v) => v < 0), 'in scores mode the head map shows no negative value');
    await pick('#seg-mode [data-mode=probs]');
  }
  await pick('#t2t-all');
  await pick('#sel-metric', 'second');
  await pick('#sel-query', 'mean');
  await pick('#sel-target', 'last');
  await pick('#mm-grid-k', '1');
  await pick('#mm-grid-mode [data-mode=scores]');
  if (await pick('#metric-table th[data-key=entropy_norm]')) {
    await flush();
    const col = await page.evaluate(() => {
      const i = [...document.querySelectorAll('#metric-table th')].findIndex((th) => th.dataset.key === 'entropy_norm');
      return [...document.querySelectorAll('#metric-table tbody tr')].map((tr) => parseFloat(tr.children[i].textContent)).filter((v) => !Number.isNaN(v));
    });
    check(col.length > 1 && col.every((v, i) => i === 0 || col[i - 1] >= v), `sorting the metric table by entropy_norm did not sort it (descending): ${col.slice(0, 6).join(', ')}`);
  }
  await pick('#head-grid canvas');
  check(await page.locator('#sel-layer').inputValue() === '0' && await page.locator('#sel-head').inputValue() === '0',
    'clicking the first map of the head grid did not select layer 0, head 0');
  log('exercised the other controls');

  // --- every stale view drawn; every shown plot has content
  await page.evaluate(() => window.attnscope.flush());
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50))));
  const empty = await page.evaluate(() => [...document.querySelectorAll('section:not([hidden]) .plot')]
    .filter((d) => !d.hidden && d.offsetParent !== null && !d.closest('[hidden]'))
    .filter((d) => !d.classList.contains('js-plotly-plot') && !d.querySelector('.note'))
    .map((d) => d.id));
  check(empty.length === 0, `plots left empty: ${empty.join(', ')}`);
  const grid = await page.locator('#head-grid canvas').count();
  check(grid > 0, 'the head grid has no maps');
  const rows = await page.locator('#metric-table tbody tr').count();
  check(rows > 0, 'the metric table has no rows');
  // WebGL views under the page's policy: plotly's regl compiles code with Function() at times and
  // fails silently (no context, an empty plot) when the policy refuses eval
  const gl = await page.evaluate(() => {
    const gd = document.getElementById('plot-parcoords');
    return gd?._fullLayout?._glcanvas ? gd._fullLayout._glcanvas.data().map((d) => !!d.regl) : null;
  });
  if (gl) check(gl.length > 0 && gl.every(Boolean), `the focus view's WebGL canvases have no regl context (${gl})`);
  const violations = await page.evaluate(() => window.__violations);
  check(violations.length === 0, `Content-Security-Policy violations: ${violations.join(', ')}`);

  // --- gradient attribution: attention x gradient per head, gradient x input among the token bars
  if (await page.evaluate(() => !document.getElementById('plot-attngrad').hidden)) {
    const ag = await page.evaluate(() => {
      const d = document.getElementById('plot-attngrad').data?.[0];
      const bars = (document.getElementById('plot-tokimp').data ?? []).map((t) => t.name);
      return { cells: d ? d.z.flat().filter((v) => Number.isFinite(v)).length : 0, bars };
    });
    check(ag.cells > 0, 'the attention x gradient view has no finite cell');
    check(ag.bars.some((n) => /gradient/.test(n)), `the token importance bars lack gradient x input: ${ag.bars.join(', ')}`);
  } else check(false, 'the report shows no attention x gradient view (the run records gradient attribution)');

  // --- head redundancy: the heads' JS distances, ordered by clustering, and clusters over training
  if (await page.locator('#sec-redundancy').isVisible()) {
    await page.locator('#sec-redundancy').scrollIntoViewIfNeeded();
    await page.evaluate(() => window.attnscope.flush());
    const red = await page.evaluate(() => ({
      z: document.getElementById('plot-redundancy').data?.[0]?.z?.length ?? 0,
      lines: document.getElementById('plot-clusters').data?.length ?? 0,
    }));
    check(red.z >= 2 && red.lines === 3, `the head redundancy view is empty (${JSON.stringify(red)})`);
  }

  // --- inside a head: one query step by step, from the recorded q, k, v; hidden-state norms
  if (await page.locator('#sec-internals').isVisible()) {
    await page.locator('#sec-internals').scrollIntoViewIfNeeded();
    await pick('#sel-probe', '0');
    await flush();
    const step = () => page.evaluate(() => {
      const probs = document.getElementById('plot-step-probs').data ?? [];
      const values = document.getElementById('plot-step-values').data?.[0];
      const norms = document.getElementById('plot-norms').data?.[0];
      return {
        softmax: probs[0]?.y ?? [], recorded: probs[1]?.y ?? [], rows: values?.z?.length ?? 0,
        scores: JSON.stringify(document.getElementById('plot-step-scores').data?.[0]?.y ?? null),
        norms: (norms?.z ?? []).flat().filter((v) => Number.isFinite(v)).length,
        options: document.querySelectorAll('#sel-step-query option').length,
      };
    });
    const s0 = await step();
    const sum = s0.softmax.reduce((a, b) => a + b, 0);
    check(s0.softmax.length > 1 && Math.abs(sum - 1) < 1e-3, `the step-by-step softmax does not sum to 1 (${sum}, ${s0.softmax.length} keys)`);
    const diff = Math.max(...s0.recorded.map((x, j) => Math.abs(x - s0.softmax[j])));
    check(s0.recorded.length === s0.softmax.length && diff < 0.03, `the recomputed softmax differs from the recorded attention row by ${diff}`);
    check(s0.rows === s0.softmax.length + 2, `the weighted values hold ${s0.rows} rows; expected the keys, their sum and the recorded context`);
    check(s0.norms > 0, 'the hidden-state norm map is empty');
    const q0 = await page.locator('#sel-step-query').inputValue();
    await pick('#sel-step-query', q0 === '0' ? 'last' : '0');  // another query token than the current one
    await flush();
    const s1 = await step();
    check(s1.scores !== s0.scores, 'choosing another query token did not change the scores');
    log(`step by step: ${s0.softmax.length} keys, recomputed vs recorded attention within ${diff.toFixed(4)}; ${s0.norms} hidden-state norms`);
  } else check(!wantInternals, 'the report shows no step-by-step view (the run records q, k, v)');

  // --- the validation set in embedding space: every example a point; the colouring and the epoch change it
  if (await page.locator('#sec-validation').isVisible()) {
    await page.locator('#sec-validation').scrollIntoViewIfNeeded();
    await page.evaluate(() => window.attnscope.flush());
    const state = () => page.evaluate(() => {
      const data = document.getElementById('plot-validation').data ?? [];
      return {
        points: data.reduce((s, t) => s + (t.x?.length ?? 0), 0),
        xy: JSON.stringify(data.map((t) => [t.x, t.y])),
        colours: JSON.stringify(data.map((t) => [t.name, t.marker?.color])),
        options: [...document.querySelectorAll('#sel-valcolour option')].map((o) => o.value),
      };
    });
    const v0 = await state();
    check(v0.points > 0, 'the validation-set view plots no point');
    check(v0.options.some((o) => /cluster/.test(o)) && v0.options.some((o) => /target/.test(o)),
      `the validation-set colourings lack the target or the clusters: ${v0.options.join(', ')}`);
    const other = v0.options.find((o) => /prediction|predicted/.test(o)) ?? v0.options[0];
    await pick('#sel-valcolour', other);
    await flush();
    const v1 = await state();
    check(v1.points === v0.points && v1.colours !== v0.colours, `colouring by "${other}" did not recolour the ${v0.points} points`);
    const now = Number(await page.locator('#epoch-slider').inputValue());
    await page.locator('#epoch-slider').fill(String(now === 0 ? max : 0));
    await flush();
    const v2 = await state();
    check(v2.points === v0.points && v2.xy !== v1.xy, `moving from epoch index ${now} to ${now === 0 ? max : 0} did not move the validation points`);
    log(`validation set: ${v0.points} points; recoloured by "${other}"; moved with the epoch`);
  } else check(!wantValidation, 'the report shows no validation-set view (the run records validation vectors)');

  // --- a metric explained: its formula, how to read it, a reference
  const info = page.locator('#metric-table [data-doc="entropy_norm"]');
  if (check(await info.count() === 1, 'the metric table has no explanation button for entropy_norm')) {
    await info.click();
    const doc = page.locator('#metric-doc');
    check(await doc.isVisible(), 'clicking ⓘ next to entropy_norm shows no explanation');
    const text = await doc.innerText();
    check(/ln n/.test(text) && /How to read it/.test(text) && /Reference/.test(text), `the explanation lacks a formula, a reading or a reference: ${text.slice(0, 160)}`);
    await doc.locator('.close').click();
    check(await doc.isHidden(), 'the explanation does not close');
  }

  // --- screenshots
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(outDir, 'report.png'), fullPage: true });

  // --- the dark theme follows the browser's preference, plots included
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction(() => window.attnscope && window.attnscope.ready, null, { timeout: 20000 });
  await page.evaluate(() => window.attnscope.ready);
  await page.waitForFunction(() => document.getElementById('plot-headmap').layout, null, { timeout: 10000 });
  const dark = await page.evaluate(() => ({
    bg: getComputedStyle(document.body).backgroundColor,
    paper: document.getElementById('plot-headmap').layout.paper_bgcolor,
  }));
  check(dark.bg === 'rgb(18, 23, 29)' && dark.paper === '#1b2129', `dark theme not applied: body ${dark.bg}, plot ${dark.paper}`);
  await page.screenshot({ path: path.join(outDir, 'report_dark.png'), fullPage: false });
  log('metric explanation and dark theme checked');
  if (sections) {
    await page.addStyleTag({ content: '.controls { position: static !important; }' });
    for (const id of await page.evaluate(() => [...document.querySelectorAll('section:not([hidden])')].map((s) => s.id))) {
      await page.locator(`#${id}`).screenshot({ path: path.join(outDir, `${id}.png`) });
    }
  }
  log(`screenshot ${path.join(outDir, 'report.png')}`);
  await finish(null);
} catch (err) {
  await finish(`unexpected: ${err && err.stack ? err.stack.split('\n').slice(0, 4).join(' | ') : err}`);
}
