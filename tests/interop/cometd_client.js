#!/usr/bin/env node
// Interop harness client built on the npm `cometd` client (9.x) running in
// Node through the `cometd-nodejs-client` XMLHttpRequest/WebSocket adapters.
//
// Usage (same CLI/output contract as faye_client.js):
//   node cometd_client.js --url http://127.0.0.1:PORT/faye --mode subscribe \
//        --channel /x/** --count 3 [--transport long-polling|websocket] [--timeout 20] [--linger 0]
//   node cometd_client.js --url http://127.0.0.1:PORT/faye --mode publish \
//        --channel /x/y --count 3 --data '{"hello":"world"}' [--transport ...]
//
// stdout: READY / {"channel":...,"data":...} lines / PUBLISHED; errors on stderr, exit != 0.
// Both packages are ES modules, hence the dynamic import() from this CommonJS file.
'use strict';

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
  process.stderr.write(`cometd_client.js: ${msg}\n`, () => process.exit(code || 1));
  setTimeout(() => process.exit(code || 1), 200).unref();
}

function out(line) {
  process.stdout.write(line + '\n');
}

function finish() {
  process.stdout.write('', () => process.exit(0));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const timer = setTimeout(() => {
    fail(`timeout after ${opts.timeout}s (mode=${opts.mode}, transport=${opts.transport})`, 3);
  }, opts.timeout * 1000);

  const { adapt } = await import('cometd-nodejs-client');
  adapt(); // installs window.XMLHttpRequest / window.WebSocket globals
  const { CometD } = await import('cometd');

  const cometd = new CometD();
  // Pin the transport: CometD tries transports in registry order and falls
  // back silently, so remove everything except the requested one.
  for (const t of cometd.getTransportTypes()) {
    if (t !== opts.transport) cometd.unregisterTransport(t);
  }
  if (!cometd.getTransportTypes().includes(opts.transport)) {
    fail(`transport ${opts.transport} not available`, 1);
    return;
  }
  cometd.configure({ url: opts.url, logLevel: process.env.COMETD_LOG_LEVEL || 'warn' });

  const transportName = () => {
    const t = cometd.getTransport();
    return t && t.getType ? t.getType() : (t && t.type);
  };

  const bye = () => {
    clearTimeout(timer);
    const hard = setTimeout(finish, 1000);
    cometd.disconnect(() => { clearTimeout(hard); finish(); });
  };

  cometd.addListener('/meta/unsuccessful', (m) => {
    process.stderr.write(`cometd_client.js: unsuccessful ${JSON.stringify(m)}\n`);
  });

  cometd.handshake((reply) => {
    if (!reply.successful) {
      fail(`handshake failed: ${JSON.stringify(reply)}`, 1);
      return;
    }
    if (transportName() !== opts.transport) {
      fail(`negotiated transport ${transportName()} != ${opts.transport}`, 1);
      return;
    }
    if (opts.mode === 'subscribe') {
      let received = 0;
      let done = false;
      cometd.subscribe(opts.channel, (message) => {
        out(JSON.stringify({ channel: message.channel, data: message.data }));
        if (done) {
          fail(`unexpected extra message after ${opts.count}`, 4);
          return;
        }
        received++;
        if (received >= opts.count) {
          done = true;
          clearTimeout(timer);
          setTimeout(bye, opts.linger * 1000);
        }
      }, (subReply) => {
        if (!subReply.successful) {
          fail(`subscribe failed: ${JSON.stringify(subReply)}`, 1);
          return;
        }
        process.stderr.write(`cometd_client.js: subscribed to ${opts.channel} via ${transportName()}\n`);
        out('READY');
        if (opts.count <= 0) bye();
      });
    } else {
      let acked = 0;
      let failed = false;
      for (let i = 0; i < opts.count; i++) {
        cometd.publish(opts.channel, Object.assign({}, opts.data, { seq: i }), (pubReply) => {
          if (failed) return;
          if (!pubReply.successful) {
            failed = true;
            fail(`publish failed: ${JSON.stringify(pubReply)}`, 1);
            return;
          }
          if (++acked === opts.count) {
            process.stderr.write(`cometd_client.js: published ${opts.count} via ${transportName()}\n`);
            out('PUBLISHED');
            bye();
          }
        });
      }
      if (opts.count <= 0) { out('PUBLISHED'); bye(); }
    }
  });
}

main().catch((e) => fail(e && e.stack || String(e), 1));
