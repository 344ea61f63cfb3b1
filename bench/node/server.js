// Node Faye 1.4.3 under test: NodeAdapter mounted at /faye, timeout 25, memory engine
// unless --redis-port is given (then faye-redis 0.2.0 on the npm `redis` client 3.x).
//
//   node bench/node/server.js --port 9000
//   node bench/node/server.js --port 9001 --redis-host 127.0.0.1 --redis-port 7000 --namespace bench
//
// Prints "listening <port>" on stdout once the HTTP server accepts connections.
'use strict';

const http = require('http');
const faye = require('faye');

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1',
    port: 8000,
    mount: '/faye',
    timeout: 25,
    redisHost: null,
    redisPort: null,
    namespace: '',
  };
  const names = {
    '--host': 'host', '--port': 'port', '--mount': 'mount', '--timeout': 'timeout',
    '--redis-host': 'redisHost', '--redis-port': 'redisPort', '--namespace': 'namespace',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) {
      console.error('usage: server.js [--host H] [--port P] [--mount /faye] [--timeout 25] ' +
                    '[--redis-host H --redis-port P --namespace NS]');
      process.exit(2);
    }
    opts[key] = argv[i + 1];
  }
  opts.port = parseInt(opts.port, 10);
  opts.timeout = parseFloat(opts.timeout);
  if (opts.redisHost && !opts.redisPort) opts.redisPort = 6379;
  if (opts.redisPort) opts.redisPort = parseInt(opts.redisPort, 10);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const adapterOptions = { mount: opts.mount, timeout: opts.timeout };
if (opts.redisPort) {
  adapterOptions.engine = {
    type: require('faye-redis'),
    host: opts.redisHost || '127.0.0.1',
    port: opts.redisPort,
    namespace: opts.namespace,
  };
}

const bayeux = new faye.NodeAdapter(adapterOptions);
const server = http.createServer((request, response) => {
  response.writeHead(404, { 'Content-Type': 'text/plain' });
  response.end('not found\n');
});
bayeux.attach(server);
server.listen(opts.port, opts.host, () => {
  const engine = opts.redisPort ? `faye-redis ${opts.redisHost}:${opts.redisPort}` : 'memory';
  process.stdout.write(`listening ${opts.port} (${engine})\n`);
});

function stop() {
  server.close();
  try { bayeux.close(); } catch (e) { /* engine already gone */ }
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
