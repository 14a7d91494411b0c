// Drives Jmail's webmail in Debian's Chromium, headless: sign in, read, reply with an attachment, see
// mail sent by SMTP appear without a reload, fail to run a script planted in a hostile HTML message,
// use the keyboard, set the automatic reply, set a name and signature, fit a phone's screen, and use the admin page. Screenshots of each screen go to the
// folder given. Usage: node webmail.mjs https://127.0.0.1:PORT SMTP_PORT SCREENSHOT_DIR
import { chromium } from 'playwright-core';
import net from 'node:net';
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const [base, smtpPort, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const WAIT = { timeout: 15000 };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
// Every request and how it ended, for the log when something fails.
const started = Date.now();
const trail = [];
page.on('request', (r) => trail.push(`${Date.now() - started}ms > ${r.method()} ${r.url()}`));
page.on('requestfinished', async (r) => trail.push(`${Date.now() - started}ms < ${(await r.response())?.status()} ${r.url()}`));
page.on('requestfailed', (r) => trail.push(`${Date.now() - started}ms ! ${r.failure()?.errorText} ${r.url()}`));
// Refusals, for the log when something fails (a 401 for the wrong password is expected).
page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) console.error('HTTP', r.status(), r.url()); });

// On any failure: a screenshot of the page as it was, and what it said.
process.on('uncaughtException', async (e) => {
  console.error(String(e));
  try {
    await page.screenshot({ path: `${shots}/failure.png`, fullPage: true });
    console.error(trail.join('\n'));
    console.error('toast:', await page.textContent('#toast'), '| sign-in error:', await page.textContent('#signin-error'));
  } finally { process.exit(1); }
});

// The page and its defences.
const response = await page.goto(base + '/');
const headers = response.headers();
assert.match(headers['content-security-policy'], /script-src 'self'/);
assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
assert.equal(headers['x-frame-options'], 'DENY');
await page.waitForSelector('#signin-form', WAIT);
await shot(page, '1-sign-in');

// A wrong password is told, then the right one signs in.
await page.fill('#signin-user', 'alice');
await page.fill('#signin-password', 'wrong');
await page.click('#signin-button');
await page.waitForSelector('#signin-error:has-text("Wrong name or password")', WAIT);
await page.fill('#signin-password', 'alice-pw');
await page.click('#signin-button');
await page.waitForSelector('#mailboxes a[data-role="inbox"] .count', WAIT);
const unread = await page.textContent('#mailboxes a[data-role="inbox"] .count');
assert.equal(unread, '3', 'the welcome message, the lunch invitation and the hostile one are unread');
await page.waitForSelector('#messages li:has-text("Lunch plans")', WAIT);
await shot(page, '2-inbox');

// Reading marks it read.
await page.click('#messages li:has-text("Lunch plans")');
await page.waitForSelector('#thread pre:has-text("Shall we meet at noon")', WAIT);
await page.waitForFunction(() => document.querySelector('#mailboxes a[data-role="inbox"] .count')?.textContent === '2', null, WAIT);
await shot(page, '3-reading');

// Reply with an attachment.
await page.click('#reply');
await page.waitForSelector('#composer:not([hidden])', WAIT);
assert.equal(await page.inputValue('#compose-to'), 'Bob <bob@localhost>');
assert.equal(await page.inputValue('#compose-subject'), 'Re: Lunch plans');
await page.locator('#compose-body').evaluate((t) => { t.value = 'Noon it is.' + t.value; t.setSelectionRange(0, 0); });
await page.setInputFiles('#compose-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('bring the map\n') });
await page.waitForSelector('#compose-attachments span:has-text("notes.txt")', WAIT);
await shot(page, '4-reply');
await page.click('#compose-send');
await page.waitForSelector('#toast:has-text("Sent")', WAIT);

// A hostile message: its scripts never run, its remote image is held back until asked.
await page.click('#messages li:has-text("Hostile")');
const frame = page.frameLocator('#thread iframe');
await frame.locator('text=Click me').waitFor(WAIT);
await page.waitForSelector('.images-blocked', WAIT);
assert.equal(await frame.locator('script').count(), 0, 'no script element reaches the page');
assert.equal(await frame.locator('[onerror], [onclick], [onload]').count(), 0, 'no event handler either');
await frame.locator('text=Click me').click().catch(() => {});
await page.waitForTimeout(500);
assert.equal(await page.evaluate(() => window.pwned), undefined, 'nothing of the message ran in the page');
assert.deepEqual(dialogs, [], 'no alert opened');
// Its remote images, however spelled, were never asked for (the tracker is 127.0.0.1:9).
assert.deepEqual(trail.filter((t) => t.includes('127.0.0.1:9/')), [], 'no remote image was fetched');
// The frame is sized to its content (which it can only be when this page may read it), and its links
// may open a tab of their own.
assert.match(await page.getAttribute('#thread iframe', 'style') || '', /height: \d+px/);
assert.match(await page.getAttribute('#thread iframe', 'sandbox'), /allow-popups-to-escape-sandbox/);
await shot(page, '5-hostile-message');

// New mail, sent by SMTP while the page is open, appears without a reload.
await smtp(Number(smtpPort), 'frank@example.net', 'alice@localhost',
  'From: Frank <frank@example.net>\r\nTo: alice@localhost\r\nSubject: Pushed news\r\nMessage-ID: <news@example.net>\r\n\r\nFresh from SMTP.\r\n');
await page.waitForSelector('#messages li:has-text("Pushed news")', WAIT);
await shot(page, '6-new-mail-arrived');

// The keyboard: j/k move, c composes, Escape closes, / searches.
await page.click('#list-title');
await page.keyboard.press('j');
await page.keyboard.press('k');
await page.keyboard.press('c');
await page.waitForSelector('#composer:not([hidden])', WAIT);
await page.keyboard.press('Escape');
await page.waitForSelector('#composer', { state: 'hidden', ...WAIT });
await page.keyboard.press('/');
await page.keyboard.type('river');
await page.keyboard.press('Enter');
await page.waitForSelector('#list-title:has-text("Search: river")', WAIT);
await page.waitForSelector('#messages li:has-text("Lunch plans")', WAIT);
assert.equal(await page.locator('#messages li').count(), 1, 'search finds only the message that says river');

// Flag, move and delete: the list and the mailboxes follow.
await page.click('#mailboxes a[data-role="inbox"]');
await page.click('#messages li:has-text("Pushed news")');
await page.click('#flag');
await page.waitForSelector('#messages li:has-text("Pushed news") .flagged', WAIT);
await page.selectOption('#move', { label: 'Archive' });
await page.waitForSelector('#messages li:has-text("Pushed news")', { state: 'detached', ...WAIT });
await page.click('#mailboxes a[data-role="archive"]');
await page.click('#messages li:has-text("Pushed news")');
await page.click('#delete');
await page.waitForSelector('#messages li:has-text("Pushed news")', { state: 'detached', ...WAIT });
await page.click('#mailboxes a[data-role="trash"]');
await page.waitForSelector('#messages li:has-text("Pushed news")', WAIT);
// A reply joins the thread in the Inbox; deleting the thread from Trash leaves the reply where it is.
await smtp(Number(smtpPort), 'frank@example.net', 'alice@localhost',
  'From: Frank <frank@example.net>\r\nTo: alice@localhost\r\nSubject: Re: Pushed news\r\n' +
  'In-Reply-To: <news@example.net>\r\nReferences: <news@example.net>\r\n\r\nMore news.\r\n');
await page.waitForFunction(() => document.querySelector('#mailboxes a[data-role="inbox"] .count')?.textContent === '2', null, WAIT);
await page.click('#messages li:has-text("Pushed news")');
await page.waitForSelector('#thread pre:has-text("More news.")', WAIT);
await page.click('#delete');
await page.waitForSelector('#toast:has-text("Deleted")', WAIT);
await page.waitForSelector('#messages li:has-text("Pushed news")', { state: 'detached', ...WAIT });
await page.click('#mailboxes a[data-role="inbox"]');
await page.waitForSelector('#messages li:has-text("Re: Pushed news")', WAIT);

// A draft saved, then found in Drafts.
await page.click('#compose-button');
await page.fill('#compose-to', 'bob@localhost');
await page.fill('#compose-subject', 'Draft in progress');
await page.fill('#compose-body', 'Not finished yet.');
await page.click('#compose-save');
await page.waitForSelector('#compose-status:has-text("Draft saved")', WAIT);
await page.click('#compose-cancel');
await page.click('#mailboxes a[data-role="drafts"]');
await page.waitForSelector('#messages li:has-text("Draft in progress")', WAIT);

// Forward the sent reply, its attachment with it.
await page.click('#mailboxes a[data-role="sent"]');
await page.click('#messages li:has-text("Lunch plans")');
await page.waitForSelector('#thread .attachments a:has-text("notes.txt")', WAIT);
await page.click('#forward');
await page.waitForSelector('#compose-attachments span:has-text("notes.txt")', WAIT);
await page.fill('#compose-to', 'bob@localhost');
await page.click('#compose-send');
await page.waitForSelector('#toast:has-text("Sent")', WAIT);
await shot(page, '10-sent-folder');

// The automatic reply: off at first; switched on with dates, a subject and a text; kept as saved.
await page.click('#away-button');
await page.waitForSelector('#away:not([hidden])', WAIT);
assert.equal(await page.isChecked('#away-on'), false);
await page.check('#away-on');
await page.fill('#away-from', '2026-01-05');
await page.fill('#away-until', '2026-01-09');
await page.fill('#away-subject', 'Out until Friday');
await page.fill('#away-body', 'Back on the 12th.');
await shot(page, '11-away');
await page.click('#away-save');
await page.waitForSelector('#toast:has-text("Automatic reply on")', WAIT);
await page.waitForSelector('#away-button.on:has-text("Away: on")', WAIT);
await page.waitForSelector('#away', { state: 'hidden', ...WAIT });
await page.click('#away-button');
await page.waitForSelector('#away:not([hidden])', WAIT);
assert.equal(await page.isChecked('#away-on'), true);
assert.equal(await page.inputValue('#away-from'), '2026-01-05');
assert.equal(await page.inputValue('#away-until'), '2026-01-09', 'the last day away comes back as given');
assert.equal(await page.inputValue('#away-subject'), 'Out until Friday');
await page.click('#away-cancel');
await page.waitForSelector('#away', { state: 'hidden', ...WAIT });

// Name and signature: saved, a new message starts with the signature and goes out From the name.
await page.click('#identity-button');
await page.waitForSelector('#identity:not([hidden])', WAIT);
assert.equal(await page.inputValue('#identity-name'), '');
await page.fill('#identity-name', 'Alice Liddell');
await page.fill('#identity-signature', 'Alice\nWonderland Ltd\n\n');
await shot(page, '12-signature');
await page.click('#identity-save');
await page.waitForSelector('#toast:has-text("Name and signature saved")', WAIT);
await page.waitForSelector('#identity', { state: 'hidden', ...WAIT });
await page.click('#compose-button');
assert.equal(await page.inputValue('#compose-body'), '\n\n-- \nAlice\nWonderland Ltd');
await page.fill('#compose-to', 'bob@localhost');
await page.fill('#compose-subject', 'Signed and named');
await page.click('#compose-send');
await page.waitForSelector('#toast:has-text("Sent")', WAIT);
await page.click('#mailboxes a[data-role="sent"]');
await page.click('#messages li:has-text("Signed and named")');
await page.waitForSelector('#thread .meta:has-text("From Alice Liddell")', WAIT);
await page.waitForSelector('#thread :text("Wonderland Ltd")', WAIT);
// A reply has the signature above the quote, without the "-- " that would take the quote along.
await page.click('#reply');
assert.match(await page.inputValue('#compose-body'), /^\n\nAlice\nWonderland Ltd\n\nOn .* wrote:\n> /);
await page.click('#compose-cancel');
await page.click('#identity-button');
assert.equal(await page.inputValue('#identity-name'), 'Alice Liddell', 'kept as saved');
await page.click('#identity-cancel');

// A phone-sized screen: one pane at a time.
const phone = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 375, height: 740 }, isMobile: true });
const small = await phone.newPage();
await small.goto(base + '/');
await small.fill('#signin-user', 'alice');
await small.fill('#signin-password', 'alice-pw');
await small.click('#signin-button');
await small.waitForSelector('#messages li:has-text("Lunch plans")', WAIT);
assert.equal(await small.isVisible('#mailboxes'), false, 'the mailbox list is folded away on a phone');
assert.ok(await small.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
  'nothing is wider than the screen');
await shot(small, '7-phone-list');
await small.click('#messages li:has-text("Lunch plans")');
await small.waitForSelector('#thread pre', WAIT);
assert.equal(await small.isVisible('#list-pane'), false, 'reading takes the whole screen');
await shot(small, '8-phone-reading');

// A long text message shows its first 256 KiB, and offers the rest as a download.
await smtp(Number(smtpPort), 'frank@example.net', 'alice@localhost',
  'From: Frank <frank@example.net>\r\nTo: alice@localhost\r\nSubject: Long log\r\n\r\n' +
  ('log line of sixty-four bytes, give or take, repeated for a while\r\n').repeat(6000));
await page.click('#mailboxes a[data-role="inbox"]');
await page.click('#messages li:has-text("Long log")');
await page.waitForSelector('#thread .truncated a:has-text("download the whole message")', WAIT);
const shown = await page.evaluate(() => document.querySelector('#thread pre').textContent.length);
assert.ok(shown <= 256 * 1024 && shown > 200 * 1024, `shown ${shown} characters`);

// The admin page (alice is an admin): status, and a user added.
await page.goto(base + '/admin');
await page.waitForSelector('#status dd', WAIT);
await page.fill('#new-name', 'dave');
await page.fill('#new-password', 'dave-pw-123');
await page.click('#add-user button');
await page.waitForSelector('#users tr[data-user="dave"]', WAIT);
await page.waitForSelector('#connections td:has-text("https")', WAIT);
await shot(page, '9-admin');

// Signing out ends the token on the server: a copy taken before opens nothing afterwards.
await page.goto(base + '/');
await page.waitForSelector('#messages li', WAIT);
const kept = await page.evaluate(() => sessionStorage.getItem('jmail-token'));
await page.click('#signout');
await page.waitForSelector('#signin-form', WAIT);
const status = () => page.evaluate(async (t) => (await fetch('/.well-known/jmap', { headers: { Authorization: 'Bearer ' + t } })).status, kept);
await page.waitForFunction(async (t) => (await fetch('/.well-known/jmap', { headers: { Authorization: 'Bearer ' + t } })).status === 401, kept, WAIT);
assert.equal(await status(), 401, 'the token taken before signing out is refused');

// On the phone, signing out is at the foot of the mailbox list (the top bar has no room for it).
await small.click('#menu');
await shot(small, '13-phone-menu');
await small.click('#mailboxes .nav-foot button:has-text("Sign out")');
await small.waitForSelector('#signin-form', WAIT);

assert.deepEqual(errors, [], 'no script error on the page');
await browser.close();
console.log('ok');

// Sends one message over SMTP, one command at a time.
function smtp(port, from, to, message) {
  return new Promise((resolve, reject) => {
    const lines = ['EHLO test', `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'DATA', message + '.', 'QUIT'];
    const socket = net.connect(port, '127.0.0.1');
    let buffer = '';
    socket.on('data', (d) => {
      buffer += d.toString();
      // Each complete reply (its last line has a space after the code) lets the next command go.
      while (/^\d{3} .*\r\n/m.test(buffer)) {
        const reply = buffer.match(/^\d{3} .*\r\n/m);
        const code = reply[0].slice(0, 3);
        buffer = buffer.slice(buffer.indexOf(reply[0]) + reply[0].length);
        if (code[0] === '4' || code[0] === '5') { reject(new Error('SMTP said ' + reply[0])); return; }
        const next = lines.shift();
        if (next === undefined) { socket.end(); resolve(); return; }
        socket.write(next + '\r\n');
      }
    });
    socket.on('error', reject);
    socket.on('close', resolve);
  });
}
