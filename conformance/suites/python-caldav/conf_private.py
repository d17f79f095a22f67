# conf_private.py for the python `caldav` functional test suite (copied into the unpacked
# sdist's tests/ by run.sh; tests/conf.py imports it). The server under test is given by the
# environment run.sh exports (set by lib.sh's conformance_server_start):
#   CONF_URL, CONF_USER, CONF_PASSWORD   base URL and credentials of a started server
#   CONF_SERVER                          almanac (default) | radicale | xandikos
#   CONF_AUTH_TYPE                       unset: the library's default login (a request without
#                                        credentials first, then again with them after the 401);
#                                        "basic": credentials on every request (run.sh sets it
#                                        only while early_401_check.py fails, see there)
# The suite never starts servers of its own: the embedded Radicale/Xandikos and the docker
# servers that tests/conf.py knows are switched off below.
#
# `features` is the library's compatibility-hints mechanism (caldav/compatibility_hints.py):
# every feature not named is claimed as fully supported (the library's default), so a test is
# skipped only for what is listed here. For Almanac the list is what it really lacks, not what
# makes tests pass; a failure of a claimed feature goes to conformance/expected/python-caldav.xfail
# with its classification. For the peer servers the library's own hints are used unchanged.
import copy
import os

from caldav import compatibility_hints

test_public_test_servers = False
test_private_test_servers = True
test_xandikos = False
test_radicale = False
test_baikal = False
test_nextcloud = False
test_cyrus = False
test_sogo = False
test_bedework = False
# Scheduling (RFC 6638) needs three users on a server that implements it; see `almanac` below.
rfc6638_users = []

almanac = {
    # RFC 6638 (scheduling: schedule-inbox/outbox, calendar-user-address-set,
    # schedule-tag) is not implemented: no scheduling properties, no CALDAV:calendar-auto-schedule
    # in the DAV header. testSupport then asserts that the client sees no scheduling support.
    # calendar_color / calendar_order are positive claims: Almanac keeps any dead property set by
    # PROPPATCH on a calendar (Apple's calendar-color and calendar-order among them), and
    # testSetCalendarProperties then round-trips them.
    "old_flags": ["no_scheduling", "calendar_color", "calendar_order"],
    # Every user is created with a calendar (/calendars/NAME/default/). (Written as support
    # "full": the library turns the default `observed` of this server-observation into "not
    # supported" and would skip testGetDefaultCalendar.)
    "get-current-user-principal.has-calendar": True,
    # DAV:principal-property-search (RFC 3744 §9.4) is not implemented: the library's REPORT to
    # the base URL is answered 405 (Allow: OPTIONS, PROPFIND), an error, which the library calls
    # "ungraceful" (as opposed to "unsupported": silently ignored).
    "principal-search": {
        "support": "ungraceful",
        "behaviour": "REPORT principal-property-search is not implemented (405)",
    },
}


def _features(server, url):
    if server == "almanac":
        return copy.deepcopy(almanac)
    from urllib.parse import urlsplit

    if server == "radicale":
        f = copy.deepcopy(compatibility_hints.radicale)
    elif server == "xandikos":
        f = copy.deepcopy(compatibility_hints.xandikos)
    else:
        raise RuntimeError(f"CONF_SERVER={server!r}: no feature set known for it")
    f["auto-connect.url"] = dict(
        f.get("auto-connect.url", {}), domain=urlsplit(url).netloc, scheme="http"
    )
    return f


_server = os.environ.get("CONF_SERVER", "almanac")
_url = os.environ.get("CONF_URL")
caldav_servers = []
if _url:
    caldav_servers.append(
        {
            # One name for every server, so test ids (TestForServerUnderTest::...) are the same
            # whichever server runs; CONF_SERVER says which one it is.
            "name": "UnderTest",
            "url": _url,
            "username": os.environ.get("CONF_USER", ""),
            "password": os.environ.get("CONF_PASSWORD", ""),
            "features": _features(_server, _url),
        }
    )
    if os.environ.get("CONF_AUTH_TYPE"):
        caldav_servers[-1]["auth_type"] = os.environ["CONF_AUTH_TYPE"]
