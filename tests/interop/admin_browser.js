#!/usr/bin/env node
// Open a server's admin page in headless Chromium, logged in with the token as the
// HTTP Basic password; wait until the page has polled its stats a few times, print
// what it shows as one JSON line and save a screenshot.
//
// Usage: node admin_browser.js URL TOKEN SCREENSHOT.png [--chromium PATH]
//
// Uses playwright-core from this directory's node_modules (install.sh) and Debian's
// Chromium; Chromium resolves loopback names only, so nothing leaves the machine.
'use strict';

const { chromium } = require('playwright-core');

const [url, token, shot, flag, flagValue] = process.argv.slice(2);
const executablePath = flag === '--chromium' ? flagValue : '/usr/bin/chromium';

async function main() {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    chromiumSandbox: false,
    args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server',
           '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost'],
    timeout: 30000,
  });
  try {
    const context = await browser.newContext({
      viewport: { width: 1100, height: 700 },
      httpCredentials: { username: 'admin', password: token },
    });
    const page = await context.newPage();
    page.on('console', (m) => process.stderr.write(`console: ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
    const response = await page.goto(url);
    if (response.status() !== 200) throw new Error(`admin page answered ${response.status()}`);
    await page.waitForSelector('body[data-updates="8"]', { timeout: 20000 });
    const table = async (id) => page.$$eval(`#${id} tr`, (trs) => trs.map(
      (tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
    const shown = {
      clients: await page.textContent('#clients'),
      subscriptions: await page.textContent('#subscriptions'),
      connections: await table('connections'),
      rates: await table('rates'),
      channels: await table('channels'),
      error: await page.textContent('#error'),
    };
    await page.screenshot({ path: shot });
    process.stdout.write(JSON.stringify(shown) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`admin_browser.js: ${e.stack || e}\n`);
  process.exit(1);
});
