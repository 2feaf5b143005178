// Aurum Canary's web UI: hand-written, no build step, no dependencies.
//
// Every string that comes from the API (names, label values, reasons,
// policy text) is written with text nodes, never as HTML. The only markup
// inserted is the chart, an SVG drawn by the server, which is parsed as
// SVG (scripts in it would not run, and the page's CSP allows none).
'use strict';

(() => {
  const prefix = document.querySelector('meta[name="canary-prefix"]').content;
  const TOKEN_KEY = 'canary.adminToken';
  const main = document.getElementById('main');
  const notice = document.getElementById('notice');

  // ---- DOM helpers ----

  // h builds an element: attributes (class, on* handlers, data) and
  // children; a string child is a text node.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'data') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  // cls turns a word from the API into a class name: only known shapes
  // pass, anything else is dropped.
  function cls(word) {
    return String(word || '').toLowerCase().replace(/ /g, '-').replace(/[^a-z_-]/g, '');
  }

  function badge(word, title) {
    if (!word) return h('span', { class: 'muted' }, '–');
    return h('span', { class: 'badge ' + cls(word), title: title }, word);
  }

  function fmtValue(v) {
    if (v === undefined || v === null) return '–';
    if (typeof v === 'string') return v; // NaN, +Inf
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(1);
    return String(Number(v.toPrecision(4)));
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (!t || t < 0) return '–';
    let s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.round(s / 60) + 'm';
    if (s < 86400) return Math.round(s / 3600) + 'h';
    return Math.round(s / 86400) + 'd';
  }

  function stamp(iso) {
    const t = Date.parse(iso);
    return t > 0 ? new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '–';
  }

  function link(path, text) { return h('a', { href: prefix + path }, text); }

  function seg(s) { return encodeURIComponent(s); }

  function facts(pairs) {
    return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
  }

  function table(head, rows, opts) {
    opts = opts || {};
    return h('div', { class: 'table-wrap' }, h('table', { id: opts.id },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: /^(weight|age|score|seq|value|threshold)$/i.test(c) ? 'num' : null }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { class: 'empty', colspan: head.length }, opts.empty || 'Nothing yet.')))));
  }

  // chart inserts the server's SVG, parsed as SVG.
  function chart(svg) {
    const box = h('div', { class: 'chart-box' });
    if (!svg) return box;
    const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
    const root = doc.documentElement;
    if (root && root.nodeName === 'svg') {
      root.querySelectorAll('script, foreignObject').forEach((n) => n.remove());
      box.append(document.importNode(root, true));
    }
    return box;
  }

  function showNotice(kind, text) {
    notice.hidden = false;
    notice.className = kind;
    notice.textContent = text;
  }

  function clearNotice() { notice.hidden = true; notice.textContent = ''; }

  // ---- the API ----

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(prefix + path, {
      method, headers, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const err = new Error((data && data.error) || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function failure(e) {
    if (e.status === 401) {
      return '401 Unauthorized: ' + e.message + '. This needs a token (an admin token to act): set it with "Admin token", top right, and try again.';
    }
    return (e.status ? e.status + ': ' : '') + e.message;
  }

  // ---- confirmation and token dialogs ----

  const confirmDialog = document.getElementById('confirm');
  const confirmForm = document.getElementById('confirm-form');
  const confirmReason = document.getElementById('confirm-reason');
  const confirmToken = document.getElementById('confirm-token');
  let confirming = null;

  // act asks for a reason (and the token, once), then calls the admin API.
  function act(title, text, path, after) {
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    confirmReason.value = '';
    confirmToken.value = '';
    // The token this tab keeps may be one that can only look: an admin
    // token given here replaces it.
    document.getElementById('confirm-token-label').textContent = token()
      ? 'Admin token (leave empty to use the token this tab keeps)' : 'Admin token (kept in this tab only)';
    confirming = { path, after };
    confirmDialog.showModal();
    confirmReason.focus();
  }

  confirmForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!confirming) return;
    const { path, after } = confirming;
    const reason = confirmReason.value.trim();
    if (!reason) { confirmReason.reportValidity(); return; }
    const t = confirmToken.value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    confirming = null;
    confirmDialog.close();
    try {
      await api('POST', path, { reason });
      showNotice('ok', 'Done: ' + after);
      refresh();
    } catch (e) {
      showNotice('error', failure(e));
    }
  });
  document.getElementById('confirm-cancel').addEventListener('click', () => { confirming = null; confirmDialog.close(); });

  const tokenDialog = document.getElementById('token-dialog');
  const tokenInput = document.getElementById('token-input');
  document.getElementById('token-button').addEventListener('click', () => {
    tokenInput.value = '';
    tokenInput.placeholder = token() ? 'a token is set for this tab' : 'none set';
    tokenDialog.showModal();
  });
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = tokenInput.value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    tokenDialog.close();
    refresh();
    live.restart();
  });
  document.getElementById('token-forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); tokenDialog.close(); });
  document.getElementById('token-cancel').addEventListener('click', () => tokenDialog.close());

  function actions(list) {
    return h('div', { class: 'actions' }, list.map(([label, title, text, path, after, danger]) =>
      h('button', { type: 'button', class: danger ? 'danger' : null, data: { action: label.toLowerCase() }, onclick: () => act(title, text, path, after) }, label)));
  }

  // ---- routing ----

  function route() {
    let path = location.pathname;
    if (prefix && path.startsWith(prefix)) path = path.slice(prefix.length);
    let m;
    if (path === '/ui/' || path === '/ui') return { view: 'overview' };
    if (path === '/ui/policies') return { view: 'policies' };
    if ((m = path.match(/^\/ui\/runs\/([^/]+)\/([^/]+)$/))) {
      return { view: 'run', ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]), revision: new URLSearchParams(location.search).get('revision') || '' };
    }
    if ((m = path.match(/^\/ui\/rollouts\/([^/]+)\/([^/]+)$/))) {
      return { view: 'rollout', ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]) };
    }
    return { view: 'notfound' };
  }

  const here = route();
  document.querySelectorAll('header nav a').forEach((a) => {
    if (a.dataset.nav === here.view) a.classList.add('active');
  });

  // render replaces the view, keeping the scroll position, and marks the
  // page ready for whoever waits on it (people and tests alike).
  let renders = 0;
  function render(...nodes) {
    const y = window.scrollY;
    main.replaceChildren(...nodes);
    window.scrollTo(0, y);
    renders++;
    if (renders === 1) {
      // Laid out: reading a size forces the layout the time includes.
      document.body.dataset.height = String(document.body.offsetHeight);
      document.body.dataset.renderedAt = String(performance.now());
    }
    document.body.dataset.ready = here.view;
    document.body.dataset.renders = String(renders);
  }

  function loadError(e) {
    render(h('h1', {}, 'Cannot load this view'), h('p', { class: 'error' }, failure(e)));
    if (e.status === 401) showNotice('error', failure(e));
  }

  // ---- overview ----

  const filters = new URLSearchParams(location.search);
  // PAGE is how many rows the overview draws at first, and adds on demand.
  const PAGE = 100;

  function options(values, current) {
    return [h('option', { value: '' }, 'all')].concat([...values].sort().map((v) => h('option', { value: v, selected: v === current }, v)));
  }

  async function overview() {
    let data;
    try { data = await api('GET', '/v1/ui/overview'); } catch (e) { loadError(e); return; }
    document.body.dataset.fetchedAt = String(performance.now());
    const rows = data.rows || [];
    const namespaces = new Set(rows.map((r) => r.namespace));
    const policies = new Set(rows.map((r) => r.policy).filter(Boolean));
    const states = new Set(rows.map((r) => r.state));
    const sel = (name, values) => h('select', { name, onchange: apply }, options(values, filters.get(name) || ''));
    const nsSel = sel('namespace', namespaces);
    const polSel = sel('policy', policies);
    const stateSel = sel('state', states);
    const search = h('input', { type: 'search', name: 'q', placeholder: 'name, revision, reason…', value: filters.get('q') || '', oninput: apply });

    // Group members are listed together, under their group, at the place
    // of the group's newest member.
    const groups = new Map();
    const entries = [];
    for (const r of rows) {
      if (r.group) {
        const key = r.namespace + '/' + r.group;
        if (!groups.has(key)) { groups.set(key, []); entries.push({ group: key, members: groups.get(key) }); }
        groups.get(key).push(r);
      } else {
        entries.push({ row: r });
      }
    }
    const count = h('span', { class: 'muted', id: 'count' });
    const nRollouts = rows.filter((r) => r.rollout).length;
    const head = ['Canary', 'Policy', 'State', 'Verdict', 'Decision', 'Weight', 'Reason', 'Latches', 'Age'];
    const tbody = h('tbody');
    // Only the first rows are drawn, page after page on demand: a table
    // of thousands of rows costs the browser far more to lay out than
    // anyone reads. The filters apply to every row.
    let limit = PAGE;
    const more = h('button', { type: 'button', id: 'more', hidden: true, onclick: () => { limit += PAGE; apply(); } });
    render(
      h('h1', {}, 'Runs and rollouts'),
      h('p', { class: 'muted' }, rows.length + ' runs, ' + nRollouts + ' driven by canary serve\'s own rollouts' +
        (data.orchestrator ? '' : ' (the orchestrator is off: no Kubernetes access)') + (data.truncated ? '; the oldest are left out' : '') + '. '),
      h('div', { class: 'filters' },
        h('label', {}, 'Namespace', nsSel), h('label', {}, 'Policy', polSel), h('label', {}, 'State', stateSel),
        h('label', {}, 'Search', search), count),
      h('div', { class: 'table-wrap' }, h('table', { id: 'runs' }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: /^(weight|age)$/i.test(c) ? 'num' : null }, c)))), tbody)),
      h('div', { class: 'actions' }, more),
    );

    function apply(ev) {
      if (ev) limit = PAGE; // a new filter starts from the first page
      const want = { namespace: nsSel.value, policy: polSel.value, state: stateSel.value };
      const q = search.value.trim().toLowerCase();
      const matches = (r) => (!want.namespace || r.namespace === want.namespace) && (!want.policy || r.policy === want.policy) &&
        (!want.state || r.state === want.state) &&
        (!q || (r.namespace + '/' + r.name + '@' + r.revision + ' ' + (r.reason || '')).toLowerCase().includes(q));
      const out = [];
      let shown = 0;
      let total = 0;
      for (const e of entries) {
        const members = e.group ? e.members.filter(matches) : (matches(e.row) ? [e.row] : []);
        total += members.length;
        if (!members.length || shown >= limit) continue;
        if (e.group) out.push(h('tr', { class: 'group', data: { group: e.group } }, h('td', { colspan: head.length }, 'group ' + e.group + ' · ' + e.members.length + ' members')));
        for (const r of members) {
          if (shown >= limit) break;
          out.push(rowEl(r));
          shown++;
        }
      }
      if (!out.length) {
        out.push(h('tr', {}, h('td', { class: 'empty', colspan: head.length }, rows.length ? 'No run matches the filters.' : 'No runs yet: analyses from Argo Rollouts, Flagger or canary rollouts show up here.')));
      }
      tbody.replaceChildren(...out);
      count.textContent = total === rows.length ? '' : total + ' of ' + rows.length + ' match';
      more.hidden = shown >= total;
      more.textContent = 'Show ' + Math.min(PAGE, total - shown) + ' more (' + shown + ' of ' + total + ' shown)';
      for (const [k, v] of Object.entries(want)) { if (v) filters.set(k, v); else filters.delete(k); }
      if (q) filters.set('q', search.value); else filters.delete('q');
      const qs = filters.toString();
      history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
    }
    apply();
  }

  function latchBadges(latches) {
    return (latches || []).map((l) => h('span', { class: 'badge latch ' + cls(l.kind), title: l.source + (l.by ? ' by ' + l.by : '') + ': ' + l.reason }, l.kind + ' · ' + l.source));
  }

  function rowEl(r) {
    const id = r.namespace + '/' + r.name;
    const canary = h('td', {},
      link('/ui/runs/' + seg(r.namespace) + '/' + seg(r.name) + '?revision=' + seg(r.revision), id),
      h('div', { class: 'muted mono' }, '@' + r.revision + (r.current ? '' : ' (old revision)')),
      r.rollout ? h('div', {}, link('/ui/rollouts/' + seg(r.namespace) + '/' + seg(r.name), 'rollout · step ' + r.rollout.step + '/' + r.rollout.steps)) : null);
    return h('tr', { data: { run: id + '@' + r.revision } },
      canary,
      h('td', {}, r.policy || '–'),
      h('td', {}, badge(r.state)),
      h('td', {}, badge(r.verdict)),
      h('td', {}, badge(r.decision)),
      h('td', { class: 'num' }, r.weight === undefined || r.weight === null ? '–' : r.weight + '%'),
      h('td', { class: 'reason', title: r.reason || '' }, r.reason || ''),
      h('td', {}, latchBadges(r.latches)),
      h('td', { class: 'num', title: stamp(r.updatedAt) }, ago(r.updatedAt)));
  }

  // ---- a run ----

  async function runView() {
    const { ns, name, revision } = here;
    let data;
    try {
      data = await api('GET', '/v1/ui/runs/' + seg(ns) + '/' + seg(name) + (revision ? '?revision=' + seg(revision) : ''));
    } catch (e) { loadError(e); return; }
    const run = data.run;
    const hist = data.history || [];
    const last = hist.length ? hist[hist.length - 1] : null;
    const base = '/v1/runs/' + seg(ns) + '/' + seg(name) + '/';
    const rev = '?revision=' + seg(run.revision);
    const id = ns + '/' + name + '@' + run.revision;
    const kinds = (run.latches || []).map((l) => l.kind);
    const state = ['rollback', 'pause', 'promote'].find((k) => kinds.includes(k)) || run.lastVerdict || 'pending';
    const nodes = [
      h('div', { class: 'crumbs' }, link('/ui/', 'Overview'), ' › ', ns + '/' + name),
      h('h1', {}, ns + '/' + name, ' ', h('span', { class: 'muted mono' }, '@' + run.revision), ' ', run.current ? badge('current') : badge('old revision')),
      h('section', { class: 'card' },
        facts([
          ['State', badge(state)],
          ['Last verdict', badge(run.lastVerdict)],
          ['Decision', badge(run.lastDecision)],
          ['Analyses', h('span', { id: 'evaluations' }, String(run.evaluations))],
          ['Policy', run.policy ? link('/ui/policies#policy-' + seg(run.policy), run.policy) : '–'],
          ['Started', h('span', { title: stamp(run.startedAt) }, ago(run.startedAt) + ' ago')],
          ['Updated', h('span', { title: stamp(run.updatedAt) }, ago(run.updatedAt) + ' ago')],
          run.phase ? ['Flagger phase', run.phase] : null,
          run.params ? ['Params', h('span', { class: 'mono' }, Object.entries(run.params).map(([k, v]) => k + '=' + v).join(' '))] : null,
          data.rollout ? ['Canary weight', h('span', {}, data.rollout.currentWeight + '% ', link('/ui/rollouts/' + seg(ns) + '/' + seg(name), '(rollout)'))] : null,
        ]),
        h('p', { id: 'last-reason' }, run.lastReason || ''),
        actions([
          ['Pause', 'Pause ' + id + '?', 'Every analysis of this revision answers pause until it is resumed.', base + 'pause' + rev, 'paused ' + id],
          ['Resume', 'Resume ' + id + '?', 'Lifts every latch of this revision: analyses answer from the rules again.', base + 'resume' + rev, 'resumed ' + id],
          ['Promote', 'Promote ' + id + '?', 'Every analysis of this revision answers pass and promote.', base + 'promote' + rev, 'promoted ' + id],
          ['Rollback', 'Roll back ' + id + '?', 'Latches a rollback: every analysis and gate of this revision answers rollback, and the kill switch cuts its traffic.', base + 'rollback' + rev, 'rollback latched on ' + id, true],
        ])),
      h('h2', {}, 'Latches'),
      table(['Kind', 'Source', 'Reason', 'By', 'Since', 'Alert'], (run.latches || []).map((l) =>
        h('tr', { class: 'latch-row' }, h('td', {}, badge(l.kind)), h('td', {}, l.source), h('td', { class: 'latch-reason' }, l.reason), h('td', {}, l.by || ''),
          h('td', { title: stamp(l.at) }, ago(l.at) + ' ago'), h('td', { class: 'mono' }, l.alert || ''))), { id: 'latches', empty: 'No latch: the rules answer.' }),
      h('h2', {}, 'Rules over the last ' + hist.length + ' analyses'),
      chart(data.chart),
    ];
    if (last) {
      nodes.push(h('h2', {}, 'Latest analysis ', h('span', { class: 'muted' }, '#' + last.seq + ', ' + stamp(last.at))));
      nodes.push(table(['Rule', 'Verdict', 'Value', 'Threshold', 'Reason'], last.rules.map((r) => {
        let value = fmtValue(r.value);
        let reason = r.reason;
        if (r.comparison) {
          const c = r.comparison;
          value = 'canary ' + fmtValue(c.canaryMean) + ' · baseline ' + fmtValue(c.baselineMean);
          reason = r.reason + ' (p=' + fmtValue(c.pValue) + ', shift ' + fmtValue(c.estimate) + ' [' + fmtValue(c.ciLow) + ', ' + fmtValue(c.ciHigh) + '])';
        }
        return h('tr', { data: { rule: r.name } }, h('td', {}, r.name), h('td', {}, badge(r.verdict), r.noData ? ' no data' : ''),
          h('td', { class: 'num' }, value), h('td', { class: 'num' }, fmtValue(r.threshold)), h('td', {}, reason));
      }), { id: 'latest' }));
    }
    nodes.push(h('h2', {}, 'Timeline'));
    nodes.push(table(['Seq', 'At', 'Verdict', 'Decision', 'Score', 'Reason'], hist.slice().reverse().slice(0, 50).map((e) =>
      h('tr', {}, h('td', { class: 'num' }, String(e.seq)), h('td', {}, stamp(e.at)), h('td', {}, badge(e.verdict)), h('td', {}, badge(e.decision)),
        h('td', { class: 'num' }, fmtValue(e.score)), h('td', { class: 'reason', title: e.reason }, e.reason))), { id: 'timeline', empty: 'No analysis recorded.' }));
    if (run.overrides && run.overrides.length) {
      nodes.push(h('h2', {}, 'Manual actions'));
      nodes.push(table(['Action', 'Reason', 'By', 'At'], run.overrides.slice().reverse().map((o) =>
        h('tr', {}, h('td', {}, badge(o.action)), h('td', { class: 'override-reason' }, o.reason), h('td', {}, o.by), h('td', {}, stamp(o.at))))));
    }
    if (data.policy) {
      const p = data.policy;
      nodes.push(h('h2', {}, 'Policy ', link('/ui/policies#policy-' + seg(p.name), p.name), ' ', h('span', { class: 'muted mono' }, p.file + ':' + p.line)));
      nodes.push(rulesTable(p));
      nodes.push(h('h2', {}, 'Queries, rendered with this run\'s params'));
      nodes.push(table(['Query', 'Kind', 'Text', ''], (data.queries || []).map((q) =>
        h('tr', {}, h('td', {}, q.name), h('td', {}, q.kind + (q.source ? ' (' + q.source + ')' : '')),
          h('td', {}, h('pre', {}, q.text || Object.entries(q.fields || {}).map(([k, v]) => k + ': ' + v).join('\n')), q.error ? h('div', { class: 'error' }, q.error) : null),
          h('td', {}, q.link ? h('a', { href: q.link, target: '_blank', rel: 'noopener noreferrer' }, 'Open in Prometheus') : '')))));
    } else if (run.policy) {
      nodes.push(h('p', { class: 'muted' }, 'Policy ' + run.policy + ' is not loaded now.'));
    }
    if (data.revisions && data.revisions.length > 1) {
      nodes.push(h('h2', {}, 'Revisions'));
      nodes.push(h('ul', {}, data.revisions.map((r) => h('li', {},
        link('/ui/runs/' + seg(ns) + '/' + seg(name) + '?revision=' + seg(r.revision), r.revision), ' ', r.current ? badge('current') : '', ' ', latchBadges(r.latches)))));
    }
    render(...nodes);
  }

  function rulesTable(p) {
    return table(['Rule', 'Expression', 'Critical', 'No data', 'Where'], p.rules.map((r) =>
      h('tr', {}, h('td', {}, r.name), h('td', {}, h('code', {}, r.expr)), h('td', {}, r.critical ? 'critical' : ''), h('td', {}, r.noData || ''),
        h('td', { class: 'mono' }, p.file + ':' + r.line))));
  }

  // ---- a rollout ----

  async function rolloutView() {
    const { ns, name } = here;
    let data;
    try { data = await api('GET', '/v1/ui/rollouts/' + seg(ns) + '/' + seg(name)); } catch (e) { loadError(e); return; }
    const st = data.rollout;
    const id = ns + '/' + name;
    const base = '/v1/rollouts/' + seg(ns) + '/' + seg(name) + '/';
    const pct = (v) => (v === undefined || v === null ? '–' : fmtValue(v) + '%');
    const nodes = [
      h('div', { class: 'crumbs' }, link('/ui/', 'Overview'), ' › rollout ' + id),
      h('h1', {}, 'Rollout ' + id, ' ', h('span', { class: 'muted mono' }, st.version)),
      h('section', { class: 'card' },
        facts([
          ['Phase', h('span', { id: 'phase' }, badge(st.status))],
          ['Health', badge(st.healthStatus)],
          ['Step', st.step + ' of ' + st.steps],
          ['Canary weight', h('span', { id: 'weight' }, st.currentWeight + '%' + (st.targetWeight !== st.currentWeight ? ' → ' + st.targetWeight + '%' : ''))],
          ['Success rate', pct(st.successRatePercent)],
          ['Error rate', pct(st.errorRatePercent)],
          ['Latency', st.avgLatencyMs === null || st.avgLatencyMs === undefined ? '–' : fmtValue(st.avgLatencyMs) + ' ms'],
          ['Policy', link('/ui/policies#policy-' + seg(st.policy), st.policy)],
          st.group ? ['Group', st.group] : null,
          st.traffic ? ['Traffic', st.traffic.router + ' ' + st.traffic.namespace + '/' + st.traffic.object] : null,
          ['Updated', h('span', { title: stamp(st.updatedAt) }, ago(st.updatedAt) + ' ago')],
          data.run ? ['Analyses', link('/ui/runs/' + seg(ns) + '/' + seg(name) + '?revision=' + seg(st.version), data.run.evaluations + ' recorded')] : null,
        ]),
        h('p', { id: 'rollout-reason' }, st.reason || ''),
        actions([
          ['Pause', 'Pause rollout ' + id + '?', 'The rollout holds its weight until resumed.', base + 'pause', 'paused rollout ' + id],
          ['Resume', 'Resume rollout ' + id + '?', 'The rollout goes on from where it paused or failed.', base + 'resume', 'resumed rollout ' + id],
          ['Skip-step', 'Skip a step of ' + id + '?', 'The rollout moves to its next step now.', base + 'skip-step', 'skipped a step of ' + id],
          ['Promote', 'Promote rollout ' + id + '?', 'The rollout goes to its top weight and promotes.', base + 'promote', 'promoting ' + id],
          ['Rollback', 'Roll back rollout ' + id + '?', 'The rollout rolls back: the canary loses its traffic.', base + 'rollback', 'rolling back ' + id, true],
        ])),
      h('h2', {}, 'Weight over time'),
      chart(data.chart),
    ];
    const le = st.lastEvaluation;
    if (le) {
      nodes.push(h('h2', {}, 'Last analysis ', badge(le.verdict), ' ', h('span', { class: 'muted' }, stamp(le.at))));
      nodes.push(table(['Rule', 'Verdict', 'Value', 'Threshold', 'Reason'], (le.rules || []).map((r) =>
        h('tr', {}, h('td', {}, r.name), h('td', {}, badge(r.verdict)), h('td', { class: 'num' }, fmtValue(r.value)),
          h('td', { class: 'num' }, fmtValue(r.threshold)), h('td', {}, r.reason)))));
    }
    nodes.push(h('h2', {}, 'Events'));
    nodes.push(table(['Seq', 'At', 'Type', 'Phase', 'Step', 'Weight', 'Verdict', 'Reason', 'By'], (st.history || []).slice().reverse().slice(0, 100).map((e) =>
      h('tr', {}, h('td', { class: 'num' }, String(e.seq)), h('td', {}, stamp(e.at)), h('td', {}, e.type),
        h('td', {}, e.from || e.to ? (e.from || '') + ' → ' + (e.to || '') : ''), h('td', { class: 'num' }, String(e.step + 1)),
        h('td', { class: 'num' }, e.weight + '%'), h('td', {}, e.verdict ? badge(e.verdict) : ''), h('td', { class: 'event-reason' }, e.reason || ''),
        h('td', {}, e.by || ''))), { id: 'events' }));
    render(...nodes);
  }

  // ---- policies ----

  async function policiesView() {
    let data;
    try { data = await api('GET', '/v1/ui/policies'); } catch (e) { loadError(e); return; }
    const st = data.status;
    const nodes = [
      h('h1', {}, 'Policies'),
      h('p', { class: 'muted' }, data.policies.length + ' loaded · last load attempt ' + stamp(st.lastAttempt) + ' · last success ' + stamp(st.lastSuccess)),
    ];
    if (st.errors && st.errors.length) {
      nodes.push(h('section', { class: 'card', id: 'reload-errors' }, h('h2', {}, 'The last reload was rejected; the previous policies stay in service'),
        h('ul', { class: 'errors' }, st.errors.map((e) => h('li', {}, e)))));
    }
    if (data.openRoutes && data.openRoutes.length) {
      nodes.push(h('p', { class: 'muted' }, 'Route groups open to anyone who reaches this service: ' + data.openRoutes.join(', ') + '.'));
    }
    for (const p of data.policies) {
      const inputs = p.params.map((par) => h('label', {}, par.name + (par.default === undefined ? ' (required)' : ''),
        h('input', { name: par.name, placeholder: par.default === undefined ? '' : par.default, title: par.pattern ? 'pattern: ' + par.pattern : par.description || '' })));
      const result = h('div', { class: 'tryit-result' });
      const form = h('form', { class: 'tryit-form', data: { policy: p.name } },
        h('div', { class: 'tryit' }, inputs),
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Evaluate now')),
        h('p', { class: 'muted' }, 'Runs every query once with these params and shows the verdict. Nothing is recorded: no run, no latch.'),
        result);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const params = {};
        for (const input of form.querySelectorAll('input')) { if (input.value !== '') params[input.name] = input.value; }
        result.replaceChildren(h('p', { class: 'muted' }, 'Evaluating…'));
        try {
          const a = await api('POST', '/v1/ui/policies/' + seg(p.name) + '/eval', { params });
          result.replaceChildren(
            h('p', {}, badge(a.verdict), ' ', badge(a.decision), ' ', h('span', { class: 'eval-reason' }, a.reason)),
            table(['Rule', 'Verdict', 'Value', 'Threshold', 'Reason'], (a.rules || []).map((r) =>
              h('tr', { data: { rule: r.name } }, h('td', {}, r.name), h('td', {}, badge(r.verdict)), h('td', { class: 'num' }, fmtValue(r.value)),
                h('td', { class: 'num' }, fmtValue(r.threshold)), h('td', {}, r.reason))), { id: 'eval-' + p.name }),
            h('h3', {}, 'Queries'),
            table(['Query', 'Rendered', 'Result'], Object.entries(a.queries || {}).map(([qn, q]) =>
              h('tr', {}, h('td', {}, qn), h('td', {}, h('pre', {}, q.query || Object.entries(q.fields || {}).map(([k, v]) => k + ': ' + v).join('\n'))),
                h('td', {}, q.error ? h('span', { class: 'error' }, q.error) : q.noData ? 'no data' : q.points ? q.points.length + ' points' : fmtValue(q.value))))));
        } catch (e) {
          result.replaceChildren(h('p', { class: 'error' }, failure(e)));
        }
      });
      nodes.push(h('section', { class: 'card', id: 'policy-' + p.name },
        h('h2', {}, p.name, ' ', h('span', { class: 'muted mono' }, p.file + ':' + p.line)),
        p.description ? h('p', {}, p.description) : null,
        rulesTable(p),
        h('details', {}, h('summary', {}, p.queries.length + ' queries'),
          table(['Query', 'Kind', 'Template'], p.queries.map((q) => h('tr', {}, h('td', {}, q.name), h('td', {}, q.kind + (q.source ? ' (' + q.source + ')' : '')),
            h('td', {}, h('pre', {}, q.text || Object.entries(q.fields || {}).map(([k, v]) => k + ': ' + v).join('\n'))))))),
        h('h3', {}, 'Try it'),
        form));
    }
    render(...nodes);
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  }

  // ---- live updates ----

  const views = { overview, run: runView, rollout: rolloutView, policies: policiesView };
  function load() {
    const v = views[here.view];
    if (v) return v();
    render(h('h1', {}, 'No such page'), h('p', {}, link('/ui/', 'Back to the overview')));
    return Promise.resolve();
  }

  // refresh reloads the view's data, at most every 300 ms, and not while
  // a dialog is open.
  let timer = null;
  function refresh() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (confirmDialog.open || tokenDialog.open) { refresh(); return; }
      load();
    }, 300);
  }

  function concerns(ev) {
    switch (here.view) {
      case 'overview': return true;
      case 'run': case 'rollout': return ev.namespace === here.ns && ev.name === here.name;
      default: return false;
    }
  }

  // The stream is read with fetch rather than EventSource so that it can
  // carry the token when the ui routes require one. A browser keeps six
  // connections per host over HTTP/1.1, and each open stream holds one:
  // a page holds at most one stream, and none while it is hidden or left.
  const live = (() => {
    const badgeEl = document.getElementById('live');
    let ctrl = null;
    let timer = null;
    let wait = 1000;
    let gen = 0;
    let connectedOnce = false;
    function set(on, text) { badgeEl.className = 'live ' + (on ? 'on' : 'off'); badgeEl.textContent = text; }
    async function connect(my) {
      if (my !== gen) return;
      const mine = new AbortController();
      ctrl = mine;
      try {
        const headers = { Accept: 'text/event-stream' };
        const t = token();
        if (t) headers.Authorization = 'Bearer ' + t;
        const resp = await fetch(prefix + '/v1/ui/events', { headers, cache: 'no-store', signal: mine.signal });
        if (!resp.ok || !resp.body) throw new Error('stream answered ' + resp.status);
        set(true, 'live');
        if (connectedOnce) refresh(); // events may have been missed
        connectedOnce = true;
        wait = 1000;
        const reader = resp.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        while (my === gen) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let data = '';
            for (const line of block.split('\n')) { if (line.startsWith('data: ')) data += line.slice(6); }
            if (!data) continue;
            let ev;
            try { ev = JSON.parse(data); } catch (e) { continue; }
            document.body.dataset.lastEvent = ev.type + ' ' + ev.kind + ' ' + ev.namespace + '/' + ev.name;
            if (concerns(ev)) refresh();
          }
        }
      } catch (e) {
        // aborted, refused or cut: reconnect below, unless stopped
      }
      mine.abort();
      if (my !== gen) return;
      set(false, 'reconnecting');
      timer = setTimeout(() => connect(my), wait);
      wait = Math.min(wait * 2, 30000);
    }
    function stop(text) {
      gen++;
      clearTimeout(timer);
      if (ctrl) ctrl.abort();
      set(false, text);
    }
    return {
      start() { stop('connecting'); wait = 1000; connect(gen); },
      restart() { this.start(); },
      stop,
    };
  })();
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) live.stop('paused while hidden');
    else { live.start(); refresh(); }
  });
  window.addEventListener('pagehide', () => live.stop('offline'));
  window.addEventListener('pageshow', (ev) => { if (ev.persisted) { live.start(); refresh(); } });

  load().then(() => live.start());
})();
