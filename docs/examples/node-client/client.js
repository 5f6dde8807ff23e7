// A minimal actantd client in Node with vscode-jsonrpc (LSP-style Content-Length framing), the way an
// editor plugin would talk to the daemon. See ../../protocol.md.
//
//   npm ci && node client.js [SOCKET]
//
// Pings the daemon, lists agents, subscribes to transition events, creates + starts + stops the `demo`
// agent (bundled template; `agent.create` is idempotent, so re-running is fine) and prints what it saw.
'use strict';
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { createMessageConnection, StreamMessageReader, StreamMessageWriter } = require('vscode-jsonrpc/node');

// The daemon's own rule (actantd/paths.py resolve_socket), minus --home: explicit, env, runtime dir, home.
function defaultSocket(env = process.env) {
  if (env.ACTANT_SOCKET) return path.resolve(env.ACTANT_SOCKET);
  if (env.XDG_RUNTIME_DIR) return path.resolve(env.XDG_RUNTIME_DIR, 'actant', 'actantd.sock');
  const home = env.ACTANT_HOME || path.join(env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state'), 'actant');
  return path.resolve(home, 'actantd.sock');
}

async function main() {
  const socketPath = process.argv[2] || defaultSocket();
  const socket = net.connect(socketPath);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const rpc = createMessageConnection(new StreamMessageReader(socket), new StreamMessageWriter(socket));
  const transitions = [];
  rpc.onNotification('event', (e) => {
    if (e.type === 'transition') transitions.push(e);
  });
  rpc.listen();

  const ping = await rpc.sendRequest('daemon.ping', {});
  console.log(`ping: actantd ${ping.version} pid ${ping.pid} up ${ping.uptimeSeconds}s`);
  const { agents } = await rpc.sendRequest('agent.list', {});
  console.log(`agents: ${agents.map((a) => `${a.name}=${a.status}`).join(' ') || '(none)'}`);
  const { subscription } = await rpc.sendRequest('events.subscribe', { agent: 'demo', types: ['transition'] });
  console.log(`subscribed: ${subscription}`);

  await rpc.sendRequest('agent.create', { name: 'demo', template: 'demo' });
  const started = await rpc.sendRequest('agent.start', { name: 'demo' });
  console.log(`started: demo ${started.agent.status} pid ${started.agent.pid}`);
  const stopped = await rpc.sendRequest('agent.stop', { name: 'demo' });
  console.log(`stopped: demo ${stopped.agent.status}`);
  // Events are written before the reply of the call that caused them, so all of them are in by now.
  for (const t of transitions) console.log(`transition: ${t.agent} ${t.from} -> ${t.to} (${t.reason})`);

  await rpc.sendRequest('events.unsubscribe', { subscription });
  rpc.dispose();
  socket.end();
}

main().catch((err) => {
  // A daemon error is a ResponseError: code, message and data {errorCode, context}.
  const name = err && err.data && err.data.errorCode ? ` ${err.data.errorCode}` : '';
  console.error(`error${name}: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
