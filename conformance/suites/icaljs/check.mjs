// Conformance suite `icaljs`: every object the server serves parses with ical.js (the iCalendar
// library inside Thunderbird), and the instances the server expands in a time window are the
// instances ical.js itself finds in the raw object.
//
//   node check.mjs RESULTS_FILE
//
// Environment: CONF_URL (base URL), CONF_USER, CONF_PASSWORD, ICALJS_FIXTURES (directory with
// *.ics and expected.tsv). Writes one line per check to RESULTS_FILE (`PASS id` or
// `FAIL id detail`) and a readable account to stdout.
//
// Checks:
//   put:FILE      PUT of the object into a fresh calendar succeeds
//   parse:FILE    GET gives 200 and a body ical.js parses: a VCALENDAR holding the expected
//                 component with the object's UID
//   same:FILE     the served object is, to ical.js, the same calendar as the uploaded one
//                 (jCal of both equal)
//   window:FILE:START-END[:COMP]
//                 calendar-query with a time-range filter on COMP and
//                 <C:calendar-data><C:expand start end/></C:calendar-data>: the expanded data
//                 parses with ical.js, has no RRULE/RDATE/EXDATE left, and its set of instance
//                 starts equals ical.js's own expansion of the object, filtered by RFC 4791 §9.9
//                 (absent from the answer = empty set). The detail also shows expected.tsv's row.
//
// Windows: every row of expected.tsv, a few of the suite's own, plus three wide windows per
// object (2024, 2025, 2030).
// The calendar has no calendar-timezone, so floating times and DATE values are read as UTC on
// both sides (ical.js gives a floating time a UTC offset of 0).

import fs from 'node:fs';
import path from 'node:path';
import ICAL from 'ical.js';
import sax from 'sax';

const BASE = process.env.CONF_URL;
const USER = process.env.CONF_USER;
const PASSWORD = process.env.CONF_PASSWORD;
const FIXTURES = process.env.ICALJS_FIXTURES;
const RESULTS = process.argv[2];
if (!BASE || !USER || PASSWORD === undefined || !FIXTURES || !RESULTS) {
  console.error('usage: CONF_URL=... CONF_USER=... CONF_PASSWORD=... ICALJS_FIXTURES=DIR node check.mjs RESULTS_FILE');
  process.exit(2);
}

const NS_DAV = 'DAV:';
const NS_CAL = 'urn:ietf:params:xml:ns:caldav';
const AUTH = 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`, 'utf8').toString('base64');
const KINDS = ['vevent', 'vtodo', 'vjournal'];
const DAY = 86400;

fs.writeFileSync(RESULTS, '');
let passed = 0;
let failed = 0;
function record(ok, id, detail = '') {
  if (/\s/.test(id)) throw new Error(`check id with whitespace: ${id}`);
  const oneLine = detail.replace(/\s*\n\s*/g, ' | ');
  fs.appendFileSync(RESULTS, ok ? `PASS ${id}\n` : `FAIL ${id} ${oneLine}\n`);
  if (ok) {
    passed++;
    console.log(`ok   ${id}${detail ? `  (${detail})` : ''}`);
  } else {
    failed++;
    console.log(`FAIL ${id}`);
    for (const line of detail.split('\n')) console.log(`     ${line}`);
  }
}

// ------------------------------------------------------------------------------------------
// HTTP and WebDAV XML

async function http(method, url, { body, headers = {} } = {}) {
  const res = await fetch(url, { method, body, headers: { Authorization: AUTH, ...headers }, redirect: 'manual' });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function clip(s, n = 800) {
  return s.length <= n ? s : `${s.slice(0, n)}... [${s.length - n} more chars]`;
}

// Parses a DAV:multistatus into [{href, status, props: {"{ns}local": {status, text, hrefs}}}]
// (text: all character data inside the property; hrefs: the DAV:href elements inside it).
function parseMultistatus(xml) {
  const parser = sax.parser(true, { xmlns: true, trim: false, normalize: false });
  const responses = [];
  const stack = [];
  let resp = null;
  let propstat = null;
  let prop = null; // {key, text, depth}
  parser.onerror = (e) => { throw e; };
  parser.onopentag = (node) => {
    const key = `{${node.uri}}${node.local}`;
    const parent = stack[stack.length - 1];
    stack.push(key);
    if (key === `{${NS_DAV}}response`) resp = { href: '', status: '', props: {}, text: '' };
    else if (key === `{${NS_DAV}}propstat` && resp) propstat = { status: '', props: [] };
    else if (parent === `{${NS_DAV}}prop` && propstat && !prop) prop = { key, text: '', hrefs: [], href: null, depth: stack.length };
    else if (prop && key === `{${NS_DAV}}href`) prop.href = '';
  };
  const ontext = (t) => {
    const top = stack[stack.length - 1];
    if (prop) {
      prop.text += t;
      if (prop.href !== null) prop.href += t;
    }
    else if (top === `{${NS_DAV}}href` && resp && !propstat) resp.href += t;
    else if (top === `{${NS_DAV}}status` && propstat) propstat.status += t;
    else if (top === `{${NS_DAV}}status` && resp) resp.status += t;
  };
  parser.ontext = ontext;
  parser.oncdata = ontext;
  parser.onclosetag = () => {
    const key = stack.pop();
    if (prop && key === `{${NS_DAV}}href` && prop.href !== null) {
      prop.hrefs.push(prop.href.trim());
      prop.href = null;
    }
    if (prop && stack.length < prop.depth) {
      propstat.props.push(prop);
      prop = null;
    } else if (key === `{${NS_DAV}}propstat` && propstat) {
      for (const p of propstat.props) resp.props[p.key] = { status: propstat.status.trim(), text: p.text, hrefs: p.hrefs };
      propstat = null;
    } else if (key === `{${NS_DAV}}response` && resp) {
      resp.href = resp.href.trim();
      resp.status = resp.status.trim();
      responses.push(resp);
      resp = null;
    }
  };
  parser.write(xml).close();
  return responses;
}

function propOk(p) {
  return p && (p.status === '' || / 2\d\d( |$)/.test(p.status));
}

// Discovery from the base URL (RFC 5397, RFC 4791 §6.2.1): current-user-principal, then
// calendar-home-set.
async function discoverHome() {
  const pf = (prop) =>
    `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:C="${NS_CAL}"><D:prop>${prop}</D:prop></D:propfind>`;
  const hdr = { 'Content-Type': 'application/xml; charset=utf-8', Depth: '0' };
  const hrefOf = async (url, prop, key) => {
    const r = await http('PROPFIND', url, { body: pf(prop), headers: hdr });
    if (r.status !== 207) throw new Error(`PROPFIND ${url} ${prop}: ${r.status} ${clip(r.text, 300)}`);
    const p = parseMultistatus(r.text).map((x) => x.props[key]).find(propOk);
    if (!p?.hrefs.length) throw new Error(`PROPFIND ${url}: no href in ${prop}: ${clip(r.text, 400)}`);
    return new URL(p.hrefs[0], url).href;
  };
  const principal = await hrefOf(BASE, '<D:current-user-principal/>', `{${NS_DAV}}current-user-principal`);
  return hrefOf(principal, '<C:calendar-home-set/>', `{${NS_CAL}}calendar-home-set`);
}

// ------------------------------------------------------------------------------------------
// Time helpers

const UTC = ICAL.Timezone.utcTimezone;

// "20240310T000000Z" -> unix seconds
function parseUtc(s) {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s);
  if (!m) throw new Error(`bad UTC date-time ${s}`);
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
}

// The key an instance is compared by: the bare date for DATE values, else the UTC date-time.
// Floating times have a UTC offset of 0 in ical.js, i.e. are read in UTC.
function keyOf(t) {
  const p2 = (n) => String(n).padStart(2, '0');
  if (t.isDate) return `${t.year}${p2(t.month)}${p2(t.day)}`;
  const u = t.convertToZone(UTC); // a floating time keeps its wall-clock time, i.e. is read as UTC
  return `${u.year}${p2(u.month)}${p2(u.day)}T${p2(u.hour)}${p2(u.minute)}${p2(u.second)}Z`;
}

function plusSeconds(t, secs) {
  return t.toUnixTime() + secs;
}

// Every TZID referenced outside VTIMEZONEs must resolve, inside the object or in ical.js's
// TimezoneService. Otherwise ical.js silently reads the time as floating (= UTC here), which
// would compare wrong times; such a check reports the zone instead.
function unresolvedTzids(vcal) {
  const missing = new Set();
  const walk = (comp) => {
    if (comp.name === 'vtimezone') return;
    for (const prop of comp.getAllProperties()) {
      const tzid = prop.getParameter('tzid');
      if (tzid && !vcal.getTimeZoneByID(tzid) && !ICAL.TimezoneService.has(tzid)) missing.add(tzid);
    }
    for (const sub of comp.getAllSubcomponents()) walk(sub);
  };
  walk(vcal);
  return [...missing];
}

// RFC 4791 §9.9: does one instance (component `comp`, starting at `start`, an ICAL.Time; `end`
// the end ical.js computed for it, when the component has DTEND/DURATION) overlap [ws, we)?
function overlaps(kind, comp, start, end, ws, we) {
  if (kind === 'vevent') {
    const s = start.toUnixTime();
    let e;
    if (comp.hasProperty('dtend') || comp.hasProperty('duration')) e = end.toUnixTime();
    else if (start.isDate) e = s + DAY;
    else e = s;
    if (e === s) return ws <= s && s < we;
    return ws < e && we > s;
  }
  if (kind === 'vjournal') {
    if (!start) return false;
    const s = start.toUnixTime();
    if (start.isDate) return ws < s + DAY && we > s;
    return ws <= s && we > s;
  }
  // vtodo
  const dtstart = comp.getFirstPropertyValue('dtstart');
  const dueP = comp.getFirstPropertyValue('due');
  const durP = comp.getFirstPropertyValue('duration');
  if (start && durP) {
    const s = start.toUnixTime();
    const e = s + durP.toSeconds();
    return ws <= e && (we > s || we >= e);
  }
  if (start && dueP) {
    const s = start.toUnixTime();
    const due = s + (dueP.toUnixTime() - dtstart.toUnixTime());
    return (ws < due || ws <= s) && (we > s || we >= due);
  }
  if (start) {
    const s = start.toUnixTime();
    return ws <= s && we > s;
  }
  if (dueP) {
    const due = dueP.toUnixTime();
    return ws < due && we >= due;
  }
  const completed = comp.getFirstPropertyValue('completed')?.toUnixTime();
  const created = comp.getFirstPropertyValue('created')?.toUnixTime();
  if (completed !== undefined && created !== undefined) return (ws <= created || ws <= completed) && (we >= created || we >= completed);
  if (completed !== undefined) return ws <= completed && we >= completed;
  if (created !== undefined) return we > created;
  return true;
}

// The key of an instance component without DTSTART (a VTODO with only DUE, say).
function componentKey(comp) {
  for (const name of ['dtstart', 'due', 'completed', 'created']) {
    const v = comp.getFirstPropertyValue(name);
    if (v) return name === 'dtstart' ? keyOf(v) : `${name.toUpperCase()}=${keyOf(v)}`;
  }
  return 'NO-DATE';
}

// ical.js's own expansion of the components of `kind` in `vcal`, filtered by overlap with
// [ws, we): a sorted array of instance keys. Throws when ical.js cannot expand the object.
function icalInstances(vcal, kind, ws, we) {
  const comps = vcal.getAllSubcomponents(kind);
  const byUid = new Map();
  for (const c of comps) {
    const uid = c.getFirstPropertyValue('uid') ?? '';
    if (!byUid.has(uid)) byUid.set(uid, []);
    byUid.get(uid).push(c);
  }
  const keys = [];
  for (const group of byUid.values()) {
    const master = group.find((c) => !c.hasProperty('recurrence-id'));
    const overrides = group.filter((c) => c.hasProperty('recurrence-id'));
    if (!master) {
      // Overrides without their master stand for themselves.
      for (const o of overrides) {
        const ev = new ICAL.Event(o);
        if (overlaps(kind, o, ev.startDate, ev.startDate ? ev.endDate : null, ws, we)) keys.push(componentKey(o));
      }
      continue;
    }
    if (!master.hasProperty('dtstart')) {
      if (overlaps(kind, master, null, null, ws, we)) keys.push(componentKey(master));
      continue;
    }
    const event = new ICAL.Event(master, { exceptions: overrides });
    // Iterate far enough past the window for overrides that move an instance into it.
    let horizon = we + 400 * DAY;
    for (const o of overrides) horizon = Math.max(horizon, o.getFirstPropertyValue('recurrence-id').toUnixTime() + DAY);
    const it = event.iterator();
    for (let i = 0; ; i++) {
      if (i > 200000) throw new Error('ical.js iterator did not finish within 200000 occurrences');
      const occ = it.next();
      if (!occ) break;
      if (!(occ instanceof ICAL.Time)) {
        throw new Error(
          `ical.js cannot expand this object: RecurExpansion.next() yielded an ICAL.${occ?.constructor?.name} ` +
            `(${occ}) instead of an ICAL.Time`,
        );
      }
      if (occ.toUnixTime() > horizon) break;
      const d = event.getOccurrenceDetails(occ);
      if (overlaps(kind, d.item.component, d.startDate, d.endDate, ws, we)) keys.push(keyOf(d.startDate));
    }
  }
  return keys.sort();
}

function mainKind(vcal) {
  return vcal.getAllSubcomponents().find((c) => KINDS.includes(c.name))?.name;
}

function withZones(vcal, fn) {
  // Register the object's VTIMEZONEs with ical.js's TimezoneService for the duration of the
  // evaluation (as a client would), then remove them so no other object can borrow them.
  const registered = [];
  for (const vtz of vcal.getAllSubcomponents('vtimezone')) {
    const tzid = vtz.getFirstPropertyValue('tzid');
    if (tzid && !ICAL.TimezoneService.has(tzid)) {
      ICAL.TimezoneService.register(vtz);
      registered.push(tzid);
    }
  }
  try {
    return fn();
  } finally {
    for (const tzid of registered) ICAL.TimezoneService.remove(tzid);
  }
}

// ------------------------------------------------------------------------------------------
// Corpus: the client-shaped fixtures, plus objects shaped like those of the python-caldav-e2e
// scenario (UTC events, a hand-written all-day event with escapes and X- parameters, todos with
// DUE only).

function loadCorpus() {
  const objects = new Map(); // file -> text
  for (const f of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.ics')).sort()) {
    objects.set(f, fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
  }
  const ev = (name, day) =>
    'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac conformance//icaljs//EN\r\nBEGIN:VEVENT\r\n' +
    `UID:e2e-${name}@conformance.almanac\r\nDTSTAMP:20300101T000000Z\r\n` +
    `DTSTART:203001${day}T090000Z\r\nDTEND:203001${day}T100000Z\r\nSUMMARY:Event ${name}\r\n` +
    'END:VEVENT\r\nEND:VCALENDAR\r\n';
  objects.set('e2e-alpha.ics', ev('alpha', '01'));
  objects.set('e2e-beta.ics', ev('beta', '02'));
  objects.set('e2e-gamma.ics', ev('gamma', '03'));
  objects.set(
    'e2e-raw-bytes.ics',
    'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac conformance//raw bytes//EN\r\nCALSCALE:GREGORIAN\r\n' +
      'BEGIN:VEVENT\r\nUID:e2e-raw@conformance.almanac\r\nDTSTAMP:20300101T000000Z\r\n' +
      'DTSTART;VALUE=DATE:20300201\r\nDTEND;VALUE=DATE:20300202\r\n' +
      'SUMMARY:Réunion — 会議 \\, with escapes\\; and a very long summary that is folde\r\n d across two lines\r\n' +
      'DESCRIPTION:line one\\nline two\r\n' +
      'X-ALMANAC-TEST;X-PARAM="quoted:value";Y=2:keep me exactly\r\n' +
      'END:VEVENT\r\nEND:VCALENDAR\r\n',
  );
  const todo = (name, completed) =>
    'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac conformance//icaljs//EN\r\nBEGIN:VTODO\r\n' +
    `UID:e2e-todo-${name}@conformance.almanac\r\nDTSTAMP:20300101T000000Z\r\nSUMMARY:Todo ${name}\r\n` +
    'DUE:20300110T170000Z\r\n' +
    (completed ? 'STATUS:COMPLETED\r\nCOMPLETED:20300102T120000Z\r\n' : 'STATUS:NEEDS-ACTION\r\n') +
    'END:VTODO\r\nEND:VCALENDAR\r\n';
  objects.set('e2e-todo-open.ics', todo('open', false));
  objects.set('e2e-todo-done.ics', todo('done', true));
  // TZIDs without a VTIMEZONE, as some clients send them (RFC 5545 wants the VTIMEZONE; the
  // server resolves IANA and Windows names itself). ical.js has no zone data for them.
  const bare = (name, tzid, start, end, rrule) =>
    'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac conformance//icaljs//EN\r\nBEGIN:VEVENT\r\n' +
    `UID:zone-${name}@conformance.almanac\r\nDTSTAMP:20240101T000000Z\r\n` +
    `DTSTART;TZID=${tzid}:${start}\r\nDTEND;TZID=${tzid}:${end}\r\nRRULE:${rrule}\r\nSUMMARY:Zone ${name}\r\n` +
    'END:VEVENT\r\nEND:VCALENDAR\r\n';
  objects.set('zone-iana-no-vtimezone.ics', bare('iana', 'Europe/Berlin', '20240325T090000', '20240325T100000', 'FREQ=WEEKLY;COUNT=2'));
  objects.set(
    'zone-windows-no-vtimezone.ics',
    bare('windows', '"W. Europe Standard Time"', '20241024T140000', '20241024T150000', 'FREQ=WEEKLY;COUNT=2'),
  );
  return objects;
}

// Windows: [{file, start, end, comp, expected (array of keys or null), source}]
function loadWindows(objects) {
  const windows = [];
  const tsv = path.join(FIXTURES, 'expected.tsv');
  for (const line of fs.readFileSync(tsv, 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [file, start, end, comp, exp = ''] = line.split('\t');
    windows.push({ file, start, end, comp: comp.toUpperCase(), expected: exp.trim() ? exp.trim().split(/\s+/).sort() : [], source: 'expected.tsv' });
  }
  windows.push(
    { file: 'e2e-alpha.ics', start: '20300101T000000Z', end: '20300103T000000Z', comp: 'VEVENT', expected: ['20300101T090000Z'], source: 'suite' },
    { file: 'e2e-gamma.ics', start: '20300103T100000Z', end: '20300104T000000Z', comp: 'VEVENT', expected: [], source: 'suite' },
    { file: 'e2e-raw-bytes.ics', start: '20300201T230000Z', end: '20300202T000000Z', comp: 'VEVENT', expected: ['20300201'], source: 'suite' },
    // A VTODO with DUE only: (start < DUE) AND (end >= DUE), so a window ending at DUE meets it.
    { file: 'e2e-todo-open.ics', start: '20300110T000000Z', end: '20300110T165959Z', comp: 'VTODO', expected: [], source: 'suite' },
    { file: 'e2e-todo-open.ics', start: '20300110T000000Z', end: '20300110T170000Z', comp: 'VTODO', expected: ['DUE=20300110T170000Z'], source: 'suite' },
    { file: 'e2e-todo-done.ics', start: '20300110T170000Z', end: '20300111T000000Z', comp: 'VTODO', expected: [], source: 'suite' },
    // Mon 09:00 Berlin: 03-25 CET = 08:00Z, 04-01 CEST = 07:00Z.
    { file: 'zone-iana-no-vtimezone.ics', start: '20240325T000000Z', end: '20240402T000000Z', comp: 'VEVENT', expected: ['20240325T080000Z', '20240401T070000Z'], source: 'suite' },
    // Thu 14:00 W. Europe (Berlin rules): 10-24 CEST = 12:00Z, 10-31 CET = 13:00Z.
    { file: 'zone-windows-no-vtimezone.ics', start: '20241020T000000Z', end: '20241101T000000Z', comp: 'VEVENT', expected: ['20241024T120000Z', '20241031T130000Z'], source: 'suite' },
  );
  for (const [file, text] of objects) {
    if (file.startsWith('zone-')) continue; // ical.js cannot evaluate them in any window
    let kind;
    try {
      kind = mainKind(new ICAL.Component(ICAL.parse(text)))?.toUpperCase();
    } catch {
      kind = 'VEVENT';
    }
    for (const [start, end] of [
      ['20240101T000000Z', '20250101T000000Z'],
      ['20250101T000000Z', '20260101T000000Z'],
      ['20300101T000000Z', '20310101T000000Z'],
    ]) {
      windows.push({ file, start, end, comp: kind ?? 'VEVENT', expected: null, source: 'wide window' });
    }
  }
  return windows;
}

// ------------------------------------------------------------------------------------------

function fmtSet(keys) {
  return keys === null ? '(n/a)' : keys.length ? `{${keys.join(' ')}}` : '{}';
}

function sameMultiset(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function main() {
  const objects = loadCorpus();
  const windows = loadWindows(objects);

  let home;
  try {
    home = await discoverHome();
  } catch (e) {
    console.log(`discovery failed: ${e.message}`);
  }
  const calUrl = home ? new URL('icaljs/', home).href : new URL(`calendars/${USER}/icaljs/`, BASE).href;
  const mk = await http('MKCALENDAR', calUrl, {
    body:
      '<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">' +
      '<D:set><D:prop><D:displayname>ical.js corpus</D:displayname></D:prop></D:set></C:mkcalendar>',
    headers: { 'Content-Type': 'application/xml; charset=utf-8' },
  });
  const mkOk = mk.status === 201;
  record(mkOk, 'mkcalendar', mkOk ? '' : `MKCALENDAR ${calUrl}: ${mk.status} ${clip(mk.text, 400)}`);

  // Upload, GET and parse every object.
  const served = new Map(); // file -> {vcal, text}
  for (const [file, text] of objects) {
    const url = new URL(file, calUrl).href;
    const put = await http('PUT', url, {
      body: text,
      headers: { 'Content-Type': 'text/calendar; charset=utf-8', 'If-None-Match': '*' },
    });
    const putOk = put.status === 201 || put.status === 204;
    record(putOk, `put:${file}`, putOk ? '' : `PUT ${url}: ${put.status} ${clip(put.text, 400)}`);

    const get = await http('GET', url);
    let vcal;
    let detail = '';
    const wantKind = windows.find((w) => w.file === file)?.comp.toLowerCase() ?? 'vevent';
    const uid = /^UID:(.*(?:\r?\n[ \t].*)*)/m.exec(text)?.[1].replace(/\r?\n[ \t]/g, '').trim();
    if (get.status !== 200) detail = `GET ${url}: ${get.status} ${clip(get.text, 300)}`;
    else {
      try {
        vcal = new ICAL.Component(ICAL.parse(get.text));
        if (vcal.name !== 'vcalendar') detail = `ical.js parsed a ${vcal.name.toUpperCase()}, not a VCALENDAR`;
        else if (!vcal.getAllSubcomponents(wantKind).length) detail = `no ${wantKind.toUpperCase()} in the served object`;
        else if (!vcal.getAllSubcomponents(wantKind).every((c) => c.getFirstPropertyValue('uid') === uid)) {
          detail = `UID of the served ${wantKind.toUpperCase()} is not ${uid}`;
        }
      } catch (e) {
        detail = `ical.js could not parse the GET body: ${e.message}\n${clip(get.text, 600)}`;
      }
    }
    record(!detail, `parse:${file}`, detail);
    if (detail) continue;
    served.set(file, { vcal, text: get.text });

    let same = '';
    try {
      const a = JSON.stringify(ICAL.parse(text));
      const b = JSON.stringify(ICAL.parse(get.text));
      if (a !== b) same = `ical.js sees a different calendar than the one uploaded\n--- uploaded ---\n${clip(text, 600)}\n--- served ---\n${clip(get.text, 600)}`;
    } catch (e) {
      same = `ical.js could not parse the uploaded object: ${e.message}`;
    }
    record(!same, `same:${file}`, same);
  }

  // Windows.
  const seenIds = new Set();
  for (const w of windows) {
    let id = `window:${w.file}:${w.start}-${w.end}`;
    if (seenIds.has(id)) id += `:${w.comp}`;
    seenIds.add(id);
    const obj = served.get(w.file);
    if (!obj) {
      record(false, id, objects.has(w.file) ? 'the object was not served (see put:/parse:)' : `no fixture ${w.file}`);
      continue;
    }
    const ws = parseUtc(w.start);
    const we = parseUtc(w.end);
    const kind = w.comp.toLowerCase();
    const lines = [];

    // ical.js on the raw object.
    let mine = null;
    const missing = unresolvedTzids(obj.vcal);
    if (missing.length) {
      lines.push(`ical.js has no zone data for TZID ${missing.join(', ')} (no VTIMEZONE in the object, not in TimezoneService)`);
    } else {
      try {
        mine = withZones(obj.vcal, () => icalInstances(obj.vcal, kind, ws, we));
      } catch (e) {
        lines.push(`ical.js expansion failed: ${e.message}`);
      }
    }

    // The server's expansion.
    const body =
      '<?xml version="1.0" encoding="utf-8"?>' +
      '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>' +
      `<C:calendar-data><C:expand start="${w.start}" end="${w.end}"/></C:calendar-data></D:prop>` +
      `<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="${w.comp}">` +
      `<C:time-range start="${w.start}" end="${w.end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>`;
    let theirs = null;
    const r = await http('REPORT', calUrl, { body, headers: { 'Content-Type': 'application/xml; charset=utf-8', Depth: '1' } });
    if (r.status !== 207) {
      lines.push(`REPORT calendar-query: ${r.status} ${clip(r.text, 400)}`);
    } else {
      try {
        const resp = parseMultistatus(r.text).find((x) => decodeURIComponent(x.href).endsWith(`/${w.file}`));
        if (!resp) theirs = [];
        else {
          const cd = resp.props[`{${NS_CAL}}calendar-data`];
          if (!propOk(cd)) throw new Error(`no calendar-data for ${resp.href}: ${cd ? cd.status : 'missing'}`);
          let exp;
          try {
            exp = new ICAL.Component(ICAL.parse(cd.text));
          } catch (e) {
            throw new Error(`ical.js could not parse the expanded calendar-data: ${e.message}\n${clip(cd.text, 600)}`);
          }
          const left = exp.getAllSubcomponents(kind).filter((c) => ['rrule', 'rdate', 'exdate', 'exrule'].some((p) => c.hasProperty(p)));
          if (left.length) lines.push(`expanded data still has RRULE/RDATE/EXDATE (RFC 4791 §9.6.5)`);
          const gone = unresolvedTzids(exp);
          if (gone.length) lines.push(`expanded data refers to TZID ${gone.join(', ')} without a VTIMEZONE`);
          theirs = exp.getAllSubcomponents(kind).map(componentKey).sort();
          if (!theirs.length) lines.push(`the object matched the filter but its expansion holds no ${w.comp}`);
        }
      } catch (e) {
        lines.push(e.message);
        theirs = null;
      }
    }

    const ok = mine !== null && theirs !== null && sameMultiset(mine, theirs) && !lines.length;
    const tsvNote = w.expected === null ? '' : ` ${w.source}=${fmtSet(w.expected)}`;
    const summary = `server=${fmtSet(theirs)} ical.js=${fmtSet(mine)}${tsvNote}`;
    if (ok) {
      record(true, id, '');
      if (w.expected !== null && !sameMultiset(w.expected, mine)) {
        console.log(`     note: both differ from ${w.source}: ${summary}`);
      }
    } else {
      // Where ical.js cannot be trusted (see conformance/expected/icaljs.xfail), say whether the
      // server at least gives the hand-computed answer.
      if (w.expected !== null && theirs !== null) {
        lines.push(sameMultiset(w.expected, theirs) ? `the server's answer equals ${w.source}` : `the server's answer DIFFERS from ${w.source}`);
      }
      record(false, id, [summary, ...lines].join('\n'));
    }
  }

  console.log(`${passed} passed, ${failed} failed`);
}

main().catch((e) => {
  console.error(e.stack);
  record(false, 'suite-crashed', `${e.message}`);
  process.exit(1);
});
