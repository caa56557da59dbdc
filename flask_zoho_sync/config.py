"""Every ``ZOHO_SYNC_*`` setting, its default, and the one place they are read.

Settings are read once, in ``init_app`` (Flask's extension guide: config changes after that
are not seen), and validated there so that a missing or malformed value stops the app at
start-up with a message that names the key, instead of failing on the first sync.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ConfigurationError
from .sync.modes import SYNC_MODES
from .zoho.datacentres import MalformedServerUrl, parse_server_url

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default and what it is for (shown in errors and docs)."""

    key: str
    default: Any
    help: str
    required: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("ZOHO_SYNC_CLIENT_ID", None, "Client ID from the Zoho API console.", True),
    Setting("ZOHO_SYNC_CLIENT_SECRET", None, "Client secret from the Zoho API console.", True),
    Setting(
        "ZOHO_SYNC_ENCRYPTION_KEYS",
        None,
        "Comma-separated Fernet keys, newest first; tokens are encrypted at rest with the "
        "first. Make one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'",
        True,
    ),
    Setting(
        "ZOHO_SYNC_ACCOUNTS_URL",
        "https://accounts.zoho.com",
        "Accounts server the Connect button sends admins to (the sandbox's URL for the sandbox).",
    ),
    Setting(
        "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS",
        (),
        "Accounts servers trusted beyond Zoho's own data centres (comma-separated).",
    ),
    Setting(
        "ZOHO_SYNC_REDIS_URL",
        None,
        f"Redis for the job queue and locks; falls back to REDIS_URL, then {DEFAULT_REDIS_URL}.",
    ),
    Setting("ZOHO_SYNC_QUEUE", "zoho-sync", "RQ queue the sync jobs go to."),
    Setting(
        "ZOHO_SYNC_PUSH_DELAY",
        600,
        "Seconds between a local edit and the batch push that carries it.",
    ),
    Setting(
        "ZOHO_SYNC_PUSH_SLICE",
        5000,
        "Most contacts one automatic push sends; the rest go in a push queued at once, behind "
        "work already due (another tenant's push waits one slice, not a whole export). "
        "0: no limit.",
    ),
    Setting(
        "ZOHO_SYNC_PULL_INTERVAL",
        86400,
        "Seconds between scheduled pulls from Zoho when nothing else triggered one.",
    ),
    Setting(
        "ZOHO_SYNC_FIELDS_MAX_AGE",
        3600,
        "Seconds a run trusts the cached Zoho field list before fetching it again (one call), "
        "so a field deleted, renamed or retyped in Zoho pauses its mapping row; 0: every run.",
    ),
    Setting("ZOHO_SYNC_CRON_SECRET", None, "Shared secret for POST {prefix}/cron."),
    Setting("ZOHO_SYNC_URL_PREFIX", "/admin/zoho", "Where the admin pages mount."),
    Setting(
        "ZOHO_SYNC_BASE_URL",
        None,
        "The app's public address (https://crm.example.com), for Contact URLs built in the "
        "worker, outside a request.",
    ),
    Setting(
        "ZOHO_SYNC_REDIRECT_URI",
        None,
        "OAuth redirect URI registered in the Zoho API console; by default the callback's "
        "external URL.",
    ),
    Setting(
        "ZOHO_SYNC_TRIGGER_WORKFLOWS",
        False,
        "Let Zoho workflows, approvals and blueprints run on the sync's writes.",
    ),
    Setting("ZOHO_SYNC_HTTP_TIMEOUT", 30.0, "Seconds to wait for one Zoho answer."),
    Setting(
        "ZOHO_SYNC_MASS_DELETE_SHARE",
        0.2,
        "A run that would delete more than this share of linked contacts stops and asks.",
    ),
    Setting(
        "ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN",
        False,
        "A revert brings a Zoho record the reverted run deleted back from Zoho's recycle bin "
        "(same id, notes and attachments; one call per record) instead of re-creating it. "
        "The connection then asks for ZohoCRM.settings.recycle_bin.UPDATE: reconnect once "
        "after turning it on.",
    ),
    Setting(
        "ZOHO_SYNC_DAILY_CREDIT_BUDGET",
        0,
        "Zoho API credits the sync may spend in any 24 hours (0: no limit of our own). A run "
        "that reaches it pauses and resumes when the window frees credits.",
    ),
    Setting(
        "ZOHO_SYNC_CREDIT_RESERVE",
        1000,
        "Zoho credits left to the org's other integrations: once Zoho reports (after half "
        "the day's credits are used) that no more than this many are left, the sync pauses "
        "and tries again an hour later (0: spend them all).",
    ),
    # Bulk Write's job costs 500 credits (plus about 13 calls around it: org, upload, polls,
    # download) where REST writes cost one credit per 10 records, so a job pays for itself
    # from (500 + 13) x 10 = 5,130 records; rounded up to whole REST batches of 100 that is
    # 5,200. Bulk Read breaks even much earlier (about 13 calls against one per 200 records:
    # 2,600 records), so at 5,200 both directions cost fewer calls and fewer credits.
    Setting(
        "ZOHO_SYNC_BULK_THRESHOLD",
        5200,
        "A first sync (mode all, nothing linked yet) uses Zoho's Bulk Read when Zoho holds at "
        "least this many records, and Bulk Write when at least this many records are to be "
        "written; 0 turns the bulk APIs off.",
    ),
    Setting(
        "ZOHO_SYNC_BULK_POLL_INTERVAL",
        5.0,
        "Seconds before the first status check of a bulk job; later waits grow by half, to "
        "at most a minute.",
    ),
    Setting(
        "ZOHO_SYNC_BULK_TIMEOUT",
        3600.0,
        "Seconds a sync waits for one bulk job before giving up (the run fails and retries).",
    ),
    Setting(
        "ZOHO_SYNC_PULL_WITH_COQL",
        True,
        "Pull by Zoho's Query API (COQL): 2,000 records a call instead of 200, offset pages "
        "read ZOHO_SYNC_MAX_CONCURRENCY at a time. Mappings with a field COQL cannot select "
        "(multi-select lookup, subform, file or image upload) still pull by REST, as does a "
        "connection made before the sync asked for the ZohoCRM.coql.READ scope. On since "
        "the benchmark met issue 20's goals (5 calls and 0.3x the credits for 10,000 "
        "records); false pulls by REST paging (200 a call).",
    ),
    Setting(
        "ZOHO_SYNC_MAX_CONCURRENCY",
        2,
        "Most Zoho calls one sync keeps in flight at once (1 to 25). Zoho allows 5 "
        "simultaneous calls per app on the Free edition and 10 heavy ones (writes of more "
        "than 10 records) on any edition; other workers and integrations share that budget.",
    ),
    Setting(
        "ZOHO_SYNC_ORG_CONCURRENCY",
        None,
        "Most Zoho calls all workers and the admin pages together keep in flight for one "
        "Zoho org (1 to 25; default 5, or ZOHO_SYNC_MAX_CONCURRENCY if that is higher). Each "
        "call holds a slot in Redis, so several workers stay under Zoho's per-org limit "
        "instead of meeting 429s; set it to your edition's limit less what other "
        "integrations use.",
    ),
    Setting(
        "ZOHO_SYNC_ON_LEAD_CONVERSION",
        "follow",
        "In Leads mode, what follows when a Zoho user converts a linked lead: 'follow' moves "
        "the contact's link to the new Contact record and syncing goes on there; 'stop' "
        "keeps the link on the converted lead and syncs that contact no more. Either way "
        "the host contact is kept and its history names the new Contact, Account and Deal.",
    ),
    Setting(
        "ZOHO_SYNC_MODE",
        "two_way",
        "two_way, export_only (this site to Zoho; Zoho never changes it), import_only (Zoho "
        "to this site; nothing written to Zoho) or update_only (no record created on either "
        "side), until the settings page or 'settings --mode' stores a choice.",
    ),
    # -- operations: alerts, health, metrics (README "Operations") --
    Setting(
        "ZOHO_SYNC_ALERT_EMAILS",
        (),
        "Comma-separated addresses told of incidents until the settings page sets others.",
    ),
    Setting(
        "ZOHO_SYNC_ALERT_WEBHOOK_URL",
        None,
        "A URL told of incidents (Slack-compatible JSON) until the settings page sets another.",
    ),
    Setting(
        "ZOHO_SYNC_ALERT_WEBHOOK_SECRET",
        None,
        "Signs each webhook body: X-Zoho-Sync-Signature: sha256=HMAC-SHA256(secret, body).",
    ),
    Setting(
        "ZOHO_SYNC_CREDIT_ALERT_SHARE",
        0.8,
        "A budget_low alert opens once the last 24 hours spent this share of "
        "ZOHO_SYNC_DAILY_CREDIT_BUDGET.",
    ),
    Setting(
        "ZOHO_SYNC_HEALTH_TOKEN",
        None,
        "Bearer token for GET {prefix}/health and {prefix}/metrics (admins need none).",
    ),
    Setting(
        "ZOHO_SYNC_HEALTH_MAX_OUTBOX_AGE",
        0,
        "Seconds an unsent change may wait before health is failing (0: 3 x push delay).",
    ),
    Setting(
        "ZOHO_SYNC_HEALTH_MAX_PULL_AGE",
        0,
        "Seconds without a successful pull before health is failing (0: 2 x pull interval).",
    ),
    Setting(
        "ZOHO_SYNC_HEALTH_MAX_FAILED",
        0,
        "Failed records above which health is failing (0: failed records never fail it).",
    ),
    # -- what syncs (README "Choosing what syncs"); the "What syncs" page overrides these --
    Setting(
        "ZOHO_SYNC_SCOPE_GROUPS",
        (),
        "Comma-separated host groups: only their contacts sync (empty: every contact).",
    ),
    Setting(
        "ZOHO_SYNC_SCOPE_FILTER",
        None,
        "The name of a filter the app gave adapter.add_scope_filter: only its contacts sync.",
    ),
    Setting(
        "ZOHO_SYNC_SCOPE_ZOHO",
        None,
        "Zoho conditions, ';'-separated (Lead_Status != Junk; Owner = 123): only matching "
        "records are read. They are sent to Zoho as COQL criteria.",
    ),
    Setting(
        "ZOHO_SYNC_SCOPE_ON_LEAVE",
        "unlink",
        "A linked record that leaves the scope: 'unlink' keeps both and stops syncing them; "
        "'delete' deletes the other side's copy (through the mass-delete breaker).",
    ),
    Setting(
        "ZOHO_SYNC_MATCH_KEY",
        "email",
        "What a first sync matches records on: 'email' (case and whitespace blind), "
        "'contact_id' (the Zoho field mapped to Contact Id), or 'field:HOST_FIELD'.",
    ),
)

#: The values ``ZOHO_SYNC_ON_LEAD_CONVERSION`` takes.
LEAD_CONVERSION_OUTCOMES = ("follow", "stop")

#: Zoho's concurrency limits per org and app (reference §4.2): 5 on the Free edition, up to
#: 25 on Ultimate, and at most 10 "heavy" calls (100-record writes are heavy) on any edition.
MAX_CONCURRENCY_CEILING = 25

_BY_KEY = {setting.key: setting for setting in SETTINGS}


@dataclass(frozen=True)
class OperationsConfig:
    """Alerts, health and metrics settings (README "Operations")."""

    alert_emails: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = None
    credit_alert_share: float = 0.8
    health_token: str | None = None
    #: Thresholds in seconds (already derived from the push delay and pull interval).
    max_outbox_age: int = 1800
    max_pull_age: int = 172800
    max_failed: int = 0


@dataclass(frozen=True)
class ZohoSyncConfig:
    """The validated settings of one app."""

    client_id: str
    client_secret: str
    encryption_keys: tuple[str, ...]
    accounts_url: str
    extra_accounts_servers: tuple[str, ...]
    redis_url: str
    queue: str
    push_delay: int
    push_slice: int
    pull_interval: int
    fields_max_age: int
    cron_secret: str | None
    url_prefix: str
    base_url: str | None
    redirect_uri: str | None
    trigger_workflows: bool
    http_timeout: float
    mass_delete_share: float
    revert_from_recycle_bin: bool
    daily_credit_budget: int
    credit_reserve: int
    bulk_threshold: int
    bulk_poll_interval: float
    bulk_timeout: float
    max_concurrency: int
    pull_with_coql: bool = True
    on_lead_conversion: str = "follow"
    #: Simultaneous Zoho calls across all processes, per org (the Redis-held call slots).
    org_concurrency: int = 5
    #: The sync mode a run uses while the settings row stores none (``sync.modes``).
    sync_mode: str = "two_way"

    operations: OperationsConfig = OperationsConfig()


def _as_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigurationError(
            f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}."
        )
    return text


def _split_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part).strip() for part in value if str(part).strip())


def _server_url(key: str, value: Any) -> str:
    """An accounts server from the config as its normalised origin (what is compared with
    the callback's ``accounts-server`` and stored), or a message naming the setting."""
    try:
        return parse_server_url(str(value))
    except MalformedServerUrl as exc:
        raise ConfigurationError(
            f"{key} has {str(value)[:120]!r}, which is not a server URL: {exc}. Give "
            "scheme://host[:port], e.g. https://accounts.zoho.eu."
        ) from None


def _as_int(key: str, value: Any, minimum: int, unit: str = "seconds") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{key} must be a whole number of {unit}, got {value!r}."
        ) from None
    if number < minimum:
        raise ConfigurationError(f"{key} must be at least {minimum}, got {number}.")
    return number


def _as_concurrency(key: str, value: Any) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{key} must be a whole number of simultaneous Zoho calls, got {value!r}."
        ) from None
    if not 1 <= number <= MAX_CONCURRENCY_CEILING:
        raise ConfigurationError(
            f"{key} must be between 1 and {MAX_CONCURRENCY_CEILING} (Zoho's highest edition "
            f"limit), got {number}. Use 5 or less on Zoho's Free edition, and at most 10 on "
            "any edition, since each 100-record write counts against Zoho's 10-call limit for "
            "heavy requests."
        )
    return number


#: Zoho's lowest per-org limit (the Free edition), the org default when nothing says more.
DEFAULT_ORG_CONCURRENCY = 5


def _org_concurrency(value: Any, max_concurrency: int) -> int:
    """``ZOHO_SYNC_ORG_CONCURRENCY``, or, unset, Zoho's lowest limit (5) unless one sync is
    allowed more: a default below ``ZOHO_SYNC_MAX_CONCURRENCY`` would quietly lower it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return max(DEFAULT_ORG_CONCURRENCY, max_concurrency)
    return _as_concurrency("ZOHO_SYNC_ORG_CONCURRENCY", value)


def _as_float(key: str, value: Any, low: float, high: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number, got {value!r}.") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{key} must be {bounds}, got {number}.")
    return number


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"{key} must be true or false, got {value!r}.")


def read_config(config: Mapping[str, Any]) -> ZohoSyncConfig:
    """Validate an app's config into a :class:`ZohoSyncConfig`, or say what is wrong."""

    def get(key: str) -> Any:
        value = config.get(key, _BY_KEY[key].default)
        return _BY_KEY[key].default if value is None else value

    missing = [s.key for s in SETTINGS if s.required and not get(s.key)]
    if missing:
        lines = "\n".join(f"  {key}: {_BY_KEY[key].help}" for key in missing)
        raise ConfigurationError(
            "Flask-Zoho-Sync is missing required settings (set them in app.config or the "
            f"environment):\n{lines}"
        )
    keys = _split_list(get("ZOHO_SYNC_ENCRYPTION_KEYS"))
    prefix = str(get("ZOHO_SYNC_URL_PREFIX")).rstrip("/")
    max_concurrency = _as_concurrency("ZOHO_SYNC_MAX_CONCURRENCY", get("ZOHO_SYNC_MAX_CONCURRENCY"))
    if not prefix.startswith("/"):
        raise ConfigurationError(
            f"ZOHO_SYNC_URL_PREFIX must start with '/', got {get('ZOHO_SYNC_URL_PREFIX')!r}."
        )
    return ZohoSyncConfig(
        client_id=str(get("ZOHO_SYNC_CLIENT_ID")),
        client_secret=str(get("ZOHO_SYNC_CLIENT_SECRET")),
        encryption_keys=keys,
        accounts_url=_server_url("ZOHO_SYNC_ACCOUNTS_URL", get("ZOHO_SYNC_ACCOUNTS_URL")),
        extra_accounts_servers=tuple(
            _server_url("ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS", item)
            for item in _split_list(get("ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS"))
        ),
        redis_url=str(get("ZOHO_SYNC_REDIS_URL") or config.get("REDIS_URL") or DEFAULT_REDIS_URL),
        queue=str(get("ZOHO_SYNC_QUEUE")),
        push_delay=_as_int("ZOHO_SYNC_PUSH_DELAY", get("ZOHO_SYNC_PUSH_DELAY"), 0),
        push_slice=_as_int("ZOHO_SYNC_PUSH_SLICE", get("ZOHO_SYNC_PUSH_SLICE"), 0, "contacts"),
        pull_interval=_as_int("ZOHO_SYNC_PULL_INTERVAL", get("ZOHO_SYNC_PULL_INTERVAL"), 60),
        fields_max_age=_as_int("ZOHO_SYNC_FIELDS_MAX_AGE", get("ZOHO_SYNC_FIELDS_MAX_AGE"), 0),
        cron_secret=get("ZOHO_SYNC_CRON_SECRET") or None,
        url_prefix=prefix,
        base_url=str(get("ZOHO_SYNC_BASE_URL")).rstrip("/") if get("ZOHO_SYNC_BASE_URL") else None,
        redirect_uri=get("ZOHO_SYNC_REDIRECT_URI") or None,
        trigger_workflows=_as_bool(
            "ZOHO_SYNC_TRIGGER_WORKFLOWS", get("ZOHO_SYNC_TRIGGER_WORKFLOWS")
        ),
        http_timeout=_as_float("ZOHO_SYNC_HTTP_TIMEOUT", get("ZOHO_SYNC_HTTP_TIMEOUT"), 1.0),
        mass_delete_share=_as_float(
            "ZOHO_SYNC_MASS_DELETE_SHARE", get("ZOHO_SYNC_MASS_DELETE_SHARE"), 0.0, 1.0
        ),
        revert_from_recycle_bin=_as_bool(
            "ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN", get("ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN")
        ),
        daily_credit_budget=_as_int(
            "ZOHO_SYNC_DAILY_CREDIT_BUDGET", get("ZOHO_SYNC_DAILY_CREDIT_BUDGET"), 0, "credits"
        ),
        credit_reserve=_as_int(
            "ZOHO_SYNC_CREDIT_RESERVE", get("ZOHO_SYNC_CREDIT_RESERVE"), 0, "credits"
        ),
        bulk_threshold=_as_int(
            "ZOHO_SYNC_BULK_THRESHOLD", get("ZOHO_SYNC_BULK_THRESHOLD"), 0, "records"
        ),
        bulk_poll_interval=_as_float(
            "ZOHO_SYNC_BULK_POLL_INTERVAL", get("ZOHO_SYNC_BULK_POLL_INTERVAL"), 0.001, 60.0
        ),
        bulk_timeout=_as_float("ZOHO_SYNC_BULK_TIMEOUT", get("ZOHO_SYNC_BULK_TIMEOUT"), 1.0),
        max_concurrency=max_concurrency,
        org_concurrency=_org_concurrency(get("ZOHO_SYNC_ORG_CONCURRENCY"), max_concurrency),
        pull_with_coql=_as_bool("ZOHO_SYNC_PULL_WITH_COQL", get("ZOHO_SYNC_PULL_WITH_COQL")),
        on_lead_conversion=_as_choice(
            "ZOHO_SYNC_ON_LEAD_CONVERSION",
            get("ZOHO_SYNC_ON_LEAD_CONVERSION"),
            LEAD_CONVERSION_OUTCOMES,
        ),
        sync_mode=_as_choice("ZOHO_SYNC_MODE", get("ZOHO_SYNC_MODE"), SYNC_MODES),
        operations=_read_operations(get),
    )


def _read_operations(get: Callable[[str], Any]) -> OperationsConfig:
    """The operations keys, thresholds derived from the push delay and pull interval."""
    push_delay = _as_int("ZOHO_SYNC_PUSH_DELAY", get("ZOHO_SYNC_PUSH_DELAY"), 0)
    pull_interval = _as_int("ZOHO_SYNC_PULL_INTERVAL", get("ZOHO_SYNC_PULL_INTERVAL"), 60)
    outbox_age = _as_int(
        "ZOHO_SYNC_HEALTH_MAX_OUTBOX_AGE", get("ZOHO_SYNC_HEALTH_MAX_OUTBOX_AGE"), 0
    )
    pull_age = _as_int("ZOHO_SYNC_HEALTH_MAX_PULL_AGE", get("ZOHO_SYNC_HEALTH_MAX_PULL_AGE"), 0)
    webhook = get("ZOHO_SYNC_ALERT_WEBHOOK_URL") or None
    if webhook is not None:
        webhook = check_webhook_url("ZOHO_SYNC_ALERT_WEBHOOK_URL", str(webhook))
    return OperationsConfig(
        alert_emails=tuple(
            check_email("ZOHO_SYNC_ALERT_EMAILS", address)
            for address in _split_list(get("ZOHO_SYNC_ALERT_EMAILS"))
        ),
        alert_webhook_url=webhook,
        alert_webhook_secret=get("ZOHO_SYNC_ALERT_WEBHOOK_SECRET") or None,
        credit_alert_share=_as_float(
            "ZOHO_SYNC_CREDIT_ALERT_SHARE", get("ZOHO_SYNC_CREDIT_ALERT_SHARE"), 0.01, 1.0
        ),
        health_token=get("ZOHO_SYNC_HEALTH_TOKEN") or None,
        # At least a minute: a push delay of 0 would otherwise call every change late.
        max_outbox_age=outbox_age or max(60, 3 * push_delay),
        max_pull_age=pull_age or 2 * pull_interval,
        max_failed=_as_int(
            "ZOHO_SYNC_HEALTH_MAX_FAILED", get("ZOHO_SYNC_HEALTH_MAX_FAILED"), 0, "records"
        ),
    )


def check_email(origin: str, address: str) -> str:
    """An alert recipient, or a message naming where the bad one came from."""
    address = address.strip()
    local, at, domain = address.partition("@")
    if not (at and local and "." in domain and not any(c.isspace() for c in address)):
        raise ConfigurationError(
            f"{origin}: {address[:120]!r} is not an email address; give name@example.com "
            "(several separated by commas)."
        )
    return address


def check_webhook_url(origin: str, url: str) -> str:
    """An alert webhook: http(s) with a host, or a message naming where it came from."""
    from urllib.parse import urlsplit

    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"{origin}: {url[:120]!r} is not a web address; give the full https://... URL of "
            "the webhook (a Slack incoming webhook, for one)."
        )
    return url


#: Files of the time zone database that are not places: the build's own helpers and the
#: leap-second and POSIX-rule copies of the whole tree.
_NOT_PLACES = frozenset({"Factory", "localtime", "posixrules"})
_NOT_PLACE_FOLDERS = ("posix/", "right/")


def _zoneinfo_texts(filename: str) -> Iterator[str]:
    """The named file of each time zone database zoneinfo reads (system first, then the
    ``tzdata`` package, the order ``ZoneInfo`` itself uses)."""
    for folder in zoneinfo.TZPATH:
        path = Path(folder) / filename
        if path.is_file():
            yield path.read_text(encoding="utf-8", errors="replace")
    try:
        package = resources.files("tzdata").joinpath("zoneinfo", filename)
        if package.is_file():
            yield package.read_text(encoding="utf-8", errors="replace")
    except (ModuleNotFoundError, FileNotFoundError):
        pass


@cache
def canonical_time_zones() -> frozenset[str]:
    """The zones offered and accepted: the places of the IANA database plus UTC.

    ``zoneinfo.available_timezones()`` lists every file of the database, which includes
    "Factory", "localtime", the posix/ and right/ copies, and the backward-compatible
    aliases ("US/Eastern", "Asia/Calcutta"). The database's own zone.tab and zone1970.tab
    list its places, one line each, so their union is the canonical list.
    """
    available = zoneinfo.available_timezones()
    places: set[str] = set()
    for filename in ("zone.tab", "zone1970.tab"):
        for text in _zoneinfo_texts(filename):
            for line in text.splitlines():
                columns = line.split("\t")
                if not line.startswith("#") and len(columns) >= 3:
                    places.add(columns[2].strip())
            break  # the first database found is the one ZoneInfo reads
    if not places:  # a database without its tables: keep names shaped like places
        places = {
            name
            for name in available
            if "/" in name and not name.startswith((*_NOT_PLACE_FOLDERS, "Etc/", "US/", "SystemV/"))
        }
    return frozenset((places & available) - _NOT_PLACES) | {"UTC"}


@cache
def _time_zone_aliases() -> dict[str, str]:
    """Backward-compatible names and the canonical zone each stands for."""
    links: dict[str, str] = {}
    for text in _zoneinfo_texts("tzdata.zi"):
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "L":
                links[parts[2]] = parts[1]
        break
    canonical = canonical_time_zones()
    aliases = {}
    for alias, target in links.items():
        while target in links and target not in canonical:
            target = links[target]
        target = "UTC" if target == "Etc/UTC" else target
        if alias not in canonical and target in canonical:
            aliases[alias] = target
    return aliases


def canonical_time_zone(name: str | None) -> str | None:
    """The canonical spelling of ``name`` (itself, or what an old alias stands for)."""
    if not name:
        return None
    if name in canonical_time_zones():
        return name
    return _time_zone_aliases().get(name)


def validate_time_zone(name: str) -> ZoneInfo:
    """A canonical IANA zone by name, or a message that says what a valid one looks like."""
    if name in canonical_time_zones():
        return ZoneInfo(name)
    alias_of = _time_zone_aliases().get(name)
    if alias_of is not None:
        raise ConfigurationError(
            f"{name!r} is an old alias of the time zone {alias_of!r}; use {alias_of!r}."
        )
    shown = name if len(name) <= 64 else f"{name[:60]}..."
    raise ConfigurationError(
        f"{shown!r} is not a known time zone; use an IANA name such as 'Australia/Sydney' or 'UTC'."
    )


def settings_from_environ(environ: Mapping[str, str], into: Callable[[str, Any], None]) -> None:
    """Copy every ``ZOHO_SYNC_*`` key present in ``environ`` (how the demo app is configured)."""
    for setting in SETTINGS:
        if setting.key in environ:
            into(setting.key, environ[setting.key])
