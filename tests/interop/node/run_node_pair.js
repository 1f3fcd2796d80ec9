'use strict';
/*
 * Node-to-Node check of the interop scripts: every client.js scenario against server.js, for every
 * (server package, client package) pair, without and with forceBase64 on both sides.
 *
 *   node run_node_pair.js [scenario ...]        (or: npm test)
 *
 * Exits 0 when every run printed {"ok":true}; prints one line per run and a summary.
 */
const { spawn, execFile } = require('child_process');
const path = require('path');
const readline = require('readline');
const { scenarios } = require('./client');

const here = __dirname;
const PKGS = ['socket.io-stream', '@sap_oss/node-socketio-stream'];
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(scenarios);
const CONCURRENCY = 4;

function startServer(pkg, base64) {
  const args = [path.join(here, 'server.js'), '--pkg', pkg].concat(base64 ? ['--base64'] : []);
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /^LISTENING (\d+)$/.exec(line);
      if (m) resolve({ proc, port: Number(m[1]), stderr: () => stderr });
    });
    proc.on('exit', (code) => reject(new Error(`server exited early (${code}): ${stderr}`)));
  });
}

function runClient(url, scenario, pkg, base64) {
  const args = [path.join(here, 'client.js'), url, scenario, '--pkg', pkg].concat(base64 ? ['--base64'] : []);
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 60000 }, (err, stdout, stderr) => {
      let result;
      try { result = JSON.parse(stdout.trim().split('\n').pop()); } catch (e) { result = { ok: false }; }
      resolve({ ok: !err && result.ok === true, result, stderr });
    });
  });
}

async function main() {
  let failures = 0;
  let runs = 0;
  for (const base64 of [false, true]) {
    for (const serverPkg of PKGS) {
      const server = await startServer(serverPkg, base64);
      const url = `http://127.0.0.1:${server.port}`;
      const jobs = [];
      for (const clientPkg of PKGS) for (const sc of wanted) jobs.push([sc, clientPkg]);
      const worker = async () => {
        for (let job; (job = jobs.shift());) {
          const [sc, clientPkg] = job;
          const r = await runClient(url, sc, clientPkg, base64);
          runs++;
          if (!r.ok) failures++;
          const tag = `${r.ok ? 'PASS' : 'FAIL'} server=${serverPkg} client=${clientPkg} base64=${base64} ${sc}`;
          console.log(r.ok ? tag : `${tag}\n  ${JSON.stringify(r.result)}\n  ${r.stderr.trim()}`);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const exited = new Promise((resolve) => server.proc.on('exit', resolve));
      server.proc.stdin.end(); // server.js exits when stdin closes
      await exited;
      if (/UNCAUGHT/.test(server.stderr())) {
        failures++;
        console.log(`FAIL server=${serverPkg} base64=${base64} logged:\n${server.stderr()}`);
      }
    }
  }
  console.log(`${runs - failures}/${runs} client runs passed${failures ? `, ${failures} failure(s)` : ''}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
