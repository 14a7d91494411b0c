// Jmail's webmail: a JMAP client (RFC 8620/8621) served by the same binary. Every piece of a message is
// put on the page as text (textContent), never as markup; an HTML body is sanitized by the server and
// shown in an iframe sandboxed without scripts. The sign-in token lives in this tab's sessionStorage and
// goes in an Authorization header: no cookie, so no request from another site carries it.
'use strict';

const USING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail', 'urn:ietf:params:jmap:submission',
  'urn:ietf:params:jmap:vacationresponse'];
const PAGE = 50;
const $ = (id) => document.getElementById(id);

const S = {
  token: sessionStorage.getItem('jmail-token'),
  account: null, username: '', mailboxes: [], current: null, search: '',
  position: 0, total: 0, rows: [], selected: -1, thread: [], draftId: null,
  attachments: [], replying: null, push: null, identity: { name: '', textSignature: '' },
};

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function toast(text) {
  const t = $('toast');
  t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3000);
}

async function http(path, options = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + S.token }, options.headers || {});
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401) { signOut(); throw new Error('signed out'); }
  return r;
}

async function jmap(calls) {
  const r = await http('/jmap/api', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ using: USING, methodCalls: calls }),
  });
  if (!r.ok) throw new Error('the server said ' + r.status);
  const out = {};
  for (const [name, args, id] of (await r.json()).methodResponses) {
    if (name === 'error') throw new Error(args.type + (args.description ? ': ' + args.description : ''));
    out[id] = out[id] ? [].concat(out[id], args) : args;
  }
  return out;
}

// ---- signing in and out

async function signIn(event) {
  event.preventDefault();
  $('signin-error').textContent = '';
  const r = await fetch('/jmap/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: $('signin-user').value, password: $('signin-password').value }),
  });
  if (!r.ok) { $('signin-error').textContent = r.status === 401 ? 'Wrong name or password.' : 'Cannot sign in now (' + r.status + ').'; return; }
  const t = await r.json();
  S.token = t.accessToken;
  sessionStorage.setItem('jmail-token', S.token);
  $('signin-password').value = '';
  start();
}

function signOut() {
  sessionStorage.removeItem('jmail-token');
  // The server ends the token too (every token of this account issued so far): a copy of it taken
  // before signing out opens nothing afterwards.
  if (S.token) fetch('/jmap/logout', { method: 'POST', headers: { Authorization: 'Bearer ' + S.token } }).catch(() => {});
  S.token = null;
  if (S.push) S.push.abort();
  $('app').hidden = true; $('signin').hidden = false;
}

async function start() {
  if (!S.token) { $('signin').hidden = false; return; }
  const r = await http('/.well-known/jmap');
  const session = await r.json();
  S.account = session.primaryAccounts['urn:ietf:params:jmap:mail'];
  S.username = session.username;
  $('whoami').textContent = session.accounts[S.account].name;
  $('signin').hidden = true; $('app').hidden = false;
  await loadMailboxes();
  const inbox = S.mailboxes.find((m) => m.role === 'inbox');
  await openMailbox(inbox ? inbox.id : S.mailboxes[0].id);
  showAway(await loadAway());
  await loadIdentity();
  listen();
}

// ---- mailboxes

function role(r) { return S.mailboxes.find((m) => m.role === r); }

async function loadMailboxes() {
  // Only what the list shows: thread counts cost the server a read of each mailbox's summaries.
  const properties = ['name', 'parentId', 'role', 'sortOrder', 'unreadEmails', 'totalEmails'];
  const out = await jmap([['Mailbox/get', { accountId: S.account, properties }, 'm']]);
  S.mailboxes = out.m.list.sort((a, b) => a.sortOrder - b.sortOrder || a.name.localeCompare(b.name));
  const nav = $('mailboxes');
  nav.replaceChildren();
  const fullName = (m) => {
    const parent = S.mailboxes.find((p) => p.id === m.parentId);
    return parent ? fullName(parent) + ' / ' + m.name : m.name;
  };
  for (const m of S.mailboxes) {
    const a = el('a', { href: '#', className: m.id === S.current ? 'current' : '' },
      el('span', { textContent: fullName(m) }),
      m.unreadEmails ? el('span', { className: 'count', textContent: String(m.unreadEmails) }) : null);
    a.dataset.id = m.id;
    a.dataset.role = m.role || '';
    a.addEventListener('click', (e) => { e.preventDefault(); openMailbox(m.id); });
    nav.append(a);
  }
  // A phone's top bar has no room for these: they sit at the foot of the mailbox list there.
  const action = (text, act) => {
    const b = el('button', { type: 'button', textContent: text });
    b.addEventListener('click', () => { document.querySelector('.app').classList.remove('show-mailboxes'); act(); });
    return b;
  };
  nav.append(el('div', { className: 'narrow-only nav-foot' },
    el('span', { className: 'who', textContent: $('whoami').textContent }),
    action('Signature', openIdentity), action('Sign out', signOut)));
  const move = $('move');
  move.replaceChildren(el('option', { value: '', textContent: 'Move to…' }));
  for (const m of S.mailboxes) move.append(el('option', { value: m.id, textContent: fullName(m) }));
}

async function openMailbox(id) {
  S.current = id; S.search = ''; S.position = 0; $('search').value = '';
  document.querySelector('.app').classList.remove('show-mailboxes');
  for (const a of $('mailboxes').children) a.classList.toggle('current', a.dataset.id === id);
  closeReader();
  await loadList();
}

// ---- the message list

async function loadList(keepSelection) {
  const filter = S.search ? { text: S.search } : { inMailbox: S.current };
  const out = await jmap([
    ['Email/query', { accountId: S.account, filter, sort: [{ property: 'receivedAt', isAscending: false }],
      collapseThreads: true, position: S.position, limit: PAGE, calculateTotal: true }, 'q'],
    ['Email/get', { accountId: S.account, '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' },
      properties: ['threadId', 'from', 'subject', 'receivedAt', 'keywords', 'preview', 'hasAttachment', 'mailboxIds'] }, 'g'],
    ['Thread/get', { accountId: S.account, '#ids': { resultOf: 'g', name: 'Email/get', path: '/list/*/threadId' } }, 't'],
  ]);
  S.total = out.q.total;
  const sizes = {};
  for (const t of out.t.list) sizes[t.id] = t.emailIds.length;
  const byId = {};
  for (const e of out.g.list) byId[e.id] = e;
  const before = S.rows[S.selected] && S.rows[S.selected].id;
  S.rows = out.q.ids.map((id) => byId[id]).filter(Boolean);
  for (const e of S.rows) e.threadSize = sizes[e.threadId] || 1;
  S.selected = keepSelection ? S.rows.findIndex((e) => e.id === before) : -1;
  renderList();
}

function who(addresses) {
  if (!addresses || !addresses.length) return '';
  return addresses.map((a) => a.name || a.email).join(', ');
}

function when(iso) {
  const d = new Date(iso);
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString();
}

function renderList() {
  const mailbox = S.mailboxes.find((m) => m.id === S.current);
  $('list-title').textContent = S.search ? 'Search: ' + S.search : (mailbox ? mailbox.name : '');
  const ul = $('messages');
  ul.replaceChildren();
  S.rows.forEach((e, i) => {
    const unread = !e.keywords.$seen;
    const li = el('li', { className: (unread ? 'unread' : '') + (i === S.selected ? ' selected' : '') },
      el('span', { className: 'from' + (e.keywords.$flagged ? ' flagged' : ''), textContent: who(e.from) || '(no sender)' },
        e.threadSize > 1 ? el('span', { className: 'thread-count', textContent: '(' + e.threadSize + ')' }) : null),
      el('span', { className: 'date', textContent: when(e.receivedAt) }),
      el('span', { className: 'subject' + (e.hasAttachment ? ' clip' : ''), textContent: e.subject || '(no subject)' }),
      el('span', { className: 'preview', textContent: e.preview || '' }));
    li.dataset.id = e.id;
    li.addEventListener('click', () => { S.selected = i; openThread(e); });
    ul.append(li);
  });
  const last = Math.min(S.position + PAGE, S.total);
  $('page-info').textContent = S.total ? (S.position + 1) + '–' + last + ' of ' + S.total : 'No messages';
  $('prev-page').disabled = S.position === 0;
  $('next-page').disabled = last >= S.total;
}

function select(delta) {
  if (!S.rows.length) return;
  S.selected = Math.max(0, Math.min(S.rows.length - 1, S.selected + delta));
  renderList();
  const li = $('messages').children[S.selected];
  if (li) li.scrollIntoView({ block: 'nearest' });
}

// ---- reading

const READ_PROPERTIES = ['threadId', 'mailboxIds', 'keywords', 'from', 'to', 'cc', 'replyTo', 'subject', 'sentAt',
  'receivedAt', 'messageId', 'references', 'textBody', 'htmlBody', 'attachments', 'bodyValues', 'blobId', 'size'];
// The text shown of a message: a 10 MB one would take the page seconds to lay out; the rest is a download.
const TEXT_SHOWN_BYTES = 256 * 1024;

// A thread's messages are read this many at a time (the server's maxObjectsInGet is 500), and at most
// the last SHOWN_MAX are shown: a mailing list's thread of thousands still opens.
const GET_BATCH = 250;
const SHOWN_MAX = 100;

async function openThread(email) {
  closeComposer();
  closeAway();
  closeIdentity();
  const t = await jmap([['Thread/get', { accountId: S.account, ids: [email.threadId] }, 't']]);
  const ids = t.t.list.length ? t.t.list[0].emailIds : [email.id];
  S.thread = [];
  for (let at = 0; at < ids.length; at += GET_BATCH) {
    const out = await jmap([['Email/get', { accountId: S.account, ids: ids.slice(at, at + GET_BATCH),
      properties: READ_PROPERTIES, fetchTextBodyValues: true, maxBodyValueBytes: TEXT_SHOWN_BYTES }, 'g']]);
    S.thread.push(...out.g.list);
  }
  const thread = $('thread');
  thread.replaceChildren();
  const hidden = S.thread.length - SHOWN_MAX;
  if (hidden > 0) thread.append(el('p', { className: 'earlier', textContent: hidden + ' earlier messages of this conversation are not shown.' }));
  for (const e of S.thread.slice(Math.max(0, hidden))) thread.append(await renderMessage(e));
  $('reader').hidden = false;
  document.querySelector('.app').classList.add('reading');
  renderList();
  const unseen = S.thread.filter((e) => !e.keywords.$seen).map((e) => e.id);
  if (unseen.length) {
    await setEmails(Object.fromEntries(unseen.map((id) => [id, { 'keywords/$seen': true }])));
    await refresh();
  }
}

async function renderMessage(e) {
  const box = el('article', { className: 'message' });
  box.dataset.id = e.id;
  box.append(el('h2', { textContent: e.subject || '(no subject)' }),
    el('div', { className: 'meta', textContent: 'From ' + who(e.from) + ' to ' + who(e.to) +
      (e.cc && e.cc.length ? ', cc ' + who(e.cc) : '') + ' · ' + new Date(e.receivedAt).toLocaleString() }));
  const html = (e.htmlBody || []).find((p) => p.type === 'text/html');
  if (html) {
    box.append(await htmlBody(e.id, false));
  } else {
    const values = (e.textBody || []).map((p) => e.bodyValues[p.partId] || {});
    box.append(el('pre', { textContent: values.map((v) => v.value || '').join('\n') }));
    if (values.some((v) => v.isTruncated)) {
      const whole = el('a', { href: '#', textContent: 'download the whole message (' + Math.ceil(e.size / 1024) + ' KB)' });
      whole.addEventListener('click', (ev) => { ev.preventDefault(); download({ blobId: e.blobId, name: 'message.eml' }); });
      box.append(el('p', { className: 'truncated' }, el('span', { textContent: 'The rest is not shown: ' }), whole));
    }
  }
  if (e.attachments && e.attachments.length) {
    const list = el('div', { className: 'attachments' });
    for (const a of e.attachments) {
      const link = el('a', { href: '#', className: 'clip', textContent: (a.name || 'attachment') + ' (' + Math.ceil(a.size / 1024) + ' KB)' });
      link.addEventListener('click', (ev) => { ev.preventDefault(); download(a); });
      list.append(link);
    }
    box.append(list);
  }
  return box;
}

// The sanitized HTML of a message, in an iframe that may run no script and reach nothing of this page.
async function htmlBody(emailId, images) {
  const r = await http('/webmail/html/' + encodeURIComponent(emailId) + (images ? '?images=1' : ''));
  const body = await r.json();
  const holder = el('div');
  if (body.blockedImages > 0) {
    const show = el('button', { type: 'button', textContent: 'Show images' });
    show.addEventListener('click', async () => holder.replaceWith(await htmlBody(emailId, true)));
    holder.append(el('div', { className: 'images-blocked' }, el('span', { textContent: 'Remote images are blocked. ' }), show));
  }
  const frame = el('iframe', { title: 'Message' });
  // No script ever runs in it (the sandbox, and the document's own policy); same origin only so this page
  // can size it to its content; links open in a new tab, outside the sandbox.
  frame.setAttribute('sandbox', 'allow-same-origin allow-popups allow-popups-to-escape-sandbox');
  frame.setAttribute('referrerpolicy', 'no-referrer');
  frame.srcdoc = body.html;
  frame.addEventListener('load', () => {
    try { frame.style.height = (frame.contentDocument.documentElement.scrollHeight + 20) + 'px'; } catch (_) { /* opaque: fixed height */ }
  });
  holder.append(frame);
  return holder;
}

async function download(part) {
  const r = await http('/jmap/download/' + S.account + '/' + encodeURIComponent(part.blobId) + '/' +
    encodeURIComponent(part.name || 'attachment') + '?accept=application/octet-stream');
  const url = URL.createObjectURL(await r.blob());
  const a = el('a', { href: url, download: part.name || 'attachment' });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function closeReader() {
  $('reader').hidden = true;
  S.thread = [];
  document.querySelector('.app').classList.remove('reading');
}

function latest() { return S.thread[S.thread.length - 1]; }

// ---- acting on the open thread

async function updateThread(patchOf) {
  if (!S.thread.length) return;
  await setEmails(Object.fromEntries(S.thread.map((e) => [e.id, patchOf(e)])));
}

// Email/set of `update` (id -> patch) and `destroy` (ids), in calls the server takes whole
// (maxObjectsInSet is 500): a thread of thousands is changed in pieces.
async function setEmails(update, destroy = []) {
  const ids = Object.keys(update);
  for (let at = 0; at < ids.length; at += GET_BATCH) {
    const part = Object.fromEntries(ids.slice(at, at + GET_BATCH).map((id) => [id, update[id]]));
    await jmap([['Email/set', { accountId: S.account, update: part }, 'u' + at]]);
  }
  for (let at = 0; at < destroy.length; at += GET_BATCH) {
    await jmap([['Email/set', { accountId: S.account, destroy: destroy.slice(at, at + GET_BATCH) }, 'd' + at]]);
  }
}

// The open thread's messages that are in the mailbox being looked at (all of them in search results,
// which span mailboxes): a move or a delete acts on those only, so a reply that arrived in the Inbox
// stays there when the thread is deleted from Trash, and the Sent copies stay in Sent.
function hereInThread() { return S.search ? S.thread : S.thread.filter((e) => e.mailboxIds[S.current]); }

async function moveThread(target) {
  const here = hereInThread();
  if (!here.length) return;
  const patch = S.search ? { mailboxIds: { [target]: true } }
    : { ['mailboxIds/' + S.current]: null, ['mailboxIds/' + target]: true };
  await setEmails(Object.fromEntries(here.map((e) => [e.id, patch])));
  closeReader();
  await refresh();
  toast('Moved to ' + S.mailboxes.find((m) => m.id === target).name);
}

async function deleteThread() {
  const trash = role('trash');
  if (trash && (S.search || S.current !== trash.id)) return moveThread(trash.id);
  const here = hereInThread();
  if (!here.length) return;
  // In Trash: gone for good, but a message also kept in another mailbox only leaves Trash.
  const onlyHere = (e) => Object.keys(e.mailboxIds).length === 1;
  const leave = here.filter((e) => !onlyHere(e)).map((e) => [e.id, { ['mailboxIds/' + S.current]: null }]);
  await setEmails(Object.fromEntries(leave), here.filter(onlyHere).map((e) => e.id));
  closeReader(); await refresh(); toast('Deleted');
}

async function toggleFlag() {
  const on = !latest().keywords.$flagged;
  await updateThread(() => ({ 'keywords/$flagged': on ? true : null }));
  for (const e of S.thread) e.keywords.$flagged = on || undefined;
  await refresh();
}

async function markUnread() {
  await updateThread(() => ({ 'keywords/$seen': null }));
  closeReader(); await refresh();
}

// ---- composing

function addresses(text) {
  return text.split(/[,;]/).map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = s.match(/^(.*)<([^>]+)>$/);
    return m ? { name: m[1].trim().replace(/^"|"$/g, ''), email: m[2].trim() } : { email: s };
  });
}

function listText(list) { return (list || []).map((a) => a.name ? a.name + ' <' + a.email + '>' : a.email).join(', '); }

function compose(fields = {}) {
  S.draftId = null; S.replying = fields.replying || null; S.attachments = fields.attachments || [];
  $('compose-to').value = fields.to || '';
  $('compose-cc').value = fields.cc || '';
  $('compose-subject').value = fields.subject || '';
  $('compose-body').value = signed(fields.body || '');
  $('compose-status').textContent = '';
  renderAttachments();
  $('reader').hidden = true;
  $('away').hidden = true;
  $('identity').hidden = true;
  $('composer').hidden = false;
  document.querySelector('.app').classList.add('composing');
  (fields.to ? $('compose-body') : $('compose-to')).focus();
}

function closeComposer() {
  if ($('composer').contains(document.activeElement)) document.activeElement.blur();
  $('composer').hidden = true;
  document.querySelector('.app').classList.remove('composing');
}

function quoted(e) {
  const text = (e.textBody || []).map((p) => (e.bodyValues[p.partId] || {}).value || '').join('\n').replace(/\s+$/, '');
  return '\n\nOn ' + new Date(e.sentAt || e.receivedAt).toLocaleString() + ', ' + who(e.from) + ' wrote:\n' +
    text.split('\n').map((l) => '> ' + l).join('\n');
}

// This user's own address (another's with the same local part, at another domain, is someone else).
function mine(a) { return a.email.toLowerCase() === $('whoami').textContent.toLowerCase(); }

function reply(all) {
  const e = latest();
  if (!e) return;
  const to = (e.replyTo && e.replyTo.length ? e.replyTo : e.from) || [];
  const cc = all ? [].concat(e.to || [], e.cc || []).filter((a) => !mine(a) && !to.some((t) => t.email === a.email)) : [];
  compose({
    to: listText(to), cc: listText(cc),
    subject: /^re:/i.test(e.subject || '') ? e.subject : 'Re: ' + (e.subject || ''),
    body: quoted(e),
    replying: { inReplyTo: e.messageId || [], references: [].concat(e.references || [], e.messageId || []), id: e.id },
  });
}

function forward() {
  const e = latest();
  if (!e) return;
  compose({
    subject: /^fwd:/i.test(e.subject || '') ? e.subject : 'Fwd: ' + (e.subject || ''),
    body: '\n\n---------- Forwarded message ----------\nFrom: ' + listText(e.from) + '\nSubject: ' + (e.subject || '') + quoted(e),
    attachments: (e.attachments || []).map((a) => ({ blobId: a.blobId, name: a.name, type: a.type, size: a.size })),
  });
}

function renderAttachments() {
  const box = $('compose-attachments');
  box.replaceChildren();
  S.attachments.forEach((a, i) => {
    const remove = el('button', { type: 'button', textContent: '×', title: 'Remove' });
    remove.addEventListener('click', () => { S.attachments.splice(i, 1); renderAttachments(); });
    box.append(el('span', { className: 'clip', textContent: a.name + ' ' }, remove));
  });
}

async function attach(files) {
  for (const f of files) {
    $('compose-status').textContent = 'Uploading ' + f.name + '…';
    const r = await http('/jmap/upload/' + S.account + '/', { method: 'POST', body: f, headers: { 'Content-Type': f.type || 'application/octet-stream' } });
    if (!r.ok) { $('compose-status').textContent = 'Could not upload ' + f.name; return; }
    const blob = await r.json();
    S.attachments.push({ blobId: blob.blobId, name: f.name, type: blob.type, size: blob.size });
  }
  $('compose-status').textContent = '';
  $('compose-file').value = '';
  renderAttachments();
}

function draftEmail() {
  const email = {
    mailboxIds: { [role('drafts').id]: true },
    keywords: { $draft: true, $seen: true },
    from: [{ name: S.identity.name || null, email: $('whoami').textContent }],
    to: addresses($('compose-to').value), cc: addresses($('compose-cc').value),
    subject: $('compose-subject').value,
    textBody: [{ partId: 'body', type: 'text/plain' }],
    bodyValues: { body: { value: $('compose-body').value } },
    attachments: S.attachments.map((a) => ({ blobId: a.blobId, type: a.type, name: a.name })),
  };
  if (S.replying) { email.inReplyTo = S.replying.inReplyTo; email.references = S.replying.references; }
  return email;
}

async function saveDraft() {
  const calls = [['Email/set', { accountId: S.account, create: { draft: draftEmail() }, destroy: S.draftId ? [S.draftId] : [] }, 's']];
  const out = await jmap(calls);
  if (!out.s.created || !out.s.created.draft) throw new Error(JSON.stringify(out.s.notCreated));
  S.draftId = out.s.created.draft.id;
  $('compose-status').textContent = 'Draft saved.';
  await loadMailboxes();
}

async function send(event) {
  if (event) event.preventDefault();
  if (!addresses($('compose-to').value).length) { $('compose-status').textContent = 'Who is it to?'; return; }
  $('compose-status').textContent = 'Sending…';
  const sent = role('sent'), drafts = role('drafts');
  const out = await jmap([
    ['Email/set', { accountId: S.account, create: { draft: draftEmail() }, destroy: S.draftId ? [S.draftId] : [] }, 'e'],
    ['EmailSubmission/set', { accountId: S.account, create: { send: { identityId: 'i0', emailId: '#draft' } },
      onSuccessUpdateEmail: { '#send': { ['mailboxIds/' + drafts.id]: null, ['mailboxIds/' + sent.id]: true, 'keywords/$draft': null } } }, 's'],
  ]);
  const submission = [].concat(out.s)[0];
  const draft = [].concat(out.e)[0];
  // The draft this attempt made stays the one to replace (or discard) if the sending failed.
  if (draft && draft.created && draft.created.draft) S.draftId = draft.created.draft.id;
  if (!submission.created || !submission.created.send) {
    const why = (submission.notCreated && submission.notCreated.send) || (out.e[0] || out.e).notCreated || {};
    $('compose-status').textContent = 'Not sent: ' + (why.description || why.type || 'unknown error');
    return;
  }
  if (S.replying) {
    await jmap([['Email/set', { accountId: S.account, update: { [S.replying.id]: { 'keywords/$answered': true } } }, 'a']]);
  }
  closeComposer(); await refresh(); toast('Sent');
}

// ---- the automatic reply while away (JMAP's VacationResponse): dates are whole days, in this browser's
// time zone; "until" includes its day.

async function loadAway() {
  const out = await jmap([['VacationResponse/get', { accountId: S.account }, 'v']]);
  return out.v.list[0];
}

function showAway(v) {
  $('away-button').classList.toggle('on', !!v.isEnabled);
  $('away-button').textContent = v.isEnabled ? 'Away: on' : 'Away';
}

function day(iso, back) {
  if (!iso) return '';
  const d = new Date(iso);
  if (back) d.setDate(d.getDate() - 1);
  const two = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate());
}

function utc(value, next) {
  if (!value) return null;
  const d = new Date(value + 'T00:00');
  if (next) d.setDate(d.getDate() + 1);
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

async function openAway() {
  const v = await loadAway();
  $('away-on').checked = v.isEnabled;
  $('away-from').value = day(v.fromDate, false);
  $('away-until').value = day(v.toDate, true);
  $('away-subject').value = v.subject || '';
  $('away-body').value = v.textBody || '';
  $('away-status').textContent = '';
  closeComposer();
  $('identity').hidden = true;
  $('reader').hidden = true;
  $('away').hidden = false;
  document.querySelector('.app').classList.add('composing');
  $('away-on').focus();
}

function closeAway() {
  $('away').hidden = true;
  document.querySelector('.app').classList.remove('composing');
}

async function saveAway(event) {
  event.preventDefault();
  const patch = {
    isEnabled: $('away-on').checked,
    fromDate: utc($('away-from').value, false),
    toDate: utc($('away-until').value, true),
    subject: $('away-subject').value.trim() || null,
    textBody: $('away-body').value.trim() ? $('away-body').value : null,
    htmlBody: null,
  };
  const out = await jmap([['VacationResponse/set', { accountId: S.account, update: { singleton: patch } }, 'v']]);
  const refused = out.v.notUpdated && out.v.notUpdated.singleton;
  if (refused) { $('away-status').textContent = 'Not saved: ' + (refused.description || refused.type); return; }
  showAway(patch);
  closeAway();
  toast(patch.isEnabled ? 'Automatic reply on' : 'Automatic reply off');
}

// ---- who mail is from: the name and signature of the identity at the account's own address (JMAP's
// Identity `i0`). A new message, reply or forward starts with the signature, after RFC 3676's "-- ".

async function loadIdentity() {
  try {
    const out = await jmap([['Identity/get', { accountId: S.account, ids: ['i0'], properties: ['name', 'textSignature'] }, 'i']]);
    if (out.i.list && out.i.list[0]) S.identity = out.i.list[0];
  } catch (_) { /* mail still works without a name and signature */ }
}

// A new message ends with the signature after "-- "; a reply or forward has it above the quoted text
// and without the separator, which would make readers take the quote for part of the signature.
function signed(body) {
  const signature = S.identity.textSignature;
  if (!signature) return body;
  return body ? '\n\n' + signature + body : '\n\n-- \n' + signature;
}

function openIdentity() {
  $('identity-name').value = S.identity.name || '';
  $('identity-signature').value = S.identity.textSignature || '';
  $('identity-status').textContent = '';
  closeComposer(); closeAway();
  $('reader').hidden = true;
  $('identity').hidden = false;
  document.querySelector('.app').classList.add('composing');
  $('identity-name').focus();
}

function closeIdentity() {
  $('identity').hidden = true;
  document.querySelector('.app').classList.remove('composing');
}

async function saveIdentity(event) {
  event.preventDefault();
  const patch = { name: $('identity-name').value.trim(), textSignature: $('identity-signature').value.replace(/\s+$/, '') };
  const out = await jmap([['Identity/set', { accountId: S.account, update: { i0: patch } }, 'i']]);
  const refused = out.i.notUpdated && out.i.notUpdated.i0;
  if (refused) { $('identity-status').textContent = 'Not saved: ' + (refused.description || refused.type); return; }
  S.identity = patch;
  closeIdentity();
  toast('Name and signature saved');
}

// ---- new mail without reloading: the JMAP event source, read with fetch (EventSource cannot send the
// Authorization header).

async function listen() {
  if (S.push) S.push.abort();
  const controller = new AbortController();
  S.push = controller;
  try {
    const r = await http('/jmap/eventsource?types=*&closeafter=no&ping=30', { signal: controller.signal });
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (/^event: state$/m.test(event)) refresh();
      }
    }
  } catch (_) { /* aborted or dropped: try again below */ }
  if (S.push === controller && S.token) setTimeout(listen, 2000);
}

let refreshing = null;
async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try { await loadMailboxes(); await loadList(true); } finally { refreshing = null; }
  })();
  return refreshing;
}

// ---- keyboard

function typing(e) { return ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.target.tagName); }

document.addEventListener('keydown', (e) => {
  if ($('app').hidden) return;
  if (e.key === 'Escape') { closeComposer(); closeAway(); closeIdentity(); return; }
  if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  const open = () => { if (S.rows[S.selected]) openThread(S.rows[S.selected]); };
  const act = {
    j: () => select(1), k: () => select(-1), o: open, Enter: open,
    u: () => { closeReader(); closeComposer(); }, U: markUnread,
    r: () => reply(false), a: () => reply(true), f: forward, c: () => compose(),
    '#': deleteThread, s: toggleFlag, '/': () => $('search').focus(),
    e: () => { const archive = role('archive'); if (archive) moveThread(archive.id); },
  }[e.key];
  if (act) { e.preventDefault(); act(); }
});

// ---- wiring

function wire() {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('menu').addEventListener('click', () => document.querySelector('.app').classList.toggle('show-mailboxes'));
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); S.search = $('search').value.trim(); S.position = 0; closeReader(); loadList(); });
  $('compose-button').addEventListener('click', () => compose());
  $('prev-page').addEventListener('click', () => { S.position = Math.max(0, S.position - PAGE); loadList(); });
  $('next-page').addEventListener('click', () => { S.position += PAGE; loadList(); });
  $('back').addEventListener('click', closeReader);
  $('reply').addEventListener('click', () => reply(false));
  $('reply-all').addEventListener('click', () => reply(true));
  $('forward').addEventListener('click', forward);
  $('flag').addEventListener('click', toggleFlag);
  $('unread').addEventListener('click', markUnread);
  $('delete').addEventListener('click', deleteThread);
  $('move').addEventListener('change', (e) => { if (e.target.value) moveThread(e.target.value); e.target.value = ''; });
  $('compose-form').addEventListener('submit', send);
  $('compose-save').addEventListener('click', saveDraft);
  $('compose-cancel').addEventListener('click', closeComposer);
  $('compose-file').addEventListener('change', (e) => attach(e.target.files));
  $('away-button').addEventListener('click', openAway);
  $('away-form').addEventListener('submit', saveAway);
  $('away-cancel').addEventListener('click', closeAway);
  $('identity-button').addEventListener('click', openIdentity);
  $('identity-form').addEventListener('submit', saveIdentity);
  $('identity-cancel').addEventListener('click', closeIdentity);
  window.addEventListener('unhandledrejection', (e) => toast(String(e.reason && e.reason.message || e.reason)));
  start().catch((e) => { if (S.token) toast(e.message); });
}

wire();
