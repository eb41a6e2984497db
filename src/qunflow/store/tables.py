"""The state database's tables (SQLAlchemy Core). Migrations in store/migrations mirror them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(18, 4)

channels = Table(
    "channels", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # ad, content, website, offline, referral
    Column("created_at", DateTime, nullable=False),
    Column("archived_at", DateTime),  # archived, never deleted: events keep their references
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("channel_id", ForeignKey("channels.id"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("archived_at", DateTime),  # archived, never deleted: events keep their references
)

gates = Table(
    "gates", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("definition", JSON, nullable=False),  # profile fields, questions, routing (the current version's)
    Column("created_at", DateTime, nullable=False),
    # The applied `kind: gate` document in force (gate_versions); NULL for a gate stored before issue 12.
    Column("version", Integer),
    Column("title", JSON),
    Column("updated_at", DateTime),
)

gate_versions = Table(  # every applied text of a gate document (services/gates.py), as playbook_versions
    "gate_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("file", String(500), nullable=False),
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("key", "version", name="uq_gate_versions_key_version"),
)

# People a gate routed to a tier with no room left after the fallback order (services/waitlist.py). Each is a
# member row without a group (consents, contact sealed in the profile); invited when a seat opens.
waitlist = Table(
    "waitlist", metadata,
    Column("id", Integer, primary_key=True),
    Column("member_id", ForeignKey("members.id"), nullable=False, unique=True),
    Column("entry_point_id", ForeignKey("entry_points.id")),
    Column("tier", String(16), nullable=False),  # the tier the gate routed to
    Column("status", String(16), nullable=False),  # waiting, invited, joined
    Column("group_id", ForeignKey("groups.id")),  # the group the invitation is for
    Column("created_at", DateTime, nullable=False),
    Column("invited_at", DateTime),
    Index("ix_waitlist_status_created", "status", "created_at"),
)

# Operator-edited page texts: group rules and landing copy, per workspace (scope "") or per entry point
# (scope = its code), in zh and en (services/page_texts.py).
page_texts = Table(
    "page_texts", metadata,
    Column("id", Integer, primary_key=True),
    Column("scope", String(32), nullable=False),
    Column("key", String(32), nullable=False),  # rules, landing_title, landing_intro
    Column("lang", String(8), nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("scope", "key", "lang", name="uq_page_texts_scope_key_lang"),
)

entry_points = Table(
    "entry_points", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("channel_id", ForeignKey("channels.id"), nullable=False),
    Column("campaign_id", ForeignKey("campaigns.id")),
    Column("gate_id", ForeignKey("gates.id")),
    Column("target_tier", String(16), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("utm", JSON, nullable=False),  # default utm_* parameters
    Column("created_at", DateTime, nullable=False),
    Column("archived_at", DateTime),  # archived, never deleted: events keep their references
)

groups = Table(
    "groups", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("tier", String(16), nullable=False),  # newbie, interest, core, broadcast
    Column("capacity", Integer, nullable=False),
    Column("member_count", Integer, nullable=False, default=0),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
    Column("archived_at", DateTime),  # archived, never deleted: events keep their references
    UniqueConstraint("platform", "external_id", name="uq_groups_platform_external"),
)

members = Table(
    "members", metadata,
    Column("id", String(40), primary_key=True),
    Column("visitor_id", String(128), index=True),
    Column("profile", LargeBinary),  # encrypted JSON: name / need / interest ...
    Column("tier", String(16)),
    Column("locale", String(8), nullable=False, default="zh"),
    Column("entry_point_id", ForeignKey("entry_points.id")),
    Column("group_id", ForeignKey("groups.id")),
    Column("referrer_id", String(40)),
    Column("join_ticket", String(30), unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("joined_at", DateTime),
    # When the platform said this person asked to join (a join request): the seat is held briefly from then.
    Column("join_started_at", DateTime),
)

identities = Table(
    "identities", metadata,
    Column("id", Integer, primary_key=True),
    Column("member_id", ForeignKey("members.id"), nullable=False, index=True),
    Column("platform", String(32), nullable=False),
    Column("external_user_id", String(128), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("unreachable_at", DateTime),  # the platform refused a DM for good (blocked the bot): no retries
    UniqueConstraint("platform", "external_user_id", name="uq_identities_platform_user"),
)

consents = Table(
    "consents", metadata,
    Column("id", Integer, primary_key=True),
    Column("member_id", ForeignKey("members.id"), nullable=False, index=True),
    Column("purpose", String(64), nullable=False),  # profile, marketing (domain/consent.py)
    Column("text_version", String(64), nullable=False),
    Column("granted", Boolean, nullable=False),  # append-only: the newest row per purpose is in force
    Column("recorded_at", DateTime, nullable=False),
    Column("source", String(32)),  # gate, keyword, link, welcome_reply, api, console
)

spend = Table(
    "spend", metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(8), nullable=False),
    UniqueConstraint("channel", "day", name="uq_spend_channel_day"),
)

events = Table(
    "events", metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("ts", DateTime, nullable=False),  # UTC
    Column("member_id", String(128)),
    Column("visitor_id", String(128)),
    Column("channel", String(128)),
    Column("campaign", String(128)),
    Column("entry_point", String(128)),
    Column("group_key", String(128)),
    Column("referrer_id", String(128)),
    Column("amount", Money),
    Column("margin", Money),
    Column("currency", String(128)),
    Column("experiment", String(128)),
    Column("variant", String(128)),
    Column("properties", JSON),
    Column("received_at", DateTime, nullable=False),
)
Index("ix_events_type", events.c.type)
Index("ix_events_member", events.c.member_id)  # the automation engine asks per member (goals, branches)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("scopes", JSON),  # a list of scope names; NULL: made before scopes existed, may do everything
    Column("groups", JSON),  # the group keys it may see; NULL: all
    Column("expires_at", DateTime),
    Column("revoked_at", DateTime),
    Column("last_used_at", DateTime),
)

member_tasks = Table(
    "member_tasks", metadata,
    Column("id", Integer, primary_key=True),
    Column("member_id", ForeignKey("members.id"), nullable=False, index=True),
    Column("task_key", String(64), nullable=False),
    Column("assigned_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("completed_at", DateTime),
    UniqueConstraint("member_id", "task_key", name="uq_member_tasks_member_task"),
)

# The outbox (engine/outbox.py): every message qunflow sends, recorded before the platform call.
deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("member_id", String(40)),
    Column("platform", String(32), nullable=False),
    Column("target", String(128), nullable=False),  # user or group external id
    Column("kind", String(32), nullable=False),  # welcome_dm, welcome_menu, keyword_reply, playbook, coupon_dm ...
    # queued -> pending (the call is under way) -> sent; retry (waits for next_at), dead, unreachable, skipped
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("external_message_id", String(128)),
    Column("error", Text),
    Column("private", Boolean, nullable=False, server_default="1"),  # a DM, else a group post
    Column("marketing", Boolean, nullable=False, server_default="0"),  # counts against the daily cap
    Column("body", LargeBinary),  # the text, encrypted (it may carry a name): what a retry sends
    Column("context", String(256)),  # a window token: WeCom welcome code, Telegram user_chat_id
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", DateTime),  # when a queued or retried send may go
    Column("expires_at", DateTime),  # no send after this (the platform's window, or too late to matter)
    Column("lease_until", DateTime),  # a pending send whose lease ran out was interrupted
    Column("on_sent", JSON),  # an event to record when (and only when) it is sent, e.g. welcome_sent
)
Index("ix_deliveries_status_next", deliveries.c.status, deliveries.c.next_at)

# Shared send limits (engine/limits.py): one row per bucket, the GCRA's theoretical arrival time.
send_limits = Table(
    "send_limits", metadata,
    Column("key", String(200), primary_key=True),
    Column("tat", DateTime, nullable=False),
)

# Inbound updates already handled (engine/inbound.py): a platform's repeat delivery does nothing twice.
inbound_updates = Table(
    "inbound_updates", metadata,
    Column("platform", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("status", String(16), nullable=False),  # received, done
    Column("received_at", DateTime, nullable=False),
)

# Invite links qunflow handed out on a platform: per entry point, or per gate pass (one person, one link).
invite_links = Table(
    "invite_links", metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("group_id", ForeignKey("groups.id"), nullable=False),
    Column("label", String(64), nullable=False),  # what comes back on the join: e:<entry code> or a ticket
    Column("url", Text, nullable=False),
    Column("qr_url", Text),
    Column("handle", Text),
    Column("join_request", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    # When the platform stops honouring the link (Telegram expire_date); None: never. An expired link is
    # never handed out again and is revoked by the sweep (services/invites.py revoke_expired).
    Column("expires_at", DateTime, index=True),
)
# One live link per label: a label may come back after its link was revoked (an entry point's link
# renewed after it expired, a group with room again), so revoked rows do not count.
Index("uq_invite_links_live", invite_links.c.platform, invite_links.c.group_id, invite_links.c.label, unique=True,
      sqlite_where=invite_links.c.revoked_at.is_(None), postgresql_where=invite_links.c.revoked_at.is_(None))

# The platform-side group welcome template (WeCom 入群欢迎语素材) per language: its id and what it holds.
welcome_templates = Table(
    "welcome_templates", metadata,
    Column("platform", String(32), primary_key=True),
    Column("lang", String(8), primary_key=True),
    Column("template_id", String(128), nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of the text the template holds
    Column("updated_at", DateTime, nullable=False),
)

# One row per ISO week of the scheduled weekly report: claimed before posting, marked after, so that
# restarts and concurrent `qunflow serve` processes post each week at most once (services/report_schedule.py).
report_posts = Table(
    "report_posts", metadata,
    Column("id", Integer, primary_key=True),
    Column("week", String(8), nullable=False, unique=True),  # 2026-W09
    Column("status", String(16), nullable=False),  # claimed, sending, posted, failed, unknown
    Column("claimed_by", String(64), nullable=False),
    Column("claimed_at", DateTime, nullable=False),  # UTC, like every timestamp in the state DB
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime),
    Column("posted_at", DateTime),
    Column("report_file", String(200)),
    Column("error", Text),
)

# --- automation (issue 4): playbooks, enrollments (the durable timers), tags, inbox, coupons ---

playbooks = Table(
    "playbooks", metadata,
    Column("key", String(64), primary_key=True),
    Column("version", Integer, nullable=False),  # the version new enrollments use
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

playbook_versions = Table(
    "playbook_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),  # the YAML as applied
    Column("digest", String(64), nullable=False),
    Column("file", String(500), nullable=False),
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("key", "version", name="uq_playbook_versions_key_version"),
)

enrollments = Table(
    "enrollments", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("playbook_key", String(64), nullable=False),
    Column("version", Integer, nullable=False),  # runs to the end on the version it started with
    Column("subject", String(128), nullable=False),  # a member id, or group:<key> for schedules
    Column("occurrence", String(200), nullable=False),  # what enrolled it: once per subject and occurrence
    Column("step", Integer, nullable=False),  # index of the next step to run
    Column("status", String(16), nullable=False),  # active, done, exited, dead
    Column("due_at", DateTime, nullable=False),  # the timer: when the next step may run (UTC)
    Column("attempts", Integer, nullable=False),  # failed tries of the current step
    Column("last_error", Text),
    Column("lease_owner", String(64)),  # the worker running it now, until lease_until
    Column("lease_until", DateTime),
    Column("context", JSON, nullable=False),  # trigger facts and values earlier steps produced
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("playbook_key", "subject", "occurrence", name="uq_enrollments_playbook_subject_occurrence"),
    postgresql_with={"fillfactor": 70},  # room for HOT updates: the claim's lease touches no indexed column
)
# The timers the claim reads (finished rows stay out of it), and the dead letters newest first (0021).
Index("ix_enrollments_active_due", enrollments.c.due_at, sqlite_where=enrollments.c.status == "active",
      postgresql_where=enrollments.c.status == "active")
Index("ix_enrollments_dead_updated", enrollments.c.updated_at, sqlite_where=enrollments.c.status == "dead",
      postgresql_where=enrollments.c.status == "dead")

automation_state = Table(  # cursors: the event seq triggers have read up to, last schedule occurrences
    "automation_state", metadata,
    Column("name", String(128), primary_key=True),
    Column("value", String(200), nullable=False),
)

member_tags = Table(
    "member_tags", metadata,
    Column("member_id", String(128), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Column("added_at", DateTime, nullable=False),
)

inbox = Table(  # advisor follow-ups and staff alerts
    "inbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # follow_up, alert
    Column("cause", String(200), nullable=False, unique=True),  # idempotency: one item per cause
    Column("member_id", String(128)),
    Column("title", Text, nullable=False),
    Column("assignee", String(64)),
    Column("due_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("done_at", DateTime),
)

# --- incentives (issue 5): coupons and their ledger, referrals, reward programs, budgets, fraud signals ---

coupons = Table(  # the current state of each coupon; coupon_ledger holds every change
    "coupons", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("cause", String(200), nullable=False, unique=True),  # never issued twice for the same cause
    Column("member_id", String(128), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("value", Money, nullable=False),
    Column("status", String(16), nullable=False),  # issued, sent, redeemed, expired, reversed, clawed_back
    Column("issued_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("reward_id", Integer),  # the reward it pays, if any
    Column("order_ref", String(128)),  # the order it was redeemed on
    Column("redeemed_by", String(128), index=True),  # the member whose order used it (fraud: not the owner's invitee)
    Column("updated_at", DateTime),
)

coupon_ledger = Table(  # one row per change of a coupon: `amount` moves from from_state to to_state
    "coupon_ledger", metadata,
    Column("id", BigId, primary_key=True),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False, index=True),
    Column("entry", String(16), nullable=False),  # issue, send, redeem, expire, reverse, clawback
    Column("from_state", String(16), nullable=False),  # "budget" for an issue
    Column("to_state", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("actor", String(64), nullable=False),  # engine, api, cli, console:<user>
    Column("reason", Text),
)

referral_codes = Table(  # a member's personal referral code: /r/<code> leads to a landing page with ref
    "referral_codes", metadata,
    Column("code", String(16), primary_key=True),
    Column("member_id", String(128), nullable=False, unique=True),
    Column("entry_code", String(64)),  # the entry point the link lands on
    Column("created_at", DateTime, nullable=False),
)

join_signals = Table(  # fraud signals from the gate, as keyed hashes (HMAC): equal inputs match, none reads back
    "join_signals", metadata,
    Column("member_id", String(128), primary_key=True),
    Column("device", String(64), index=True),
    Column("ip", String(64), index=True),
    Column("ip_ua", String(64), index=True),
    Column("phone", String(64), index=True),
    Column("disposable", Boolean, nullable=False, default=False),
    Column("recorded_at", DateTime, nullable=False),
    # False when the pass was over the day's new-member coupon cap for its device or IP (services/gate_guard.py).
    Column("coupon_eligible", Boolean, nullable=False, default=True, server_default="1"),
)

referrals = Table(  # one per invitee: who brought them, scored for fraud
    "referrals", metadata,
    Column("id", Integer, primary_key=True),
    Column("inviter_id", String(128), nullable=False, index=True),
    Column("invitee_id", String(128), nullable=False, unique=True),
    Column("campaign", String(64)),
    Column("channel", String(64)),
    Column("joined_at", DateTime, nullable=False),
    Column("qualified_at", DateTime),  # the invitee's first qualifying action
    Column("fraud_level", String(8)),  # low, medium, high
    Column("fraud_reasons", JSON),
    Column("scored_at", DateTime),
)

reward_programs = Table(  # applied reward-rule files, versioned like playbooks
    "reward_programs", metadata,
    Column("key", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

reward_program_versions = Table(
    "reward_program_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("program", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("file", String(500), nullable=False),
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("key", "version", name="uq_reward_program_versions_key_version"),
)

rewards = Table(  # what a rule grants a member for a cause; paid as a coupon once released
    "rewards", metadata,
    Column("id", Integer, primary_key=True),
    Column("cause", String(200), nullable=False, unique=True),  # never twice for the same cause
    Column("program", String(64), nullable=False),
    Column("program_version", Integer, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("member_id", String(128), nullable=False, index=True),
    Column("role", String(8), nullable=False),  # inviter, invitee
    Column("referral_id", Integer),  # the referral that triggered it (per-invitee rules, thresholds: the Nth)
    Column("coupon_name", String(64), nullable=False),
    Column("value", Money, nullable=False),
    Column("valid_days", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # held, review, paid, rejected, reversed, clawed_back
    Column("release_at", DateTime, nullable=False),  # end of the hold period
    Column("fraud_level", String(8)),
    Column("fraud_reasons", JSON),
    Column("coupon_id", Integer),
    Column("order_ref", String(128), index=True),  # the invitee's order it was earned by: a refund reverses it
    Column("created_at", DateTime, nullable=False),
    Column("decided_at", DateTime),
    Column("decided_by", String(64)),
    Column("note", Text),
    Index("ix_rewards_status_release", "status", "release_at"),
)

reward_budgets = Table(  # money committed per scope ("program:<key>", "rule:<key>/<rule>") and period ("total", a day)
    "reward_budgets", metadata,
    Column("scope", String(200), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("committed", Money, nullable=False),
)

# --- keyword rules (issue 4, P7): rule sets versioned like playbooks; staff alerts waiting for the webhook ---

experiments = Table(  # applied `kind: experiment` documents (domain/experiments.py), versioned like playbooks
    "experiments", metadata,
    Column("key", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

experiment_versions = Table(
    "experiment_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("file", String(500), nullable=False),
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("key", "version", name="uq_experiment_versions_key_version"),
)

keyword_rule_sets = Table(
    "keyword_rule_sets", metadata,
    Column("key", String(64), primary_key=True),
    Column("version", Integer, nullable=False),  # the version the message path matches with
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

keyword_rule_set_versions = Table(
    "keyword_rule_set_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),  # the YAML document as applied
    Column("rule_set", JSON, nullable=False),  # the same, validated: loads without the (slow) YAML parser
    Column("digest", String(64), nullable=False),
    Column("file", String(500), nullable=False),
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("key", "version", name="uq_keyword_rule_set_versions_key_version"),
)

staff_alerts = Table(  # the outbox of posts to settings.staff_webhook, one per inbox alert
    "staff_alerts", metadata,
    Column("id", Integer, primary_key=True),
    Column("cause", String(200), nullable=False, unique=True),  # the inbox row's cause
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending, posting, sent, failed (gave up)
    Column("attempts", Integer, nullable=False),
    Column("next_at", DateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Index("ix_staff_alerts_status_next", "status", "next_at"),
)

# --- access (issue 11): console users, their sessions, failed logins, the audit log ---

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # owner, operator, advisor, analyst (domain.access)
    Column("groups", JSON),  # the group keys this user may see; NULL: all
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("created_at", DateTime, nullable=False),
    Column("disabled_at", DateTime),
)

user_sessions = Table(  # console logins; the cookie holds the id, this table only its SHA-256
    "user_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),  # the form token of this session
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

login_failures = Table(  # failed console logins, for the throttle (key: a hash of name and address)
    "login_failures", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(128), nullable=False),
    Column("at", DateTime, nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)

audit_log = Table(  # append-only: every operator action from the console, the API and the CLI
    "audit_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("actor", String(120), nullable=False, index=True),  # user:NAME, token:NAME or cli:OS-USER
    Column("via", String(16), nullable=False),  # console, api, cli
    Column("action", String(120), nullable=False),
    Column("target", String(200)),
    Column("outcome", String(16), nullable=False),  # ok, refused, failed
    Column("detail", JSON),  # before / after where it matters; never personal data
)

# --- privacy rights (issue 11, P8): one row per erased member, with nothing personal in it ---

erasures = Table(
    "erasures", metadata,
    Column("id", Integer, primary_key=True),
    Column("subject_hash", String(64), nullable=False, unique=True),  # keyed hash of the erased member id
    Column("erased_at", DateTime, nullable=False),
    Column("actor", String(64), nullable=False),  # cli:USER, token:NAME or user:NAME
    Column("summary", JSON, nullable=False),  # rows removed or pseudonymised per store, and what was kept
)

# The gate's rate limits (services/gate_guard.py): one GCRA instant per bucket, keyed by a keyed hash of the
# client IP or device, shared by every process; a row whose instant has passed is the same as no row.
request_limits = Table(
    "request_limits", metadata,
    Column("key", String(100), primary_key=True),
    Column("tat", DateTime, nullable=False, index=True),
)

spent_challenges = Table(  # solved proof-of-work challenges, each good for one gate pass until it expires
    "spent_challenges", metadata,
    Column("signature", String(128), primary_key=True),
    Column("expires_at", DateTime, nullable=False, index=True),
)

# --- Day-1 tasks and S4 events (issue 12) ---

poll_votes = Table(  # a member's answer to a poll task (the poll itself is defined in the welcome document)
    "poll_votes", metadata,
    Column("id", Integer, primary_key=True),
    Column("member_id", String(128), nullable=False, index=True),
    Column("poll", String(64), nullable=False),  # the task key the poll belongs to
    Column("option", String(64), nullable=False),
    Column("voted_at", DateTime, nullable=False),
    UniqueConstraint("member_id", "poll", name="uq_poll_votes_member_poll"),
)

meetups = Table(  # S4 small events; named so they are not confused with the event log
    "meetups", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(32), nullable=False, unique=True),
    Column("title", JSON, nullable=False),  # {"zh": ..., "en": ...}
    Column("starts_at", DateTime, nullable=False),  # naive UTC
    Column("duration_minutes", Integer, nullable=False),
    Column("checkin_keyword", String(32)),  # said in a group during the event: attendance
    Column("coupon_name", String(64), nullable=False),  # the day-of coupon, issued to attendees by the ledger
    Column("coupon_value", Money, nullable=False),
    Column("coupon_hours", Integer, nullable=False),  # how long after the event's end the coupon stays valid
    Column("capacity", Integer),  # None: no limit
    Column("archived", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
)

meetup_signups = Table(  # one row per member and event: signed up, then (maybe) attended
    "meetup_signups", metadata,
    Column("id", Integer, primary_key=True),
    Column("meetup_id", ForeignKey("meetups.id"), nullable=False, index=True),
    Column("member_id", String(128), nullable=False, index=True),
    Column("signed_up_at", DateTime, nullable=False),
    Column("attended_at", DateTime),
    Column("attended_via", String(16)),  # link, keyword, console
    UniqueConstraint("meetup_id", "member_id", name="uq_meetup_signups_meetup_member"),
)

# --- Engagement levels (issue 13) ---

member_levels = Table(  # current engagement level per member (services/levels.py); level_changed events: history
    "member_levels", metadata,
    Column("member_id", String(40), primary_key=True),
    Column("level", String(16), nullable=False),  # domain/engagement.LEVELS
    Column("score", Integer, nullable=False),
    Column("since", Date, nullable=False),  # the as-of day the member reached this level
    Column("as_of", Date, nullable=False),  # the as-of day of the computation that last wrote the row
)
Index("ix_member_levels_level_since", member_levels.c.level, member_levels.c.since)

pool_members = Table(  # who entered a pool (services/pools.py), by the pool's rule; never removed by the rule
    "pool_members", metadata,
    Column("pool", String(64), primary_key=True),
    Column("member_id", String(40), primary_key=True),
    Column("entered_at", DateTime, nullable=False),  # UTC: when the rule first held (the tag's time, the level's day)
    Column("source", String(80), nullable=False),  # tag:<tag> or level:<level>
)

# --- members (issue 13): identity keys for resolving orders, merge candidates and decided merges ---

member_keys = Table(  # a shop's customer id or a phone's keyed hash, linked to one member (never a phone in clear)
    "member_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # external_id, phone (the keyed hash, services/fraud.phone_key)
    Column("key", String(128), nullable=False),
    Column("member_id", String(128), nullable=False, index=True),
    Column("linked_at", DateTime, nullable=False),
    Column("source", String(32), nullable=False),  # event, api, console
    UniqueConstraint("kind", "key", name="uq_member_keys_kind_key"),
)

# A blind index of member names (services/privacy.index_name): the keyed hash of each part of a name a search
# may type, so search by name is an index lookup and no name is stored in clear. Not unique: many share 王.
member_name_keys = Table(
    "member_name_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(128), nullable=False, index=True),
    Column("key", String(64), nullable=False),
    Index("ix_member_name_keys_key_id", "key", "id"),
)

member_merges = Table(  # one row per pair of members that may be one person: a candidate, then a decision
    "member_merges", metadata,
    Column("id", Integer, primary_key=True),
    Column("keep_id", String(128), nullable=False, index=True),  # the member that stays
    Column("merged_id", String(128), nullable=False, index=True),  # the member folded into it
    Column("reason", String(32), nullable=False),  # phone, external_id, own_link
    Column("status", String(16), nullable=False),  # candidate, merged, rejected, undone
    Column("found_at", DateTime, nullable=False),
    Column("decided_at", DateTime),
    Column("decided_by", String(64)),
    Column("moved", JSON),  # on merge: what moved (event seqs, identity ids, key ids, the member's row before)
    UniqueConstraint("keep_id", "merged_id", name="uq_member_merges_pair"),
)

# --- tier moves (issue 13): `kind: tier_rules` documents and the moves they (or a playbook step) start ---

tier_rule_sets = Table(
    "tier_rule_sets", metadata,
    Column("key", String(64), primary_key=True),
    Column("version", Integer, nullable=False),  # the version the evaluation uses
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

tier_rule_set_versions = Table(
    "tier_rule_set_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),  # the YAML document as applied
    Column("rule_set", JSON, nullable=False),  # the same, validated
    Column("digest", String(64), nullable=False),
    Column("file", String(500), nullable=False),
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("key", "version", name="uq_tier_rule_set_versions_key_version"),
)

tier_moves = Table(  # one move of one member to a tier's group (services/tier_moves.py): offered by DM, done on join
    "tier_moves", metadata,
    Column("id", Integer, primary_key=True),
    Column("member_id", String(40), nullable=False, index=True),
    Column("rule", String(140), nullable=False),  # set/rule, or playbook:<key> for a move_group step
    # requested (no link yet), offering (a worker makes the link), offered, completed, expired, failed
    Column("status", String(16), nullable=False),
    Column("open_key", String(40), unique=True),  # the member id while the move is open: one open move per member
    Column("from_group_id", Integer),
    Column("from_tier", String(16)),
    Column("to_tier", String(16), nullable=False),
    Column("to_group_id", Integer),  # chosen when offered (a move_group step names it up front)
    Column("label", String(32), nullable=False, unique=True),  # rides on the member's own invite link
    Column("leave_old", Boolean, nullable=False),
    Column("dm", JSON),  # {zh, en} templates from the rule; None: the built-in text
    Column("expire_days", Integer, nullable=False),
    Column("reason", String(200)),  # why it failed, or what staff were asked to do
    Column("created_at", DateTime, nullable=False),
    Column("claimed_at", DateTime),
    Column("offered_at", DateTime),
    Column("expires_at", DateTime),
    Column("closed_at", DateTime),
)
Index("ix_tier_moves_status_expires", tier_moves.c.status, tier_moves.c.expires_at)
Index("ix_tier_moves_rule_member", tier_moves.c.rule, tier_moves.c.member_id)
# --- outbound sync (issue 13): signed webhooks to a CRM or warehouse, one row per subscription and event ---

sync_deliveries = Table(  # queued by services/sync.py from the event log (a cursor per subscription); posted signed
    "sync_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("target", String(64), nullable=False),  # the subscription: [qunflow.sync.<name>]
    Column("event_id", String(128), nullable=False),  # the receiver's idempotency key (X-Qunflow-Event-Id)
    Column("event_seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),  # ids and documented fields only (docs/sync.md), never a name or phone
    Column("status", String(16), nullable=False),  # pending, posting, sent, dead (gave up; `qunflow sync retry`)
    Column("attempts", Integer, nullable=False),
    Column("next_at", DateTime, nullable=False),
    Column("last_status", Integer),  # the receiver's last HTTP status (none: no answer)
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    UniqueConstraint("target", "event_id", name="uq_sync_deliveries_target_event"),
    Index("ix_sync_deliveries_status_next", "status", "next_at"),
)

group_polls = Table(  # a poll posted to a group (services/group_polls.py); votes in poll_votes as poll "group:<key>"
    "group_polls", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(32), nullable=False, unique=True),
    Column("group_key", String(64), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("options", JSON, nullable=False),  # [{"key": "a", "label": "Saturday"}, ...], numbered from 1 in the post
    Column("posted_at", DateTime, nullable=False),
    Column("closes_at", DateTime, nullable=False),  # replies after it are not votes
    Column("created_by", String(64), nullable=False),
)
