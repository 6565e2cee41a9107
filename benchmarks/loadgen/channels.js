#!/usr/bin/env node
// One channel-socket worker for rtserver's `channels` benchmark (driven by
// benchmarks/channels.py), in the style of loadgen.js: one JSON command per stdin line,
// exactly one reply per line (same "seq").
//
//   {"seq":1,"cmd":"connect","url":"ws://.../api/v1/ws","tokens":["rtu_...",...],
//    "subscribe":["notification.events"],"concurrency":32,"timeout":60}
//        opens one socket per token (?token=), sends a `subscribe` for each channel
//        (`settings` is subscribed by the server on connect) and counts a socket as
//        connected once every `subscribed` answer arrived; socket i keeps index i
//   {"seq":2,"cmd":"reopen"}   open again, as connect did, the sockets that are not open
//   {"seq":3,"cmd":"reset"}    zero the counters, per-socket counts, histogram, CPU clock
//   {"seq":4,"cmd":"counts"}   the counters (cheap, for polling)
//   {"seq":5,"cmd":"stats"}    counters since reset, the latency histogram, own CPU use,
//        and the bench events each socket received ("perSocket", -1: never connected)
//   {"seq":6,"cmd":"publish","url":"http://.../api/v1/ws/publish","key":"...",
//    "channel":"settings","event":"BENCH_SETTINGS","count":40,"rate":10,
//    "concurrency":8,"users":10000,"batch":0,"userPrefix":"u"}
//        POSTs `count` publishes: publish j is due at j/rate s, and sent then if fewer
//        than `concurrency` requests are in flight (else when one answers). batch=0:
//        broadcasts; batch=1: "user_id"; batch>1: "user_ids" of `batch` users; the
//        targets run through userPrefix+0 ... userPrefix+(users-1) in order, wrapping.
//        Replies the answers' statuses, the round trips (histogram), how late it fell
//   {"seq":7,"cmd":"exit"}
//
// Latency: each publish carries its send time in data as "sent_ms":<unix ms>; a socket's
// latency = receive time (wall clock, same host) - that. Frames are not JSON-parsed: the
// few fields needed are found with Buffer.indexOf, to keep the worker cheap (its CPU use
// is reported).
"use strict";

const WebSocket = require("ws");
const http = require("http");
const readline = require("readline");

// Latency histograms as loadgen.js: 0.1 ms buckets up to 10 s, then 10 ms up to 600 s.
const FINE = 100000;
const COARSE = 60000;

function newHist() {
  return new Uint32Array(FINE + COARSE + 1);
}

function record(hist, latencyMs) {
  let b;
  if (latencyMs < 0) b = 0;
  else if (latencyMs < 10000) b = Math.floor(latencyMs * 10);
  else b = Math.min(FINE + Math.floor((latencyMs - 10000) / 10), FINE + COARSE);
  hist[b]++;
}

function sparse(hist) {
  const out = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) out.push([i, hist[i]]);
  return out;
}

function nowMs() {
  return performance.timeOrigin + performance.now();
}

const hist = newHist();
let conns = [];
let stats;
let cpuStart;
let wallStart;

function resetStats() {
  stats = {
    events: 0,
    errorFrames: 0,
    otherFrames: 0,
    closes: 0,
    closeCodes: {},
    firstReceiveMs: 0,
    lastReceiveMs: 0,
  };
  hist.fill(0);
  for (const c of conns) if (c) c.count = 0;
  cpuStart = process.cpuUsage();
  wallStart = nowMs();
}

const EVENT_BENCH = Buffer.from('"event":"BENCH_');
const EVENT_SUBSCRIBED = Buffer.from('"event":"subscribed"');
const EVENT_ERROR = Buffer.from('"event":"error"');
const SENT = Buffer.from('"sent_ms":');

function sentMs(buf) {
  const at = buf.indexOf(SENT);
  if (at < 0) return null;
  let end = at + SENT.length;
  while (end < buf.length && buf[end] !== 44 && buf[end] !== 125) end++; // , or }
  return Number(buf.toString("latin1", at + SENT.length, end));
}

function onMessage(conn, data) {
  const t = nowMs();
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const head = buf.length > 64 ? buf.subarray(0, 64) : buf; // "event" comes first
  if (head.indexOf(EVENT_BENCH) >= 0) {
    stats.events++;
    conn.count++;
    if (!stats.firstReceiveMs) stats.firstReceiveMs = t;
    stats.lastReceiveMs = t;
    const sent = sentMs(buf);
    if (sent !== null) record(hist, t - sent);
  } else if (head.indexOf(EVENT_SUBSCRIBED) >= 0) {
    if (conn.onSubscribed) conn.onSubscribed();
  } else if (head.indexOf(EVENT_ERROR) >= 0) {
    stats.errorFrames++;
    if (stats.errorFrames <= 5) process.stderr.write("error frame: " + buf.toString() + "\n");
  } else {
    stats.otherFrames++;
  }
}

function openOne(url, token, channels, timeoutMs) {
  return new Promise((resolve) => {
    const conn = { ws: null, count: 0, open: false, onSubscribed: null };
    let done = false;
    const timer = setTimeout(() => {
      finish(false, "timeout");
      conn.ws.terminate();
    }, timeoutMs);
    function finish(ok, why) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ok, conn, why });
    }
    const ws = new WebSocket(url + "?token=" + encodeURIComponent(token), {
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
    });
    conn.ws = ws;
    let pending = channels.length;
    conn.onSubscribed = () => {
      if (--pending === 0) {
        conn.onSubscribed = null;
        conn.open = true;
        finish(true);
      }
    };
    ws.on("open", () => {
      if (pending === 0) {
        conn.open = true;
        finish(true);
        return;
      }
      for (const channel of channels) ws.send(JSON.stringify({ event: "subscribe", channel }));
    });
    ws.on("message", (data) => onMessage(conn, data));
    ws.on("error", (err) => finish(false, String(err && err.message)));
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
      finish(false, "closed " + code);
    });
  });
}

let lastConnect = null; // the connect command, for reopen

async function connect(cmd) {
  lastConnect = cmd;
  conns = new Array(cmd.tokens.length).fill(null);
  return openSockets(cmd, [...conns.keys()]);
}

function reopen() {
  if (lastConnect === null) throw new Error("reopen before connect");
  const closed = [];
  for (let i = 0; i < conns.length; i++) if (!conns[i] || !conns[i].open) closed.push(i);
  return openSockets(lastConnect, closed);
}

// Open the sockets of `which` (indexes into cmd.tokens), `concurrency` at a time.
async function openSockets(cmd, which) {
  const start = nowMs();
  const tokens = cmd.tokens;
  const channels = cmd.subscribe || [];
  const timeoutMs = (cmd.timeout || 60) * 1000;
  let next = 0;
  let connected = 0;
  let failed = 0;
  const whys = {};
  async function lane() {
    while (next < which.length) {
      const i = which[next++];
      const r = await openOne(cmd.url, tokens[i], channels, timeoutMs);
      if (r.ok) {
        conns[i] = r.conn;
        connected++;
      } else {
        failed++;
        whys[r.why] = (whys[r.why] || 0) + 1;
      }
    }
  }
  const lanes = [];
  for (let j = 0; j < Math.min(cmd.concurrency || 32, which.length); j++) lanes.push(lane());
  await Promise.all(lanes);
  return { connected, failed, failures: whys, connectMs: nowMs() - start, open: openCount() };
}

function openCount() {
  let n = 0;
  for (const c of conns) if (c && c.open) n++;
  return n;
}

function publish(cmd) {
  const endpoint = new URL(cmd.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: cmd.concurrency });
  const headers = {
    Authorization: "Bearer " + cmd.key,
    "Content-Type": "application/json",
  };
  const count = cmd.count;
  const intervalMs = 1000 / cmd.rate;
  const rtt = newHist();
  const statuses = {};
  const failures = {};
  let next = 0;
  let inFlight = 0;
  let answered = 0;
  let nextUser = 0; // index of the next user targeted
  let maxLateMs = 0;
  let timer = null;
  const cpu0 = process.cpuUsage();
  const start = nowMs();

  function body() {
    const out = { channel: cmd.channel, event: cmd.event, data: { sent_ms: nowMs() } };
    if (cmd.batch === 1) {
      out.user_id = cmd.userPrefix + nextUser;
      nextUser = (nextUser + 1) % cmd.users;
    } else if (cmd.batch > 1) {
      out.user_ids = [];
      for (let k = 0; k < cmd.batch; k++) {
        out.user_ids.push(cmd.userPrefix + nextUser);
        nextUser = (nextUser + 1) % cmd.users;
      }
    }
    return JSON.stringify(out);
  }

  return new Promise((resolve) => {
    function finished() {
      agent.destroy();
      const cpu = process.cpuUsage(cpu0);
      resolve({
        count,
        answered,
        statuses,
        failures,
        seconds: (nowMs() - start) / 1000,
        maxLateMs,
        hist: sparse(rtt),
        cpuMs: (cpu.user + cpu.system) / 1000,
      });
    }
    function sendOne() {
      inFlight++;
      let settled = false; // a request ends once: an answer or an error
      const t0 = nowMs();
      const payload = body();
      const req = http.request(
        {
          host: endpoint.hostname,
          port: endpoint.port,
          path: endpoint.pathname,
          method: "POST",
          agent,
          headers: { ...headers, "Content-Length": Buffer.byteLength(payload) },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            if (settled) return;
            settled = true;
            record(rtt, nowMs() - t0);
            statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
            done();
          });
        }
      );
      req.on("error", (err) => {
        if (settled) return;
        settled = true;
        const why = String(err && err.message);
        failures[why] = (failures[why] || 0) + 1;
        done();
      });
      req.end(payload);
    }
    function done() {
      inFlight--;
      answered++;
      if (answered === count) finished();
      else pump();
    }
    function pump() {
      const now = nowMs();
      while (next < count && inFlight < cmd.concurrency) {
        const due = start + next * intervalMs;
        if (due > now) {
          if (timer === null) {
            timer = setTimeout(() => {
              timer = null;
              pump();
            }, due - now);
          }
          return;
        }
        if (now - due > maxLateMs) maxLateMs = now - due;
        next++;
        sendOne();
      }
    }
    pump();
  });
}

function counts() {
  return {
    events: stats.events,
    closes: stats.closes,
    closeCodes: stats.closeCodes,
    open: openCount(),
  };
}

function snapshot() {
  const cpu = process.cpuUsage(cpuStart);
  return {
    ...stats,
    open: openCount(),
    wallMs: nowMs() - wallStart,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    rssBytes: process.memoryUsage.rss(),
    hist: sparse(hist),
    perSocket: conns.map((c) => (c ? c.count : -1)),
  };
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case "connect":
      return connect(cmd);
    case "reopen":
      return reopen();
    case "reset":
      resetStats();
      return { ok: true };
    case "counts":
      return counts();
    case "stats":
      return snapshot();
    case "publish":
      return publish(cmd);
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
