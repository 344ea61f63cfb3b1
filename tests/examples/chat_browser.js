#!/usr/bin/env node
// Two chat pages, each from its own server, side by side in one headless Chromium page:
// alice types on A, bob answers on B, alice again on A. Prints what each page shows as
// one JSON line, and saves a screenshot.
//
// Usage: node chat_browser.js URL_A URL_B SCREENSHOT.png [--chromium PATH]
//
// Uses playwright-core from tests/interop/node_modules (tests/interop/install.sh) and
// Debian's Chromium; Chromium resolves loopback names only, so nothing leaves the machine.
'use strict';

const path = require('path');
const { chromium } = require(path.join(__dirname, '..', 'interop', 'node_modules', 'playwright-core'));

const [urlA, urlB, shot, flag, flagValue] = process.argv.slice(2);
const executablePath = flag === '--chromium' ? flagValue : '/usr/bin/chromium';

const CONVERSATION = [
  ['a', 'Hello from server A!'],
  ['b', 'Hi alice, bob here on server B.'],
  ['a', 'Both rooms are one room through Redis.'],
];

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
    const page = await browser.newPage({ viewport: { width: 1000, height: 420 } });
    page.on('console', (m) => process.stderr.write(`console: ${m.text()}\n`));
    await page.setContent(`<!doctype html><style>
      body { margin: 0; padding: 10px; display: flex; gap: 10px; background: #c9ced6; }
      iframe { flex: 1; height: 400px; border: 0; border-radius: 6px; background: #fff; }
      </style>
      <iframe id="a" src="${urlA}/?name=alice"></iframe>
      <iframe id="b" src="${urlB}/?name=bob"></iframe>`);
    const frames = { a: page.frameLocator('#a'), b: page.frameLocator('#b') };
    for (const frame of Object.values(frames)) {
      await frame.locator('body[data-ready="yes"]').waitFor({ timeout: 20000 });
    }
    let count = 0;
    for (const [who, text] of CONVERSATION) {
      await frames[who].locator('#text').fill(text);
      await frames[who].locator('button').click();
      count += 1;
      for (const frame of Object.values(frames)) {
        await frame.locator(`#log li:nth-child(${count})`).waitFor({ timeout: 10000 });
      }
    }
    await page.waitForTimeout(500); // a duplicate would show up meanwhile
    const shown = {};
    for (const [key, frame] of Object.entries(frames)) {
      shown[key] = await frame.locator('#log li').allTextContents();
    }
    await page.screenshot({ path: shot });
    process.stdout.write(JSON.stringify(shown) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`chat_browser.js: ${e.stack || e}\n`);
  process.exit(1);
});
