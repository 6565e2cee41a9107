// The demo page of `rtserver dev`: one socket per protocol, as a client of each would
// open it, and a button that sends a test transfer on the local chain. Credentials come
// from GET /demo/session, which only the dev server has (a local server on a throw-away
// chain: handing them to the page is fine there and nowhere else).
'use strict';

const wsBase = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
const WEI_PER_ETH = 10n ** 18n;
/** Transfers sent by this page: hash -> {clicked (ms, page clock), pushed (ms) }. */
const transfers = new Map();
let session = null;
let commandId = 0;
/** Every socket this page opened: closed when the page is left (below). */
const sockets = new Set();
let leaving = false;

function $(selector, root = document) { return root.querySelector(selector); }

function setState(panelId, text, kind) {
  const state = $(`#${panelId} [data-socket]`);
  state.textContent = text;
  state.className = 'state' + (kind ? ' ' + kind : '');
}

/** Adds a message at the top of a panel's feed: its type, a summary, a tx hash if any. */
function addItem(panelId, type, summary, txHash) {
  const item = document.createElement('li');
  const head = document.createElement('div');
  head.className = 'head';
  const kind = document.createElement('span');
  kind.className = 'type';
  kind.textContent = type;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = new Date().toLocaleTimeString();
  head.append(kind, time);
  item.append(head);
  if (summary) {
    const text = document.createElement('div');
    text.textContent = summary;
    item.append(text);
  }
  if (txHash) {
    item.dataset.tx = txHash;
    const hash = document.createElement('div');
    hash.className = 'mono';
    hash.textContent = txHash;
    item.append(hash);
  }
  $(`#${panelId} .feed`).prepend(item);
  return item;
}

function note(item, text, kind) {
  const extra = document.createElement('div');
  extra.className = kind || 'muted';
  extra.textContent = text;
  item.append(extra);
}

function eth(wei) {
  try {
    const value = BigInt(wei);
    const whole = value / WEI_PER_ETH;
    const fraction = (value % WEI_PER_ETH).toString().padStart(18, '0').replace(/0+$/, '');
    return `${whole}${fraction ? '.' + fraction : ''} ETH`;
  } catch (e) {
    return `${wei}`;
  }
}

function short(value) {
  const text = JSON.stringify(value);
  return text.length > 160 ? text.slice(0, 157) + '…' : text;
}

/** A socket that reconnects after a second when it closes. Its state says "open" once
 * `isReady(message)` is true for a message (the protocol's greeting or the end of its
 * initial sequence): from then on, every new event reaches it as a live push. */
function openSocket(panelId, url, { onOpen, onMessage, isReady, reconnect = true }) {
  const ws = new WebSocket(url);
  sockets.add(ws);
  ws.onopen = () => {
    setState(panelId, isReady ? 'starting' : 'open', isReady ? '' : 'open');
    if (onOpen) onOpen(ws);
  };
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    onMessage(message, ws);
    if (isReady && isReady(message)) setState(panelId, 'open', 'open');
  };
  ws.onclose = (event) => {
    sockets.delete(ws);
    if (leaving) return;
    if (ws.finished) setState(panelId, ws.finished, 'open');
    else setState(panelId, `closed ${event.code}`, 'closed');
    if (reconnect) setTimeout(() => openSocket(panelId, url, { onOpen, onMessage, isReady, reconnect }), 1000);
  };
  return ws;
}

/** Shows how long after its click a transfer's first push came, once both are known. */
function latency(txHash, item) {
  const sent = transfers.get(txHash);
  if (!sent || sent.item) return;
  if (item && !sent.pushedItem) {
    sent.pushedItem = item;
    sent.pushed = performance.now();
  }
  if (sent.clicked === undefined || !sent.pushedItem) return;
  const ms = Math.max(0, Math.round(sent.pushed - sent.clicked));
  sent.item = sent.pushedItem;
  sent.item.dataset.latencyMs = String(ms);
  note(sent.item, `pushed ${ms} ms after the click`, ms <= 1000 ? 'ok' : 'warn');
}

// -- address monitoring: the demo app's stream, ACKing each push ----------------------
function addressMonitoring() {
  openSocket('address-monitoring', `${wsBase}/tx/api/v1/transaction/ws?api_key=${encodeURIComponent(session.api_key)}`, {
    isReady: (message) => message.type === 'connected',
    onMessage(message, ws) {
      if (message.type === 'transaction') {
        const d = message.data;
        const item = addItem('address-monitoring', 'transaction',
          `${eth(d.amount)} from ${d.sender} to ${d.receiver}, block ${d.height}`, d.txhash);
        item.dataset.amount = d.amount;
        if (!transfers.has(d.txhash)) transfers.set(d.txhash, {});
        latency(d.txhash, item);
        ws.send(JSON.stringify({ id: `ack-${++commandId}`, type: 'transactionACK',
          data: { chain_type: d.chain_type, chain_id: d.chain_id, txHash: d.txhash } }));
      } else if (message.type === 'transactionACK') {
        const item = $(`#address-monitoring li[data-tx="${message.data && message.data.txHash}"]`);
        if (item && message.code === 0) note(item, 'ACKed');
      } else {
        addItem('address-monitoring', message.type, message.msg || short(message.data));
      }
    },
  });
}

// -- wallet: the demo user's Safe (the watched address) ------------------------------
function wallet() {
  if (!session.wallet_jwt) {
    setState('wallet', 'no JWT (configure jwt.hs256_secret)', 'closed');
    return;
  }
  openSocket('wallet', `${wsBase}/ws?blockchainId=${session.chain_id}`, {
    // A transfer made before the initial sequence ends is in its transaction_data, and
    // (by design) never again a new_transaction.
    isReady: (message) => message.type === 'user_data',
    onOpen(ws) {
      ws.send(JSON.stringify({ type: 'auth', token: session.wallet_jwt, clientName: 'rtserver demo' }));
    },
    onMessage(message) {
      const d = message.data || {};
      if (message.type === 'new_transaction') {
        const tx = d.newTransaction || {};
        addItem('wallet', 'new_transaction',
          `${tx.value} ${tx.tokenSymbol || ''} ${tx.direction || ''} from ${tx.from}, block ${tx.blockNumber}`, tx.hash);
      } else if (message.type === 'auth_success') {
        addItem('wallet', 'auth_success', `Safe ${d.safeAddress}`);
      } else {
        addItem('wallet', message.type, short(d));
      }
    },
  });
}

// -- channels: the demo user's socket, subscribed to notification.events -------------
function channels() {
  openSocket('channels', `${wsBase}/api/v1/ws?token=${encodeURIComponent(session.channel_token)}`, {
    isReady: (message) => message.event === 'subscribed' && message.channel === 'notification.events',
    onOpen(ws) { ws.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' })); },
    onMessage(message) {
      const d = message.data || {};
      addItem('channels', `${message.event} · ${message.channel || '-'}`,
        d.tx_hash ? `${eth(d.amount_wei)} (offset ${message.offset})` : short(d), d.tx_hash);
    },
  });
}

// -- payment status: one proposal per press, watched on its own socket -----------------
/** The message of an error answer, in whichever API's error shape it came. */
function errorMessage(answer, response) {
  return (answer.error && answer.error.message) || answer.message || answer.msg || `HTTP ${response.status}`;
}

async function apiCall(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Authorization': `Bearer ${session.api_key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(errorMessage(answer, response));
  return answer;
}

async function createPayment() {
  try {
    const proposal = await apiCall('/api/identipay/v1/proposals', {
      chainType: session.chain_type, chainId: session.chain_id, token: 'native',
      amount: session.transfer_wei, amountMatch: 'exact', receivingAddress: session.address,
      expiresIn: 600,
    });
    addItem('payment-status', 'proposal created', `${eth(proposal.amount)} to ${proposal.receivingAddress}, id ${proposal.transactionId}`);
    openSocket('payment-status', `${wsBase}/ws/transactions/${proposal.transactionId}`, {
      reconnect: false,
      onMessage(message, ws) {
        if (message.type === 'settlement') {
          addItem('payment-status', 'settlement', `settled ${message.transactionId}`, message.suiTxDigest);
          ws.finished = 'settled';  // the document's client closes once settled
          ws.close();
        } else {
          addItem('payment-status', message.type, message.status || message.message);
        }
      },
    });
  } catch (error) {
    addItem('payment-status', 'proposal refused', error.message);
  }
}

// -- the button ------------------------------------------------------------------------
async function sendTransfer() {
  const button = $('#send');
  const status = $('#transfer-status');
  button.disabled = true;
  const clicked = performance.now();
  try {
    await createPayment();
    status.textContent = 'sending…';
    const response = await fetch('/demo/transfer', { method: 'POST' });
    const answer = await response.json();
    if (!response.ok) throw new Error(errorMessage(answer, response));
    const sent = transfers.get(answer.tx_hash) || {};
    sent.clicked = clicked;
    transfers.set(answer.tx_hash, sent);
    $('#last-transfer').textContent = answer.tx_hash;
    status.textContent = `sent ${eth(answer.value)}, mined on the local chain`;
    latency(answer.tx_hash);
    await apiCall('/api/v1/ws/publish', {
      channel: 'notification.events', event: 'DEMO_TRANSFER', user_id: session.user_id,
      data: { tx_hash: answer.tx_hash, amount_wei: answer.value, event_type: 'DEMO_TRANSFER' },
    });
  } catch (error) {
    status.textContent = `failed: ${error.message}`;
    status.className = 'bad';
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const response = await fetch('/demo/session');
  session = await response.json();
  $('#address').textContent = session.address;
  $('#where').textContent = `local chain ${session.chain_type} ${session.chain_id} · demo app ${session.app_id}`;
  addressMonitoring();
  wallet();
  channels();
  $('#send').addEventListener('click', sendTransfer);
  $('#send').disabled = false;
  $('#transfer-status').textContent = 'ready';
}

// A page left for another may be kept alive in the back/forward cache, its sockets open:
// close them so that the server (and its dashboard) sees the demo's clients go, and
// start afresh if the page is shown again from that cache.
window.addEventListener('pagehide', () => {
  leaving = true;
  for (const ws of sockets) ws.close(1000, 'page left');
});
window.addEventListener('pageshow', (event) => { if (event.persisted) location.reload(); });

start();
