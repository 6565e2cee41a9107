#!/usr/bin/env node
// One load-generator worker for rtserver's benchmarks (driven by benchmarks/run.py).
//
// It holds many WebSocket client connections and is controlled over stdin/stdout with
// one JSON object per line: a command in, exactly one reply out (same "seq").
//
//   {"seq":1,"cmd":"connect","url":"ws://...","keys":["k1",...],"n":2500,"offset":0,
//    "resend":"180","ack":false,"concurrency":64,"expect":0,"timeout":60,"retry":false}
//        opens n connections (connection i uses keys[(offset+i) % keys.length] as
//        X-API-Key), waits for every "connected" message (and, with expect>0, for every
//        connection to hold `expect` transaction messages); replies counts and timings
//        With "paths" (payment-status sockets, no key): connection i opens
//        url + paths[(offset+i) % paths.length]; its first "status" message counts as
//        "connected", and each "settlement" message as a transaction (logged as
//        [transactionId, receive ms]).
//   {"seq":2,"cmd":"reset"}    zero the counters, the latency histogram and the CPU clock
//   {"seq":3,"cmd":"stats"}    counters since reset, sparse latency histogram, own CPU use
//        (and, when connected with "log":true, [txhash, receive ms] of every transaction)
//   {"seq":3,"cmd":"counts"}   just the counters (cheap, for polling)
//   {"seq":4,"cmd":"ack","on":true}   start/stop ACKing every transaction message
//   {"seq":5,"cmd":"wait","perConn":10,"timeout":30}  until every open connection has
//        received perConn transactions since reset (or the timeout)
//   {"seq":6,"cmd":"close"}    close every connection (1000) and wait for the closes
//   {"seq":7,"cmd":"exit"}
//
// Latency: a benchmark event carries its injection time in data.methodCall as
// "bench:<unix ns>"; latency = this process's receive time (wall clock, same host)
// minus that. Messages are not JSON-parsed: the few fields needed are found with
// Buffer.indexOf, so that the generator stays cheap (its CPU use is reported).
"use strict";

const WebSocket = require("ws");
const readline = require("readline");

// Latency histogram: 0.1 ms buckets up to 10 s, then 10 ms buckets up to 600 s.
const FINE = 100000;
const COARSE = 60000;
const hist = new Uint32Array(FINE + COARSE + 1);

const conns = [];
let stats;
let cpuStart;
let wallStart;
let acking = false;
let ackSeq = 0;
let logging = false;
let txLog = [];

function resetStats() {
  stats = {
    transactions: 0,
    connectedMsgs: 0,
    ackReplies: 0,
    ackErrors: 0,
    acksSent: 0,
    otherMsgs: 0,
    closes: 0,
    closeCodes: {},
    errors: 0,
    bytes: 0,
    lastReceiveMs: 0,
    firstReceiveMs: 0,
  };
  hist.fill(0);
  for (const c of conns) c.count = 0;
  txLog = [];
  cpuStart = process.cpuUsage();
  wallStart = nowMs();
}

function nowMs() {
  return performance.timeOrigin + performance.now();
}

function record(latencyMs) {
  let b;
  if (latencyMs < 0) b = 0;
  else if (latencyMs < 10000) b = Math.floor(latencyMs * 10);
  else b = Math.min(FINE + Math.floor((latencyMs - 10000) / 10), FINE + COARSE);
  hist[b]++;
}

const TYPE_TX = Buffer.from('"type":"transaction"');
const TYPE_CONNECTED = Buffer.from('"type":"connected"');
const TYPE_ACK = Buffer.from('"type":"transactionACK"');
const TYPE_STATUS = Buffer.from('"type":"status"');
const TYPE_SETTLEMENT = Buffer.from('"type":"settlement"');
const TXID = Buffer.from('"transactionId":"');
const BENCH = Buffer.from('"methodCall":"bench:');
const ID = Buffer.from('"id":"');
const TXHASH = Buffer.from('"txhash":"');
const CODE0 = Buffer.from('"code":0');

function stringAt(buf, marker) {
  const at = buf.indexOf(marker);
  if (at < 0) return null;
  const start = at + marker.length;
  const end = buf.indexOf(34, start); // closing quote
  return buf.toString("latin1", start, end);
}

function onMessage(conn, data) {
  const t = nowMs();
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  stats.bytes += buf.length;
  // The envelope's "type" is near the start; search a bounded prefix first.
  const head = buf.length > 160 ? buf.subarray(0, 160) : buf;
  if (head.indexOf(TYPE_SETTLEMENT) >= 0) {
    stats.transactions++;
    if (!stats.firstReceiveMs) stats.firstReceiveMs = t;
    stats.lastReceiveMs = t;
    conn.count++;
    if (logging) txLog.push([stringAt(buf, TXID), t]);
    return;
  }
  if (head.indexOf(TYPE_TX) >= 0) {
    stats.transactions++;
    if (!stats.firstReceiveMs) stats.firstReceiveMs = t;
    stats.lastReceiveMs = t;
    conn.count++;
    if (logging) {
      const txHash = stringAt(buf, TXHASH);
      txLog.push([txHash, t]);
    }
    const at = buf.indexOf(BENCH);
    if (at >= 0) {
      let ns = 0;
      for (let i = at + BENCH.length; i < buf.length; i++) {
        const d = buf[i] - 48;
        if (d < 0 || d > 9) break;
        ns = ns * 10 + d;
      }
      record(t - ns / 1e6);
    }
    if (acking) {
      const id = stringAt(head, ID);
      const txHash = stringAt(buf, TXHASH);
      const ack = {
        id: "ack-" + ++ackSeq,
        type: "transactionACK",
        data: { chain_type: "ethereum", chain_id: 1, txHash, messageId: id },
      };
      conn.ws.send(JSON.stringify(ack));
      stats.acksSent++;
    }
    if (conn.waiter && conn.count >= conn.waiter.target) {
      const w = conn.waiter;
      conn.waiter = null;
      w.resolve(t);
    }
  } else if (head.indexOf(TYPE_CONNECTED) >= 0 || head.indexOf(TYPE_STATUS) >= 0) {
    stats.connectedMsgs++;
    if (conn.onConnected) {
      const f = conn.onConnected;
      conn.onConnected = null;
      f(t);
    }
  } else if (head.indexOf(TYPE_ACK) >= 0) {
    if (head.indexOf(CODE0) >= 0) stats.ackReplies++;
    else stats.ackErrors++;
  } else {
    stats.otherMsgs++;
  }
}

function openOne(url, key, resend, timeoutMs) {
  return new Promise((resolve) => {
    const headers = key ? { "X-API-Key": key } : {};
    if (resend !== null && resend !== undefined) headers["X-ResendDuration"] = String(resend);
    const conn = { ws: null, count: 0, waiter: null, onConnected: null, open: false };
    const timer = setTimeout(() => {
      finish(false, "timeout");
      try {
        conn.ws.terminate();
      } catch (_) {}
    }, timeoutMs);
    let done = false;
    function finish(ok, why) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ok, conn, why });
    }
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: timeoutMs });
    conn.ws = ws;
    conn.onConnected = () => {
      conn.open = true;
      finish(true);
    };
    ws.on("message", (data) => onMessage(conn, data));
    ws.on("error", (err) => {
      stats.errors++;
      finish(false, String(err && err.message));
    });
    ws.on("unexpected-response", (req, res) => {
      finish(false, "HTTP " + res.statusCode);
      req.destroy();
    });
    ws.on("close", (code) => {
      if (conn.open) {
        stats.closes++;
        stats.closeCodes[code] = (stats.closeCodes[code] || 0) + 1;
      }
      conn.open = false;
      if (conn.waiter) {
        const w = conn.waiter;
        conn.waiter = null;
        w.resolve(null);
      }
      if (conn.closed) conn.closed();
      finish(false, "closed " + code);
    });
  });
}

async function connect(cmd) {
  const start = nowMs();
  const n = cmd.n;
  const keys = cmd.keys;
  const concurrency = cmd.concurrency || 64;
  const timeoutMs = (cmd.timeout || 60) * 1000;
  const expect = cmd.expect || 0;
  if (cmd.ack !== undefined) acking = !!cmd.ack;
  if (cmd.log !== undefined) logging = !!cmd.log;
  let next = 0;
  let failed = 0;
  let retries = 0;
  const whys = {};
  const opened = [];
  const expectDone = [];
  let lastConnected = start;
  async function lane() {
    while (next < n) {
      const i = next++;
      const paths = cmd.paths;
      const url = paths ? cmd.url + paths[(cmd.offset + i) % paths.length] : cmd.url;
      const key = paths ? null : keys[(cmd.offset + i) % keys.length];
      let r = await openOne(url, key, cmd.resend, timeoutMs);
      // Like real clients, retry a failed connect (with jitter) until the timeout.
      while (!r.ok && cmd.retry && nowMs() - start < timeoutMs) {
        retries++;
        whys[r.why] = (whys[r.why] || 0) + 1;
        await new Promise((res) => setTimeout(res, 100 + Math.random() * 400));
        r = await openOne(url, key, cmd.resend, timeoutMs);
      }
      if (r.ok) {
        lastConnected = nowMs();
        conns.push(r.conn);
        opened.push(r.conn);
        if (expect > 0) {
          if (r.conn.count >= expect) expectDone.push(Promise.resolve(nowMs()));
          else
            expectDone.push(
              new Promise((resolve) => {
                r.conn.waiter = { target: expect, resolve };
              })
            );
        }
      } else {
        failed++;
        whys[r.why] = (whys[r.why] || 0) + 1;
      }
    }
  }
  const lanes = [];
  for (let j = 0; j < Math.min(concurrency, n); j++) lanes.push(lane());
  await Promise.all(lanes);
  const reply = {
    connected: opened.length,
    failed,
    failures: whys,
    retries,
    connectMs: lastConnected - start,
    open: conns.filter((c) => c.open).length,
  };
  if (expect > 0) {
    const deadline = new Promise((resolve) =>
      setTimeout(() => resolve("timeout"), timeoutMs)
    );
    const all = Promise.all(expectDone);
    const r = await Promise.race([all, deadline]);
    if (r === "timeout") {
      reply.complete = false;
      reply.short = opened.filter((c) => c.count < expect).length;
    } else {
      reply.complete = r.every((x) => x !== null);
      let last = 0;
      for (const x of r) if (x !== null && x > last) last = x;
      reply.allReceivedMs = last - start;
      reply.short = r.filter((x) => x === null).length;
    }
  }
  return reply;
}

async function waitPerConn(cmd) {
  const start = nowMs();
  const deadline = start + (cmd.timeout || 30) * 1000;
  for (;;) {
    const open = conns.filter((c) => c.open);
    const short = open.filter((c) => c.count < cmd.perConn).length;
    if (short === 0) return { done: true, ms: nowMs() - start, open: open.length };
    if (nowMs() > deadline) return { done: false, short, open: open.length };
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function closeAll() {
  const closing = [];
  for (const c of conns) {
    if (!c.open) continue;
    closing.push(
      new Promise((resolve) => {
        c.closed = resolve;
        const t = setTimeout(() => {
          try {
            c.ws.terminate();
          } catch (_) {}
        }, 5000);
        c.ws.once("close", () => clearTimeout(t));
        c.ws.close(1000);
      })
    );
  }
  await Promise.all(closing);
  conns.length = 0;
  return { closed: closing.length };
}

function snapshot() {
  const cpu = process.cpuUsage(cpuStart);
  const wall = nowMs() - wallStart;
  const sparse = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) sparse.push([i, hist[i]]);
  return {
    ...stats,
    open: conns.filter((c) => c.open).length,
    wallMs: wall,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    rssBytes: process.memoryUsage.rss(),
    hist: sparse,
    txLog,
  };
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case "connect":
      return connect(cmd);
    case "reset":
      resetStats();
      return { ok: true };
    case "stats":
      return snapshot();
    case "counts":
      return {
        transactions: stats.transactions,
        ackReplies: stats.ackReplies,
        acksSent: stats.acksSent,
        closes: stats.closes,
        closeCodes: stats.closeCodes,
        lastReceiveMs: stats.lastReceiveMs,
        open: conns.filter((c) => c.open).length,
      };
    case "ack":
      acking = !!cmd.on;
      return { ok: true };
    case "wait":
      return waitPerConn(cmd);
    case "close":
      return closeAll();
    case "exit":
      setImmediate(() => process.exit(0));
      return { ok: true };
    default:
      throw new Error("unknown command " + cmd.cmd);
  }
}

resetStats();
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: "bad json: " + err.message }) + "\n");
    return;
  }
  try {
    const reply = await handle(cmd);
    process.stdout.write(JSON.stringify({ seq: cmd.seq, ...reply }) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ seq: cmd.seq, error: String(err && err.stack) }) + "\n");
  }
});
rl.on("close", () => process.exit(0));
