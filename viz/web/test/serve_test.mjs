#!/usr/bin/env node
// Browser test of `attnscope serve` (headless Chromium through playwright-core).
//
//   node serve_test.mjs ATTNSCOPE_EXE MODEL OUTDIR
//
// Starts `attnscope serve MODEL --port 0`, opens its page, types an input and checks that the
// head map and the metrics table fill, that choosing another head changes the head map, that an
// invalid input gets a message next to the box (and the page still works after it), and, for a
// masked-LM model, that a masked input shows five tokens at the mask. Then, with /api/info and
// /api/attention answered with names that are markup (checkpoint file names, tokens, ids, pattern
// classes, labels, the mask token, an error message: issue 33, item 5), that each shows as text
// and no handler runs, and that the page's Content-Security-Policy blocks an inline handler and an
// inline script injected on purpose. Fails on any console error or page error, on any Content
// Security Policy message, and on any request that leaves the server's origin (data: and blob:
// are local). Writes OUTDIR/serve.png. Exit 0 = pass, 1 = fail, 77 = skipped (no Chromium or playwright-core).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ARGS, CHROMIUM, loadChromium, probePolicy, timedLog } from './browser.mjs';


const [exe, model, outArg] = process.argv.slice(2);
if (!exe || !model || !outArg) {
  console.error('usage: node serve_test.mjs ATTNSCOPE_EXE MODEL OUTDIR');
  process.exit(2);
}
const chromium = await loadChromium('serve_test');
const outDir = path.resolve(outArg);
fs.mkdirSync(outDir, { recursive: true });

const log = timedLog('serve_test');
const problems = [];
const errors = [];
const outside = [];
let context;
let userDir;
let server;
const watchdog = setTimeout(() => finish('timed out after 120 s'), 120000);

async function finish(failure) {
  clearTimeout(watchdog);
  try { if (context) await context.close(); } catch { /* already gone */ }
  try { if (userDir) fs.rmSync(userDir, { recursive: true, force: true }); } catch { /* ignore */ }
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    const code = await new Promise((r) => { server.on('exit', (c, s) => r(c ?? s)); setTimeout(() => r('still running'), 5000); });
    if (code !== 0) problems.push(`the server did not stop cleanly on SIGTERM (exit ${code})`);
  }
  const all = [...(failure ? [failure] : []), ...problems,
    ...errors.map((e) => `console/page error: ${e}`), ...outside.map((u) => `request outside the server: ${u}`)];
  if (all.length) {
    console.error(`serve_test: FAIL:\n  - ${all.join('\n  - ')}`);
    process.exit(1);
  }
  log('PASS');
  process.exit(0);
}
function check(cond, msg) { if (!cond) problems.push(msg); return !!cond; }

try {
  // --- the server, on a free port (it prints "open http://127.0.0.1:PORT/")
  server = spawn(exe, ['serve', model, '--port', '0', '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  server.stderr.on('data', (d) => { said += d; });
  const origin = await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => {
      said += d;
      const m = /open (http:\/\/127\.0\.0\.1:\d+)\//.exec(said);
      if (m) resolve(m[1]);
    });
    server.on('exit', (c) => reject(new Error(`the server exited (${c}): ${said}`)));
    setTimeout(() => reject(new Error(`the server did not start within 30 s: ${said}`)), 30000);
  });
  log(`server at ${origin}`);

  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnscope-serve-test-'));
  context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1400, height: 900 },
  });
  const local = (u) => u.startsWith(`${origin}/`) || /^(data|blob):/i.test(u);
  await context.route((u) => !local(u.href), (route) => { outside.push(route.request().url()); return route.abort(); });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) errors.push(`CSP: ${m.text()}`);
    else if (m.type() === 'error' && !/status of 400/.test(m.text())) errors.push(m.text());
  });
  page.on('pageerror', (err) => errors.push(String(err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err)));

  await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 60000 });
  log('page loaded');
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 20000 });
  check(await page.locator('#fatal').isHidden(), 'the page shows a fatal error');
  const info = await page.evaluate(() => fetch('/api/info').then((r) => r.json()));
  log(`model: ${info.architecture}, ${info.input} input, head ${info.head}`);

  // --- an input: the head map and the metrics table fill
  const example = { smiles: 'CC(=O)Oc1ccccc1C(=O)O', minmax: '3 max 5' }[info.input] || 'the cat sat on the mat';
  await page.locator('#input').fill(example);
  await page.locator('#submit').click();
  await page.waitForFunction(() => document.body.dataset.renders === '1', null, { timeout: 20000 });
  const zOf = () => page.evaluate(() => JSON.stringify(document.getElementById('plot-head').data?.[0]?.z ?? null));
  const z0 = await zOf();
  check(z0 !== 'null' && JSON.parse(z0).length >= 4, 'the head map has no data after the first input');
  const rows = await page.locator('#metrics tbody tr').count();
  check(rows === info.layers * info.heads, `the metrics table has ${rows} rows; expected ${info.layers * info.heads}`);
  const cells = await page.locator('#metrics tbody tr').first().locator('td').allTextContents();
  check(cells.slice(3).some((c) => /^\d/.test(c)), `the metrics table shows no numbers: ${cells.join(' | ')}`);
  check(await page.locator('#grid canvas').count() === info.layers * info.heads, 'the head grid does not show every head');
  log(`first input: ${JSON.parse(z0).length} tokens, ${rows} metric rows`);

  // --- another head (click in the grid): the head map changes
  await page.locator('#grid figure').last().click();
  await page.waitForFunction((b) => JSON.stringify(document.getElementById('plot-head').data?.[0]?.z ?? null) !== b, z0, { timeout: 5000 })
    .catch(() => check(false, 'choosing the last head in the grid did not change the head map'));
  // --- another input: the map and the metrics update
  const m0 = await page.locator('#metrics tbody').innerText();
  await page.locator('#input').fill({ smiles: 'c1ccccc1O', minmax: '7 min 2' }[info.input] || 'a dog ran home');
  await page.locator('#submit').click();
  await page.waitForFunction(() => document.body.dataset.renders === '2', null, { timeout: 20000 });
  check(await page.locator('#metrics tbody').innerText() !== m0, 'the metrics table did not change with a new input');
  check(await page.locator('#recent button').count() >= 2, 'the recent inputs list does not hold both inputs');

  // --- an invalid input: a message next to the box, nothing else breaks
  await page.locator('#input').fill({ smiles: 'C1CC((', minmax: '3 plus 5' }[info.input] || '   ');
  await page.locator('#submit').click();
  await page.waitForFunction(() => document.getElementById('input-error').textContent.length > 0, null, { timeout: 10000 })
    .catch(() => check(false, 'an invalid input got no message next to the box'));
  log(`invalid input: "${await page.locator('#input-error').textContent()}"`);

  // --- a masked input: five tokens at the mask
  if (info.head === 'masked_lm') {
    const masked = info.input === 'smiles' ? `CC(=O)O${info.mask_token}1ccccc1C(=O)O` : `the cat sat on the ${info.mask_token}`;
    await page.locator('#input').fill(masked);
    await page.locator('#submit').click();
    await page.waitForFunction(() => document.body.dataset.renders === '3', null, { timeout: 20000 });
    const top = await page.locator('#masks tbody tr').count();
    check(top === 5, `the masked input shows ${top} predictions at the mask; expected 5`);
    check((await page.locator('#input-error').textContent()) === '', 'the error message stayed after a valid input');
    log(`masked input: ${top} tokens at ${info.mask_token}: ${(await page.locator('#masks tbody tr').allTextContents()).map((t) => t.trim()).join(' | ')}`);
    await page.locator('#input').fill(example);
    await page.locator('#submit').click();
    await page.waitForFunction(() => document.body.dataset.renders === '4', null, { timeout: 20000 });
  }
  if (info.input === 'smiles') {
    await page.waitForFunction(() => document.querySelector('#mol-img img'), null, { timeout: 10000 })
      .catch(() => check(false, 'the molecule drawing did not appear'));
  }
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 300))));
  await page.screenshot({ path: path.join(outDir, 'serve.png'), fullPage: true });
  log(`screenshot: ${path.join(outDir, 'serve.png')}`);
  await hostileNames(origin, info);
  await finish();
} catch (err) {
  await finish(`${err.message}`);
}

// Names that are markup, from the server's answers (issue 33, item 5): shown as text, never run.
async function hostileNames(origin, info) {
  const H = (tag) => `${tag}"><img src=x onerror="window.__xss='${tag}'">'<svg onload="window.__xss='${tag}-svg'"></svg></script><script>window.__xss='${tag}-script'</script>`;
  const ckpt = `${H('ckpt')}.pt`, mask = H('mask');
  const page = await context.newPage();
  let expectingViolation = false;
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) { if (!expectingViolation) errors.push(`CSP (hostile names): ${m.text()}`); }
    else if (m.type() === 'error' && !/status of 400/.test(m.text())) errors.push(`(hostile names) ${m.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`(hostile names) ${String(err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err)}`));
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
  await page.route(`${origin}/api/info`, async (route) => {
    const res = await route.fetch();
    const j = await res.json();
    j.checkpoints = [{ name: ckpt, epoch: 3, default: true }, { name: `b'"<i>&amp;.pt`, epoch: null, default: false }];
    j.mask_token = mask;
    j.head = 'masked_lm';
    return route.fulfill({ response: res, json: j });
  });
  await page.route(`${origin}/api/attention`, async (route) => {
    const body = JSON.parse(route.request().postData() || '{}');
    if (body.input === 'fail') {
      return route.fulfill({ status: 400, contentType: 'application/json', body: JSON.stringify({ error: H('error'), status: 400 }) });
    }
    delete body.checkpoint;  // (the server does not know the hostile checkpoint)
    const res = await route.fetch({ postData: JSON.stringify(body) });
    const r = await res.json();
    if (!res.ok() || !Array.isArray(r.tokens)) {
      check(false, `the server did not answer the hostile page's input: ${JSON.stringify(r).slice(0, 200)}`);
      return route.fulfill({ response: res });
    }
    r.tokens = r.tokens.map((_, i) => H(`tok${i}`));
    r.ids = r.ids.map((_, i) => H(`id${i}`));
    r.patterns = r.patterns.map((row) => row.map((_, h) => H(`pattern${h}`)));
    r.checkpoint = ckpt;
    r.epoch = 3;
    r.molecule = false;
    r.prediction = { problem: 'classification', label: H('label'), outputs: [{ label: H('output'), probability: 0.75, logit: 1.1 }] };
    r.masks = [{ position: 1, top: [{ token: H('top'), probability: 0.5 }] }];
    return route.fulfill({ response: res, json: r });
  });
  await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 60000 });
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 20000 });
  const options = await page.evaluate(() => [...document.querySelectorAll('#sel-checkpoint option')].map((o) => [o.value, o.textContent, o.selected]));
  check(options.length === 2 && options[0][0] === ckpt && options[0][1] === `${ckpt} (epoch 3)` && options[0][2],
    `the hostile checkpoint name is not an option of its own, as text: ${JSON.stringify(options)}`);
  check(options[1]?.[0] === `b'"<i>&amp;.pt` && options[1]?.[1] === `b'"<i>&amp;.pt`, `quotes, markup and entities in a checkpoint name change it: ${JSON.stringify(options[1])}`);
  await page.locator('#input').fill({ smiles: 'CCO', minmax: '3 max 5' }[info.input] || 'the cat sat on the mat');
  await page.locator('#submit').click();
  await page.waitForFunction(() => document.body.dataset.renders === '1', null, { timeout: 20000 });
  const shown = await page.evaluate(() => ({
    token: document.querySelector('#tokens .tok')?.textContent, id: document.querySelector('#tokens .tok')?.title,
    query: document.querySelector('#sel-query option')?.textContent,
    flow: document.querySelector('#flow text')?.textContent,
    head: document.getElementById('plot-head').querySelector('.gtitle')?.textContent ?? '',
    pattern: document.querySelector('#metrics tbody td:nth-child(3)')?.textContent,
    prediction: document.getElementById('prediction').textContent,
    masks: document.querySelector('#masks h3')?.textContent, top: document.querySelector('#masks code')?.textContent,
    timing: document.getElementById('timing').textContent,
  }));
  check(shown.token === H('tok0') && shown.id === `id ${H('id0')}`, `a token shows as ${JSON.stringify([shown.token, shown.id])}`);
  check(shown.query === `0: ${H('tok0')}` && shown.flow === H('tok0'), `the query select / token view show ${JSON.stringify([shown.query, shown.flow])}`);
  check(shown.head.includes(H('pattern0')), `the head map's title does not show the pattern class as text: ${shown.head}`);
  check(shown.pattern === H('pattern0'), `the metrics table shows the pattern class as ${JSON.stringify(shown.pattern)}`);
  check(shown.prediction.includes(H('label')) && shown.prediction.includes(H('output')), `the prediction shows ${shown.prediction.slice(0, 200)}`);
  check(shown.masks === `${mask} at token 1` && shown.top === H('top'), `the masked-LM table shows ${JSON.stringify([shown.masks, shown.top])}`);
  check(shown.timing.includes(`checkpoint ${ckpt}`), `the timing line shows ${shown.timing}`);
  await page.locator('#input').fill('fail');
  await page.locator('#submit').click();
  await page.waitForFunction(() => document.getElementById('input-error').textContent.length > 0, null, { timeout: 10000 });
  check(await page.locator('#input-error').textContent() === H('error'), 'the error message does not show as text');
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 300))));
  const after = await page.evaluate(() => ({
    xss: window.__xss, violations: window.__violations,
    handlers: [...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => /^on/i.test(a.name))).map((el) => el.outerHTML.slice(0, 80)),
    scripts: document.scripts.length,
  }));
  check(after.xss === undefined, `a handler from the server's answers ran: window.__xss = ${after.xss}`);
  check(after.handlers.length === 0, `elements with inline handlers were created from the answers: ${after.handlers.join(' | ')}`);
  check(after.scripts === 4, `the page holds ${after.scripts} script elements; expected 4 (plotly.js, umap-js, data, app)`);
  check(after.violations.length === 0, `CSP violations: ${after.violations.join(', ')}`);
  // the policy: an inline handler and an inline script injected on purpose never run
  expectingViolation = true;
  const blocked = await probePolicy(page);
  expectingViolation = false;
  for (const p of blocked.problems) check(false, p);
  log(`hostile names shown as text, none ran; the policy blocked an injected handler and script (${blocked.violations.join(', ')})`);
  await page.close();
}
