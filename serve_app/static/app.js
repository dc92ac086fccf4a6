// Robot Orchestra: the player's page. Plain JS, no build step.
// Every piece of text from the server or another player goes into the page
// through textContent or createElement, never through innerHTML.
"use strict";

const MAX_ANSWER_CHARS = 280;
const OPERATOR_POLL_MS = 2000;
const PING_INTERVAL_MS = 25000;
const COUNTDOWN_TICK_MS = 250;
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 10000;

const KEYS = {
  matchId: "ro.match_id",
  token: "ro.token",
  lastSeq: "ro.last_seq",
  view: "ro.view",
  tokens: "ro.tokens",
  commandIds: "ro.command_ids",
};

const PHASE_LABELS = {
  lobby: "Lobby",
  answering: "Answering",
  voting: "Voting",
  intermission: "Round over",
  ended: "Match over",
};

const COUNTDOWN_LABELS = {
  lobby: "invite expires in",
  answering: "to answer",
  voting: "to vote",
  intermission: "next round in",
};

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "testid") node.dataset.testid = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** Any JSON value as display text; missing values show as a dash. */
function show(value, digits) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return "–";
    return digits === undefined ? String(value) : value.toFixed(digits);
  }
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "yes" : "no";
  return JSON.stringify(value);
}

function percent(rate) {
  return typeof rate === "number" && Number.isFinite(rate)
    ? `${(rate * 100).toFixed(1)}%`
    : "–";
}

function millis(value) {
  return typeof value === "number" && Number.isFinite(value) ? `${value.toFixed(0)} ms` : "–";
}

function firstDefined(...values) {
  return values.find((v) => v !== undefined && v !== null);
}

function humanize(word) {
  return show(word).replace(/_/g, " ");
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** `[{key, ...}]` stays as it is; `{key: value}` becomes `[{key, value}]`. */
function entries(value, keyName, valueName) {
  if (Array.isArray(value)) return value.filter(isObject);
  if (!isObject(value)) return [];
  return Object.entries(value).map(([key, item]) =>
    isObject(item) ? { [keyName]: key, ...item } : { [keyName]: key, [valueName]: item },
  );
}

function codePoints(text) {
  return [...text].length;
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function load(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function store(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled (private mode): the page still works until reload.
  }
}

function formatClock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

function formatTime(value) {
  const at = Date.parse(value);
  return Number.isFinite(at) ? new Date(at).toLocaleString() : show(value);
}

// ---------------------------------------------------------------- state

const state = {
  matchId: load(KEYS.matchId, null),
  token: load(KEYS.token, null),
  lastSeq: load(KEYS.lastSeq, null),
  view: null,
  clockOffsetMs: 0,
  pending: null, // the answer or vote sent and not yet seen in a view
  formRound: null,
  answersKey: "",
};

(function restoreView() {
  const saved = load(KEYS.view, null);
  if (isObject(saved) && saved.match_id === state.matchId && isObject(saved.view)) {
    state.view = saved.view;
    state.clockOffsetMs = Number(saved.clock_offset_ms) || 0;
  }
})();

function saveSession(matchId, token) {
  state.matchId = matchId;
  state.token = token;
  state.lastSeq = null;
  state.view = null;
  state.pending = null;
  store(KEYS.matchId, matchId);
  store(KEYS.token, token);
  store(KEYS.lastSeq, null);
  store(KEYS.view, null);
  rememberToken(token, matchId);
}

function clearSession() {
  saveSession(null, null);
}

function rememberToken(token, matchId) {
  if (!token) return;
  const tokens = load(KEYS.tokens, []).filter((t) => isObject(t) && t.token !== token);
  tokens.unshift({ token, match_id: matchId, at: new Date().toISOString() });
  store(KEYS.tokens, tokens);
}

/** One command id per match, round and kind, reused on every retry. */
function commandId(kind, round) {
  let saved = load(KEYS.commandIds, null);
  if (!isObject(saved) || saved.match_id !== state.matchId || !isObject(saved.ids)) {
    saved = { match_id: state.matchId, ids: {} };
  }
  const key = `${kind}-${round}`;
  if (!saved.ids[key]) {
    saved.ids[key] = `${key}-${randomId()}`;
    store(KEYS.commandIds, saved);
  }
  return saved.ids[key];
}

// ---------------------------------------------------------------- connection

const conn = {
  ws: null,
  wanted: false, // whether a closed socket should be reopened
  attempt: 0,
  retryTimer: null,
  pingTimer: null,
  firstFrame: null, // create or join, until `joined` arrives
  firstSent: false,
};

function openSocket() {
  clearTimeout(conn.retryTimer);
  conn.retryTimer = null;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  conn.ws = ws;
  setConnection("Connecting…");
  ws.addEventListener("open", () => ws === conn.ws && onSocketOpen(ws));
  ws.addEventListener("message", (event) => ws === conn.ws && onSocketMessage(event));
  ws.addEventListener("close", () => ws === conn.ws && onSocketClose());
}

function reopenSocket() {
  conn.wanted = true;
  conn.attempt = 0;
  const old = conn.ws;
  conn.ws = null;
  if (old) old.close(1000);
  openSocket();
}

function closeSocket() {
  conn.wanted = false;
  clearTimeout(conn.retryTimer);
  const old = conn.ws;
  conn.ws = null;
  if (old) old.close(1000);
  stopPing();
  setConnection(null);
}

function send(frame) {
  if (!conn.ws || conn.ws.readyState !== WebSocket.OPEN) return false;
  conn.ws.send(JSON.stringify(frame));
  return true;
}

function onSocketOpen() {
  setConnection(null);
  startPing();
  if (conn.firstFrame) {
    conn.firstSent = send(conn.firstFrame);
  } else if (state.matchId && state.token) {
    // The server sends nothing to a client that is up to date, so a page
    // with no view to show asks for everything again.
    if (!state.view) state.lastSeq = null;
    send({
      type: "resume",
      match_id: state.matchId,
      token: state.token,
      last_seq: state.lastSeq ?? 0,
    });
    // Frames on one socket are handled in order, so a retry can follow at once.
    if (state.pending) send(state.pending.frame);
  }
}

function onSocketClose() {
  conn.ws = null;
  stopPing();
  if (!conn.wanted) return;
  if (conn.firstFrame && conn.firstSent) {
    // The match may or may not exist now; creating another could orphan one.
    conn.firstFrame = null;
    conn.wanted = false;
    setConnection(null);
    showError("home", "The connection dropped while setting up the match. Please try again.");
    location.hash = "#/";
    renderHome();
    return;
  }
  const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** conn.attempt);
  const jittered = Math.round(delay * (0.5 + Math.random() / 2));
  conn.attempt += 1;
  setConnection(`Connection lost. Reconnecting in ${Math.ceil(jittered / 1000)} s…`);
  conn.retryTimer = setTimeout(openSocket, jittered);
}

function startPing() {
  stopPing();
  conn.pingTimer = setInterval(() => send({ type: "ping" }), PING_INTERVAL_MS);
}

function stopPing() {
  clearInterval(conn.pingTimer);
  conn.pingTimer = null;
}

function setConnection(message) {
  const node = $("connection");
  node.hidden = !message;
  node.textContent = message || "";
}

function onSocketMessage(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  if (!isObject(frame)) return;
  conn.attempt = 0;
  if (frame.type === "joined") onJoined(frame);
  else if (frame.type === "update") onUpdate(frame);
  else if (frame.type === "error") onErrorFrame(frame);
  else if (frame.type === "pong") noteServerTime(frame.server_time);
}

function onJoined(frame) {
  conn.firstFrame = null;
  saveSession(frame.match_id, frame.token);
  renderAll();
}

function onUpdate(frame) {
  if (!isObject(frame.view)) return;
  const seq = typeof frame.seq === "number" ? frame.seq : null;
  if (seq !== null && state.lastSeq !== null && seq <= state.lastSeq) return;

  if (seq !== null) state.lastSeq = seq;
  state.view = frame.view;
  noteServerTime(frame.view.server_time);
  store(KEYS.lastSeq, state.lastSeq);
  store(KEYS.view, { match_id: state.matchId, view: state.view, clock_offset_ms: state.clockOffsetMs });

  settlePending();
  if (state.view.phase === "ended") closeSocket(); // an open socket holds a server slot
  renderAll();
}

/** Server clock minus local clock, taken when a frame arrives. */
function noteServerTime(serverTime) {
  const at = Date.parse(serverTime);
  if (Number.isFinite(at)) state.clockOffsetMs = at - Date.now();
}

function onErrorFrame(frame) {
  const code = show(frame.code);
  const message = `${firstDefined(frame.message, "Something went wrong")} (${code})`;

  if (conn.firstFrame) {
    conn.firstFrame = null;
    closeSocket();
    showError("home", message);
    location.hash = "#/";
    renderAll();
    return;
  }
  if (code === "bad_token" || code === "unknown_match") {
    clearSession();
    closeSocket();
    showError("home", `Your match could not be resumed: ${message}`);
    location.hash = "#/";
    renderAll();
    return;
  }
  state.pending = null;
  if (code === "already_answered" || code === "already_voted") return;
  showError("play", message);
  renderPlay();
}

// ---------------------------------------------------------------- actions

function startMatch(frame) {
  clearSession();
  hideError("home");
  hideError("play");
  conn.firstFrame = frame;
  conn.firstSent = false;
  location.hash = "#/play";
  reopenSocket();
  renderAll();
}

function submitAnswer() {
  const view = state.view;
  const text = $("answer-input").value.trim();
  if (!view || view.phase !== "answering" || !answerFits(text) || state.pending) return;
  const frame = {
    type: "answer",
    token: state.token,
    text,
    command_id: commandId("a", view.round),
  };
  state.pending = { kind: "answer", round: view.round, frame };
  hideError("play");
  send(frame);
  renderPlay();
}

function castVote(seat) {
  const view = state.view;
  if (!view || view.phase !== "voting" || state.pending) return;
  const frame = {
    type: "vote",
    token: state.token,
    seat,
    command_id: commandId("v", view.round),
  };
  state.pending = { kind: "vote", round: view.round, seat, frame };
  hideError("play");
  send(frame);
  renderPlay();
}

/** Drop the pending action once the view shows it, or it no longer applies. */
function settlePending() {
  const pending = state.pending;
  const view = state.view;
  if (!pending || !view) return;
  const done =
    view.round !== pending.round ||
    (pending.kind === "answer" && (view.phase !== "answering" || view.your_answer)) ||
    (pending.kind === "vote" && (view.phase !== "voting" || view.your_vote));
  if (done) state.pending = null;
}

function answerFits(text) {
  return text.length > 0 && codePoints(text) <= MAX_ANSWER_CHARS;
}

// ---------------------------------------------------------------- errors

function showError(where, message) {
  const box = $(`${where}-error`);
  box.querySelector(".error-text").textContent = message;
  box.hidden = false;
}

function hideError(where) {
  $(`${where}-error`).hidden = true;
}

// ---------------------------------------------------------------- home

function renderHome() {
  const busy = Boolean(conn.firstFrame);
  for (const id of ["create-classic", "create-duo"]) $(id).disabled = busy;
  $("custom-form").querySelector("button").disabled = busy;
  $("join-button").disabled = busy || $("join-code").value.length !== 6;

  const inMatch = Boolean(state.matchId) && state.view?.phase !== "ended";
  $("resume-card").hidden = !inMatch;
}

function customCounts() {
  const humans = Number.parseInt($("custom-humans").value, 10);
  const robots = Number.parseInt($("custom-robots").value, 10);
  const seats = humans + robots;
  const valid = humans >= 1 && robots >= 0 && seats >= 3 && seats <= 8;
  return { humans, robots, valid };
}

// ---------------------------------------------------------------- play

function renderPlay() {
  const view = state.view;
  const active = Boolean(state.matchId || conn.firstFrame);
  $("play-empty").hidden = active;
  $("play-body").hidden = !active;
  if (!active) return;

  const phase = view?.phase ?? "lobby";
  $("seat-label").textContent = view?.you ? view.you : "not seated yet";
  const phaseNode = $("phase");
  phaseNode.textContent = view ? firstDefined(PHASE_LABELS[phase], humanize(phase)) : "Setting up…";
  phaseNode.dataset.phase = view ? phase : "";
  $("round-label").textContent = view?.round
    ? `Round ${view.round}/${firstDefined(view.rounds, 5)}`
    : "Not started";
  $("progress").textContent = progressText(view);
  renderSeats(view);
  renderLobby(view);
  renderPrompt(view);
  renderBallot(view);
  renderResults(view);
  renderReveal(view);
  tickCountdown();
}

function progressText(view) {
  if (!view) return "";
  const seats = Array.isArray(view.seats) ? view.seats.length : null;
  if (view.phase === "answering" && typeof view.answered === "number") {
    return `${view.answered}${seats ? `/${seats}` : ""} answered`;
  }
  if (view.phase === "voting" && typeof view.voted === "number") {
    const ballot = Array.isArray(view.answers) ? view.answers.length : seats;
    return `${view.voted}${ballot ? `/${ballot}` : ""} voted`;
  }
  return "";
}

function renderSeats(view) {
  const list = $("seats");
  list.replaceChildren();
  const seats = Array.isArray(view?.seats) ? view.seats : [];
  for (const seat of seats) {
    const mine = seat === view.you;
    list.append(el("li", { class: mine ? "chip mine" : "chip", text: mine ? `${seat} (you)` : seat }));
  }
}

function renderLobby(view) {
  const inLobby = view?.phase === "lobby";
  $("lobby-panel").hidden = !inLobby;
  if (!inLobby) return;
  $("invite-code").textContent = show(view.invite_code);
  const missing = Number(view.humans) - Number(view.joined);
  $("lobby-waiting").textContent = Number.isFinite(missing) && missing > 0
    ? `Waiting for ${plural(missing, "more player", "more players")}. Share the code!`
    : "Waiting for the match to start…";
}

function renderPrompt(view) {
  const phase = view?.phase;
  const inRound = ["answering", "voting", "intermission"].includes(phase) && view.prompt;
  $("prompt-panel").hidden = !inRound;
  if (!inRound) return;
  $("prompt").textContent = view.prompt;

  if (state.formRound !== view.round) {
    state.formRound = view.round;
    $("answer-input").value = "";
  }
  const answered = Boolean(view.your_answer);
  const canAnswer = phase === "answering" && Boolean(view.you) && !answered;
  $("answer-form").hidden = !canAnswer;
  $("your-answer-box").hidden = !answered;
  $("your-answer").textContent = answered ? view.your_answer : "";
  updateAnswerControls();

  const note = $("prompt-note");
  const missed = phase !== "answering" && !answered && Boolean(view.you);
  note.hidden = !missed;
  note.textContent = missed ? "You didn't answer this one in time." : "";
}

function updateAnswerControls() {
  const input = $("answer-input");
  const count = codePoints(input.value);
  const counter = $("char-counter");
  counter.textContent = `${count}/${MAX_ANSWER_CHARS}`;
  counter.classList.toggle("over", count > MAX_ANSWER_CHARS);

  const sending = state.pending?.kind === "answer";
  const answered = Boolean(state.view?.your_answer);
  const submit = $("answer-submit");
  submit.disabled = answered || sending || !answerFits(input.value.trim());
  submit.textContent = sending ? "Sending…" : answered ? "Answer sent" : "Submit answer";
  input.readOnly = sending || answered;
}

function renderBallot(view) {
  const voting = view?.phase === "voting";
  $("vote-panel").hidden = !voting;
  if (!voting) {
    state.answersKey = "";
    return;
  }
  const answers = entries(view.answers, "seat", "text");
  const pendingSeat = state.pending?.kind === "vote" ? state.pending.seat : null;
  const onBallot = answers.some((a) => a.seat === view.you);
  const canVote = Boolean(view.you) && onBallot && !view.your_vote && !pendingSeat;

  $("vote-note").textContent = view.your_vote
    ? `You voted for ${view.your_vote}. Waiting for the others…`
    : pendingSeat
      ? "Sending your vote…"
      : onBallot
        ? "Pick the answer you think a human wrote."
        : "No answer from you this round, so you sit this vote out.";

  // Rebuild only on change, so a button is never swapped out under a tap.
  const key = JSON.stringify([view.round, answers, view.your_vote, pendingSeat, canVote, view.you]);
  if (key === state.answersKey) return;
  state.answersKey = key;

  const list = $("answers-list");
  list.replaceChildren(
    ...answers.map((answer) => answerItem(answer, view, { canVote, onBallot, pendingSeat })),
  );
}

function answerItem(answer, view, { canVote, onBallot, pendingSeat }) {
  const seat = show(answer.seat);
  const mine = answer.seat === view.you;
  const chosen = view.your_vote === answer.seat;
  const item = el(
    "li",
    { class: `answer${mine ? " mine" : ""}${chosen ? " chosen" : ""}`, testid: "answer-item", data: { seat } },
    el("div", { class: "answer-head" },
      el("span", { class: "chip", text: seat }),
      mine ? el("span", { class: "tag", text: "your answer" }) : null,
    ),
    el("p", { class: "answer-text", testid: "answer-text", text: show(answer.text) }),
  );
  if (!mine && onBallot) {
    const label = chosen ? "Your vote ✓" : pendingSeat === answer.seat ? "Sending…" : "Vote human";
    item.append(
      el("button", {
        type: "button",
        class: `vote${chosen ? " primary" : ""}`,
        testid: "vote-button",
        data: { seat },
        "aria-pressed": chosen ? "true" : "false",
        "aria-label": `Vote ${seat} as human`,
        disabled: !canVote,
        text: label,
        onclick: () => castVote(answer.seat),
      }),
    );
  }
  return item;
}

function renderResults(view) {
  const rounds = entries(view?.results, "round", "result");
  $("results-panel").hidden = rounds.length === 0;
  const box = $("results");
  box.replaceChildren(
    ...rounds
      .map((r, i) => ({ ...r, round: firstDefined(r.round, i + 1) }))
      .reverse()
      .map((r) => resultCard(r, view)),
  );
}

function resultCard(result, view) {
  const answers = entries(result.answers, "seat", "text");
  const votes = entries(result.votes, "voter", "target");
  const missing = Array.isArray(result.missing) ? result.missing : [];
  const card = el(
    "article",
    { class: "result", data: { round: show(result.round) } },
    el("h3", { text: `Round ${show(result.round)}` }),
    result.prompt ? el("p", { class: "result-prompt", text: result.prompt }) : null,
  );

  const answerList = el("ul", { class: "result-answers" });
  for (const answer of answers) {
    const voters = votes.filter((v) => v.target === answer.seat).map((v) => show(v.voter));
    answerList.append(
      el("li", { class: answer.seat === view?.you ? "mine" : "", data: { seat: show(answer.seat) } },
        el("span", { class: "chip", text: show(answer.seat) }),
        el("span", { class: "answer-text", testid: "answer-text", text: show(answer.text) }),
        el("span", {
          class: "voted-by",
          text: voters.length ? `${plural(voters.length, "vote", "votes")}: ${voters.join(", ")}` : "no votes",
        }),
      ),
    );
  }
  card.append(answerList);
  if (missing.length) {
    card.append(el("p", { class: "note", text: `No answer: ${missing.map(show).join(", ")}` }));
  }

  const voteList = el("ul", { class: "result-votes", "aria-label": "Votes" });
  for (const vote of votes) {
    const voter = show(vote.voter);
    const target = show(vote.target);
    voteList.append(
      el("li", { class: vote.voter === view?.you ? "chip mine" : "chip", data: { voter, target }, text: `${voter} → ${target}` }),
    );
  }
  if (votes.length) card.append(voteList);
  return card;
}

function renderReveal(view) {
  const reveal = view?.phase === "ended" ? firstDefined(view.reveal, {}) : null;
  $("reveal-panel").hidden = !reveal;
  if (!reveal) return;

  const seats = revealSeats(reveal);
  const winners = firstDefined(reveal.winners, view.winners, []).map(show);
  const youWon = winners.includes(view.you);
  $("winners").textContent = winners.length
    ? `${winners.length === 1 ? "Winner" : "Winners"}: ${winners.join(", ")}${youWon ? " — that's you!" : ""}`
    : "No winners this time.";
  $("reveal-note").textContent = reveal.reason === "abandoned" ? "The match was abandoned before the last round." : "";

  $("reveal-seats").replaceChildren(
    ...seats.map((seat) => revealItem(seat, view.you, winners)),
  );
}

/** Seats with kind, persona, points per round and total, best total first. */
function revealSeats(reveal) {
  const seats = entries(firstDefined(reveal.seats, reveal.reveal, reveal.identities), "seat", "kind");
  const totals = isObject(reveal.totals) ? reveal.totals : {};
  const rounds = roundPoints(reveal);
  return seats
    .map((seat) => ({
      ...seat,
      total: firstDefined(totals[seat.seat], seat.total, seat.points_total),
      points: Array.isArray(seat.points) ? seat.points : rounds.map((r) => r[seat.seat]),
    }))
    .sort((a, b) => (Number(b.total) || 0) - (Number(a.total) || 0));
}

/** Points as a list of `{seat: points}`, one per round. */
function roundPoints(reveal) {
  const source = firstDefined(reveal.rounds, reveal.points, []);
  if (Array.isArray(source)) {
    return source.map((r) => (isObject(r) && isObject(r.points) ? r.points : isObject(r) ? r : {}));
  }
  if (!isObject(source)) return [];
  const values = Object.values(source);
  if (values.every(Array.isArray)) {
    const count = Math.max(0, ...values.map((v) => v.length));
    return Array.from({ length: count }, (_, i) =>
      Object.fromEntries(Object.entries(source).map(([seat, list]) => [seat, list[i]])),
    );
  }
  return values.map((r) => (isObject(r) && isObject(r.points) ? r.points : isObject(r) ? r : {}));
}

function revealItem(seat, you, winners) {
  const label = show(seat.seat);
  const kind = seat.kind === "human" ? "human" : seat.kind === "robot" ? "robot" : "unknown";
  const mine = seat.seat === you;
  const won = winners.includes(label);
  const who = kind === "robot"
    ? `Robot${seat.persona ? ` · ${humanize(seat.persona)}` : ""}`
    : kind === "human" ? "Human" : humanize(seat.kind);
  const points = seat.points.map((p, i) => `R${i + 1} ${typeof p === "number" && p > 0 ? "+" : ""}${show(p)}`);

  return el(
    "li",
    { class: `reveal-seat ${kind}${mine ? " mine" : ""}${won ? " winner" : ""}`, data: { seat: label, kind } },
    el("div", { class: "reveal-head" },
      el("span", { class: "chip", text: mine ? `${label} (you)` : label }),
      el("span", { class: "kind", text: who }),
      el("span", { class: "total", text: `${show(seat.total)} pts${won ? " ★" : ""}` }),
    ),
    points.length ? el("p", { class: "points", text: points.join(" · ") }) : null,
  );
}

function tickCountdown() {
  const view = state.view;
  const node = $("countdown");
  const deadline = Date.parse(view?.deadline);
  const label = COUNTDOWN_LABELS[view?.phase];
  if (!view || !label || !Number.isFinite(deadline)) {
    node.textContent = "";
    node.removeAttribute("data-remaining-ms");
    return;
  }
  const remaining = deadline - (Date.now() + state.clockOffsetMs);
  node.dataset.remainingMs = String(Math.max(0, Math.round(remaining)));
  node.classList.toggle("urgent", remaining <= 5000);
  const clock = formatClock(remaining);
  node.textContent = view.phase === "intermission" || view.phase === "lobby"
    ? `${label} ${clock}`
    : `${clock} ${label}`;
}

// ---------------------------------------------------------------- history

const past = { tokens: [], cursors: new Map(), matches: new Map(), loading: false };

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const reason = isObject(body) ? firstDefined(body.message, body.detail, body.error) : null;
    throw new Error(`${url.split("?")[0]} answered ${response.status}${reason ? `: ${show(reason)}` : ""}`);
  }
  return body;
}

function startHistory() {
  past.tokens = load(KEYS.tokens, []).filter(isObject).map((t) => t.token).filter(Boolean);
  past.cursors = new Map(past.tokens.map((token) => [token, ""]));
  past.matches = new Map();
  hideError("history");
  renderHistoryList();
  loadHistoryPage();
}

async function loadHistoryPage() {
  if (past.loading) return;
  past.loading = true;
  renderHistoryList();
  const pages = [...past.cursors].map(async ([token, cursor]) => {
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
    const body = await fetchJson(`/api/players/${encodeURIComponent(token)}/matches${query}`);
    const items = Array.isArray(body) ? body : firstDefined(body?.matches, body?.items, []);
    for (const match of entries(items, "match_id", "summary")) {
      if (match.match_id && !past.matches.has(match.match_id)) past.matches.set(match.match_id, match);
    }
    const next = body?.next_cursor;
    if (next !== null && next !== undefined && next !== "") past.cursors.set(token, next);
    else past.cursors.delete(token);
  });
  const failures = (await Promise.allSettled(pages)).filter((p) => p.status === "rejected");
  past.loading = false;
  if (failures.length) showError("history", failures[0].reason.message);
  renderHistoryList();
}

function matchTime(match) {
  const at = Date.parse(firstDefined(match.ended_at, match.started_at, match.created_at, ""));
  return Number.isFinite(at) ? at : 0;
}

function renderHistoryList() {
  const matches = [...past.matches.values()].sort((a, b) => matchTime(b) - matchTime(a));
  $("history-list").replaceChildren(...matches.map(historyItem));
  $("history-more").hidden = past.cursors.size === 0 || past.matches.size === 0;
  $("history-more").disabled = past.loading;
  $("history-note").textContent = past.loading
    ? "Loading…"
    : past.tokens.length === 0
      ? "No matches yet on this device. Play one!"
      : matches.length === 0
        ? "No finished matches found yet."
        : "";
}

function historyItem(match) {
  const when = firstDefined(match.ended_at, match.started_at, match.created_at);
  const facts = [
    humanize(firstDefined(match.template, "match")),
    firstDefined(match.phase, match.status),
    when ? formatTime(when) : null,
    match.seat || match.you ? `you: ${show(firstDefined(match.seat, match.you))}` : null,
    firstDefined(match.score, match.total) !== undefined
      ? `${show(firstDefined(match.score, match.total))} pts`
      : null,
    match.won === true || match.winner === true ? "won ★" : null,
  ].filter(Boolean);
  return el(
    "li",
    { testid: "history-item", data: { matchId: show(match.match_id) } },
    el("a", { href: `#/history/${encodeURIComponent(match.match_id)}` },
      el("strong", { text: show(match.match_id) }),
      el("span", { class: "note", text: facts.map(show).join(" · ") }),
    ),
  );
}

async function showMatchDetail(matchId) {
  $("detail-title").textContent = `Match ${matchId}`;
  $("detail-note").textContent = "Loading…";
  $("timeline").replaceChildren();
  hideError("history");
  try {
    const body = await fetchJson(`/api/matches/${encodeURIComponent(matchId)}`);
    const events = Array.isArray(body) ? body : firstDefined(body?.events, body?.timeline, []);
    const facts = isObject(body)
      ? [body.template, body.phase, body.status].filter(Boolean).map(humanize)
      : [];
    if (body?.finished === true) facts.push("finished");
    if (body?.finished === false) facts.push("in progress");
    $("detail-note").textContent = facts.join(" · ") || (events.length ? "" : "No events.");
    $("timeline").replaceChildren(...entries(events, "seq", "event").map(timelineItem));
  } catch (error) {
    $("detail-note").textContent = "";
    showError("history", error.message);
  }
}

function timelineItem(event) {
  const fields = { ...event, ...(isObject(event.payload) ? event.payload : {}) };
  const type = show(fields.type);
  const at = firstDefined(fields.occurred_at, fields.at, fields.time);
  return el(
    "li",
    { data: { type } },
    el("div", { class: "timeline-head" },
      el("strong", { text: humanize(type) }),
      at ? el("time", { class: "note", text: formatTime(at) }) : null,
    ),
    el("p", { text: describeEvent(type, fields) }),
  );
}

function countOf(n, one, many) {
  return typeof n === "number" ? plural(n, one, many) : `– ${many}`;
}

/** Seat labels from `["amber", ...]` or `[{seat: "amber", ...}, ...]`. */
function seatLabels(seats) {
  if (!Array.isArray(seats)) return entries(seats, "seat", "occupant_id").map((s) => show(s.seat));
  return seats.map((s) => (isObject(s) ? show(s.seat) : show(s)));
}

function describeEvent(type, f) {
  const votes = entries(f.votes, "voter", "target").map((v) => `${show(v.voter)} → ${show(v.target)}`);
  const list = (value) => (Array.isArray(value) ? value.map(show).join(", ") : show(value));
  switch (type) {
    case "match_created":
      return `${humanize(f.template)}: ${countOf(f.humans, "human", "humans")}, ${countOf(f.robots, "robot", "robots")}`;
    case "player_joined":
      return "A player joined.";
    case "robots_assigned":
      return `Robots: ${entries(f.robots, "robot_id", "persona").map((r) => humanize(r.persona)).join(", ")}`;
    case "match_started":
      return `Seats: ${seatLabels(f.seats).join(", ")}`;
    case "round_started":
      return `Round ${show(f.round)}: ${show(f.prompt)}`;
    case "answer_submitted":
      return f.seat ? `${show(f.seat)}: ${show(f.text)}` : "A seat answered.";
    case "voting_opened":
      return `Ballot: ${list(f.order)}${Array.isArray(f.missing) && f.missing.length ? `; no answer: ${list(f.missing)}` : ""}`;
    case "vote_cast":
      return f.voter ? `${show(f.voter)} → ${show(f.target)}` : "A seat voted.";
    case "round_scored":
      return `Round ${show(f.round)} votes: ${votes.join(", ") || "none"}`;
    case "match_ended":
      return `${humanize(f.reason)}; winners: ${list(f.winners)}`;
    default:
      return Object.entries(f)
        .filter(([key]) => !["type", "payload", "seq", "occurred_at"].includes(key))
        .map(([key, value]) => `${humanize(key)}: ${show(value)}`)
        .join("; ");
  }
}

// ---------------------------------------------------------------- operator

const operator = { timer: null, running: false, last: {} };

function startOperator() {
  if (operator.running) return;
  operator.running = true;
  pollOperator();
}

function stopOperator() {
  operator.running = false;
  clearTimeout(operator.timer);
}

async function pollOperator() {
  const [pool, stats] = await Promise.allSettled([fetchJson("/api/pool"), fetchJson("/api/stats")]);
  if (!operator.running) return;
  renderPool(pool);
  renderStats(stats);
  $("operator-raw").textContent = JSON.stringify(operator.last, null, 2);
  operator.timer = setTimeout(pollOperator, OPERATOR_POLL_MS);
}

/** One row per persona (and orchestrator, when the pool reports several). */
function poolRows(body) {
  const rows = [];
  const add = (personas, orchestrator) => {
    for (const row of entries(personas, "persona", "status")) rows.push({ orchestrator, ...row });
  };
  const orchestrators = Array.isArray(body) ? body : body?.orchestrators;
  if (Array.isArray(orchestrators)) {
    orchestrators.forEach((o, i) => isObject(o) && add(o.personas, firstDefined(o.orchestrator, i)));
  } else if (isObject(orchestrators)) {
    for (const [name, o] of Object.entries(orchestrators)) add(isObject(o?.personas) ? o.personas : o, name);
  } else if (isObject(body) && body.personas) {
    add(body.personas, body.orchestrator);
  } else if (isObject(body)) {
    add(Object.fromEntries(Object.entries(body).filter(([, v]) => isObject(v))), undefined);
  }
  return rows;
}

function renderPool(result) {
  const note = $("pool-note");
  if (result.status === "rejected") {
    note.textContent = `Pool unavailable: ${result.reason.message}`;
    return;
  }
  operator.last.pool = result.value;
  const rows = poolRows(result.value);
  const several = new Set(rows.map((r) => r.orchestrator)).size > 1;
  note.textContent = rows.length ? `Updated ${new Date().toLocaleTimeString()}` : "No personas reported.";
  $("pool").replaceChildren(
    ...rows.map((row) => {
      const latency = isObject(row.latency_ms) ? row.latency_ms : isObject(row.latency) ? row.latency : {};
      const title = humanize(firstDefined(row.persona, row.name));
      return el(
        "article",
        { class: "persona", testid: "pool-persona", data: { persona: show(firstDefined(row.persona, row.name)) } },
        el("h3", { text: several ? `${title} · orchestrator ${show(row.orchestrator)}` : title }),
        facts([
          ["Workers", show(row.workers)],
          ["Busy", show(row.busy)],
          ["In flight", show(row.in_flight)],
          ["Lag", show(row.lag)],
          ["Latency p50", millis(firstDefined(row.latency_ms_p50, row.latency_p50_ms, row.p50_ms, latency.p50))],
          ["Latency p99", millis(firstDefined(row.latency_ms_p99, row.latency_p99_ms, row.p99_ms, latency.p99))],
          ["Fallbacks", show(row.fallbacks)],
        ]),
      );
    }),
  );
}

function facts(pairs, node = el("dl", { class: "facts" })) {
  node.replaceChildren();
  for (const [term, value] of pairs) node.append(el("dt", { text: term }), el("dd", { text: value }));
  return node;
}

function renderStats(result) {
  const note = $("stats-note");
  if (result.status === "rejected") {
    note.textContent = `Stats unavailable: ${result.reason.message}`;
    return;
  }
  const s = isObject(result.value) ? result.value : {};
  operator.last.stats = s;
  note.textContent = "";
  const latency = firstDefined(s.robot_latency_ms, s.robot_latency, s.latency_ms, {});
  const lat = isObject(latency) ? latency : { p50: latency };
  facts(
    [
      ["Matches played", show(firstDefined(s.matches_played, s.matches_completed, s.matches))],
      ["Matches running", show(s.matches_running)],
      ["Matches abandoned", show(s.matches_abandoned)],
      ["Votes", show(s.votes)],
      ["Humans detected", percent(firstDefined(s.human_detection_rate, s.humans_detected_rate, s.detection_rate))],
      ["Robot latency p50", millis(firstDefined(lat.p50, lat.latency_ms_p50, lat.p50_ms))],
      ["Robot latency p99", millis(firstDefined(lat.p99, lat.latency_ms_p99, lat.p99_ms))],
    ],
    $("stats"),
  );
  const personas = entries(
    firstDefined(s.personas, s.taken_for_human, s.persona_taken_for_human_rate, s.taken_for_human_rate, {}),
    "persona",
    "rate",
  );
  facts(
    personas.map((p) => {
      const rate = percent(firstDefined(p.rate, p.taken_for_human_rate, p.taken_for_human));
      const drawn = typeof p.votes_drawn === "number" ? ` (${plural(p.votes_drawn, "vote", "votes")})` : "";
      const p50 = isObject(p.latency_ms) ? p.latency_ms.p50 : undefined;
      const latency = typeof p50 === "number" ? ` · p50 ${millis(p50)}` : "";
      return [humanize(firstDefined(p.persona, p.name)), `${rate}${drawn}${latency}`];
    }),
    $("stats-personas"),
  );
}

// ---------------------------------------------------------------- routing

function currentRoute() {
  const parts = (location.hash || "#/").replace(/^#\/?/, "").split("/");
  const screen = ["play", "history", "operator"].includes(parts[0]) ? parts[0] : "home";
  return { screen, arg: parts[1] ? decodeURIComponent(parts[1]) : null };
}

function route() {
  const { screen, arg } = currentRoute();
  for (const section of document.querySelectorAll("[data-screen]")) {
    section.hidden = section.dataset.screen !== screen;
  }
  for (const link of document.querySelectorAll("[data-route]")) {
    link.classList.toggle("active", link.dataset.route === screen);
  }
  if (screen === "operator") startOperator();
  else stopOperator();
  if (screen === "history") {
    $("history-list-panel").hidden = Boolean(arg);
    $("history-detail-panel").hidden = !arg;
    if (arg) showMatchDetail(arg);
    else startHistory();
  }
  renderAll();
  window.scrollTo(0, 0);
}

function renderAll() {
  renderHome();
  renderPlay();
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("create-classic").addEventListener("click", () => startMatch({ type: "create", template: "classic" }));
  $("create-duo").addEventListener("click", () => startMatch({ type: "create", template: "duo" }));
  $("custom-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const { humans, robots, valid } = customCounts();
    if (!valid) {
      showError("home", "A custom match needs at least 1 human and 3 to 8 seats in all.");
      return;
    }
    startMatch({ type: "create", template: "custom", humans, robots });
  });
  for (const id of ["custom-humans", "custom-robots"]) {
    $(id).addEventListener("input", () => {
      const { humans, robots, valid } = customCounts();
      const seats = (humans || 0) + (robots || 0);
      $("custom-hint").textContent = valid ? `${seats} seats.` : "3 to 8 seats in all, at least 1 human.";
      $("custom-hint").classList.toggle("over", !valid);
    });
  }

  const code = $("join-code");
  code.addEventListener("input", () => {
    code.value = code.value.toUpperCase().replace(/[^A-Z0-9]/g, "").slice(0, 6);
    renderHome();
  });
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (code.value.length === 6) startMatch({ type: "join", code: code.value });
  });

  $("answer-input").addEventListener("input", updateAnswerControls);
  $("answer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) submitAnswer();
  });
  $("answer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitAnswer();
  });

  $("copy-invite").addEventListener("click", async () => {
    const text = $("invite-code").textContent;
    try {
      await navigator.clipboard.writeText(text);
      $("copy-invite").textContent = "Copied";
    } catch {
      getSelection().selectAllChildren($("invite-code"));
    }
  });
  $("history-more").addEventListener("click", loadHistoryPage);

  for (const box of document.querySelectorAll(".error")) {
    box.querySelector(".dismiss").addEventListener("click", () => {
      box.hidden = true;
    });
  }

  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => {
    if (conn.wanted && conn.retryTimer) openSocket();
  });
  setInterval(tickCountdown, COUNTDOWN_TICK_MS);
}

function boot() {
  wire();
  if (state.matchId && state.token && state.view?.phase !== "ended") {
    conn.wanted = true;
    openSocket();
  }
  route();
}

boot();
