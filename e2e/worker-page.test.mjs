// The worker page in a real browser: a worker signs in with a token,
// answers with the keyboard until the job is done, and row values are
// shown as text, never run as script. Starts the real `tutti serve` on a
// free port with a fresh SQLite file. Screenshots go to e2e/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { shots, freshStore, startServer, apiOf, launchBrowser } from "./harness.mjs";

let server, base, api, browser, requester, workers, job;

before(async () => {
  const store = freshStore("e2e");
  requester = store.createUser("req", "requester");
  workers = [store.createUser("ann", "worker"), store.createUser("bob", "worker"), store.createUser("cyd", "worker")];
  ({ server, base } = await startServer(store.env));
  api = apiOf(base);
  const ws = (await api("POST", "/api/v1/workspaces", requester, { name: "E2E" })).body.id;
  for (const token of workers) {
    const me = (await api("GET", "/api/v1/users/me", token)).body;
    await api("PUT", `/api/v1/workspaces/${ws}/members/${me.id}`, requester, { role: "worker" });
  }
  job = (
    await api("POST", `/api/v1/workspaces/${ws}/jobs`, requester, {
      name: "People",
      question: "Is ${name} a person?",
      answers: ["Yes", "No"],
      short_instructions: "<p>Answer <b>Yes</b> for people.</p>",
      long_instructions: "<p>Places and things are <i>No</i>.</p>",
      policy: { k: 2, n: 2 },
    })
  ).body.id;
  const csv = 'name,note\nAda Lovelace,mathematician\nParis,city\n"<img src=x onerror=""window.pwned=1"">",<script>window.pwned=2</script>\n';
  const imported = await api("POST", `/api/v1/jobs/${job}/items`, requester, csv, "text/csv");
  assert.equal(imported.status, 201);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function signIn(token, viewport) {
  const page = await (await browser.newContext({ viewport })).newPage();
  await page.goto(base + "/login");
  await page.click("details summary");
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForURL(base + "/"), page.click("details button[type=submit]")]);
  return page;
}

test("a worker answers every task with the keyboard and row values stay text", async () => {
  // The two answers each row needs, from the first two workers.
  for (const [i, token] of workers.slice(0, 2).entries()) {
    const page = await signIn(token, i === 0 ? { width: 1280, height: 800 } : { width: 390, height: 800 });
    await page.click(`a[href="/work/${job}"]`);
    if (i === 0) await page.screenshot({ path: join(shots, "worker-task.png"), fullPage: true });
    let answered = 0;
    while (await page.locator("h1.question").count()) {
      const question = await page.textContent("h1.question");
      const key = question.includes("Paris") ? "2" : "1";
      await Promise.all([page.waitForLoadState("load"), page.keyboard.press(key)]);
      await page.waitForFunction((q) => document.querySelector("h1.question")?.textContent !== q, question);
      answered++;
      assert.ok(answered <= 3, "more tasks than the job has");
    }
    assert.equal(answered, 3);
    assert.match(await page.textContent("main"), /All done|answered or skipped every open task/);
    assert.equal(await page.evaluate(() => window.pwned), undefined, "row content ran as script");
    if (i === 1) await page.screenshot({ path: join(shots, "worker-done-phone.png"), fullPage: true });
  }
  const results = (await api("GET", `/api/v1/jobs/${job}/results`, requester)).body.items;
  assert.deepEqual(results.map((r) => r.label), ["Yes", "No", "Yes"]);
});

test("the escaped row is shown as text on the page", async () => {
  const page = await signIn(workers[0], { width: 1280, height: 800 });
  await page.goto(base + "/");
  await page.screenshot({ path: join(shots, "worker-jobs.png"), fullPage: true });
  // A fresh job holding only the hostile row, to look at it on the task page.
  const ws = (await api("GET", "/api/v1/workspaces", requester)).body.items[0].id;
  const j = (
    await api("POST", `/api/v1/workspaces/${ws}/jobs`, requester, {
      name: "Hostile", question: "What is ${name}?", answers: ["Text"], policy: { k: 1, n: 1 },
    })
  ).body.id;
  await api("POST", `/api/v1/jobs/${j}/items`, requester, '{"name": "<script>window.pwned=3</script>"}\n', "application/x-ndjson");
  await page.goto(`${base}/work/${j}`);
  assert.equal(await page.textContent("h1.question"), "What is <script>window.pwned=3</script>?");
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  await page.screenshot({ path: join(shots, "worker-escaped.png"), fullPage: true });
});

async function newJob(spec, rows) {
  const ws = (await api("GET", "/api/v1/workspaces", requester)).body.items[0].id;
  const made = await api("POST", `/api/v1/workspaces/${ws}/jobs`, requester, spec);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const imported = await api("POST", `/api/v1/jobs/${made.body.id}/items`, requester, rows, "text/csv");
  assert.equal(imported.status, 201);
  return made.body.id;
}

// Runs `action` and resolves once it has replaced the document, even when
// the new one has the same address (waiting for the address alone would
// resolve at once).
async function replacedBy(page, action) {
  await page.evaluate(() => { window.staleDocument = true; });
  await action();
  await page.waitForFunction(() => !window.staleDocument);
  await page.waitForLoadState("load");
}

// Resolves once the page holds the task it fetched ahead.
async function fetchedAhead(page) {
  await page.waitForFunction(() => document.querySelector('#other-form input[name="ahead"]')?.value);
}

test("the next task is on screen at once after an answer, and every answer is saved", async () => {
  const j = await newJob(
    { name: "Quick", question: "Is ${name} a person?", answers: ["Yes", "No"], policy: { k: 1, n: 1 } },
    "name\nAda\nOslo\nGrace\nRome\n",
  );
  const page = await signIn(workers[1], { width: 1280, height: 800 });
  await page.goto(`${base}/work/${j}`);
  // A mark on this document: it stays while tasks are swapped in.
  await page.evaluate(() => { window.sameDocument = true; });
  const seen = [];
  while (await page.locator("h1.question").count()) {
    const question = await page.textContent("h1.question");
    seen.push(question);
    const key = /Ada|Grace/.test(question) ? "1" : "2";
    if (seen.length < 4) {
      await fetchedAhead(page);
      const started = Date.now();
      await page.keyboard.press(key);
      await page.waitForFunction((q) => document.querySelector("h1.question")?.textContent !== q, question);
      assert.equal(await page.evaluate(() => window.sameDocument), true, "the next task came without a page load");
      console.log(`next task on screen ${Date.now() - started} ms after the key`);
    } else {
      // Nothing was left to fetch ahead: the last answer is a plain post.
      await replacedBy(page, () => page.keyboard.press(key));
    }
    assert.ok(seen.length <= 4, `more tasks than the job has: ${seen.join(" / ")}`);
  }
  assert.equal(seen.length, 4);
  assert.equal(new Set(seen).size, 4, "each task once");
  assert.match(await page.textContent("main"), /All done|answered or skipped every open task/);
  const labels = (await api("GET", `/api/v1/jobs/${j}/results`, requester)).body.items.map((r) => r.label);
  assert.deepEqual(labels, ["Yes", "No", "Yes", "No"]);
});

test("answering again while an answer is still on its way keeps the task after it", async () => {
  const j = await newJob(
    { name: "Slow line", question: "Is ${name} a person?", answers: ["Yes", "No"], policy: { k: 1, n: 1 } },
    "name\nAda\nOslo\nGrace\n",
  );
  const page = await signIn(workers[2], { width: 1280, height: 800 });
  // A slow connection for answers: background posts and plain form posts
  // reach the server 400 ms late; fetching ahead stays quick.
  await page.route(/\/work\/\d+\/assignments\//, async (route) => {
    if (route.request().method() === "POST") await new Promise((r) => setTimeout(r, 400));
    await route.continue();
  });
  await page.goto(`${base}/work/${j}`);
  await fetchedAhead(page);
  const first = await page.textContent("h1.question");
  // The first answer goes in the background and the second task shows;
  // the second answer is pressed (twice, as an impatient person does)
  // before the first is stored, so it waits for it and then posts once,
  // the plain way.
  await page.keyboard.press(/Ada|Grace/.test(first) ? "1" : "2");
  await page.waitForFunction((q) => document.querySelector("h1.question")?.textContent !== q, first);
  const second = await page.textContent("h1.question");
  await replacedBy(page, async () => {
    const key = /Ada|Grace/.test(second) ? "1" : "2";
    await page.keyboard.press(key);
    await page.keyboard.press(key);
  });
  // The third task shows, held for this worker, and its answer counts.
  const third = await page.textContent("h1.question");
  assert.equal(new Set([first, second, third]).size, 3, [first, second, third].join(" / "));
  await replacedBy(page, () => page.keyboard.press(/Ada|Grace/.test(third) ? "1" : "2"));
  const main = await page.textContent("main");
  assert.doesNotMatch(main, /not saved/);
  assert.match(main, /All done|answered or skipped every open task/);
  const labels = (await api("GET", `/api/v1/jobs/${j}/results`, requester)).body.items.map((r) => r.label);
  assert.deepEqual(labels, ["Yes", "No", "Yes"]);
});

test("a graded pairwise job shows both items and takes the slider's grade from the keyboard", async () => {
  const j = await newJob(
    {
      name: "Clearer", question: "Which explanation is clearer?",
      compare: { left: "a", right: "b", scale: 10 }, policy: { k: 1, n: 1 },
    },
    'a,b\n"Water boils at 100 °C at sea level.","<b>Boiling</b> happens when it is hot."\n"Light is fast.","Light travels about 300,000 km each second in a vacuum."\n',
  );
  // The same worker on a phone first (only looking), then at a desk.
  for (const [width, shot] of [[390, "worker-pairwise-phone.png"], [1280, "worker-pairwise.png"]]) {
    const page = await signIn(workers[0], { width, height: 800 });
    await page.goto(`${base}/work/${j}`);
    assert.equal(await page.locator(".pair .side").count(), 2);
    const right = await page.textContent(".pair .side:nth-child(2) .side-body");
    assert.equal(right, "<b>Boiling</b> happens when it is hot.", "the item's markup is shown as text");
    if (width === 1280) {
      const [l, r] = await page.locator(".pair .side").evaluateAll((els) => els.map((e) => e.getBoundingClientRect().x));
      assert.ok(r > l + 200, "side by side on a wide screen");
    } else {
      const [l, r] = await page.locator(".pair .side").evaluateAll((els) => els.map((e) => e.getBoundingClientRect().y));
      assert.ok(r > l, "stacked on a phone");
    }
    await page.screenshot({ path: join(shots, shot), fullPage: true });
    if (width === 390) continue;
    await fetchedAhead(page);
    for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowLeft");
    assert.equal(await page.textContent("#grade-value"), "-3");
    assert.equal(await page.textContent("#grade-words"), "left is better (3 of 10)");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /Light is fast/.test(document.querySelector(".pair")?.textContent ?? ""));
    assert.equal(await page.textContent("#grade-value"), "0", "a new task starts at no preference");
    for (let i = 0; i < 7; i++) await page.keyboard.press("ArrowRight");
    await replacedBy(page, () => page.keyboard.press("Enter"));
    assert.match(await page.textContent("main"), /All done|answered or skipped every open task/);
  }
  const r = await fetch(`${base}/api/v1/jobs/${j}/export?what=answers&format=jsonl`, {
    headers: { authorization: `Bearer ${requester}` },
  });
  const answers = (await r.text()).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(answers.map((a) => [a.annotation, a.grade]), [["left", -3], ["right", 7]]);
});

test("the requester filters the results, sees the charts and downloads what the filter keeps", async () => {
  const page = await signIn(requester, { width: 1280, height: 800 });
  await page.click(`a[href="/jobs/${job}"]`);
  assert.match(await page.textContent("main"), /3 of 3 tasks match/);
  assert.equal(await page.locator("svg[aria-label=Labels] rect").count(), 2, "a bar per label");
  await page.screenshot({ path: join(shots, "requester-results.png"), fullPage: true });

  await page.selectOption("select[name=label]", "Yes");
  await Promise.all([page.waitForURL(/label=Yes/), page.click("form.filters button[type=submit]")]);
  assert.match(await page.textContent("main"), /2 of 3 tasks match/);
  const names = await page.locator("table.results tbody tr td:nth-child(5)").allTextContents();
  assert.deepEqual(names, ["Ada Lovelace", '<img src=x onerror="window.pwned=1">']);
  assert.equal(await page.evaluate(() => window.pwned), undefined, "row content ran as script");

  await page.fill("input[name=q]", "lovelace");
  await Promise.all([page.waitForURL(/q=lovelace/), page.click("form.filters button[type=submit]")]);
  assert.match(await page.textContent("main"), /1 of 3 tasks match/);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
  const csv = (await (await download.createReadStream()).toArray()).join("");
  assert.deepEqual(csv.trim().split("\n").map((l) => l.split(",")[0]), ["_id", "1"]);
  await page.screenshot({ path: join(shots, "requester-results-filtered.png"), fullPage: true });
});
