// Conformance suite `tsdav`: the tsdav CalDAV client (the one Cal.com uses) against a running
// server, given only the base URL and credentials (HTTP Basic).
//
//   node scenario.mjs RESULTS_FILE
//
// Environment: CONF_URL, CONF_USER, CONF_PASSWORD. Writes one line per check to RESULTS_FILE
// (`PASS id` or `FAIL id detail`); prints each check and, on a failure, the last HTTP exchanges.
// A check whose prerequisite failed is reported as failed ("cannot run").

import fs from 'node:fs';
import crypto from 'node:crypto';
import {
  DAVClient,
  createDAVClient,
  serviceDiscovery,
  fetchPrincipalUrl,
  fetchHomeUrl,
  calendarMultiGet,
  fetchCalendarObjects,
} from 'tsdav';

const BASE = process.env.CONF_URL;
const USER = process.env.CONF_USER;
const PASSWORD = process.env.CONF_PASSWORD;
const RESULTS = process.argv[2];
if (!BASE || !USER || PASSWORD === undefined || !RESULTS) {
  console.error('usage: CONF_URL=... CONF_USER=... CONF_PASSWORD=... node scenario.mjs RESULTS_FILE');
  process.exit(2);
}
const RUN = crypto.randomBytes(4).toString('hex'); // keeps UIDs and collection names unique
const CREDENTIALS = { username: USER, password: PASSWORD };
const AUTH_HEADERS = { authorization: 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64') };

// ------------------------------------------------------------------------------------------
// Transcript of the HTTP exchanges tsdav makes (its `fetch` option), shown when a check fails.

const TRANSCRIPT = [];
async function recordingFetch(url, init = {}) {
  const res = await fetch(url, init);
  let text = '';
  try {
    text = await res.clone().text();
  } catch {
    text = '(body not readable)';
  }
  TRANSCRIPT.push({
    method: init.method ?? 'GET',
    url: String(url),
    headers: Object.fromEntries(Object.entries(init.headers ?? {}).filter(([k]) => k.toLowerCase() !== 'authorization')),
    body: typeof init.body === 'string' ? init.body : '',
    status: res.status,
    resHeaders: { etag: res.headers.get('etag'), 'content-type': res.headers.get('content-type'), location: res.headers.get('location') },
    resBody: text,
  });
  while (TRANSCRIPT.length > 6) TRANSCRIPT.shift();
  return res;
}

function clip(s, n = 1200) {
  s = String(s ?? '');
  return s.length <= n ? s : `${s.slice(0, n)}... [${s.length - n} more chars]`;
}

function transcriptLines(n = 3) {
  const out = [];
  for (const x of TRANSCRIPT.slice(-n)) {
    out.push(`>>> ${x.method} ${x.url} ${JSON.stringify(x.headers)}`);
    if (x.body) out.push(...clip(x.body).split(/\r?\n/).map((l) => `    ${l}`));
    out.push(`<<< ${x.status} ${JSON.stringify(x.resHeaders)}`);
    if (x.resBody) out.push(...clip(x.resBody).split(/\r?\n/).map((l) => `    ${l}`));
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Checks

fs.writeFileSync(RESULTS, '');
let passed = 0;
let failed = 0;
const S = {}; // state produced by checks

class Failed extends Error {}
function expect(cond, what) {
  if (!cond) throw new Failed(what);
}
function expectEq(actual, wanted, what) {
  const a = JSON.stringify(actual);
  const w = JSON.stringify(wanted);
  if (a !== w) throw new Failed(`${what}: expected ${w}, got ${a}`);
}

async function check(id, needs, fn) {
  const missing = needs.filter((k) => S[k] === undefined);
  if (missing.length) {
    failed++;
    const d = `cannot run: an earlier check did not produce ${missing.join(', ')}`;
    fs.appendFileSync(RESULTS, `FAIL ${id} ${d}\n`);
    console.log(`FAIL ${id}: ${d}`);
    return;
  }
  TRANSCRIPT.length = 0;
  try {
    await fn();
    passed++;
    fs.appendFileSync(RESULTS, `PASS ${id}\n`);
    console.log(`ok   ${id}`);
  } catch (e) {
    failed++;
    const msg = e instanceof Failed ? e.message : `${e.name}: ${e.message}`;
    fs.appendFileSync(RESULTS, `FAIL ${id} ${msg.replace(/\s*\n\s*/g, ' | ')}\n`);
    console.log(`FAIL ${id}: ${msg}`);
    if (!(e instanceof Failed)) for (const l of (e.stack ?? '').split('\n').slice(1, 6)) console.log(`     ${l.trim()}`);
    const t = transcriptLines();
    if (t.length) {
      console.log('     last HTTP exchanges (oldest first):');
      for (const l of t) console.log(`     ${l}`);
    }
  }
}

const pathOf = (u) => new URL(u, BASE).pathname;
const sameUrl = (a, b) => decodeURIComponent(pathOf(a)) === decodeURIComponent(pathOf(b));
const sortedPaths = (list) => list.map((o) => decodeURIComponent(pathOf(o.url ?? o))).sort();
// tsdav's XML parsing (xml-js with trim: true) drops the trailing CRLF of calendar-data, so data
// is compared with line ends unified and trailing white space removed.
const normalize = (s) => String(s ?? '').replace(/\r\n/g, '\n').trimEnd();

// ------------------------------------------------------------------------------------------
// Test data. The range under test is [2031-03-09T00Z, 2031-03-12T00Z).

const VTZ_BERLIN = [
  'BEGIN:VTIMEZONE',
  'TZID:Europe/Berlin',
  'BEGIN:DAYLIGHT',
  'TZOFFSETFROM:+0100',
  'TZOFFSETTO:+0200',
  'TZNAME:CEST',
  'DTSTART:19700329T020000',
  'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU',
  'END:DAYLIGHT',
  'BEGIN:STANDARD',
  'TZOFFSETFROM:+0200',
  'TZOFFSETTO:+0100',
  'TZNAME:CET',
  'DTSTART:19701025T030000',
  'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU',
  'END:STANDARD',
  'END:VTIMEZONE',
];

function vcal(lines, { tz = false } = {}) {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//Almanac conformance//tsdav//EN', ...(tz ? VTZ_BERLIN : []), ...lines, 'END:VCALENDAR', ''].join('\r\n');
}

function event(uid, summary, props) {
  return ['BEGIN:VEVENT', `UID:${uid}`, 'DTSTAMP:20310101T000000Z', `SUMMARY:${summary}`, ...props, 'END:VEVENT'];
}

const OBJ = {};
function def(name, lines, opts) {
  const uid = `${name}-${RUN}@conformance.almanac`;
  OBJ[name] = { uid, filename: `${uid}.ics`, ics: vcal(typeof lines === 'function' ? lines(uid) : lines, opts) };
}
def('inside', (uid) => event(uid, 'Inside the range', ['DTSTART:20310310T100000Z', 'DTEND:20310310T110000Z']));
def('before', (uid) => event(uid, 'Before the range', ['DTSTART:20310301T100000Z', 'DTEND:20310301T110000Z']));
def('after', (uid) => event(uid, 'After the range', ['DTSTART:20310320T100000Z', 'DTEND:20310320T110000Z']));
// Ends exactly where the range starts: no overlap (RFC 4791 §9.9).
def('edge', (uid) => event(uid, 'Ends at the range start', ['DTSTART:20310308T230000Z', 'DTEND:20310309T000000Z']));
def('allday', (uid) => event(uid, 'All-day inside', ['DTSTART;VALUE=DATE:20310311', 'DTEND;VALUE=DATE:20310312']));
// Weekly Mon 10:00 Berlin from 2031-02-03, 10 times: Mar 10 and Mar 17 are 09:00Z (CET).
def(
  'weekly',
  (uid) =>
    event(uid, 'Weekly, an instance inside', [
      'DTSTART;TZID=Europe/Berlin:20310203T100000',
      'DTEND;TZID=Europe/Berlin:20310203T103000',
      'RRULE:FREQ=WEEKLY;COUNT=10',
    ]),
  { tz: true },
);
// Weekly from 2031-01-06, 3 times: over by Jan 20.
def('ended', (uid) => event(uid, 'Series over before the range', ['DTSTART:20310106T100000Z', 'DTEND:20310106T110000Z', 'RRULE:FREQ=WEEKLY;COUNT=3']));
def('todo', (uid) => ['BEGIN:VTODO', `UID:${uid}`, 'DTSTAMP:20310101T000000Z', 'SUMMARY:A todo due inside', 'DUE:20310310T120000Z', 'END:VTODO']);
def('late1', (uid) => event(uid, 'Created after the sync snapshot', ['DTSTART:20310410T100000Z', 'DTEND:20310410T110000Z']));
def('late2', (uid) => event(uid, 'Created after the second snapshot', ['DTSTART:20310411T100000Z', 'DTEND:20310411T110000Z']));
def('late3', (uid) => event(uid, 'Created after the calendars snapshot', ['DTSTART:20310412T100000Z', 'DTEND:20310412T110000Z']));
const EVENTS_AT_START = ['inside', 'before', 'after', 'edge', 'allday', 'weekly', 'ended'];
const RANGE = { start: '2031-03-09T00:00:00Z', end: '2031-03-12T00:00:00Z' };

const client = new DAVClient({
  serverUrl: BASE,
  credentials: CREDENTIALS,
  authMethod: 'Basic',
  defaultAccountType: 'caldav',
  fetch: recordingFetch,
});

async function listCalendars() {
  return client.fetchCalendars();
}
async function workCalendar() {
  const cal = (await listCalendars()).find((c) => sameUrl(c.url, S.workUrl));
  expect(cal, `${S.workUrl} is not among the calendars`);
  return cal;
}
async function objectsOf(calendar, extra = {}) {
  return client.fetchCalendarObjects({ calendar, ...extra });
}
function urlOf(name) {
  return new URL(OBJ[name].filename, S.workUrl).href;
}
function setSummary(ics, summary) {
  return ics.replace(/^SUMMARY:.*$/m, `SUMMARY:${summary}`);
}

// ------------------------------------------------------------------------------------------
// Discovery

await check('login', [], async () => {
  await client.login();
  const a = client.account;
  expect(a, 'no account after login()');
  for (const f of ['rootUrl', 'principalUrl', 'homeUrl']) expect(a[f], `account.${f} is empty: ${JSON.stringify(a)}`);
  expectEq(a.accountType, 'caldav', 'account type');
  S.account = a;
});

await check('discovery:service-discovery', ['account'], async () => {
  // RFC 6764 /.well-known/caldav; tsdav follows the redirect by hand.
  const root = await serviceDiscovery({ account: { serverUrl: BASE, accountType: 'caldav' }, headers: AUTH_HEADERS, fetch: recordingFetch });
  expect(root, 'serviceDiscovery returned nothing');
  const principal = await fetchPrincipalUrl({ account: { rootUrl: root, accountType: 'caldav' }, headers: AUTH_HEADERS, fetch: recordingFetch });
  expectEq(principal, S.account.principalUrl, `principal found from the discovered root ${root}`);
});

await check('discovery:fetchPrincipalUrl', ['account'], async () => {
  const principal = await fetchPrincipalUrl({
    account: { rootUrl: S.account.rootUrl, accountType: 'caldav' },
    headers: AUTH_HEADERS,
    fetch: recordingFetch,
  });
  expectEq(principal, S.account.principalUrl, 'principal URL');
  expect(pathOf(principal).includes(`/${USER}`), `principal URL ${principal} does not name the user`);
});

await check('discovery:fetchHomeUrl', ['account'], async () => {
  const home = await fetchHomeUrl({
    account: { rootUrl: S.account.rootUrl, principalUrl: S.account.principalUrl, accountType: 'caldav' },
    headers: AUTH_HEADERS,
    fetch: recordingFetch,
  });
  expectEq(home, S.account.homeUrl, 'calendar home URL');
  expect(home.endsWith('/'), `home URL ${home} is not a collection URL`);
});

await check('discovery:createDAVClient', ['account'], async () => {
  // The functional API Cal.com-style integrations use.
  const c = await createDAVClient({ serverUrl: BASE, credentials: CREDENTIALS, authMethod: 'Basic', defaultAccountType: 'caldav', fetch: recordingFetch });
  const cals = await c.fetchCalendars();
  expect(cals.length > 0, 'createDAVClient(...).fetchCalendars() found no calendar');
  expectEq(sortedPaths(cals), sortedPaths(await listCalendars()), 'calendars seen by createDAVClient vs DAVClient');
});

await check('auth:wrong-password-rejected', [], async () => {
  const bad = new DAVClient({ serverUrl: BASE, credentials: { username: USER, password: `${PASSWORD}-wrong` }, defaultAccountType: 'caldav', fetch: recordingFetch });
  let err;
  try {
    await bad.login();
  } catch (e) {
    err = e;
  }
  expect(err, 'login() with a wrong password succeeded');
  expect(TRANSCRIPT.some((x) => x.status === 401), `no 401 among the answers (${err.message})`);
});

// ------------------------------------------------------------------------------------------
// Calendars

await check('calendars:default-calendar', ['account'], async () => {
  const cals = await listCalendars();
  const def0 = cals.find((c) => c.displayName === 'Calendar');
  expect(def0, `no calendar named "Calendar" among ${JSON.stringify(cals.map((c) => [c.url, c.displayName]))}`);
  expect(def0.components.includes('VEVENT'), `components of the default calendar: ${JSON.stringify(def0.components)}`);
  expect(def0.resourcetype.includes('calendar'), `resourcetype: ${JSON.stringify(def0.resourcetype)}`);
  expect(def0.ctag !== undefined || def0.syncToken !== undefined, 'neither CS:getctag nor DAV:sync-token on the calendar');
  S.defaultCal = def0;
});

await check('calendars:makeCalendar', ['account'], async () => {
  const url = new URL(`tsdav-${RUN}/`, S.account.homeUrl).href;
  const res = await client.makeCalendar({
    url,
    props: {
      'd:displayname': `tsdav ✓ ${RUN}`,
      'c:calendar-description': 'made by tsdav',
      'ca:calendar-color': '#FF8800FF',
      'c:supported-calendar-component-set': { 'c:comp': [{ _attributes: { name: 'VEVENT' } }, { _attributes: { name: 'VTODO' } }] },
    },
  });
  expect(res.length > 0 && res.every((r) => r.ok), `MKCALENDAR answered ${JSON.stringify(res.map((r) => [r.status, r.statusText]))}`);
  S.workUrl = url;
});

await check('calendars:made-calendar-listed', ['workUrl'], async () => {
  const cal = await workCalendar();
  expectEq(cal.displayName, `tsdav ✓ ${RUN}`, 'displayName');
  expectEq(cal.description, 'made by tsdav', 'description');
  expectEq([...cal.components].sort(), ['VEVENT', 'VTODO'], 'components');
  expect(String(cal.calendarColor ?? '').toUpperCase().startsWith('#FF8800'), `calendarColor is ${cal.calendarColor}`);
});

await check('calendars:supported-reports', ['workUrl'], async () => {
  // smartCollectionSync picks WebDAV sync only when the report is advertised.
  const r = (await workCalendar()).reports ?? [];
  for (const want of ['syncCollection', 'calendarQuery', 'calendarMultiget']) {
    expect(r.includes(want), `DAV:supported-report-set lacks ${want}: ${JSON.stringify(r)}`);
  }
});

// ------------------------------------------------------------------------------------------
// Objects

await check('objects:createCalendarObject', ['workUrl'], async () => {
  const cal = await workCalendar();
  const bad = [];
  for (const name of [...EVENTS_AT_START, 'todo']) {
    const res = await client.createCalendarObject({ calendar: cal, filename: OBJ[name].filename, iCalString: OBJ[name].ics });
    if (res.status !== 201) bad.push(`${name}: ${res.status} ${await res.text()}`);
  }
  expect(!bad.length, `createCalendarObject failed: ${bad.join('; ')}`);
  S.created = true;
});

await check('objects:create-existing-refused', ['created'], async () => {
  // tsdav sends If-None-Match: *; the server must not overwrite (RFC 7232 §3.2).
  const cal = await workCalendar();
  const res = await client.createCalendarObject({ calendar: cal, filename: OBJ.inside.filename, iCalString: setSummary(OBJ.inside.ics, 'overwritten') });
  expectEq(res.status, 412, 'status of a create over an existing object');
});

await check('objects:fetch-all', ['created'], async () => {
  // Without a timeRange tsdav asks for every VEVENT (comp-filter VEVENT), then multigets them.
  const objs = await objectsOf(await workCalendar());
  expectEq(sortedPaths(objs), sortedPaths(EVENTS_AT_START.map(urlOf)), 'objects listed (the VTODO must not be)');
  for (const o of objs) {
    const name = EVENTS_AT_START.find((n) => sameUrl(urlOf(n), o.url));
    expect(o.etag, `no ETag for ${name}`);
    expect(normalize(o.data) === normalize(OBJ[name].ics), `calendar-data of ${name} differs from what was stored:\n${clip(o.data, 600)}`);
  }
  S.snapshot = objs;
});

await check('objects:timeRange', ['created'], async () => {
  const objs = await objectsOf(await workCalendar(), { timeRange: RANGE });
  expectEq(sortedPaths(objs), sortedPaths(['inside', 'allday', 'weekly'].map(urlOf)), `objects for ${RANGE.start}..${RANGE.end}`);
});

await check('objects:timeRange-recurring-instance-only', ['created'], async () => {
  // Only the 2031-03-17 09:00Z instance of the weekly series falls into this day.
  const objs = await objectsOf(await workCalendar(), { timeRange: { start: '2031-03-17T00:00:00Z', end: '2031-03-18T00:00:00Z' } });
  expectEq(sortedPaths(objs), sortedPaths([urlOf('weekly')]), 'objects for 2031-03-17');
});

await check('objects:timeRange-expand', ['created'], async () => {
  // As Cal.com asks for busy times: a bare { url } calendar, ISO times with milliseconds, expand.
  const objs = await client.fetchCalendarObjects({
    calendar: { url: S.workUrl },
    timeRange: { start: '2031-03-09T00:00:00.000Z', end: '2031-03-12T00:00:00.000Z' },
    expand: true,
  });
  expectEq(sortedPaths(objs), sortedPaths(['inside', 'allday', 'weekly'].map(urlOf)), 'objects for the range with expand');
  const weekly = objs.find((o) => sameUrl(o.url, urlOf('weekly')));
  const data = normalize(weekly.data);
  expect(!/^RRULE/m.test(data), `expanded data still has an RRULE:\n${clip(data, 800)}`);
  const starts = [...data.matchAll(/^DTSTART[^:\n]*:(.*)$/gm)].map((m) => m[1]);
  expectEq(starts, ['20310310T090000Z'], 'DTSTARTs of the expanded weekly event');
  expect(/^RECURRENCE-ID[^:\n]*:20310310T090000Z$/m.test(data), `no RECURRENCE-ID:20310310T090000Z in:\n${clip(data, 800)}`);
});

await check('objects:multiget-objectUrls', ['created'], async () => {
  const want = [urlOf('before'), urlOf('weekly')];
  const objs = await objectsOf(await workCalendar(), { objectUrls: want });
  expectEq(sortedPaths(objs), sortedPaths(want), 'objects returned for two hrefs');
  for (const o of objs) {
    const name = sameUrl(o.url, urlOf('before')) ? 'before' : 'weekly';
    expect(normalize(o.data) === normalize(OBJ[name].ics), `calendar-data of ${name} differs from what was stored`);
    expect(o.etag, `no ETag for ${name}`);
  }
});

await check('objects:multiget-without-multiget-report', ['created'], async () => {
  // useMultiGet: false makes tsdav filter a calendar-query by href instead.
  const want = [urlOf('after')];
  const objs = await objectsOf(await workCalendar(), { objectUrls: want, useMultiGet: false });
  expectEq(sortedPaths(objs), sortedPaths(want), 'objects returned');
  expect(normalize(objs[0].data) === normalize(OBJ.after.ics), 'calendar-data differs from what was stored');
});

await check('objects:freeBusyQuery', ['created'], async () => {
  const res = await client.freeBusyQuery({ url: S.workUrl, timeRange: RANGE, depth: '1' });
  expect(res.ok, `free-busy-query answered ${res.status} ${clip(res.raw, 300)}`);
  const text = normalize(typeof res.raw === 'string' ? res.raw : JSON.stringify(res.raw)).replace(/\n /g, '');
  expect(/BEGIN:VFREEBUSY/.test(text), `no VFREEBUSY in ${clip(text, 500)}`);
  for (const start of ['20310310T090000Z', '20310310T100000Z', '20310311T000000Z']) {
    expect(new RegExp(`^FREEBUSY[^:]*:.*${start}/`, 'm').test(text), `no busy period starting ${start} in:\n${clip(text, 800)}`);
  }
});

async function fetchOne(name) {
  const [o] = await objectsOf(await workCalendar(), { objectUrls: [urlOf(name)] });
  expect(o, `${name} not returned by multiget`);
  return o;
}

await check('objects:updateCalendarObject', ['created'], async () => {
  const before = await fetchOne('inside');
  const data = setSummary(before.data, 'Inside the range (updated by tsdav)');
  const res = await client.updateCalendarObject({ calendarObject: { url: before.url, etag: before.etag, data } });
  expect([200, 201, 204].includes(res.status), `update answered ${res.status} ${await res.text()}`);
  const after = await fetchOne('inside');
  expect(normalize(after.data) === normalize(data), `stored data after the update:\n${clip(after.data, 600)}`);
  expect(after.etag && after.etag !== before.etag, `ETag did not change: ${before.etag} -> ${after.etag}`);
  S.staleInside = before;
});

await check('objects:update-stale-etag-refused', ['staleInside'], async () => {
  const stale = S.staleInside;
  const res = await client.updateCalendarObject({ calendarObject: { ...stale, data: setSummary(stale.data, 'lost update') } });
  expectEq(res.status, 412, 'status of an update with a stale If-Match');
  const now = await fetchOne('inside');
  expect(!/lost update/.test(now.data), 'the stale update was stored');
});

await check('objects:delete-stale-etag-refused', ['staleInside'], async () => {
  const res = await client.deleteCalendarObject({ calendarObject: S.staleInside });
  expectEq(res.status, 412, 'status of a delete with a stale If-Match');
  await fetchOne('inside');
});

await check('objects:deleteCalendarObject', ['created'], async () => {
  const o = await fetchOne('edge');
  const res = await client.deleteCalendarObject({ calendarObject: o });
  expect([200, 204].includes(res.status), `delete answered ${res.status} ${await res.text()}`);
  const get = await recordingFetch(o.url, { headers: AUTH_HEADERS });
  expectEq(get.status, 404, 'GET after delete');
  const all = await objectsOf(await workCalendar());
  expect(!all.some((x) => sameUrl(x.url, o.url)), 'the deleted object is still listed');
  S.deletedEdge = true;
});

// ------------------------------------------------------------------------------------------
// Sync

async function snapshotCollection() {
  const cal = await workCalendar();
  const objects = await objectsOf(cal);
  return {
    ...cal,
    objects,
    objectMultiGet: calendarMultiGet,
    fetchObjects: ({ collection, ...rest }) => fetchCalendarObjects({ calendar: collection, ...rest }),
  };
}

// Three changes since a snapshot: one object created, one updated, one deleted.
async function changeThree(createName, updateName, deleteName) {
  const cal = await workCalendar();
  const c = await client.createCalendarObject({ calendar: cal, filename: OBJ[createName].filename, iCalString: OBJ[createName].ics });
  expectEq(c.status, 201, `create ${createName}`);
  const u0 = await fetchOne(updateName);
  const u = await client.updateCalendarObject({ calendarObject: { ...u0, data: setSummary(u0.data, `${updateName} changed ${Date.now()}`) } });
  expect([200, 201, 204].includes(u.status), `update ${updateName}: ${u.status}`);
  const d0 = await fetchOne(deleteName);
  const d = await client.deleteCalendarObject({ calendarObject: d0 });
  expect([200, 204].includes(d.status), `delete ${deleteName}: ${d.status}`);
}

function expectDetailed(result, created, updated, deleted, what) {
  const o = result.objects;
  expect(o && Array.isArray(o.created), `${what}: no detailed result: ${JSON.stringify(o)}`);
  expectEq(sortedPaths(o.created), sortedPaths(created.map(urlOf)), `${what}: created`);
  expectEq(sortedPaths(o.updated), sortedPaths(updated.map(urlOf)), `${what}: updated`);
  expectEq(sortedPaths(o.deleted), sortedPaths(deleted.map(urlOf)), `${what}: deleted`);
}

await check('sync:isCollectionDirty', ['created'], async () => {
  const cal = await workCalendar();
  expect(cal.ctag !== undefined, 'the calendar has no CS:getctag');
  const clean = await client.isCollectionDirty({ collection: cal });
  expect(!clean.isDirty, `dirty right after listing (ctag ${cal.ctag} vs ${clean.newCtag})`);
  const o = await fetchOne('after');
  const r = await client.updateCalendarObject({ calendarObject: { ...o, data: setSummary(o.data, 'After the range (touched)') } });
  expect([200, 201, 204].includes(r.status), `update answered ${r.status}`);
  const dirty = await client.isCollectionDirty({ collection: cal });
  expect(dirty.isDirty, `not dirty after an update (ctag ${cal.ctag} -> ${dirty.newCtag})`);
});

await check('sync:smartCollectionSync-webdav', ['created'], async () => {
  const snap = await snapshotCollection();
  expect(snap.syncToken, 'the calendar has no DAV:sync-token');
  await changeThree('late1', 'before', 'after');
  const res = await client.smartCollectionSyncDetailed({ collection: snap, method: 'webdav' });
  expectDetailed(res, ['late1'], ['before'], ['after'], 'sync-collection since the snapshot');
  expect(res.syncToken && res.syncToken !== snap.syncToken, `sync token did not move: ${res.syncToken}`);
  // Nothing changed since: an empty delta.
  const again = await client.smartCollectionSyncDetailed({
    collection: { ...snap, syncToken: res.syncToken, objects: await objectsOf(await workCalendar()) },
    method: 'webdav',
  });
  expectDetailed(again, [], [], [], 'sync-collection with the new token');
  S.webdavSynced = true;
});

await check('sync:smartCollectionSync-basic', ['created'], async () => {
  // The ctag-based fallback: getctag, then a full listing compared by ETag.
  const snap = await snapshotCollection();
  await changeThree('late2', 'inside', 'ended');
  const res = await client.smartCollectionSyncDetailed({ collection: snap, method: 'basic' });
  expectDetailed(res, ['late2'], ['inside'], ['ended'], 'ctag sync since the snapshot');
});

await check('sync:syncCalendars', ['created'], async () => {
  // tsdav's whole-account sync: calendars created, changed and deleted since a snapshot.
  const doomedUrl = new URL(`tsdav-doomed-${RUN}/`, S.account.homeUrl).href;
  const mk = await client.makeCalendar({ url: doomedUrl, props: { 'd:displayname': 'doomed' } });
  expect(mk.every((r) => r.ok), `MKCALENDAR ${doomedUrl}: ${JSON.stringify(mk.map((r) => r.status))}`);
  const old = await listCalendars();
  for (const c of old) c.objects = sameUrl(c.url, S.workUrl) ? await objectsOf(c) : [];

  const newUrl = new URL(`tsdav-new-${RUN}/`, S.account.homeUrl).href;
  const mk2 = await client.makeCalendar({ url: newUrl, props: { 'd:displayname': 'new' } });
  expect(mk2.every((r) => r.ok), `MKCALENDAR ${newUrl}: ${JSON.stringify(mk2.map((r) => r.status))}`);
  const del = await client.deleteObject({ url: doomedUrl });
  expect([200, 204].includes(del.status), `DELETE ${doomedUrl}: ${del.status}`);
  const cal = await workCalendar();
  const c = await client.createCalendarObject({ calendar: cal, filename: OBJ.late3.filename, iCalString: OBJ.late3.ics });
  expectEq(c.status, 201, 'create late3');

  const res = await client.syncCalendarsDetailed({ oldCalendars: old });
  expectEq(sortedPaths(res.created), sortedPaths([newUrl]), 'calendars created');
  expectEq(sortedPaths(res.deleted), sortedPaths([doomedUrl]), 'calendars deleted');
  expectEq(sortedPaths(res.updated), sortedPaths([S.workUrl]), 'calendars updated');
  const synced = res.updated[0].objects;
  const server = await objectsOf(await workCalendar());
  expectEq(sortedPaths(synced), sortedPaths(server), 'objects of the updated calendar after the sync vs on the server');
});

console.log(`${passed} passed, ${failed} failed`);
