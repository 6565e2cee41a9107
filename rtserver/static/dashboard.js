// The admin dashboard: it shows nothing until given the admin token, then reads the
// snapshots of GET /admin/v1/dashboard/stream (server-sent events) with fetch streaming:
// EventSource cannot send the Authorization header every admin endpoint requires.
'use strict';

const TOKEN_KEY = 'rtserver.admin_token';
let reader = null;
let retry = null;

function $(selector) { return document.querySelector(selector); }

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '–' : String(text);
  if (className) td.className = className;
  return td;
}

function fill(sectionId, rows) {
  const body = $(`#${sectionId} tbody`);
  body.replaceChildren(...rows);
  const empty = $(`#${sectionId} [data-empty]`);
  if (empty) empty.hidden = rows.length > 0;
}

function row(key, name, cells) {
  const tr = document.createElement('tr');
  tr.dataset[key] = name;
  tr.append(cell(name, 'mono'), ...cells);
  return tr;
}

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

/** An amount in base units as a decimal number of whole tokens, when decimals are known. */
function units(amount, decimals) {
  if (amount === null || amount === undefined) return '?';
  if (decimals === null || decimals === undefined || !/^[0-9]+$/.test(amount)) return `${amount} (base units)`;
  const digits = amount.padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : whole;
}

function render(snapshot) {
  $('#connections-total').textContent = snapshot.connections_total;
  $('#rate-total').textContent = snapshot.messages_per_second_total.toFixed(1);
  $('#pending-total').textContent = snapshot.apps.reduce((n, a) => n + a.pending_messages, 0);
  $('#dead-total').textContent = snapshot.apps.reduce((n, a) => n + a.webhooks.dead, 0);
  $('#uptime').textContent = duration(snapshot.uptime);
  fill('chains', snapshot.chains.map((c) => row('chain', c.chain, [
    cell(c.head, 'num'), cell(c.processed, 'num'),
    cell(c.lag, 'num' + (c.lag > 5 ? ' warn' : '')), cell(c.rpc_errors, 'num' + (c.rpc_errors ? ' bad' : '')),
  ])));
  const endpoints = Object.keys({ ...snapshot.connections, ...snapshot.messages_sent }).sort();
  fill('connections', endpoints.map((e) => row('endpoint', e, [
    cell(snapshot.connections[e] || 0, 'num open'), cell(snapshot.messages_sent[e] || 0, 'num'),
    cell((snapshot.messages_per_second[e] || 0).toFixed(1), 'num'),
  ])));
  fill('apps', snapshot.apps.map((a) => row('app', a.app_id, [
    cell(a.pending_messages, 'num'), cell(a.webhooks.queued, 'num'), cell(a.webhooks.pending, 'num'),
    cell(a.webhooks.dead, 'num' + (a.webhooks.dead ? ' bad' : '')),
  ])));
  const feed = $('#events .feed');
  feed.replaceChildren(...snapshot.recent_events.map((e) => {
    const item = document.createElement('li');
    item.dataset.tx = e.tx_hash;
    const head = document.createElement('div');
    head.className = 'head';
    const kind = document.createElement('span');
    kind.className = 'type';
    kind.textContent = `${e.chain} · block ${e.height} · for ${e.matched_for.join(', ')}`;
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date(e.seen_at * 1000).toLocaleTimeString();
    head.append(kind, time);
    const what = document.createElement('div');
    what.textContent = `${units(e.amount, e.decimals)} ${e.symbol || ''} from ${e.from} to ${e.to}`;
    const hash = document.createElement('div');
    hash.className = 'mono';
    hash.textContent = e.tx_hash;
    item.append(head, what, hash);
    return item;
  }));
  $('#events [data-empty]').hidden = snapshot.recent_events.length > 0;
  $('#updated').textContent = `live · updated ${new Date(snapshot.time * 1000).toLocaleTimeString()}`;
}

function lock(message) {
  $('#board').hidden = true;
  $('#locked').hidden = false;
  $('#login').hidden = false;
  $('#logout').hidden = true;
  if (message) $('#lock-message').textContent = message;
  $('#updated').textContent = 'not connected';
}

/** Reads the stream until it ends; then tries again in a second (the server restarted,
 * or shut the stream at its shutdown). */
async function follow(token) {
  clearTimeout(retry);
  let response;
  try {
    response = await fetch('/admin/v1/dashboard/stream', { headers: { Authorization: `Bearer ${token}` } });
  } catch (error) {
    $('#updated').textContent = 'server unreachable, retrying…';
    retry = setTimeout(() => follow(token), 1000);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    sessionStorage.removeItem(TOKEN_KEY);
    lock(`Refused: ${(body.error && body.error.message) || response.status}. Enter the admin token again.`);
    return;
  }
  if (!response.ok) {
    $('#updated').textContent = `HTTP ${response.status}, retrying…`;
    retry = setTimeout(() => follow(token), 2000);
    return;
  }
  $('#board').hidden = false;
  $('#locked').hidden = true;
  $('#login').hidden = true;
  $('#logout').hidden = false;
  reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (data) render(JSON.parse(data));
      }
    }
  } catch (error) {
    // the connection dropped: try again below
  }
  reader = null;
  if (sessionStorage.getItem(TOKEN_KEY) === token) {
    $('#updated').textContent = 'stream ended, reconnecting…';
    retry = setTimeout(() => follow(token), 1000);
  }
}

$('#login').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('#token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#token').value = '';
  follow(token);
});

$('#logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(retry);
  if (reader) reader.cancel();
  lock('Enter the admin token (server.admin_token) to see the dashboard.');
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) follow(saved);
