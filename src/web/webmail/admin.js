// Jmail's admin page: the server's state, its users and its outbound queue, through /admin/api. It signs in
// as the webmail does (a bearer token in this tab's sessionStorage, sent in a header) and puts every value
// on the page as text.
'use strict';

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('jmail-token');

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function say(text) { $('message').textContent = text; }

async function api(method, path, body) {
  const r = await fetch('/admin/api/' + path, {
    method, headers: Object.assign({ Authorization: 'Bearer ' + token }, body ? { 'Content-Type': 'application/json' } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  if (r.status === 401) { signOut(); throw new Error('sign in'); }
  const out = await r.json();
  if (!r.ok) throw new Error(out.error || String(r.status));
  return out;
}

function bytes(n) {
  if (n === null || n === undefined) return 'unlimited';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

function row(cells, actions) {
  const tr = el('tr');
  for (const c of cells) tr.append(el('td', { textContent: String(c) }));
  const td = el('td');
  for (const [label, act] of actions || []) {
    const b = el('button', { type: 'button', textContent: label });
    b.addEventListener('click', () => act().then(load).catch((e) => say(e.message)));
    td.append(b, ' ');
  }
  tr.append(td);
  return tr;
}

async function load() {
  const status = await api('GET', 'status');
  const dl = $('status');
  dl.replaceChildren();
  for (const [k, v] of [['Host', status.hostname], ['Store', status.store], ['Users', status.users],
    ['Stored', bytes(status.storedBytes) + ' in ' + status.storedMessages + ' messages'], ['Queue', status.queue + ' entries']]) {
    dl.append(el('dt', { textContent: k }), el('dd', { textContent: String(v) }));
  }
  const conns = $('connections').tBodies[0];
  conns.replaceChildren();
  for (const l of status.listeners) {
    const c = status.connections.find((x) => x.protocol === l.protocol) || { open: 0, accepted: 0 };
    conns.append(row([l.protocol, l.address, c.open, c.accepted]));
  }
  const users = $('users').tBodies[0];
  users.replaceChildren();
  for (const u of await api('GET', 'users')) {
    const tr = row([u.name + (u.admin ? ' (admin)' : ''), u.messages, bytes(u.bytes), bytes(u.quotaBytes)], [
      ['Password…', () => { const p = prompt('New password for ' + u.name); return p ? api('POST', 'users/' + encodeURIComponent(u.name) + '/password', { password: p }) : Promise.resolve(); }],
      ['Quota…', () => {
        const q = prompt('Quota in MB for ' + u.name + ' (empty: the default, 0: unlimited)');
        if (q === null) return Promise.resolve();
        const bytesSetting = q.trim() === '' ? 'default' : (Number(q) === 0 ? 'unlimited' : Math.round(Number(q) * 1024 * 1024));
        return api('POST', 'users/' + encodeURIComponent(u.name) + '/quota', { bytes: bytesSetting });
      }],
      ['Delete', () => confirm('Delete ' + u.name + ' and all their mail?') ? api('DELETE', 'users/' + encodeURIComponent(u.name)) : Promise.resolve()],
    ]);
    tr.dataset.user = u.name;
    users.append(tr);
  }
  const queue = $('queue').tBodies[0];
  queue.replaceChildren();
  for (const q of await api('GET', 'queue')) {
    queue.append(row([q.id, q.recipients.join(', '), q.attempts, new Date(q.next_micros / 1000).toLocaleString(), q.last_error || ''], [
      ['Retry', () => api('POST', 'queue/' + q.id + '/retry')],
      ['Drop', () => api('DELETE', 'queue/' + q.id)],
    ]));
  }
}

function signOut() {
  sessionStorage.removeItem('jmail-token');
  token = null;
  $('admin').hidden = true; $('signin').hidden = false;
}

async function start() {
  if (!token) { $('signin').hidden = false; return; }
  $('signin').hidden = true; $('admin').hidden = false;
  try { await load(); } catch (e) { say(e.message); }
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/jmap/token', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: $('signin-user').value, password: $('signin-password').value }) });
  if (!r.ok) { $('signin-error').textContent = 'Wrong name or password.'; return; }
  token = (await r.json()).accessToken;
  sessionStorage.setItem('jmail-token', token);
  start();
});
$('signout').addEventListener('click', signOut);
$('add-user').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api('POST', 'users', { name: $('new-name').value, password: $('new-password').value });
    say('Added ' + $('new-name').value);
    $('new-name').value = ''; $('new-password').value = '';
    await load();
  } catch (err) { say(err.message); }
});
start();
