// The feeds and the export fetched by check.py, read by ical.js (Thunderbird's parser): each
// parses as one VCALENDAR, its zones register, and every event yields occurrences with
// resolvable times. Appends PASS/FAIL lines to the results file.
//   node check.mjs DIR RESULTS
import fs from "node:fs";
import path from "node:path";
import ICAL from "ical.js";

const [dir, resultsFile] = process.argv.slice(2);
const out = (ok, id, detail = "") =>
  fs.appendFileSync(resultsFile, `${ok ? "PASS" : "FAIL"} ${id}${!ok && detail ? " " + detail : ""}\n`);

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".ics")).sort()) {
  const mode = path.basename(file, ".ics");
  let root;
  try {
    root = new ICAL.Component(ICAL.parse(fs.readFileSync(path.join(dir, file), "utf8")));
    out(root.name === "vcalendar", `icaljs-${mode}-parses`, root.name);
  } catch (e) {
    out(false, `icaljs-${mode}-parses`, String(e));
    continue;
  }
  for (const vtz of root.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(vtz);
  }
  const problems = [];
  let occurrences = 0;
  const events = root.getAllSubcomponents("vevent");
  for (const comp of events) {
    try {
      const ev = new ICAL.Event(comp);
      if (ev.isRecurrenceException()) continue;
      const it = ev.iterator();
      for (let i = 0, next; i < 20 && (next = it.next()); i++) {
        // RDATE;VALUE=PERIOD occurrences come out as ICAL.Period, which getOccurrenceDetails
        // cannot take (a known ical.js 2.2.1 limitation, see expected/icaljs.xfail): read
        // their start directly.
        const start = next instanceof ICAL.Period ? next.start : ev.getOccurrenceDetails(next).startDate;
        if (Number.isNaN(start.toJSDate().getTime())) problems.push(`${ev.uid}: bad start`);
        occurrences++;
      }
      const tzid = comp.getFirstProperty("dtstart")?.getParameter("tzid");
      if (tzid && !ICAL.TimezoneService.has(tzid)) problems.push(`${ev.uid}: zone ${tzid} not in the feed`);
    } catch (e) {
      problems.push(`${comp.getFirstPropertyValue("uid")}: ${e}`);
    }
  }
  out(problems.length === 0 && events.length > 0, `icaljs-${mode}-events`, JSON.stringify(problems.slice(0, 3)));
  out(occurrences >= events.length, `icaljs-${mode}-occurrences`, `${occurrences} for ${events.length} events`);
  for (const vtz of root.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.remove(vtz.getFirstPropertyValue("tzid"));
  }
}
