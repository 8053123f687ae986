// Browser test of Tern's web console (mta/console/) in Debian's Chromium,
// driven by playwright-core. Run by tests/integration/test_console_browser.py,
// which starts a Tern and fills it first:
//   node tests/browser/console.test.mjs http://127.0.0.61:8025
// The fixture it expects: in the queue, three messages deferred to remote.test
// from held@client.test (held), deferred@client.test and doomed@client.test;
// in bob@example.test's Maildir, one message whose subject is SUBJECT below.
// Exits 0 when every check passed; prints what failed and exits 1 otherwise.
// With TERN_CONSOLE_TOKEN=... the server wants its bearer token (as from
// another host): the console must ask for it once, in a prompt, which the test
// answers; the test's own API calls send it too.
// With TERN_CONSOLE_DIR=/path/to/mta/console the page's own files come from
// there rather than from the binary (to try a console change without a rebuild).
// A screenshot is saved to tests/browser/artifacts/console.png either way.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const BASE = (process.argv[2] || "").replace(/\/$/, "");
if (!/^http:\/\/127\.\d+\.\d+\.\d+:\d+$/.test(BASE)) {
  console.error("usage: node console.test.mjs http://127.0.0.x:PORT (loopback only)");
  process.exit(2);
}
const SUBJECT = "Hello <b>Bob</b> & co";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
const STEP_TIMEOUT = 10_000;
// TERN_CONSOLE_DIR=mta/console: serve the console's files from there (see below).
const CONSOLE_DIR = process.env.TERN_CONSOLE_DIR || "";
const TOKEN = process.env.TERN_CONSOLE_TOKEN || "";
let prompts = 0;

// Whatever happens, never run for more than 100 s.
const watchdog = setTimeout(() => {
  console.error("FAIL: the browser test took more than 100 s");
  process.exit(1);
}, 100_000);

class CheckFailed extends Error {}
function check(cond, what) {
  if (!cond) throw new CheckFailed(what);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), ...(TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {}) };
  const r = await fetch(BASE + path, { ...options, headers, signal: AbortSignal.timeout(STEP_TIMEOUT) });
  const type = r.headers.get("content-type") || "";
  return { status: r.status, body: type.startsWith("application/json") ? await r.json() : await r.text() };
}

// Polls fn() (async) until it returns something truthy, for at most `ms`.
async function until(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new CheckFailed(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let step = "start";
async function run(page, problems, dialogs, expectedDialogs) {
  // The fixture, found through the API.
  step = "the fixture";
  const queue = await api("/api/v1/queue");
  check(queue.status === 200, `GET /api/v1/queue: ${queue.status}`);
  const bySender = Object.fromEntries(queue.body.messages.map((m) => [m.sender, m]));
  const held = bySender["held@client.test"], deferred = bySender["deferred@client.test"], doomed = bySender["doomed@client.test"];
  check(held && deferred && doomed && queue.body.messages.length === 3,
        `unexpected fixture: ${JSON.stringify(queue.body.messages.map((m) => m.sender))}`);
  check(held.held && !deferred.held && !doomed.held, "only held@client.test's message should be held");
  const attemptsBefore = deferred.recipients[0].attempts;
  const row = (id) => page.locator(`#queue tbody tr[data-id="${id}"]`);
  const text = (sel) => page.locator(sel).textContent();

  step = "load the page";
  const response = await page.goto(BASE + "/", { waitUntil: "load" });
  check(response && response.status() === 200, `GET /: ${response && response.status()}`);
  // With a token the page's first API calls open a prompt at once, and the
  // page answers nothing (not even its title) until the prompt is answered.
  if (TOKEN) await until(async () => prompts === 1, STEP_TIMEOUT, "the console asks for the token");
  const title = await page.title();
  check(title === "Tern", `title: ${title}`);

  step = "the queue table lists the messages";
  await page.waitForFunction(() => document.querySelectorAll("#queue tbody tr").length === 3, null,
                             { timeout: STEP_TIMEOUT });
  check(await page.locator("#queue-empty").isHidden(), "'The queue is empty.' shown beside messages");
  for (const [m, rcpt] of [[held, "held@remote.test"], [deferred, "someone@remote.test"], [doomed, "doomed@remote.test"]]) {
    const t = await row(m.id).textContent();
    check(t.includes(m.id), `row of ${m.sender} lacks its ID`);
    check(t.includes(`<${m.sender}>`), `row of ${m.sender} lacks the sender: ${t}`);
    check(t.includes(`${rcpt} (deferred)`), `row of ${m.sender} lacks '${rcpt} (deferred)': ${t}`);
    check(t.includes(String(m.size)), `row of ${m.sender} lacks the size ${m.size}`);
  }
  check((await row(held.id).getAttribute("class")).split(" ").includes("held"), "the held row is not marked held");
  check((await row(held.id).locator("button.release").textContent()) === "Release", "no Release button on the held row");
  check((await row(deferred.id).locator("button.hold").textContent()) === "Hold", "no Hold button on a queued row");
  const ids = await page.locator("#queue tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.id));
  check(JSON.stringify(ids) === JSON.stringify(queue.body.messages.map((m) => m.id)), `row order: ${ids}`);

  step = "the live counts";
  await page.waitForFunction(() => document.querySelector("#counts").textContent === "3 messages · 1 held · 3 deferred",
                             null, { timeout: STEP_TIMEOUT }).catch(async () => {
    throw new CheckFailed(`counts: '${await text("#counts")}'`);
  });

  step = "filter by status";
  await page.selectOption("#filters select[name=status]", "held");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction((id) => {
    const rows = document.querySelectorAll("#queue tbody tr");
    return rows.length === 1 && rows[0].dataset.id === id;
  }, held.id, { timeout: STEP_TIMEOUT });
  await page.fill("#filters input[name=sender]", "nobody-like-this");
  await page.selectOption("#filters select[name=status]", "");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#queue tbody tr").length === 0, null, { timeout: STEP_TIMEOUT });
  check(await page.locator("#queue-empty").isVisible(), "'The queue is empty.' not shown for an empty result");
  await page.fill("#filters input[name=sender]", "");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#queue tbody tr").length === 3, null, { timeout: STEP_TIMEOUT });

  step = "Retry on the deferred message";
  const [retried] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/api/v1/messages/${deferred.id}/retry` && r.request().method() === "POST",
                         { timeout: STEP_TIMEOUT }),
    row(deferred.id).locator("button.retry").click(),
  ]);
  check(retried.status() === 200, `retry answered ${retried.status()}`);
  check((await retried.json()).result === "1 recipients scheduled", "retry did not schedule the recipient");
  await until(async () => (await api(`/api/v1/messages/${deferred.id}`)).body.recipients[0].attempts > attemptsBefore,
              15_000, "the retried message had no new attempt");
  // The page still shows it (still deferred: the port is closed).
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#queue tbody tr").length === 3, null, { timeout: STEP_TIMEOUT });
  check((await row(deferred.id).textContent()).includes("someone@remote.test (deferred)"), "retried row gone or changed");

  step = "the message detail: attempts and source";
  await row(deferred.id).locator("a.open").click();
  await page.waitForFunction((n) => !document.querySelector("#detail").hidden &&
                                    document.querySelectorAll("#detail #attempts li").length >= n,
                             attemptsBefore + 1, { timeout: STEP_TIMEOUT });
  check(page.url().endsWith(`#message/${deferred.id}`), `URL after opening a message: ${page.url()}`);
  check((await text("#detail h2")) === `Message ${deferred.id}`, `detail heading: ${await text("#detail h2")}`);
  check((await text("#detail")).includes("From <deferred@client.test>"), "detail lacks the sender");
  const attempts = await page.locator("#detail #attempts li").allTextContents();
  for (const a of attempts) {
    check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z <someone@remote\.test> deferred relay=127\.0\.0\.1\[127\.0\.0\.1\]:9 \(451 4\.4\.1 connect to .*Connection refused\)$/.test(a),
          `attempt line: ${a}`);
  }
  // Parsed as HTML (innerHTML), the source's CRLFs read back as LFs.
  const raw = (await text("#detail #raw")).replace(/\r\n/g, "\n");
  check(raw.startsWith("Received: from "), `raw source does not start with our Received: ${raw.slice(0, 80)}`);
  check(raw.endsWith("\nSubject: deferred one\n\nbody of deferred one\n"), `raw source lacks the message: ${raw}`);

  step = "leaving the detail";
  // The Queue link shows the queue alone (the detail used to stay open below it).
  await page.click("#nav-queue");
  await page.locator("#detail").waitFor({ state: "hidden", timeout: STEP_TIMEOUT });
  check(await page.locator("#queue-view").isVisible(), "the queue view is hidden");

  step = "a message that does not exist";
  // An unknown ID in the URL is reported (it used to be an unhandled rejection, shown nowhere).
  const alerted = page.waitForEvent("dialog", { timeout: STEP_TIMEOUT });
  await page.evaluate(() => { location.hash = "message/NOSUCHID"; });
  const dialog = await alerted;
  check(dialog.message() === "no message with ID NOSUCHID", `alert: ${dialog.message()}`);
  expectedDialogs.push(dialog.message());
  check(await page.locator("#detail").isHidden(), "a detail is shown for a message that does not exist");
  await page.click("#nav-queue");

  step = "Release and Hold";
  await row(held.id).locator("button.release").click();
  await page.waitForFunction((id) => {
    const r = document.querySelector(`#queue tbody tr[data-id="${id}"]`);
    return r && !r.classList.contains("held") && r.querySelector("button.hold");
  }, held.id, { timeout: STEP_TIMEOUT });
  check((await api(`/api/v1/messages/${held.id}`)).body.held === false, "Release did not release");
  await page.waitForFunction(() => document.querySelector("#counts").textContent.includes("0 held"), null, { timeout: STEP_TIMEOUT });
  await row(held.id).locator("button.hold").click();
  await page.waitForFunction((id) => document.querySelector(`#queue tbody tr[data-id="${id}"]`)?.classList.contains("held"),
                             held.id, { timeout: STEP_TIMEOUT });
  check((await api(`/api/v1/messages/${held.id}`)).body.held === true, "Hold did not hold");

  step = "Delete a message";
  const [deleted] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/api/v1/messages/${doomed.id}` && r.request().method() === "DELETE",
                         { timeout: STEP_TIMEOUT }),
    row(doomed.id).locator("button.delete").click(),
  ]);
  check(deleted.status() === 200, `delete answered ${deleted.status()}`);
  await row(doomed.id).waitFor({ state: "detached", timeout: STEP_TIMEOUT });
  check((await page.locator("#queue tbody tr").count()) === 2, "other rows went with the deleted one");
  check((await api(`/api/v1/messages/${doomed.id}/raw`)).status === 404, "the deleted message is still there");
  await page.waitForFunction(() => document.querySelector("#counts").textContent.startsWith("2 messages · 1 held"), null,
                             { timeout: STEP_TIMEOUT }).catch(async () => {
    throw new CheckFailed(`counts after delete: '${await text("#counts")}'`);
  });

  step = "the Mailboxes view";
  await page.click("#nav-mailboxes");
  await page.locator("#mailboxes-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  check(await page.locator("#queue-view").isHidden(), "the queue view is still shown beside the mailboxes");
  await page.fill("#mailbox-form input[name=address]", "bob@example.test");
  await page.click("#mailbox-form button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#mailbox tbody tr").length === 1, null, { timeout: STEP_TIMEOUT });
  const link = page.locator("#mailbox tbody a.mail");
  check((await link.textContent()) === SUBJECT, `subject shown: ${await link.textContent()}`);
  check((await page.locator("#mailbox tbody b").count()) === 0, "the subject's markup was rendered as HTML");
  const cells = await page.locator("#mailbox tbody td").allTextContents();
  check(cells.length === 3 && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/.test(cells[0]) && /^\d+$/.test(cells[2]),
        `mailbox row: ${JSON.stringify(cells)}`);
  await link.click();
  await page.locator("#mailbox-message").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  const mail = await text("#mailbox-message");
  check(mail.startsWith("Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\n"), `mail shown: ${mail.slice(0, 100)}`);
  check(mail.includes("body for bob"), "the mail's body is not shown");
  check(page.url().endsWith("#mailboxes"), `the mail link changed the URL: ${page.url()}`);

  step = "the Metrics view";
  await page.click("#nav-metrics");
  await page.locator("#metrics-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  check(await page.locator("#mailboxes-view").isHidden(), "the mailboxes view is still shown beside the metrics");
  check(await page.locator("#chart").isVisible(), "no chart");

  step = "back to the queue";
  await page.click("#nav-queue");
  await page.locator("#queue-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  check((await page.locator("#queue tbody tr").count()) === 2, "queue rows after navigating back");
  if (TOKEN) check(prompts === 1, `the console asked for the token ${prompts} times, not once`);
  const unexpected = dialogs.filter((d) => !expectedDialogs.includes(d));
  check(problems.length === 0 && unexpected.length === 0,
        `errors in the page: ${[...problems, ...unexpected.map((d) => `alert: ${d}`)].join(" | ")}`);
}

const profile = mkdtempSync(join(tmpdir(), "tern-chromium-"));
let browser, page, failed = false;
const problems = [], dialogs = [], expectedDialogs = [];
try {
  // launchPersistentContext: a fresh profile in a temp dir of our own.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1200, height: 800 },
    timeout: 30_000,
  });
  browser = context;
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // Chromium logs every 4xx answer; those the test asks for are expected.
    const url = m.location().url || "";
    // With a token, the first API calls are answered 401 until it is given.
    const unauthorized = TOKEN && prompts <= 1 && m.text().includes("401");
    if (m.type() === "error" && !unauthorized && !(url.endsWith("/favicon.ico") || url.endsWith("/NOSUCHID"))) {
      problems.push(`console: ${m.text()} (${url})`);
    }
  });
  page.on("dialog", async (d) => {
    if (d.type() === "prompt" && TOKEN) {
      await d.accept(TOKEN);
      ++prompts;  // after the answer: the page runs again from here on
      return;
    }
    dialogs.push(d.message());
    await d.dismiss();
  });
  // Nothing but the server under test.
  await context.route((url) => !url.href.startsWith(BASE + "/"), (route) => {
    problems.push(`request outside the console: ${route.request().url()}`);
    return route.abort();
  });
  if (CONSOLE_DIR) {
    // The console's files from a source tree instead of those compiled into
    // the binary: try a change to mta/console/ without rebuilding.
    const types = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };
    await context.route((url) => ["/", "/index.html", "/app.js", "/style.css"].includes(url.pathname) && url.href.startsWith(BASE + "/"),
                        (route) => {
      const name = new URL(route.request().url()).pathname.slice(1) || "index.html";
      return route.fulfill({ status: 200, contentType: types[name.split(".").pop()], body: readFileSync(join(CONSOLE_DIR, name)) });
    });
    console.log(`console files from ${CONSOLE_DIR}`);
  }
  await run(page, problems, dialogs, expectedDialogs);
  console.log("PASS: console.test.mjs");
} catch (e) {
  failed = true;
  console.error(`FAIL at step "${step}": ${e instanceof CheckFailed ? e.message : e.stack || e}`);
  if (problems.length) console.error(`errors in the page: ${problems.join(" | ")}`);
} finally {
  if (page) {
    try {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "console.png"), fullPage: true, timeout: STEP_TIMEOUT });
    } catch (e) {
      console.error(`could not save the screenshot: ${e.message}`);
    }
  }
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
