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

// The page's Content-Security-Policy at work: an inline handler and an inline script injected on
// purpose must not run and must be reported as script-src violations (the page collects them in
// window.__violations). Returns the problems found (empty: blocked) and the violations.
export async function probePolicy(page) {
  const blocked = await page.evaluate(async () => {
    document.body.insertAdjacentHTML('beforeend', '<img id="csp-probe" src="data:," onerror="window.__xss=\'handler\'">');
    const s = document.createElement('script');
    s.textContent = "window.__xss = 'inline script'";
    document.body.appendChild(s);
    await new Promise((r) => setTimeout(r, 300));
    return { xss: window.__xss, violations: window.__violations };
  });
  const problems = [];
  if (blocked.xss !== undefined) problems.push(`the Content-Security-Policy let injected code run: window.__xss = ${blocked.xss}`);
  if (!blocked.violations.some((v) => /script-src/.test(v))) {
    problems.push(`no script-src violation was reported for the injected handler/script: ${blocked.violations.join(', ')}`);
  }
  return { problems, violations: blocked.violations };
}
