#!/usr/bin/env node
// Interop harness client built on the npm `faye` client (1.4.x).
//
// Usage:
//   node faye_client.js --url http://127.0.0.1:PORT/faye --mode subscribe \
//        --channel /x/* --count 3 [--transport long-polling|websocket] [--timeout 20] [--linger 0]
//   node faye_client.js --url http://127.0.0.1:PORT/faye --mode publish \
//        --channel /x/y --count 3 --data '{"hello":"world"}' [--transport ...]
//
// Output contract (stdout, one line each):
//   subscribe: READY, then one {"channel":...,"data":...} line per message; exit 0 after N
//              (after N, --linger S keeps listening S seconds and exits 4 on any extra message).
//   publish:   PUBLISHED after all N publishes are acknowledged; exit 0.
//   Any failure / --timeout: message on stderr, exit non-zero.
'use strict';

const faye = require('faye');

function parseArgs(argv) {
  const opts = { transport: 'long-polling', count: 1, timeout: 20, linger: 0, data: '{}' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) fail(`unexpected argument: ${a}`, 2);
    const eq = a.indexOf('=');
    let key, val;
    if (eq >= 0) { key = a.slice(2, eq); val = a.slice(eq + 1); }
    else { key = a.slice(2); val = argv[++i]; }
    if (val === undefined) fail(`missing value for --${key}`, 2);
    opts[key] = val;
  }
  for (const req of ['url', 'mode', 'channel']) if (!opts[req]) fail(`--${req} is required`, 2);
  if (!['subscribe', 'publish'].includes(opts.mode)) fail(`bad --mode ${opts.mode}`, 2);
  if (!['long-polling', 'websocket'].includes(opts.transport)) fail(`bad --transport ${opts.transport}`, 2);
  opts.count = parseInt(opts.count, 10);
  opts.timeout = parseFloat(opts.timeout);
  opts.linger = parseFloat(opts.linger);
  try { opts.data = JSON.parse(opts.data); } catch (e) { fail(`--data is not JSON: ${e.message}`, 2); }
  if (opts.data === null || typeof opts.data !== 'object' || Array.isArray(opts.data)) {
    fail('--data must be a JSON object', 2);
  }
  return opts;
}

function fail(msg, code) {
  process.stderr.write(`faye_client.js: ${msg}\n`, () => process.exit(code || 1));
  // In case the callback never fires.
  setTimeout(() => process.exit(code || 1), 200).unref();
}

function out(line) {
  process.stdout.write(line + '\n');
}

function finish() {
  // Flush stdout before exiting.
  process.stdout.write('', () => process.exit(0));
}

const opts = parseArgs(process.argv.slice(2));

const timer = setTimeout(() => {
  fail(`timeout after ${opts.timeout}s (mode=${opts.mode}, transport=${opts.transport}, ` +
       `current transport=${currentTransport()})`, 3);
}, opts.timeout * 1000);

// FAYE_CLIENT_LOG=1: the client's own debug log on stderr (what it sends and receives),
// stamped with the monotonic clock in seconds, to line up with the test's own times.
if (process.env.FAYE_CLIENT_LOG) {
  faye.logger = (line) => {
    const now = (Number(process.hrtime.bigint()) / 1e9).toFixed(3);
    process.stderr.write(`${now} ${line}\n`);
  };
}

const client = new faye.Client(opts.url, { timeout: 30, retry: 1 });
if (opts.transport === 'long-polling') client.disable('websocket');

client.on('transport:down', () => process.stderr.write('faye_client.js: transport:down\n'));

// Faye handshakes over long-polling (mandatory types) and only upgrades to
// websocket after the handshake reply, asynchronously.  In websocket mode we
// wait until the dispatcher has actually selected the websocket transport.
function currentTransport() {
  return client._dispatcher && client._dispatcher.connectionType;
}

function waitForTransport(cb) {
  const want = opts.transport;
  const check = () => {
    if (currentTransport() === want) return cb();
    setTimeout(check, 25);
  };
  check();
}

if (opts.mode === 'subscribe') {
  let received = 0;
  let done = false;
  const sub = client.subscribe(opts.channel);
  sub.withChannel((channel, data) => {
    out(JSON.stringify({ channel, data }));
    if (done) {
      fail(`unexpected extra message after ${opts.count}`, 4);
      return;
    }
    received++;
    if (received >= opts.count) {
      done = true;
      clearTimeout(timer);
      setTimeout(() => { client.disconnect(); finish(); }, opts.linger * 1000);
    }
  });
  sub.then(() => {
    waitForTransport(() => {
      process.stderr.write(`faye_client.js: subscribed to ${opts.channel} via ${currentTransport()}\n`);
      out('READY');
      if (opts.count <= 0) { clearTimeout(timer); client.disconnect(); finish(); }
    });
  }, (err) => fail(`subscribe failed: ${err && err.message}`, 1));
} else {
  client.connect(() => {
    waitForTransport(() => {
      const pubs = [];
      for (let i = 0; i < opts.count; i++) {
        pubs.push(client.publish(opts.channel, Object.assign({}, opts.data, { seq: i })));
      }
      Promise.all(pubs).then(() => {
        process.stderr.write(`faye_client.js: published ${opts.count} via ${currentTransport()}\n`);
        out('PUBLISHED');
        clearTimeout(timer);
        const p = client.disconnect();
        // disconnect() returns a promise-like; don't hang if it never resolves.
        const bye = setTimeout(finish, 1000);
        if (p && typeof p.then === 'function') p.then(() => { clearTimeout(bye); finish(); }, () => finish());
      }, (err) => fail(`publish failed: ${err && err.message}`, 1));
    });
  });
}
