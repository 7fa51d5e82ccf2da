// cur-ml operator console: keyboard shortcuts. Every action also works without this file.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const typing = (el) =>
    el && (el.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName));
  // Physical keys (event.code), so the shortcuts work with the Russian layout too.
  const is = (e, ...codes) => codes.includes(e.code);
  const go = (link) => link && link.href && window.location.assign(link.href);

  // One submission per rendered form (the server also drops duplicates by idempotency key).
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.method.toLowerCase() !== "post") return;
    if (form.dataset.sent) e.preventDefault();
    form.dataset.sent = "1";
  });

  function appealPage() {
    const heads = $$("section.head");
    let current = $("section.head[data-autofocus]") || heads[0];
    const focusHead = (head) => {
      if (!head) return;
      current = head;
      head.focus({ preventScroll: false });
    };
    document.addEventListener("focusin", (e) => {
      const head = e.target.closest && e.target.closest("section.head");
      if (head) current = head;
    });
    if ($("section.head[data-autofocus]")) focusHead(current);
    else if ($("#next")) $("#next").focus();

    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (typing(e.target)) {
        if (e.key === "Escape") {
          const head = e.target.closest("section.head");
          e.target.blur();
          focusHead(head || current);
        }
        return;
      }
      const step = is(e, "ArrowDown") ? 1 : is(e, "ArrowUp") ? -1 : 0;
      if (step && heads.length) {
        const i = heads.indexOf(current);
        focusHead(heads[(i + step + heads.length) % heads.length]);
      } else if (is(e, "KeyA") && !e.shiftKey) {
        $("#accept-all")?.click();
      } else if (is(e, "KeyN", "KeyJ")) {
        go($("#next"));
      } else if (/^(Digit|Numpad)[1-3]$/.test(e.code) && current) {
        $(`button[data-alt="${e.code.slice(-1)}"]`, current)?.click();
      } else if (is(e, "Slash") || e.key === "/") {
        const input = current && $("[data-search]", current);
        if (input) input.focus();
      } else {
        return;
      }
      e.preventDefault();
    });
  }

  // "осталось 2 дн 4 ч" / "просрочено на 35 мин": the two largest units, as the server writes.
  function timeLeft(ms) {
    const s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    const amount = d ? (h ? `${d} дн ${h} ч` : `${d} дн`) : h ? (m ? `${h} ч ${m} мин` : `${h} ч`) : `${m} мин`;
    return ms < 0 ? `просрочено на ${amount}` : `осталось ${amount}`;
  }

  // The queue's «Ответить до» keeps counting while the page is open.
  function countdowns() {
    const tick = () => $$("time[data-countdown]").forEach((t) => {
      const ms = Date.parse(t.dateTime) - Date.now();
      if (Number.isNaN(ms)) return;
      t.textContent = timeLeft(ms);
      t.classList.toggle("late", ms < 0);
      t.closest("tr")?.classList.toggle("overdue", ms < 0);
    });
    if ($("time[data-countdown]")) window.setInterval(tick, 30000);
  }

  // While a retrain is queued or running the model page asks every few seconds whether
  // anything changed and reloads itself when it did (the page renders data-poll only then).
  function modelPage() {
    const live = $("[data-poll]");
    if (!live) return;
    const every = Number(live.dataset.every || 5) * 1000;
    const poll = async () => {
      try {
        const r = await fetch(live.dataset.poll, { headers: { Accept: "application/json" } });
        if (r.ok && (await r.json()).state !== live.dataset.state) {
          window.location.reload();
          return;
        }
      } catch (_) { /* offline for a moment: ask again later */ }
      window.setTimeout(poll, every);
    };
    window.setTimeout(poll, every);
  }

  function queuePage() {
    countdowns();
    const rows = $$("a.row-link");
    // The first row nobody else has open gets the focus: Enter takes it.
    const free = rows.find((r) => !r.classList.contains("held-row")) || rows[0];
    if (free && !typing(document.activeElement)) free.focus({ preventScroll: true });
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      const i = rows.indexOf(document.activeElement);
      if (is(e, "KeyJ", "ArrowDown") && rows.length) {
        rows[Math.min(i + 1, rows.length - 1)].focus();
      } else if (is(e, "KeyK", "ArrowUp") && rows.length) {
        rows[Math.max(i - 1, 0)].focus();
      } else if (is(e, "Slash") || e.key === "/") {
        $("#first-filter")?.focus();
      } else if (is(e, "BracketLeft")) {
        go($("#prev-page"));
      } else if (is(e, "BracketRight")) {
        go($("#next-page"));
      } else if (is(e, "KeyN")) {
        go($("#take-next"));
      } else {
        return;
      }
      e.preventDefault();
    });
  }

  // Anywhere: "m" opens the model page, "q" the queue (the appeal page keeps its filters).
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (is(e, "KeyM")) go($('a[href="/console/model"]'));
    else if (is(e, "KeyP")) go($('a[href="/console/mine"]'));
    else if (is(e, "KeyQ")) go($("#back") || $('a[href="/console/"]'));
  });

  if (document.body.classList.contains("page-appeal")) appealPage();
  if (document.body.classList.contains("page-queue")) queuePage();
  modelPage();
})();
