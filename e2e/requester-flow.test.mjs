// The whole path through the pages in a real browser: a requester makes a
// workspace and invites two workers, who sign up with a password; the
// requester makes a job from a CSV file; the workers label it with the
// keyboard; a workflow with a syntax error is shown with its line marked;
// a worker of another workspace cannot open the job. Starts the real
// `tutti serve` on a free port with a fresh SQLite file; screenshots go to
// e2e/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { shots, freshStore, startServer, launchBrowser } from "./harness.mjs";

const store = freshStore("flow");
const env = store.env;

let server, base, browser, requesterToken;
const state = {};

before(async () => {
  requesterToken = store.createUser("rita", "requester");
  ({ server, base } = await startServer(env));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function fresh(viewport = { width: 1280, height: 800 }) {
  return (await browser.newContext({ viewport, acceptDownloads: true })).newPage();
}

// Clicks `selector` and resolves once the form's answer has replaced the
// document, even when it comes back to the same address.
async function submit(page, selector) {
  await page.evaluate(() => { window.staleDocument = true; });
  await page.click(selector);
  await page.waitForFunction(() => !window.staleDocument);
  await page.waitForLoadState("load");
}

async function signUp(link, name, viewport) {
  const page = await fresh(viewport);
  await page.goto(base + link);
  await page.fill("input[name=name]", name);
  await page.fill("input[name=password]", `${name}-long-password`);
  await page.fill("input[name=password2]", `${name}-long-password`);
  await Promise.all([page.waitForURL(base + "/"), page.click("form button[type=submit]")]);
  return page;
}

test("a requester makes a workspace and invites two workers, who sign up with a password", async () => {
  const page = await fresh();
  await page.goto(base + "/login");
  await page.screenshot({ path: join(shots, "sign-in.png"), fullPage: true });
  await page.click("details summary");
  await page.fill("input[name=token]", requesterToken);
  await Promise.all([page.waitForURL(base + "/"), page.click("details button[type=submit]")]);
  await page.fill("input[name=name]", "Restaurants");
  await Promise.all([page.waitForURL(/\/workspaces\/\d+\/settings$/), page.click("form.inline button[type=submit]")]);
  state.ws = page.url().match(/workspaces\/(\d+)/)[1];
  state.links = [];
  for (let i = 0; i < 2; i++) {
    await submit(page, `form[action="/workspaces/${state.ws}/invitations"] button`);
    state.links.push(await page.textContent("#invitation-link"));
  }
  assert.notEqual(state.links[0], state.links[1]);
  await page.screenshot({ path: join(shots, "workspace-settings.png"), fullPage: true });
  state.requester = page;

  state.ann = await signUp(state.links[0], "ann");
  state.bob = await signUp(state.links[1], "bob", { width: 390, height: 800 });
  // A used invitation does not work twice.
  const again = await fresh();
  const r = await again.goto(base + state.links[0]);
  assert.equal(r.status(), 404);
  assert.match(await again.textContent("main"), /already used or expired/);

  // Sign out and back in with the password; a wrong one is refused.
  await submit(state.bob, "header form button");
  assert.equal(new URL(state.bob.url()).pathname, "/login");
  await state.bob.fill("input[name=name]", "bob");
  await state.bob.fill("input[name=password]", "not-bobs-password");
  await submit(state.bob, "form.card button[type=submit]");
  assert.match(await state.bob.textContent("[role=alert]"), /do not match/);
  await state.bob.fill("input[name=name]", "bob");
  await state.bob.fill("input[name=password]", "bob-long-password");
  await Promise.all([state.bob.waitForURL(base + "/"), state.bob.click("form.card button[type=submit]")]);
  await page.goto(`${base}/workspaces/${state.ws}/settings`);
  const members = await page.locator("table.members tbody tr td:first-child").allTextContents();
  assert.deepEqual(members.sort(), ["ann", "bob", "rita"]);
});

test("the requester makes a job from a CSV file and two workers label it with the keyboard", async () => {
  const page = state.requester;
  await page.goto(base + "/");
  await submit(page, `a[href="/workspaces/${state.ws}/jobs/new"]`);
  await page.fill("input[name=name]", "Open late?");
  await page.fill("input[name=question]", "Is ${name} open after 22:00?");
  await page.fill("textarea[name=answers]", "Yes\nNo");
  await page.fill("input[name=k]", "2");
  await page.fill("input[name=n]", "2");
  await page.setInputFiles("input[name=file]", {
    name: "places.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("name,city\nNight Owl,Lyon\nEarly Bird,Lyon\n<b>Bold</b> Diner,Nice\n"),
  });
  await page.screenshot({ path: join(shots, "new-job.png"), fullPage: true });
  await Promise.all([page.waitForURL(/\/jobs\/\d+$/), page.click("form.card button[type=submit]")]);
  state.job = page.url().match(/jobs\/(\d+)$/)[1];
  assert.match(await page.textContent("main"), /3 of 3 tasks match/);

  for (const worker of [state.ann, state.bob]) {
    await worker.goto(base + "/");
    await submit(worker, `a[href="/work/${state.job}"]`);
    let answered = 0;
    while (await worker.locator("h1.question").count()) {
      const question = await worker.textContent("h1.question");
      const key = question.includes("Night Owl") ? "1" : "2";
      await Promise.all([worker.waitForLoadState("load"), worker.keyboard.press(key)]);
      await worker.waitForFunction((q) => document.querySelector("h1.question")?.textContent !== q, question);
      answered++;
      assert.ok(answered <= 3, "more tasks than the job has");
    }
    assert.equal(answered, 3);
  }
  await page.goto(`${base}/jobs/${state.job}`);
  assert.match(await page.textContent("main"), /3 labeled/);
  assert.equal(await page.locator("svg[aria-label=Labels] rect").count(), 2);
  await page.goto(`${base}/jobs/${state.job}/workers`);
  const workers = await page.locator("table.results tbody tr td:first-child").allTextContents();
  assert.deepEqual(workers.sort(), ["ann", "bob"]);
  assert.ok(await page.locator("svg[aria-label='Answers per hour'] rect").count() >= 1);
  await page.screenshot({ path: join(shots, "workers-and-activity.png"), fullPage: true });
});

test("a workflow with a syntax error is shown with its line marked, a good one as a graph", async () => {
  const page = state.requester;
  await page.goto(`${base}/workspaces/${state.ws}/runs/new`);
  await page.fill("textarea[name=program]", 'T = read_table("people.csv");\nS = sample_random(T, n=2);\nwrite_table(S file="s.csv");\n');
  await page.setInputFiles("input[name=files]", {
    name: "people.csv", mimeType: "text/csv", buffer: Buffer.from("name\nAda\nBob\nCy\n"),
  });
  await submit(page, "form.card button[type=submit]");
  assert.match(await page.textContent("[role=alert]"), /line 3/);
  assert.equal(await page.textContent("#bad-line"), '3write_table(S file="s.csv");');
  await page.screenshot({ path: join(shots, "workflow-error.png"), fullPage: true });

  await page.fill("textarea[name=program]", 'T = read_table("people.csv");\nS = sample_random(T, n=2);\nwrite_table(S, file="s.csv");\n');
  await page.setInputFiles("input[name=files]", {
    name: "people.csv", mimeType: "text/csv", buffer: Buffer.from("name\nAda\nBob\nCy\n"),
  });
  await Promise.all([page.waitForURL(/\/runs\/\d+$/), page.click("form.card button[type=submit]")]);
  assert.equal(await page.locator("svg.dag g.node").count(), 3);
  // The page follows the run live until it completes.
  await page.waitForSelector("#run-live[data-final]", { timeout: 20000 });
  assert.equal(await page.locator("svg.dag g.node.completed").count(), 3);
  await page.screenshot({ path: join(shots, "run.png"), fullPage: true });
});

test("a worker of another workspace cannot open the job", async () => {
  // Rita opens a second workspace to sign-up; Olga joins it there.
  const page = state.requester;
  await page.goto(base + "/");
  await page.fill("input[name=name]", "Other team");
  await Promise.all([page.waitForURL(/\/workspaces\/\d+\/settings$/), page.click("form.inline button[type=submit]")]);
  const other = page.url().match(/workspaces\/(\d+)/)[1];
  await page.check("input[name=registration][value=open]");
  await submit(page, `form[action="/workspaces/${other}/registration"] button`);
  const olga = await fresh();
  await olga.goto(base + "/signup");
  await olga.selectOption("select[name=workspace]", other);
  await olga.fill("input[name=name]", "olga");
  await olga.fill("input[name=password]", "olga-long-password");
  await olga.fill("input[name=password2]", "olga-long-password");
  await Promise.all([olga.waitForURL(base + "/"), olga.click("form button[type=submit]")]);
  assert.doesNotMatch(await olga.textContent("main"), /Open late/);
  for (const path of [`/work/${state.job}`, `/jobs/${state.job}`, `/jobs/${state.job}/export`]) {
    const r = await olga.goto(base + path);
    assert.equal(r.status(), 404, path);
    assert.match(await olga.textContent("main"), /not found/i);
  }
  await olga.screenshot({ path: join(shots, "not-found.png"), fullPage: true });
});
