/* imaginebot web UI: plain JavaScript over the native API (/api/v1); no framework, no build step.
 *
 * Every request sends X-Imaginebot-Request: 1 (the cookie alone never authorises a change). Text from the server
 * or the member is only ever put into the page as text (textContent, attribute values), never as markup.
 */
(() => {
  "use strict";

  const API = "/api/v1";
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const PER_IMAGE = new Map([
    ["upscale", ["U", "Upscale image"]],
    ["vary", ["V", "Vary image"]],
  ]);
  const LABELS = new Map([
    ["upscale", ["Upscale", "Upscale"]],
    ["vary", ["Vary", "Vary"]],
    ["vary_subtle", ["Vary (subtle)", "Vary subtly"]],
    ["vary_strong", ["Vary (strong)", "Vary strongly"]],
    ["reroll", ["\u{1F504} Reroll", "Reroll: the same prompt with new seeds"]],
    ["zoom_out_1.5", ["Zoom out 1.5\u00D7", "Zoom out 1.5 times"]],
    ["zoom_out_2", ["Zoom out 2\u00D7", "Zoom out 2 times"]],
    ["pan_left", ["\u2190 Left", "Pan left"]],
    ["pan_right", ["\u2192 Right", "Pan right"]],
    ["pan_up", ["\u2191 Up", "Pan up"]],
    ["pan_down", ["\u2193 Down", "Pan down"]],
  ]);
  const FLAG_FIELDS = [
    ["opt-ar", "ar", ["ar", "aspect"]],
    ["opt-model", "model", ["model"]],
    ["opt-sampler", "sampler", ["sampler"]],
    ["opt-steps", "steps", ["steps"]],
    ["opt-cfg", "cfg", ["cfg"]],
    ["opt-seed", "seed", ["seed"]],
    ["opt-no", "no", ["no", "negative"]],
  ];
  const LANE_FLAGS = ["fast", "relax", "turbo"];
  const STRENGTH_KINDS = new Set(["img2img", "inpaint"]);

  const $ = (selector, root = document) => root.querySelector(selector);

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Call the native API; the JSON answer, or an ApiError carrying the API's code and message. */
  async function api(method, path, body) {
    const headers = { "X-Imaginebot-Request": "1", Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached. Check your connection and try again.");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      throw new ApiError(
        response.status,
        error.code || `http_${response.status}`,
        error.message || `The server answered ${response.status}.`,
      );
    }
    return data;
  }

  /* Messages: errors in the assertive alert, news in the polite status line. */

  function showError(error) {
    const alert = $("#alert");
    if (!alert) return;
    const message = error instanceof Error ? error.message : String(error);
    const close = el("button", { type: "button", text: "Dismiss" });
    close.addEventListener("click", clearError);
    alert.replaceChildren(el("span", { text: message }), close);
    alert.hidden = false;
    if (error instanceof ApiError && error.code === "unauthorized") {
      alert.append(el("a", { href: "/", text: "Sign in again" }));
    }
  }

  function clearError() {
    const alert = $("#alert");
    if (!alert) return;
    alert.hidden = true;
    alert.replaceChildren();
  }

  function announce(message) {
    const status = $("#announce");
    if (status) status.textContent = message;
  }

  /* Account line in the header. */

  function showAccount(account) {
    if (!account) return;
    const fields = { balance: account.balance, tier: account.tier };
    const lane = account.preferences && account.preferences.lane ? account.preferences.lane : account.lane;
    if (lane) fields.lane = lane;
    for (const [id, value] of Object.entries(fields)) {
      const node = document.getElementById(id);
      if (node && value !== undefined && value !== null) node.textContent = String(value);
    }
  }

  async function refreshAccount() {
    try {
      showAccount(await api("GET", `${API}/me`));
    } catch (error) {
      showError(error);
    }
  }

  /* Jobs: one card per job, the same for a new job, a follow-up and the job page. */

  function formatTime(value) {
    if (value === null || value === undefined || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }

  function queuedText(position, eta) {
    let text = position > 0 ? `Queued: position ${position}` : "Queued";
    if (typeof eta === "number" && eta > 0) text += `, about ${Math.max(1, Math.round(eta))} s`;
    return text;
  }

  function metaList(job) {
    const params = job.params || {};
    const rows = [
      ["Seed", params.seed],
      ["Size", params.width && params.height ? `${params.width}\u00D7${params.height}` : ""],
      ["Model", params.model],
      ["Sampler", params.sampler],
      ["Steps", params.steps],
      ["CFG", params.cfg],
      ["Strength", STRENGTH_KINDS.has(job.kind) ? params.strength : ""],
      ["Cost", job.cost],
      ["Lane", job.lane],
    ];
    const list = el("dl", { class: "meta" });
    for (const [name, value] of rows) {
      if (value === undefined || value === null || value === "") continue;
      list.append(el("div", {}, el("dt", { text: name }), el("dd", { text: value })));
    }
    if (job.created_at) {
      const created = formatTime(job.created_at);
      list.append(el("div", {}, el("dt", { text: "Created" }), el("dd", {}, el("time", { text: created }))));
    }
    if (params.negative_prompt) {
      list.append(
        el("div", { class: "wide" }, el("dt", { text: "Negative" }), el("dd", { text: params.negative_prompt })),
      );
    }
    if (job.parent_id) {
      const link = el("a", { href: `/jobs/${Number(job.parent_id)}`, text: `#${job.parent_id}` });
      list.append(el("div", {}, el("dt", { text: "From" }), el("dd", {}, link)));
    }
    return list;
  }

  function imageGrid(job) {
    const images = job.images || [];
    const grid = el("div", { class: `images count-${images.length}` });
    for (const image of images) {
      const alt = `Image ${image.index + 1} of job #${job.id}` + (image.seed !== undefined ? ` (seed ${image.seed})` : "");
      const img = el("img", { src: image.url, alt, width: image.width, height: image.height, class: image.flagged && "flagged" });
      grid.append(el("a", { href: image.url }, img));
    }
    return grid;
  }

  function downloads(job) {
    const links = el("p", { class: "downloads" }, "Download:");
    for (const image of job.images || []) {
      links.append(
        el("a", { href: image.url, download: `imaginebot-${job.id}-${image.index + 1}.png`, text: `PNG ${image.index + 1}` }),
      );
    }
    if (job.grid_url) {
      links.append(el("a", { href: job.grid_url, download: `imaginebot-${job.id}-grid.jpg`, text: "Grid" }));
    }
    return links;
  }

  /** The follow-up buttons the API offers now: on a grid U1–U4, V1–V4 and 🔄; on one image, each by name. */
  function actionButtons(job) {
    const actions = job.actions || [];
    const group = el("div", { class: "actions", role: "group", "aria-label": `Follow-ups of job #${job.id}` });
    const count = (job.images || []).length;
    const grid = count > 1;
    for (const action of actions) {
      if (grid && PER_IMAGE.has(action)) {
        const [short, long] = PER_IMAGE.get(action);
        for (let index = 0; index < count; index += 1) {
          const label = `${short}${index + 1}`;
          group.append(actionButton(job, action, index, label, `${label}: ${long.toLowerCase()} ${index + 1}`));
        }
        group.append(el("span", { class: "row-break", "aria-hidden": "true" }));
      }
    }
    for (const action of actions) {
      if (grid && PER_IMAGE.has(action)) continue;
      const [label, long] = LABELS.get(action) || [action, action];
      group.append(actionButton(job, action, 0, label, long));
    }
    return group;
  }

  function actionButton(job, action, index, label, description) {
    const button = el("button", {
      type: "button",
      "data-action": action,
      "data-index": index,
      "aria-label": description === label ? null : description,
      title: description,
      text: label,
    });
    button.addEventListener("click", async () => {
      clearError();
      button.disabled = true;
      try {
        const answer = await api("POST", `${API}/jobs/${job.id}/actions`, { action, index });
        startedJobs(answer);
      } catch (error) {
        showError(error);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  /** The card's live part: what the job is doing, a step bar and the latent preview. */
  function liveSection(job) {
    const state = el("p", { class: "state", "aria-live": "polite" });
    const bar = el("progress", { max: 1, value: 0, "aria-label": `Progress of job #${job.id}` });
    bar.hidden = true;
    const steps = el("span", { class: "hint steps" });
    const preview = el("img", { class: "preview", alt: `Preview of job #${job.id} while it renders` });
    preview.hidden = true;
    const cancel = el("button", { type: "button", class: "quiet", text: "Cancel" });
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await api("DELETE", `${API}/jobs/${job.id}`);
      } catch (error) {
        showError(error);
        cancel.disabled = false;
      }
    });
    const section = el("div", { class: "live" }, state, bar, steps, preview, el("div", {}, cancel));
    return { section, state, bar, steps, preview, cancel };
  }

  const cards = new Map();

  /** A new card for ``job``, or the existing one, brought up to date. */
  function cardFor(job, heading = "h2") {
    let entry = cards.get(job.id);
    if (!entry) {
      const node = el("article", {
        class: "job",
        id: `job-${job.id}`,
        "data-job-id": job.id,
        "aria-labelledby": `job-${job.id}-title`,
      });
      entry = { node, heading, live: liveSection(job), source: null };
      cards.set(job.id, entry);
    }
    renderCard(entry, job);
    return entry;
  }

  function renderCard(entry, job) {
    const { node, live } = entry;
    node.dataset.status = job.status;
    const title = el(
      entry.heading,
      { id: `job-${job.id}-title`, tabindex: "-1" },
      el("a", { href: `/jobs/${job.id}`, text: `#${job.id}` }),
      " ",
      el("span", { class: "kind", text: job.kind || "" }),
    );
    const badge = el("span", { class: "badge", "data-status": job.status, text: job.status });
    const parts = [el("header", { class: "job-head" }, title, badge), el("p", { class: "prompt", text: job.prompt })];
    const done = TERMINAL.has(job.status);
    live.section.hidden = done;
    if (!done) {
      if (job.status === "queued") live.state.textContent = queuedText(job.position, job.eta_s);
      else if (!live.state.textContent || live.state.textContent.startsWith("Queued")) live.state.textContent = "Rendering";
      parts.push(live.section);
    }
    if ((job.images || []).length) parts.push(imageGrid(job));
    if (job.error) parts.push(el("p", { class: "job-error", text: job.error }));
    parts.push(metaList(job));
    if ((job.images || []).length) parts.push(downloads(job));
    if (done && (job.actions || []).length) parts.push(actionButtons(job));
    const hadFocus = node.contains(document.activeElement) && !live.section.contains(document.activeElement);
    node.replaceChildren(...parts);
    if (hadFocus) title.focus({ preventScroll: true });
  }

  function showProgress(entry, step, total, preview) {
    const { live } = entry;
    live.bar.hidden = false;
    live.bar.max = Math.max(1, total || 1);
    live.bar.value = Math.min(step || 0, live.bar.max);
    live.bar.setAttribute("aria-valuetext", `step ${step} of ${total}`);
    live.steps.textContent = `Step ${step} of ${total}`;
    if (preview) {
      live.preview.src = preview;
      live.preview.hidden = false;
    }
  }

  function eventData(event) {
    try {
      return JSON.parse(event.data);
    } catch {
      return {};
    }
  }

  /** Follow a job's events until it ends (the cookie authenticates the EventSource). */
  function follow(entry, jobId) {
    if (entry.source) return;
    const source = new EventSource(`${API}/jobs/${jobId}/events`);
    entry.source = source;
    const finish = (job, message) => {
      source.close();
      entry.source = null;
      if (job) renderCard(entry, job);
      const text = message || `Job #${jobId} ${job ? job.status : "ended"}`;
      entry.live.state.textContent = text;
      announce(job && job.status === "completed" ? `Job #${jobId} is done` : text);
      refreshAccount();
    };
    source.addEventListener("queued", (event) => {
      const data = eventData(event);
      if (data.job) renderCard(entry, data.job);
    });
    source.addEventListener("position", (event) => {
      const data = eventData(event);
      entry.live.state.textContent = queuedText(data.position, data.eta_s);
    });
    source.addEventListener("started", (event) => {
      const data = eventData(event);
      entry.live.state.textContent = "Rendering";
      if (data.job) renderCard(entry, data.job);
      entry.live.bar.hidden = false;
    });
    source.addEventListener("progress", (event) => {
      const data = eventData(event);
      if (entry.live.state.textContent !== "Rendering") entry.live.state.textContent = "Rendering";
      showProgress(entry, data.step, data.total, data.preview);
    });
    source.addEventListener("requeued", (event) => {
      entry.live.state.textContent = eventData(event).message || "Back in the queue";
    });
    source.addEventListener("completed", (event) => finish(eventData(event).job, null));
    for (const name of ["failed", "cancelled"]) {
      source.addEventListener(name, (event) => {
        const data = eventData(event);
        finish(data.job, data.message || null);
      });
    }
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      entry.source = null;
      resync(entry, jobId);
    });
  }

  /** After a stream broke for good: read the job once and follow it again if it still runs. */
  async function resync(entry, jobId) {
    try {
      const job = await api("GET", `${API}/jobs/${jobId}`);
      renderCard(entry, job);
      if (!TERMINAL.has(job.status)) setTimeout(() => follow(entry, jobId), 2000);
    } catch (error) {
      showError(error);
    }
  }

  function workList() {
    return $("#work");
  }

  /** Show and follow the jobs an answer of POST /jobs or /actions started, newest on top, and focus the first. */
  function startedJobs(answer) {
    const work = workList();
    const jobs = (answer && answer.jobs) || [];
    if (answer) showAccount({ balance: answer.balance, tier: answer.tier });
    const empty = $("#work-empty");
    if (empty && jobs.length) empty.hidden = true;
    let first = null;
    for (const job of [...jobs].reverse()) {
      const entry = cardFor(job);
      if (work) work.prepend(entry.node);
      if (!TERMINAL.has(job.status)) follow(entry, job.id);
      first = entry;
    }
    if (first) {
      const title = document.getElementById(`job-${jobs[0].id}-title`);
      if (title) title.focus({ preventScroll: false });
      announce(jobs.length === 1 ? `Started job #${jobs[0].id}` : `Started ${jobs.length} jobs`);
    }
  }

  /* The prompt box. */

  function hasFlag(text, names) {
    return names.some((name) => new RegExp(`(^|\\s)--${name}(\\s|$)`, "i").test(text));
  }

  /** The prompt text with the options' flags added (a flag the text already has wins). */
  function composePrompt(form) {
    const text = form.elements.prompt.value.trim();
    const parts = [text];
    for (const [id, flag, names] of FLAG_FIELDS) {
      const field = document.getElementById(id);
      const value = field && !field.disabled ? field.value.trim() : "";
      if (value !== "" && !hasFlag(text, names)) parts.push(`--${flag} ${value}`);
    }
    return parts.join(" ");
  }

  function readAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(new Error("The image could not be read. Choose another file."));
      reader.readAsDataURL(file);
    });
  }

  /* What each model takes (GET /models' details): the options offer only what the chosen model can use. */
  const models = { details: new Map(), yours: "" };

  /** The model a prompt names with --model (the last one), or "". */
  function typedModel(text) {
    const found = [...text.matchAll(/(?:^|\s)--model\s+(\S+)/g)];
    return found.length ? found[found.length - 1][1] : "";
  }

  /** Samplers, steps, guidance and the negative prompt as the request's model takes them: the prompt's --model,
   * else the chosen one, else the member's own default. */
  function fitOptionsToModel(form) {
    const select = $("#opt-model");
    const name = typedModel(form.elements.prompt.value) || (select && select.value) || models.yours;
    const details = models.details.get(name);
    if (!details) return;
    const sampler = $("#opt-sampler");
    if (sampler && sampler.dataset.model !== name) {
      const chosen = sampler.value;
      sampler.replaceChildren(
        el("option", { value: "", text: `Default (${details.sampler})` }),
        ...details.samplers.map((item) => el("option", { value: item, text: item })),
      );
      sampler.value = details.samplers.includes(chosen) ? chosen : "";
      sampler.dataset.model = name;
    }
    const steps = $("#opt-steps");
    if (steps) {
      steps.max = String(details.max_steps);
      steps.placeholder = `default ${details.steps}`;
    }
    const cfg = $("#opt-cfg");
    if (cfg) {
      cfg.disabled = details.guidance === "none";
      cfg.max = String(details.max_cfg);
      cfg.placeholder = details.guidance === "none" ? "none" : `default ${details.cfg}`;
    }
    const cfgLabel = $('label[for="opt-cfg"]');
    if (cfgLabel) cfgLabel.textContent = details.guidance === "cfg" ? "Guidance (CFG)" : "Guidance (distilled)";
    const no = $("#opt-no");
    if (no) {
      no.disabled = !details.negative_prompt;
      no.placeholder = details.negative_prompt ? "blur, text, watermark" : `${name} reads no negative prompt`;
    }
  }

  async function loadModels(form) {
    let data;
    try {
      data = await api("GET", `${API}/models`);
    } catch {
      return; // the default options stay; the prompt flags still work
    }
    models.yours = data.yours || data.default || "";
    models.details = new Map((data.details || []).map((item) => [item.name, item]));
    const select = $("#opt-model");
    if (select) {
      select.replaceChildren(
        el("option", { value: "", text: models.yours ? `Default (${models.yours})` : "Default" }),
        ...(data.models || []).map((name) => el("option", { value: name, text: name })),
      );
    }
    form.dispatchEvent(new Event("change"));
  }

  function setUpPromptBox(form) {
    const prompt = form.elements.prompt;
    const composed = $("#composed");
    const image = $("#opt-image");
    const strength = $("#opt-strength");
    const submit = $("#submit");
    const update = () => {
      fitOptionsToModel(form);
      if (composed) composed.textContent = composePrompt(form);
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
    if (image && strength) {
      image.addEventListener("change", () => {
        strength.disabled = !(image.files && image.files.length);
      });
    }
    prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError();
      if (!prompt.value.trim()) {
        showError(new Error("Describe the image first, for example: a red fox in fresh snow --ar 3:2"));
        prompt.focus();
        return;
      }
      const body = { prompt: composePrompt(form) };
      const lane = $("#opt-lane");
      if (lane && lane.value && !hasFlag(prompt.value, LANE_FLAGS)) body.lane = lane.value;
      submit.disabled = true;
      try {
        if (image && image.files && image.files.length) {
          body.image = await readAsDataUrl(image.files[0]);
          const value = Number(strength.value);
          if (strength.value !== "" && !Number.isNaN(value)) body.strength = value;
        }
        startedJobs(await api("POST", `${API}/jobs`, body));
      } catch (error) {
        showError(error);
      } finally {
        submit.disabled = false;
      }
    });
    loadModels(form);
  }

  /* Jobs already on the page: the member's unfinished ones (home) or the one job (its page). */

  async function liveJob(jobId, replace, heading) {
    try {
      const job = await api("GET", `${API}/jobs/${jobId}`);
      const entry = cardFor(job, heading);
      const work = workList();
      if (replace && replace.parentNode) replace.replaceWith(entry.node);
      else if (work) work.append(entry.node);
      if (!TERMINAL.has(job.status)) follow(entry, job.id);
    } catch (error) {
      showError(error);
    }
  }

  function setUpSignIn(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError();
      const button = $("button[type=submit]", form);
      button.disabled = true;
      try {
        await api("POST", `${API}/session`, { key: form.elements.key.value.trim() });
        const next = form.dataset.next || "/";
        window.location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
      } catch (error) {
        showError(error);
        form.elements.key.focus();
      } finally {
        button.disabled = false;
      }
    });
  }

  function start() {
    const signIn = $("#signin");
    if (signIn) setUpSignIn(signIn);
    const signOut = $("#signout");
    if (signOut) {
      signOut.addEventListener("click", async () => {
        try {
          await api("DELETE", `${API}/session`);
        } catch (error) {
          showError(error);
          return;
        }
        window.location.assign("/");
      });
    }
    const form = $("#imagine");
    if (form) setUpPromptBox(form);
    const work = workList();
    if (!work) return;
    if (work.dataset.live) {
      const id = Number(work.dataset.live);
      liveJob(id, document.getElementById(`job-${id}`), "h1");
    }
    const follow = (work.dataset.follow || "").split(" ").filter(Boolean).map(Number);
    if (follow.length) {
      const empty = $("#work-empty");
      if (empty) empty.hidden = true;
      for (const id of follow) liveJob(id, null, "h2");
    }
  }

  start();
})();
