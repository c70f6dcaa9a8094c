// The WebService in process, fed by a plain net.Server as the server's Listeners feed it: a
// stopping server closes idle connections at once and lets an answer in progress out whole, and
// our own faults answer 500 with nothing of the fault on the wire.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { configSchema } from '../config/schema.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { Site } from './site.js';
import { WebService } from './web-service.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-web-'));
const lines: Record<string, unknown>[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
let store: Store;
let service: WebService;
let listener: net.Server;
let port: number;
const served: net.Socket[] = [];

before(async () => {
  store = openSqliteStore(path.join(tmp, 'postern.db'));
  await store.addDomain('example.test');
  const config = configSchema.parse({ hostname: 'mail.example.test', data_dir: tmp });
  // Every name is covered: this file is about the HTTP side, client-settings.test.ts about names.
  service = new WebService(new Site({ config, directory: store, certificates: { covers: () => true } }), logger);
  listener = net.createServer({ pauseOnConnect: true }, (socket) => {
    served.push(socket);
    service.serve(socket, { clientIp: '127.0.0.1', clientPort: socket.remotePort ?? 0, listener: 'http', tlsVersion: undefined });
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as net.AddressInfo).port;
});

after(async () => {
  service.close();
  for (const s of served) s.destroy();
  listener.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function get(pathAndQuery: string, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathAndQuery, headers: { host: 'autoconfig.example.test' }, ...(agent ? { agent } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

test('a stopping server closes an idle keep-alive connection at once', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await get('/mail/config-v1.1.xml?emailaddress=alice%40example.test', agent);
  assert.equal(first.status, 200);
  assert.equal(first.headers.connection, 'keep-alive');
  const socket = served.at(-1) as net.Socket;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  service.shutdown(socket);
  await closed;
  agent.destroy();
});

test('a stopping server lets the answer in progress out whole, then closes', async () => {
  const body = `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`;
  const client = net.connect(port, '127.0.0.1');
  let received = '';
  client.setEncoding('utf8').on('data', (d: string) => (received += d));
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const before = served.length;
  // Expect: 100-continue makes node:http say when the request has begun (its head is read).
  client.write(`POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`);
  while (!received.includes('100 Continue')) await new Promise((r) => setTimeout(r, 5));
  assert.equal(served.length, before + 1);
  service.shutdown(served.at(-1) as net.Socket);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(client.destroyed, false, 'a busy connection is not cut');
  client.write(body);
  await closed;
  assert.match(received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  assert.match(received, /\r\nconnection: close\r\n/i);
  assert.match(received, /<\/Autodiscover>\n$/);
});

test('a fault of ours (the store gone) is 500 with no detail; the log has the error', async () => {
  await store.close();
  const answer = await get('/mail/config-v1.1.xml?emailaddress=alice%40example.test');
  assert.equal(answer.status, 500);
  assert.equal(answer.body, 'Internal server error\n');
  assert.equal(answer.headers.connection, 'close');
  const failure = lines.find((l) => l.msg === 'http request failed');
  assert.ok(failure, 'the failure is logged');
  assert.ok(lines.some((l) => l.msg === 'http request' && l.status === 500));
});
