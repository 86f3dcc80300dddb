// Atlas pages: send edits to the JSON API (with the page's CSRF token), seek the
// player from the transcript, follow tasks live (server-sent events). No build step.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function flash(text, problem = false) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = problem ? "problem" : "ok";
}

export async function send(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    throw new Error(data?.error ?? `request failed (${response.status})`);
  }
  return data;
}

function formBody(form) {
  const body = {};
  for (const input of form.querySelectorAll("input, select, textarea")) {
    if (!input.name) continue;
    const value = input.value.trim();
    if (value === "" && input.hasAttribute("data-optional")) continue;
    if (input.hasAttribute("data-list")) {
      body[input.name] = value.split(",").map((t) => t.trim()).filter(Boolean);
    } else if (input.hasAttribute("data-number")) {
      body[input.name] = Number(value);
    } else {
      body[input.name] = value;
    }
  }
  return body;
}

function follow(taskId) {
  flash(`task ${taskId}: queued`);
  const events = new EventSource(`/api/v1/tasks/${taskId}/events`);
  events.addEventListener("status", (event) => {
    const state = JSON.parse(event.data);
    flash(`task ${taskId} (${state.task_type}): ${state.status}${state.error ? " — " + state.error : ""}`,
      state.status === "error");
  });
  events.addEventListener("end", () => { events.close(); setTimeout(() => location.reload(), 800); });
  events.onerror = () => events.close();
}

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  try {
    await send(form.dataset.method || "POST", form.dataset.api, formBody(form));
    flash("saved; Atlas recorded it as feedback");
    setTimeout(() => location.reload(), 400);
  } catch (error) {
    flash(error.message, true);
  }
});

document.addEventListener("click", async (event) => {
  const seek = event.target.closest("button.seek");
  if (seek) {
    const player = document.getElementById("player");
    if (player && "currentTime" in player) {
      player.currentTime = Number(seek.dataset.start);
      player.play().catch(() => {});
    }
    return;
  }
  const post = event.target.closest("button[data-post]");
  if (post) {
    try {
      await send("POST", post.dataset.post, post.dataset.body ? JSON.parse(post.dataset.body) : undefined);
      location.reload();
    } catch (error) {
      flash(error.message, true);
    }
    return;
  }
  const task = event.target.closest("button[data-task]");
  if (task) {
    try {
      const started = await send("POST", task.dataset.task, JSON.parse(task.dataset.body || "{}"));
      follow(started.task_id);
    } catch (error) {
      flash(error.message, true);
    }
  }
});

// "/" jumps to the search box, as on most sites.
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName)) {
    const box = document.getElementById("q");
    if (box) { event.preventDefault(); box.focus(); }
  }
});

// The tasks page: the table follows the tasks table as workers run.
const live = document.querySelector("table[data-live]");
if (live) {
  const events = new EventSource(live.dataset.live);
  events.addEventListener("tasks", (event) => {
    const body = live.querySelector("tbody");
    body.replaceChildren(...JSON.parse(event.data).map((task) => {
      const row = document.createElement("tr");
      const cells = [task.id, task.task_type, task.status, task.attempts,
        task.duration_ms ?? "", (task.created_at || "").replace("T", " ").slice(0, 19), task.error_reason ?? ""];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        row.append(cell);
      }
      const action = document.createElement("td");
      if (task.status === "queued" || task.status === "running") {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "small";
        button.dataset.post = `/api/v1/tasks/${task.id}/cancel`;
        button.textContent = "cancel";
        action.append(button);
      }
      row.append(action);
      return row;
    }));
  });
}
