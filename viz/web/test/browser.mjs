// What the browser tests share: Debian's Chromium driven through playwright-core, the flags it
// needs on a machine with no outside network, the skip rule (exit 77, ctest's skip code, when
// either is missing) and a log line with the seconds since the test started.
import fs from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// playwright-core's chromium, or exit 77 saying what is missing.
export async function loadChromium(name) {
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`${name}: SKIP: ${CHROMIUM} does not exist (apt-get install -y --no-install-recommends chromium)`);
    process.exit(77);
  }
  try {
    return (await import('playwright-core')).chromium;
  } catch (err) {
    console.log(`${name}: SKIP: playwright-core is not installed (cd viz/web && npm ci): ${err.message.split('\n')[0]}`);
    process.exit(77);
  }
}

// log(msg): "NAME: [12.3s] msg".
export function timedLog(name) {
  const t0 = Date.now();
  return (msg) => console.log(`${name}: [${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
