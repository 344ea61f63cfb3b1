#!/usr/bin/env node
// Open a page in headless Chromium (Debian's /usr/bin/chromium, driven by npm
// playwright-core) and print what the page reports.
//
// Usage:
//   node browser.js URL [--timeout SECONDS (20)] [--chromium PATH (/usr/bin/chromium)]
//
// The page signals completion by setting `window.__result` to a JSON-serialisable
// value. browser.js prints that value as one JSON line on stdout and exits 0, or
// exits 1 when the result has an `error` field. It exits 3 when the page never sets
// `window.__result` within --timeout, and 1 when Chromium cannot be launched or the
// page cannot be loaded. The page's console output, uncaught errors and failed
// requests go to stderr, prefixed with `browser.js:`.
//
// Chromium can only resolve 127.0.0.1 and localhost (--host-resolver-rules), uses no
// proxy, and starts with a fresh temporary profile, so nothing leaves the machine.
'use strict';

const { chromium } = require('playwright-core');

function parseArgs(argv) {
  const opts = { timeout: 20, chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      if (opts.url) fail(`unexpected argument: ${a}`, 2);
      opts.url = a;
      continue;
    }
    const key = a.slice(2);
    const val = argv[++i];
    if (val === undefined || !(key in opts)) fail(`bad option --${key}`, 2);
    opts[key] = val;
  }
  if (!opts.url) fail('a URL is required', 2);
  opts.timeout = parseFloat(opts.timeout);
  if (!(opts.timeout > 0)) fail('--timeout must be a positive number', 2);
  return opts;
}

function log(line) {
  process.stderr.write(`browser.js: ${line}\n`);
}

function fail(msg, code) {
  process.stderr.write(`browser.js: ${msg}\n`, () => process.exit(code || 1));
  setTimeout(() => process.exit(code || 1), 200).unref();
}

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-proxy-server',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
];

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let browser;
  let code = 1;
  try {
    // launch() gives Chromium a fresh temporary --user-data-dir and removes it on close.
    browser = await chromium.launch({
      executablePath: opts.chromium,
      headless: true,
      chromiumSandbox: false,
      args: ARGS,
      timeout: 30000,
    });
    const page = await browser.newPage();
    page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      // A held long-poll that is aborted when the page closes is not a failure.
      if (!browser.isConnected()) return;
      log(`request failed: ${r.method()} ${r.url().slice(0, 200)}: ${r.failure()?.errorText}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) log(`HTTP ${r.status()} for ${r.request().method()} ${r.url().slice(0, 200)}`);
    });
    await page.goto(opts.url, { waitUntil: 'load', timeout: opts.timeout * 1000 });
    let result;
    try {
      await page.waitForFunction(() => window.__result !== undefined, null, {
        timeout: opts.timeout * 1000,
        polling: 50,
      });
      result = await page.evaluate(() => window.__result);
    } catch (e) {
      if (e.name !== 'TimeoutError') throw e;
      const partial = await page.evaluate(() => window.__progress).catch(() => undefined);
      log(`timed out after ${opts.timeout}s waiting for window.__result` +
          (partial === undefined ? '' : `; window.__progress = ${JSON.stringify(partial)}`));
      return 3;
    }
    process.stdout.write(JSON.stringify(result) + '\n');
    if (result && typeof result === 'object' && result.error) {
      log(`page reported an error: ${result.error}`);
      code = 1;
    } else {
      code = 0;
    }
  } catch (e) {
    log(`failed: ${e.stack || e}`);
    code = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  return code;
}

main().then((code) => {
  process.stdout.write('', () => process.exit(code));
});
