// The worker page's promises in a real browser: a held key answers once,
// an answer given after the session ended is said to be lost and its task
// comes back, the last answer can be taken back, and a requester's HTML
// cannot make a worker's key press act on the app (the reviewed hijack,
// replayed). Starts the real `tutti serve` on a free port with a fresh
// SQLite file.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { shots, freshStore, startServer, apiOf, launchBrowser } from "./harness.mjs";

let server, base, api, browser, admin, requester, worker, ws;

before(async () => {
  const store = freshStore("trust");
  admin = store.createUser("root", "admin");
  requester = store.createUser("req", "requester");
  worker = store.createUser("wanda", "worker");
  ({ server, base } = await startServer(store.env));
  api = apiOf(base);
  ws = (await api("POST", "/api/v1/workspaces", requester, { name: "Trust" })).body.id;
  for (const token of [worker, admin]) {
    const me = (await api("GET", "/api/v1/users/me", token)).body;
    await api("PUT", `/api/v1/workspaces/${ws}/members/${me.id}`, requester, { role: "worker" });
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function signIn(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(base + "/login");
  await page.click("details summary");
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForURL(base + "/"), page.click("details button[type=submit]")]);
  return page;
}

async function newJob(spec, rows) {
  const made = await api("POST", `/api/v1/workspaces/${ws}/jobs`, requester, spec);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const imported = await api("POST", `/api/v1/jobs/${made.body.id}/items`, requester, rows, "text/csv");
  assert.equal(imported.status, 201);
  return made.body.id;
}

async function answersOf(job) {
  const items = (await api("GET", `/api/v1/jobs/${job}/results`, requester)).body.items;
  return items.reduce((n, r) => n + Object.values(r.votes).reduce((a, b) => a + b, 0), 0);
}

// Resolves once the page holds the task it fetched ahead.
async function fetchedAhead(page) {
  await page.waitForFunction(() => document.querySelector('#other-form input[name="ahead"]')?.value);
}

test("a held key answers the task on screen once, not the tasks behind it", async () => {
  const j = await newJob(
    { name: "Held", question: "Is ${name} a person?", answers: ["Yes", "No"], policy: { k: 1, n: 1 } },
    "name\nAda\nBob\nCy\nDee\nEve\nFay\nGus\nHal\n",
  );
  const page = await signIn(worker);
  await page.goto(`${base}/work/${j}`);
  await fetchedAhead(page);
  const first = await page.textContent("h1.question");
  // A key held past the repeat delay: one press, then six repeats.
  for (let i = 0; i < 7; i++) {
    await page.keyboard.down("1");
    await new Promise((r) => setTimeout(r, 33));
  }
  await page.keyboard.up("1");
  await page.waitForFunction((q) => document.querySelector("h1.question")?.textContent !== q, first);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await answersOf(j), 1, "one answer for one press");
  await page.context().close();
});

test("an answer given after the session ended is said to be lost, and its task comes back after signing in", async () => {
  const j = await newJob(
    { name: "Signed out", question: "Is ${name} a person?", answers: ["Yes", "No"], policy: { k: 1, n: 1 } },
    "name\nAda\nBob\nCy\n",
  );
  const page = await signIn(worker);
  await page.goto(`${base}/work/${j}`);
  await fetchedAhead(page);
  const question = await page.textContent("h1.question");
  // The session ends (as when the password is changed in another browser).
  await page.context().clearCookies();
  await page.keyboard.press("1");
  await page.waitForSelector("text=NOT saved");
  assert.equal(await page.textContent("h1.question"), question, "the unsaved task is back on screen");
  assert.equal(await answersOf(j), 0);
  await page.screenshot({ path: join(shots, "worker-signed-out.png"), fullPage: true });
  // Signing in again brings the worker back to this job's task.
  await page.click("text=Sign in again to answer it.");
  await page.click("details summary");
  await page.fill("input[name=token]", worker);
  await Promise.all([page.waitForURL(new RegExp(`/work/${j}\\?task=\\d+$`)), page.click("details button[type=submit]")]);
  assert.equal(await page.textContent("h1.question"), question);
  await page.context().close();
});

test("the last answer is taken back with Z and its task answered again", async () => {
  const j = await newJob(
    { name: "Undo", question: "Is ${name} a person?", answers: ["Yes", "No"], policy: { k: 2, n: 3 } },
    "name\nAda\nBob\nCy\n",
  );
  const page = await signIn(worker);
  await page.goto(`${base}/work/${j}`);
  await fetchedAhead(page);
  const first = await page.textContent("h1.question");
  await page.keyboard.press("2");
  await page.waitForSelector("#undo-form");
  assert.equal(await answersOf(j), 1);
  await Promise.all([page.waitForURL(/undone=1/), page.keyboard.press("z")]);
  assert.equal(await page.textContent("h1.question"), first, "the undone task is shown again");
  assert.equal(await answersOf(j), 0, "the answer left the tally");
  await page.waitForLoadState("load");
  await page.keyboard.press("1");
  await page.waitForFunction((q) => document.querySelector("h1.question")?.textContent !== q, first);
  await new Promise((r) => setTimeout(r, 300));
  const items = (await api("GET", `/api/v1/jobs/${j}/results`, requester)).body.items;
  const votes = items.find((r) => first.includes(r.data.name)).votes;
  assert.deepEqual(votes, { Yes: 1 });
  await page.context().close();
});

test("a requester's HTML cannot turn the admin's key press into making an admin", async () => {
  // The reviewed reproduction: the requester's buttons join the page's
  // other form and retarget it at the admin's user form.
  const attack =
    '<style>form.answers button{display:none}</style><div class="answers"><button data-key="1" form="other-form" ' +
    'formaction="/admin/users" name="action" value="release"><kbd>1</kbd> Yes</button></div>' +
    '<input form="other-form" type="hidden" name="name" value="evil_admin2">' +
    '<input form="other-form" type="hidden" name="role" value="admin">' +
    '<input form="other-form" type="hidden" name="password" value="evil-password-456">';
  const j = await newJob(
    { name: "Lure", question: "Is ${name} a person?", answers: ["Yes", "No"], short_instructions: attack, policy: { k: 1, n: 1 } },
    "name\nAda\nBob\n",
  );
  const page = await signIn(admin);
  await page.goto(`${base}/work/${j}`);
  assert.equal(await page.locator("main .instructions button, main .instructions input, main style").count(), 0);
  await page.keyboard.press("1");
  await new Promise((r) => setTimeout(r, 800));
  const users = (await api("GET", "/api/v1/users", admin)).body.items.map((u) => u.name);
  assert.ok(!users.includes("evil_admin2"), users.join(", "));
  assert.doesNotMatch(page.url(), /\/admin/);
  assert.equal(await answersOf(j), 1, "the key answered the task, as the worker meant");
  await page.context().close();
});
