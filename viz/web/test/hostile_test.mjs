#!/usr/bin/env node
// Script injection through names (issue 33, item 5), in headless Chromium.
//
//   node hostile_test.mjs PAGE.html OUTDIR --report|--compare
//
// Takes a page that `attnscope render` (report.html) or `attnscope compare` (compare.html) wrote,
// replaces the names in its data (run names and paths, probe texts, tokens, metric, target,
// curve, colouring, scaffold and operator names) by markup with inline handlers, leaves its
// scripts as they are (their SHA-256 are in the page's Content-Security-Policy), writes
// OUTDIR/hostile.html and opens it: every view is drawn, the names must show as text, no handler
// may run (window.__xss stays undefined, no element with an inline handler exists) and no CSP
// violation may be reported. Then it injects an inline handler and an inline script itself and
// checks that the policy blocks both. Exit 0 = pass, 1 = fail, 77 = skipped (no Chromium or no
// playwright-core).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { ARGS, CHROMIUM, loadChromium, probePolicy, timedLog } from './browser.mjs';


const argv = process.argv.slice(2);
const kind = argv.includes('--compare') ? 'compare' : argv.includes('--report') ? 'report' : null;
const [pageArg, outArg] = argv.filter((a) => !a.startsWith('--'));
if (!pageArg || !outArg || !kind) {
  console.error('usage: node hostile_test.mjs PAGE.html OUTDIR --report|--compare');
  process.exit(2);
}
const chromium = await loadChromium('hostile_test');

// A name that is markup: an attribute break-out with a handler, a script element, an SVG onload.
const hostile = (tag) => `${tag}"><img src=x onerror="window.__xss='${tag}'">'<svg onload="window.__xss='${tag}-svg'"></svg></script><script>window.__xss='${tag}-script'</script><!--<script>`;

// ---- the hostile page: the data block replaced, everything else byte for byte
const DATA = /(<script id="attnscope-data" type="application\/json">)([^<]*)(<\/script>)/;
const original = fs.readFileSync(path.resolve(pageArg), 'utf8');
const m = DATA.exec(original);
if (!m) {
  console.error(`hostile_test: FAIL: ${pageArg} has no <script id="attnscope-data"> block`);
  process.exit(1);
}
const D = JSON.parse(m[2]);
const rename = (obj, from, to) => { if (obj && Object.hasOwn(obj, from)) { obj[to] = obj[from]; delete obj[from]; } };
const expect = {};  // what the page must show as text
if (kind === 'report') {
  const run = D.run;
  run.name = expect.run = hostile('run');
  run.source = hostile('source');
  run.config_yaml = hostile('config');
  run.model = { ...run.model, [hostile('model-key')]: hostile('model-value') };
  run.final = { ...run.final, [hostile('final')]: 1 };
  D.model = { source: `models/${hostile('snapshot')}` };
  for (const [p, pr] of D.probes.entries()) {
    pr.text = hostile(`probe${p}`);
    pr.tokens = pr.tokens.map((_, k) => (k % 2 ? hostile(`tok${k}`) : `<b>${k}</b>'"`));
    pr.targets = { ...pr.targets, [hostile('target')]: p % 3 };
  }
  const metric = D.metrics.names.find((n) => n !== 'pattern' && n !== 'entropy_norm');
  expect.metric = hostile('metric');
  D.metrics.names = D.metrics.names.map((n) => (n === metric ? expect.metric : n));
  rename(D.metrics.values, metric, expect.metric);
  D.pattern_classes = D.pattern_classes.map((c) => hostile(`class-${c}`));
  const curve = Object.keys(D.curves).find((k) => k !== 'epoch' && /loss/.test(k));
  rename(D.curves, curve, hostile('curve-loss'));
  if (D.validation) {
    D.validation.text = D.validation.text.map((_, i) => hostile(`val${i}`));
    D.validation.scaffolds = (D.validation.scaffolds || []).map((_, i) => hostile(`scaffold${i}`));
    for (const c of D.validation.fixed || []) c.name = hostile(`fixed-${c.name}`);
    for (const row of D.validation.epochs) for (const c of row?.colourings || []) c.name = hostile(`col-${c.name}`);
  }
  if (D.minmax) {
    for (const row of D.minmax.over_training || []) { rename(row, 'max', hostile('op-max')); rename(row, 'min', hostile('op-min')); }
    for (const row of D.minmax.final || []) row.op = hostile(`final-${row.op}`);
    if (D.minmax.grid) D.minmax.grid.ops = D.minmax.grid.ops.map((o) => hostile(`grid-${o}`));
  }
} else {
  expect.run = hostile('run-a');
  D.runs = D.runs.map((r, i) => ({ ...r, name: i === 0 ? expect.run : hostile(`run-${i}`), path: hostile(`path-${i}`), label: hostile(`label-${i}`),
    curves: r.curves.map((row) => { const c = { ...row }; rename(c, 'val_loss', hostile('curve')); return c; }) }));
  for (const [p, pr] of D.probes.entries()) {
    pr.text = hostile(`probe${p}`);
    pr.tokens = pr.tokens.map((_, k) => hostile(`tok${k}`));
  }
  const metric = Object.keys(D.pairs[0].metric_diff_matched).find((k) => k !== 'entropy_norm');
  expect.metric = hostile('metric');
  for (const pr of D.pairs) { rename(pr.metric_diff, metric, expect.metric); rename(pr.metric_diff_matched, metric, expect.metric); }
  for (const r of D.runs) rename(r.timelines, metric, expect.metric);
}
// as attnscope writes it: "<" inside JSON strings as \u003c
const json = JSON.stringify(D).replaceAll('<', '\\u003c');
const outDir = path.resolve(outArg);
fs.mkdirSync(outDir, { recursive: true });
const hostilePage = path.join(outDir, 'hostile.html');
fs.writeFileSync(hostilePage, original.slice(0, m.index) + m[1] + json + m[3] + original.slice(m.index + m[0].length));

// ---- the browser
const log = timedLog('hostile_test');
const problems = [];
const errors = [];
const csp = [];
let expectingViolation = false;
let context;
let userDir;
const watchdog = setTimeout(() => finish('timed out after 90 s'), 90000);

async function finish(failure) {
  clearTimeout(watchdog);
  try { if (context) await context.close(); } catch { /* already gone */ }
  try { if (userDir) fs.rmSync(userDir, { recursive: true, force: true }); } catch { /* ignore */ }
  const all = [...(failure ? [failure] : []), ...problems, ...errors.map((e) => `console/page error: ${e}`),
    ...csp.map((e) => `Content Security Policy message: ${e}`)];
  if (all.length) {
    console.error(`hostile_test: FAIL (${kind}, ${hostilePage}):\n  - ${all.join('\n  - ')}`);
    process.exit(1);
  }
  log(`PASS (${kind})`);
  process.exit(0);
}
function check(cond, msg) { if (!cond) problems.push(msg); return !!cond; }

try {
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnscope-hostile-test-'));
  context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1440, height: 900 },
  });
  await context.route((u) => !/^(file|data|blob):/i.test(u.href), (route) => route.abort());
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy/i.test(text)) { if (!expectingViolation) csp.push(text); return; }
    if (msg.type() === 'error' && !/ERR_FILE_NOT_FOUND|ERR_FAILED/.test(text)) errors.push(text);
  });
  page.on('pageerror', (err) => errors.push(String(err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err)));
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
      `${e.violatedDirective}: ${e.blockedURI}${e.blockedURI === 'eval' ? ` at ${e.lineNumber}:${e.columnNumber} (${e.sample})` : ''}`));
  });

  await page.goto(pathToFileURL(hostilePage).href, { waitUntil: 'load', timeout: 30000 });
  if (kind === 'report') {
    await page.waitForFunction(() => window.attnscope && window.attnscope.ready, null, { timeout: 20000 });
    const ready = await page.evaluate(() => window.attnscope.ready);
    if (!ready || ready.error) await finish(`the report did not start: ${ready && ready.error}`);
    // every select once on its last option (the hostile names among them), every view drawn
    for (const id of ['sel-metric', 'sel-target', 'sel-valcolour', 'sel-probe', 'sel-query', 'sel-step-query']) {
      await page.evaluate((i) => {
        const el = document.getElementById(i);
        if (!el || el.disabled || !el.options.length) return;
        el.value = el.options[el.options.length - 1].value;
        el.dispatchEvent(new Event('change', { bubbles: true }));
      }, id);
    }
    await page.evaluate((metric) => {
      const el = document.getElementById('sel-metric');
      el.value = metric;
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }, expect.metric);
    await page.evaluate(() => window.attnscope.flush());
    const shown = await page.evaluate(() => ({
      title: document.getElementById('run-title').textContent,
      metricOption: [...document.querySelectorAll('#sel-metric option')].map((o) => [o.value, o.textContent]),
      metricColumn: [...document.querySelectorAll('#metric-table th[data-key]')].map((th) => th.dataset.key),
      probe: document.getElementById('plot-headmap').querySelector('.gtitle')?.textContent ?? '',
      timeline: document.getElementById('plot-timeline').querySelector('.gtitle')?.textContent ?? '',
    }));
    check(shown.title === expect.run, `the run's name shows as ${JSON.stringify(shown.title)}`);
    check(shown.metricOption.some(([v, t]) => v === expect.metric && t === expect.metric), 'the hostile metric name is not an option of its own, as text');
    check(shown.metricColumn.includes(expect.metric), 'the metric table has no column keyed by the hostile metric name');
    check(shown.probe.includes('"><img src=x onerror="window.__xss='), `the head map's title does not show the probe's text as text: ${shown.probe}`);
    check(shown.timeline.startsWith(expect.metric), `the timeline's title does not show the metric's name as text: ${shown.timeline}`);
  } else {
    await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 20000 });
    await page.evaluate((metric) => {
      const el = document.getElementById('sel-metric');
      el.value = metric;
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }, expect.metric);
    const shown = await page.evaluate(() => ({
      title: document.getElementById('cmp-title').textContent,
      cell: document.querySelector('#runs-table td')?.textContent ?? '',
      js: document.getElementById('plot-js').querySelector('.gtitle')?.textContent ?? '',
      diff: document.getElementById('plot-diff').querySelector('.gtitle')?.textContent ?? '',
      curves: (document.getElementById('plot-curves').data ?? []).length,
    }));
    check(shown.title.startsWith(expect.run), `the title shows ${JSON.stringify(shown.title)}`);
    check(shown.cell === expect.run, `the runs table shows ${JSON.stringify(shown.cell)}`);
    check(shown.js.includes(expect.run), `the JS matrix's title does not show the run's name as text: ${shown.js}`);
    check(shown.diff.startsWith(expect.metric), `the metric difference's title does not show the metric's name as text: ${shown.diff}`);
    check(shown.curves > 0, 'the training curves are not drawn');
  }
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 300))));
  const after = await page.evaluate(() => ({
    xss: window.__xss, violations: window.__violations,
    handlers: [...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => /^on/i.test(a.name))).map((el) => el.outerHTML.slice(0, 80)),
    scripts: document.scripts.length,
  }));
  check(after.xss === undefined, `a handler from the data ran: window.__xss = ${after.xss}`);
  check(after.handlers.length === 0, `elements with inline handlers were created from the data: ${after.handlers.join(' | ')}`);
  check(after.scripts === 4, `the page holds ${after.scripts} script elements; expected 4 (plotly.js, umap-js, data, app)`);
  check(after.violations.length === 0, `CSP violations: ${after.violations.join(', ')}`);
  await page.screenshot({ path: path.join(outDir, `hostile_${kind}.png`), fullPage: false });
  log(`names shown as text, no handler ran (${kind})`);

  // ---- the policy itself: an inline handler and an inline script, injected on purpose, never run
  expectingViolation = true;
  const blocked = await probePolicy(page);
  expectingViolation = false;
  for (const p of blocked.problems) check(false, p);
  log(`the policy blocked an injected handler and script (${blocked.violations.join(', ')})`);
  await finish(null);
} catch (err) {
  await finish(`unexpected: ${err && err.stack ? err.stack.split('\n').slice(0, 4).join(' | ') : err}`);
}
