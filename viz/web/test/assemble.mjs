#!/usr/bin/env node
// Inlines viz/web/report.html + report.css + the libraries + a data JSON + report.js into one
// self-contained report.html, exactly as docs/report-data.md's table says, with the SHA-256 of each
// inlined script in the page's Content-Security-Policy (the C++ renderer, `attnscope render`, does
// the same in viz/page.cpp).
//
//   node assemble.mjs DATA.json OUT.html
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [dataPath, outPath] = process.argv.slice(2);
if (!dataPath || !outPath) {
  console.error('usage: node assemble.mjs DATA.json OUT.html');
  process.exit(2);
}
const read = (rel) => fs.readFileSync(path.join(web, rel), 'utf8');
// Library files, relative to viz/web (the paths in docs/report-data.md).
const LIBS = ['node_modules/plotly.js-dist-min/plotly.min.js', 'node_modules/umap-js/lib/umap-js.min.js'];

const template = read('report.html');
const css = read('report.css');
const app = read('report.js');
const libs = LIBS.map((rel) => {
  const text = read(rel);
  if (/<\/script/i.test(text)) throw new Error(`${rel} contains "</script": it cannot be inlined`);
  return text;
});
const json = fs.readFileSync(dataPath, 'utf8');
JSON.parse(json); // fail early on a broken data file

// each script's text as the browser sees it (line ends normalised) and its CSP hash
const scripts = [...libs, app].map((t) => `\n${t.replace(/\r\n?/g, '\n')}\n`);
const hash = (t) => `'sha256-${crypto.createHash('sha256').update(t, 'utf8').digest('base64')}'`;
const parts = {
  '<!--ATTNSCOPE:script-hashes-->': scripts.map(hash).join(' '),
  '<!--ATTNSCOPE:style-->': `<style>\n${css}\n</style>`,
  '<!--ATTNSCOPE:libs-->': scripts.slice(0, -1).map((t) => `<script>${t}</script>`).join('\n'),
  // "<" only inside JSON strings, where \u003c is the same character
  '<!--ATTNSCOPE:data-->': `<script id="attnscope-data" type="application/json">${json.replaceAll('<', '\\u003c')}</script>`,
  '<!--ATTNSCOPE:app-->': `<script>${scripts[scripts.length - 1]}</script>`,
};
// Each placeholder must be in the template exactly once; the template is split once, so text
// inserted for one placeholder is never searched for another.
const pieces = template.split(/(<!--ATTNSCOPE:[a-z-]+-->)/);
for (const placeholder of Object.keys(parts)) {
  const n = pieces.filter((x) => x === placeholder).length;
  if (n !== 1) throw new Error(`report.html holds ${placeholder} ${n} times (must be once)`);
}
// (plain concatenation rather than String.replace: the libraries hold "$&"-like sequences)
const html = pieces.map((x) => (Object.hasOwn(parts, x) ? parts[x] : x)).join('');
fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
fs.writeFileSync(outPath, html);
console.log(`assemble: ${outPath} (${(fs.statSync(outPath).size / 1e6).toFixed(2)} MB)`);
